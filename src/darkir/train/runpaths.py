"""A run's save paths: where its files go, checks that they can be written before any work, and how a run starts on
them: it continues the run there, or starts a new one, which refuses an earlier run's checkpoints or backs them up."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

from darkir.errors import ConfigError
from darkir.options import Options
from darkir.train import ddp
from darkir.train.runfiles import back_up, remove_stale_temporaries, save_problem


def checkpoint_paths(options: Options) -> tuple[Path, Path]:
    """(last, best) checkpoint files from ``save.path`` and ``save.best`` (a folder or a file)."""
    if not options.save.path:
        raise ConfigError(f"{options.source}: save.path is not set (where the last checkpoint goes)")
    last = Path(options.save.path)
    if not options.save.best:
        return last, last.with_name(f"{last.stem}_best{last.suffix}")
    best = Path(options.save.best)
    return last, (best / f"{last.stem}_best.pt" if not best.suffix else best)


def synthetic_validation(options: Options) -> bool:
    """Whether validation runs on a fixed synthetic set of held-out photos (no ``datasets.val.test_path``)."""
    synth = options.datasets.train.synth
    return synth is not None and synth.val_photos > 0 and not options.datasets.val.test_path


def validates(options: Options) -> bool:
    """Whether the run validates, and so writes ``save.best``."""
    return bool(options.datasets.val.test_path) or synthetic_validation(options)


def check_save_paths(options: Options) -> None:
    """Refuse, before any work, a ``save.path``, ``save.best`` (when the run validates) or log folder that cannot be
    written, naming its key: a failure to save there would come only after training."""
    last, best = checkpoint_paths(options)
    logs = "train.log_dir" if options.train.log_dir else "save.path (its log folder)"
    targets = [("save.path", last, False), (logs, log_folder(options), True)]
    if validates(options):
        targets.insert(1, ("save.best", best, False))
    for key, path, folder in targets:
        same = key == "save.best" and path == last
        problem = f"{path} is save.path's file too; give the best checkpoint its own name" if same else None
        problem = problem or save_problem(path, folder)
        if problem:
            raise ConfigError(f"{options.source}: {key}: {problem}; nothing was trained or written")


def log_folder(options: Options) -> Path:
    """Where the JSONL and TensorBoard logs go: ``train.log_dir``, else ``<save.path stem>_logs`` beside it."""
    last, _ = checkpoint_paths(options)
    return Path(options.train.log_dir) if options.train.log_dir else last.parent / f"{last.stem}_logs"


def run_files(options: Options) -> list[Path]:
    """The files of the run in ``save.path`` that exist: last and best checkpoints, step snapshots, their options
    files, and the log folder."""
    last, best = checkpoint_paths(options)
    snapshots = sorted(last.parent.glob(f"{glob.escape(last.stem)}_step[0-9]*{glob.escape(last.suffix)}"))
    checkpoints = list(dict.fromkeys([last, *snapshots, best]))
    paths = [path for checkpoint in checkpoints for path in (checkpoint, checkpoint.with_suffix(".yml"))]
    return [path for path in [*paths, log_folder(options)] if path.exists()]


def back_up_run(options: Options) -> list[Path]:
    """Move the earlier run's files (see :func:`run_files`) into ``backup-<time>/`` folders beside them, all or none;
    returns the folders."""
    return back_up(run_files(options))


def continue_or_start(
    options: Options, resume: bool, restart: bool, init_from: str | Path | None
) -> tuple[bool, Path | None]:
    """(whether the run continues the one in ``save.path``, the earlier run's checkpoint that a new run backs up).

    ``network.resume_training`` continues only from a last checkpoint, and not against ``restart`` or ``init_from``;
    otherwise the run is new, and an earlier run in its save paths (also a best checkpoint alone) is refused
    unless ``restart``."""
    last, _ = checkpoint_paths(options)
    automatic = options.network.resume_training and not restart and init_from is None and last.is_file()
    if resume or automatic:
        if automatic and not resume and ddp.is_main_process():
            print(f"darkir: network.resume_training: continuing the run in {last}", file=sys.stderr)
        return True, None
    earlier = _earlier_checkpoint(options)
    if earlier and not restart:
        choices = "pass resume=True to continue it, or" if earlier == last else f"{last} is gone, so pass"
        raise ConfigError(
            f"{options.source}: save.path: {earlier} holds an earlier run{_why_not_resumed(options, init_from)}; "
            f"{choices} restart=True to start over (its checkpoints are moved to a backup folder first)"
        )
    return False, earlier


def _why_not_resumed(options: Options, init_from: str | Path | None) -> str:
    """Why ``network.resume_training``, if set, did not continue the run (for the message refusing a new run)."""
    if not options.network.resume_training:
        return ""
    if init_from is not None:
        return " (network.resume_training does not apply with init_from, which starts a new run)"
    return " (network.resume_training continues only from save.path's last checkpoint)"


def _earlier_checkpoint(options: Options) -> Path | None:
    """A checkpoint of an earlier run that a new run would replace: the last one, or a best one if it validates."""
    last, best = checkpoint_paths(options)
    return next((path for path in (last, best) if path.exists() and (path == last or validates(options))), None)


def clean_up_after_killed_runs(targets: list[Path]) -> None:
    """Remove the temporary checkpoint files that killed runs left beside ``targets``, and say so."""
    removed = remove_stale_temporaries(targets)
    if removed:
        names = ", ".join(str(path) for path in removed)
        print(f"darkir: removed {len(removed)} temporary file(s) that a killed run left: {names}", file=sys.stderr)
