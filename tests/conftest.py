"""Shared fixtures: the ../shared folder, tiny model configs, parameter randomization."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

#: The smallest sensible DarkIR for fast tests (every structural feature still present).
TINY = {
    "width": 8,
    "enc_blk_nums": [1, 1, 1],
    "dec_blk_nums": [1, 1, 1],
    "middle_blk_num_enc": 1,
    "middle_blk_num_dec": 1,
}


#: What a test run may leave in the repository: caches and the environments the setup scripts make.
_OWN_FILES = (".venv", ".hypothesis/", ".ruff_cache/", ".pytest_cache/", "__pycache__/", ".egg-info/")


def _files_outside_git() -> set[str] | None:
    """The repository's untracked and ignored paths (as git lists them), the caches left out; None without git."""
    try:
        listing = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=normal"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = {line[3:] for line in listing.splitlines() if line[:2] in ("??", "!!")}
    return {path for path in paths if not any(own in path for own in _OWN_FILES)}


#: The folders darkir's commands and the official scripts write into by default, relative to where they run.
_DEFAULT_OUTPUTS = ("images", "videos", "models", "results", "experiments", "runs", "data")


@pytest.fixture(autouse=True)
def no_default_outputs_in_the_repository() -> Iterator[None]:
    """Fail the test that makes one of :data:`_DEFAULT_OUTPUTS` in the repository (run from there, a command
    without an output folder writes into the user's own ``./images/results_test``, say)."""
    before = {name for name in _DEFAULT_OUTPUTS if (REPO / name).exists()}
    yield
    made = {name for name in _DEFAULT_OUTPUTS if (REPO / name).exists()} - before
    assert not made, f"this test wrote into the repository: {sorted(made)}"


@pytest.fixture(autouse=True)
def temporary_folder_of_the_test(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the temporary folder of this process (``tempfile.gettempdir()``: where results that could not be
    written are kept) at a new folder beside the test's ``tmp_path``, so that tests of failed writes leave nothing in
    the machine's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tempdir")))


@pytest.fixture(scope="session", autouse=True)
def repository_left_as_it_was() -> Iterator[None]:
    """Fail the run where a test wrote into the repository (a default output folder such as ./images/results_test,
    say, where a user's own results may be)."""
    before = _files_outside_git()
    yield
    after = _files_outside_git()
    if before is not None and after is not None:
        assert after <= before, f"tests wrote into the repository: {sorted(after - before)}"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The read-only ../shared folder; required in CI, skipped elsewhere when absent."""
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} is missing; CI must provide ../shared")
        pytest.skip(f"{SHARED} not present")
    return SHARED


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Draw every parameter at random, like the conformance fixtures, so that no block is an identity.

    Weights get the default fan-in scale, norm weights spread around 1, and the residual scales
    gamma/beta (zero at init) become non-zero.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape: torch.Size, low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=generator) * (high - low) + low

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("gamma", "beta")):
                param.copy_(uniform(param.shape, -0.4, 0.4))
            elif ".norm" in name and name.endswith("weight"):
                param.copy_(uniform(param.shape, 0.5, 1.5))
            elif param.dim() > 1:
                bound = (param[0].numel()) ** -0.5
                param.copy_(uniform(param.shape, -bound, bound))
            else:
                param.copy_(uniform(param.shape, -0.1, 0.1))
    return model


def make_photos(folder: Path, count: int = 4) -> dict[str, Path]:
    """Smooth, colourful procedural 'photos' (no downloads, no ../shared needed), name -> file."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:160, 0:200] / 40.0
    made = {}
    for i in range(count):
        image = np.stack([np.sin(x * (i + 1)), np.cos(y * (i + 2)), np.sin(x + y + i)], -1) * 0.45 + 0.5
        path = folder / f"photo{i}.png"
        cv2.imwrite(str(path), (image * 255).astype(np.uint8))
        made[f"photo{i}"] = path
    return made


@pytest.fixture(scope="session")
def tiny_synth_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic paired set (``train``, ``val``, ``test``; 64-px pairs) that tests read, never write."""
    from darkir.data.synth import synthesize

    root = tmp_path_factory.mktemp("tiny-synth")
    synthesize(
        make_photos(root / "photos"), root / "set", per_photo=2, size=64, val_photos=1, test_photos=1, progress=False
    )
    return root / "set"


def tiny_run_overrides(data: Path, run: Path, *extra: str, validate: bool = True) -> list[str]:
    """Overrides of ``options/train/tiny_csf.yml`` for a tiny run on the set ``data`` (``train``, ``val``) into
    ``run`` (``last.pt``, ``best.pt``): batch 2 of 32-px crops, one epoch; ``validate=False``: no validation set."""
    return [
        f"datasets.train.train_path={data / 'train'}",
        f"datasets.val.test_path={data / 'val'}" if validate else "datasets.val.test_path=null",
        f"save.path={run / 'last.pt'}",
        f"save.best={run / 'best.pt'}",
        "datasets.train.batch_size_train=2",
        "datasets.train.cropsize=32",
        "train.epochs=1",
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved, randomized tiny DarkIR+CSF checkpoint (with its config) for end-to-end commands."""
    from darkir.checkpoint import save_checkpoint
    from darkir.models.factory import build_model

    model = randomize(build_model("darkir-csf-w32", **TINY), seed=11)
    return save_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.pt", model)


@contextlib.contextmanager
def _mounted(mount: Path, *how: str) -> Iterator[Path | None]:
    """``mount HOW... MOUNT`` for the block (unmounted after), or None where mounting is not allowed."""
    mount.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", *how, str(mount)], capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def bind_mount(source: Path, mount: Path) -> contextlib.AbstractContextManager[Path | None]:
    """``source`` bind-mounted at ``mount`` (the same folder under another name that no link resolves), or None where
    mounting is not allowed."""
    return _mounted(mount, "--bind", str(source))


def tmpfs(mount: Path, size: str) -> contextlib.AbstractContextManager[Path | None]:
    """A tmpfs of ``size`` at ``mount`` (another file system), or None where mounting is not allowed."""
    return _mounted(mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs")
