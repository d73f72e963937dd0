"""Paired evaluation: per-image PSNR/SSIM/LPIPS, detail scores and brightness of one method, example triplets, CSV
rows (see :mod:`darkir.eval.tone` for detail and tone)."""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from darkir.data.dataset import PairedDataset
from darkir.data.layouts import DatasetError
from darkir.data.pairs import Pair
from darkir.errors import DarkIRError, printable, some_of, warn
from darkir.eval.lpips import LPIPS
from darkir.eval.methods import Method
from darkir.eval.metrics import Convention, format_number, prepare, psnr, ssim
from darkir.eval.reports import count_note, plural, skip_unreadable_image, unreadable_note, write_csv_rows, write_text
from darkir.eval.stats import mean_of_defined
from darkir.eval.tone import Tone, brightness, has_detail, tone, tone_fitted
from darkir.imageio import Image, ImageReadError, write_image
from darkir.outputs import OutputError
from darkir.progress import progress_bar
from darkir.runtime import memory_returned_to_os

METRICS = ("psnr", "ssim", "lpips", "psnr_detail", "ssim_detail")
#: Per-image brightness columns: the output's and the reference's mean value.
BRIGHTNESS = ("brightness", "ref_brightness")


@dataclass
class Scores:
    """Per-image metrics of one method on one set of pairs."""

    method: str
    names: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in (*METRICS, *BRIGHTNESS)})
    seconds: list[float] = field(default_factory=list)
    #: ``path: why`` of each pair left out because an image of it could not be read (see :func:`evaluate`).
    unreadable: list[str] = field(default_factory=list)
    #: The indices of the input/output/gt triplets :func:`evaluate` saved.
    saved: list[int] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        """Mean over images (NaN when the metric is unavailable)."""
        return mean_of_defined(self.values[metric])

    def count(self, metric: str) -> int:
        """How many images have a value of ``metric`` (SSIM, for one, has none under 11 pixels a side)."""
        return sum(not math.isnan(v) for v in self.values[metric])

    def array(self, metric: str) -> np.ndarray:
        return np.asarray(self.values[metric], dtype=np.float64)

    def tone(self) -> Tone:
        """How the outputs' brightness follows the references' across the images."""
        return tone(self.values["brightness"], self.values["ref_brightness"])


def _save(path: Path, tensor: torch.Tensor, bit_depth: int) -> None:
    """One image of a triplet as a PNG of the input's ``bit_depth`` (16 bits for float inputs), at which its output
    was scored (an 8-bit PNG of a 16-bit input's output did not give its score back)."""
    rgb = tensor[0].clamp(0, 1).permute(1, 2, 0).numpy()
    write_image(path, Image(rgb=rgb, alpha=None, bit_depth=min(bit_depth, 16), grayscale=False))


@dataclass(frozen=True)
class _Triplet:
    """Input, output and reference of pair ``index``, to save in ``folder`` as PNGs of ``bit_depth``."""

    folder: Path
    index: int
    images: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    bit_depth: int


def _save_triplet(triplet: _Triplet, method: str, pairs: Sequence[Pair], count: int, saved: list[int]) -> bool:
    """Save ``triplet``, listed in the note first (never taken for another run's), and add it to ``saved``; where it
    cannot be written (a full disk), remove what of it was, warn naming why and return False: the scores go on
    without more triplets, which are only examples."""
    folder, index = triplet.folder, triplet.index
    try:
        write_triplet_note(folder, method, pairs, count, [*saved, index])
        for suffix, image in zip(TRIPLET_SUFFIXES, triplet.images, strict=True):
            _save(folder / f"{index:05d}_{suffix}.png", image, triplet.bit_depth)
    except (OutputError, OSError) as exc:
        for suffix in TRIPLET_SUFFIXES:
            with contextlib.suppress(OSError):
                (folder / f"{index:05d}_{suffix}.png").unlink(missing_ok=True)
        with contextlib.suppress(OutputError, OSError):
            write_triplet_note(folder, method, pairs, count, saved)
        warn(f"{exc}; no more triplets are saved (the scores go on)")
        return False
    saved.append(index)
    return True


def evaluate(
    method: Method,
    pairs: Sequence[Pair],
    convention: Convention = "8bit",
    lpips: LPIPS | None = None,
    save_dir: Path | None = None,
    save_count: int = 0,
    progress: bool = True,
    skip_unreadable: bool = False,
) -> Scores:
    """Score ``method`` on every pair; save the first ``save_count`` input/output/gt triplets to ``save_dir``, each
    listed in its :data:`TRIPLET_NOTE` as it is written (:func:`write_triplet_note`); a triplet that cannot be
    written (a full disk) ends the saving with a warning, not the scoring.

    Each output is scored and dropped, so memory does not grow with the number of pairs; decoding and scoring
    run with memory returned to the OS, so their one-off shapes leave no holes in the heap the model reuses.
    A pair with an image that cannot be decoded raises :class:`~darkir.imageio.ImageReadError` (one whose sizes no
    longer match, replaced since the pairs were checked, a DatasetError), or with ``skip_unreadable`` is left out,
    said in one line on stderr and listed in :attr:`Scores.unreadable`.
    """
    scores = Scores(method.name)
    dataset = PairedDataset(pairs)
    gray: list[str] = []  # pairs whose scored image is gray and whose reference is in colour
    desc = printable(f"testing {method.name}", one_line=True)  # the name of a folder in darkir metrics
    for index in progress_bar(range(len(dataset)), desc=desc, unit="img", disable=not progress):
        try:
            with memory_returned_to_os():
                sample = dataset[index]
        except (ImageReadError, OSError, DatasetError) as exc:  # (a pair's sizes that no longer match: replaced)
            if not skip_unreadable:
                raise
            skip_unreadable_image(exc, scores.unreadable)
            continue
        low, high = sample["low"][None], sample["high"][None]
        start = time.perf_counter()
        with torch.inference_mode():
            try:
                raw = method.run(low).float().cpu()
            except DarkIRError as exc:  # e.g. broken weights' NaN output: named with the image
                raise DarkIRError(f"{pairs[index].low}: {exc}") from None
        scores.seconds.append(time.perf_counter() - start if method.timed else math.nan)
        with memory_returned_to_os():
            bit_depth = int(sample["bit_depth"])
            out = prepare(raw, convention, bit_depth, bool(sample["grayscale"]))  # as saved: in gray for a gray input
            if _is_gray(out) and not _is_gray(high):
                gray.append(str(sample["name"]))
            scores.names.append(str(sample["name"]))
            _score(scores, out, high, bit_depth, lpips)
            if save_dir is not None and index < save_count:
                triplet = _Triplet(save_dir, index, (low, out, high), bit_depth)
                save_dir = save_dir if _save_triplet(triplet, method.name, pairs, save_count, scores.saved) else None
        del sample, low, high, raw, out
    _warn_gray(gray)
    return scores


def _score(scores: Scores, out: torch.Tensor, high: torch.Tensor, bit_depth: int, lpips: LPIPS | None) -> None:
    """Add the metrics of the prepared output ``out`` against its reference ``high`` to ``scores``."""
    scores.values["psnr"].append(psnr(out, high).item())
    scores.values["ssim"].append(ssim(out, high).item())
    scores.values["lpips"].append(lpips(out.clamp(0, 1), high).item() if lpips else float("nan"))
    if has_detail(high, bit_depth):
        detail = tone_fitted(out, high, bit_depth)
        scores.values["psnr_detail"].append(psnr(detail, high).item())
        scores.values["ssim_detail"].append(ssim(detail, high).item())
    else:
        scores.values["psnr_detail"].append(math.nan)
        scores.values["ssim_detail"].append(math.nan)
    scores.values["brightness"].append(brightness(out.clamp(0, 1)).item())
    scores.values["ref_brightness"].append(brightness(high).item())


def _is_gray(image: torch.Tensor) -> bool:
    """Whether an (N, 3, H, W) image's three channels are one (and not all of one value)."""
    same = torch.equal(image[:, 0], image[:, 1]) and torch.equal(image[:, 1], image[:, 2])
    return bool(same and image.amax() > image.amin())


def _warn_gray(names: list[str]) -> None:
    """One warning naming the pairs whose scored image is grayscale and whose reference is in colour (often an
    output saved in gray by mistake): the missing colour counts in every score."""
    if names:
        what = "image is" if len(names) == 1 else "images are"
        warn(
            f"{len(names)} {what} grayscale where the reference is in colour ({some_of(names, 3)}): the missing "
            "colour counts in PSNR, SSIM and LPIPS"
        )


#: The note ``darkir test`` writes beside its triplets: it marks the folder as one of its results (see
#: :func:`check_triplet_folder`) and says which pair each triplet is.
TRIPLET_NOTE = "triplets.txt"
_NOTE_HEADER = "darkir test: input/output/gt triplets"
TRIPLET_SUFFIXES = ("input", "output", "gt")


def triplet_names(count: int, skip: frozenset[int] = frozenset()) -> list[str]:
    """The files of the first ``count`` triplets (``00000_input.png``, ``00000_output.png``, ``00000_gt.png``, ...),
    but those of the indices in ``skip``."""
    return [f"{index:05d}_{suffix}.png" for index in range(count) if index not in skip for suffix in TRIPLET_SUFFIXES]


#: A triplet's line in :data:`TRIPLET_NOTE`: its index (five digits or more), then its pair.
_NOTED = re.compile(r"([0-9]{5,}) ")


def noted_triplets(folder: Path) -> frozenset[int] | None:
    """The indices of the triplets an earlier ``darkir test`` wrote in ``folder`` (listed in its
    :data:`TRIPLET_NOTE`), or None if it holds no such note."""
    try:
        with open(folder / TRIPLET_NOTE, encoding="utf-8", errors="surrogateescape") as note:
            if not note.readline().startswith(_NOTE_HEADER):
                return None
            return frozenset(int(match[1]) for line in note if (match := _NOTED.match(line)))
    except (OSError, UnicodeDecodeError):
        return None


def check_triplet_folder(folder: Path, count: int, overwrite: bool, flag: str = "--results-dir") -> None:
    """Refuse to write ``count`` triplets into ``folder`` over files that are not an earlier run's triplets (those
    its :data:`TRIPLET_NOTE` lists): files named like them, or like the note without being one, unless
    ``overwrite``."""
    if overwrite:
        return
    noted = noted_triplets(folder)
    names = triplet_names(count, noted or frozenset()) + ([TRIPLET_NOTE] if noted is None else [])
    taken = [name for name in names if (folder / name).exists() or (folder / name).is_symlink()]
    if taken:
        raise DarkIRError(
            f"{flag} {folder} holds {some_of(taken, 3)}, not triplets of an earlier darkir test (not listed "
            f"in a {TRIPLET_NOTE} of one); pass --overwrite to replace them, or choose another {flag}"
        )


def write_triplet_note(
    folder: Path, method: str, pairs: Sequence[Pair], count: int, saved: Sequence[int] | None = None
) -> None:
    """Mark ``folder`` as ``darkir test``'s: :data:`TRIPLET_NOTE` names the pair of each of the first ``count``
    triplets (of those ``saved`` only, where given: the triplets written so far; a pair that could not be read has
    none). The triplets an earlier run's note lists besides those are removed, so that none of another run is left
    among them, even where this run is stopped before it writes its own."""
    count = min(count, len(pairs))
    listed = [index for index in range(count) if saved is None or index in saved]
    for index in sorted(set(noted_triplets(folder) or ()) - set(listed)):
        for suffix in TRIPLET_SUFFIXES:
            (folder / f"{index:05d}_{suffix}.png").unlink(missing_ok=True)
    lines = [
        f"{_NOTE_HEADER} of {printable(method, one_line=True)}, {len(listed)} of the first {count} pairs (input, "
        "reference):"
    ]
    lines += [  # one line each, whatever the names hold (a newline would start a line of its own)
        f"{index:05d} {printable(str(pairs[index].low), True)} {printable(str(pairs[index].high), True)}"
        for index in listed
    ]
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / TRIPLET_NOTE, "\n".join(lines) + "\n")


def write_csv(path: Path, all_scores: Sequence[Scores], overwrite: bool = True) -> None:
    """One row per image and method: name, method, the metrics, brightness of output and reference, seconds (empty
    for a method that takes none: the input as it is, outputs scored as files). Written
    atomically (a failure leaves an existing file as it was); an existing file is replaced only with ``overwrite``."""
    write_csv_rows(path, score_rows(all_scores), overwrite)


def score_rows(all_scores: Sequence[Scores]) -> list[list[str]]:
    """The rows of :func:`write_csv`'s file, its header first."""
    rows = [["image", "method", *METRICS, *BRIGHTNESS, "seconds"]]
    for scores in all_scores:
        for i, name in enumerate(scores.names):
            row = [f"{scores.values[m][i]:.6f}" for m in (*METRICS, *BRIGHTNESS)]
            seconds = scores.seconds[i]
            rows.append([name, scores.method, *row, "" if math.isnan(seconds) else f"{seconds:.4f}"])
    return rows


def summary_line(scores: Scores, convention: Convention) -> str:
    """``method: PSNR .. dB, SSIM .., LPIPS .. (n images, convention)``; a mean over only some of the images says
    how many (``SSIM 0.17 (1 of 5 images)``); a last line names the images skipped as unreadable, if any."""
    total = len(scores.names)

    def mean(metric: str, digits: int, unit: str = "") -> str:
        value = scores.mean(metric)
        return format_number(value, f".{digits}f") + unit + count_note(scores.count(metric), total)

    label = (
        "outputs clamped to [0,1] and quantized to 8 bits (16 for 16-bit inputs)"
        if convention == "8bit"
        else "raw float outputs (reference)"
    )
    return (
        f"{scores.method}: PSNR {mean('psnr', 2, ' dB')}, SSIM {mean('ssim', 4)}, LPIPS {mean('lpips', 4)} "
        f"({plural(total)}; {label})\n"
        f"  detail (tone fitted per image): PSNR {mean('psnr_detail', 2, ' dB')}, "
        f"SSIM {mean('ssim_detail', 4)}; tone: {scores.tone().as_text()}"
        + (f"\n  {unreadable_note(total, scores.unreadable)}" if scores.unreadable else "")
    )
