"""Score checkpoints on real paired folders, detail apart from tone, to choose among training snapshots.

    python scripts/score_checkpoints.py --data data/real/pairs --data data/real/lolblur_official CKPT [CKPT ...]

Per checkpoint and folder: mean PSNR/SSIM (8-bit convention), detail PSNR/SSIM (each output's global gain and gamma
fitted to its reference, :mod:`darkir.eval.tone`) and tone (output/reference brightness ratio and correlation across
images). Then one line per checkpoint over all folders: PSNR and detail as the mean of the folders' means (each real
set weighs the same, whatever its size), and tone pooled over every image. ``--json`` also writes the rows.

``--unpaired FOLDER`` (repeatable) adds, per checkpoint, how it treats photos that are not dark: over the images of
those folders whose sRGB mean is at least :data:`WELL_EXPOSED` (scored at a long side of :data:`UNPAIRED_SIDE`), the
mean ratio of output to input brightness (1: kept as it was; real unpaired sets such as DICM hold many) and the mean
colour shift (0: channel balance kept); and the output of a flat grey of :data:`FLAT_GREY` (its channel means, and its
ripple: a pattern the flat input does not have).

The rule (:func:`choose`): among checkpoints whose pooled tone is right (correlation >= 0.7, ratio within 5% of 1),
the best mean detail PSNR; without such a checkpoint, the best by tone distance. Real pairs are for decisions only,
never for training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from darkir.data.pairs import find_unpaired, resolve_pairs
from darkir.eval.methods import model_method
from darkir.eval.paired import Scores, evaluate
from darkir.eval.tone import tone
from darkir.imageio import read_image
from darkir.infer import Restorer
from darkir.models import create_model

#: A checkpoint's pooled tone is right when its brightness correlates at least this much with the references'...
MIN_CORRELATION = 0.7
#: ...and its mean brightness is within this share of theirs.
MAX_RATIO_ERROR = 0.05


def _row(scores: Scores) -> dict[str, float]:
    shade = scores.tone()
    return {
        **{key: scores.mean(key) for key in ("psnr", "ssim", "psnr_detail", "ssim_detail")},
        "correlation": shade.correlation,
        "ratio": shade.ratio,
        "out_mean": shade.output_mean,
        "ref_mean": shade.reference_mean,
        "n": len(scores.names),
        "brightness": scores.values["brightness"],
        "ref_brightness": scores.values["ref_brightness"],
    }


def score(weights: str, folder: Path, device: str = "cpu") -> dict:
    """Scores of ``weights`` on the pairs of ``folder`` (whole images, fp32): means of PSNR/SSIM and detail PSNR/SSIM,
    tone (``correlation``, ``ratio``, ``out_mean``, ``ref_mean``), image count ``n`` and per-image brightness."""
    restorer = Restorer(create_model(weights), device=device, tile=0)
    return _row(evaluate(model_method(Path(weights).stem, restorer), resolve_pairs(folder, "test"), progress=False))


#: Inputs at least this bright (sRGB mean) count as well exposed: restoring them should keep their brightness.
WELL_EXPOSED = 0.3
#: The long side unpaired photos are scored at (their brightness is measured, not their detail).
UNPAIRED_SIDE = 512


def well_exposed_photos(folders: list[str]) -> list[np.ndarray]:
    """The images of ``folders`` whose sRGB mean is at least :data:`WELL_EXPOSED`, downscaled to a long side of at
    most :data:`UNPAIRED_SIDE`."""
    photos = []
    for folder in folders:
        for pair in find_unpaired(folder):
            rgb = read_image(pair.low).rgb
            scale = UNPAIRED_SIDE / max(rgb.shape[:2])
            if scale < 1:
                size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            if rgb.mean() >= WELL_EXPOSED:
                photos.append(rgb.astype(np.float32))
    return photos


#: The flat grey that :func:`brightness_kept` restores: a bright, featureless area (a white wall, an overcast sky).
FLAT_GREY = 0.9


def colour_shift(before: np.ndarray, after: np.ndarray) -> float:
    """How far restoring moved an image's channel balance: the largest change, over R, G and B, of a channel's share of
    the image's mean brightness (0.05: one channel 5% stronger or weaker relative to the others)."""
    share_before = before.reshape(-1, 3).mean(0) / before.mean()
    share_after = after.reshape(-1, 3).mean(0) / after.mean()
    return float(np.abs(share_after / share_before - 1).max())


def brightness_kept(weights: str, photos: list[np.ndarray], device: str = "cpu") -> dict[str, float]:
    """How ``weights`` treats well-exposed ``photos``: the mean and largest output/input ratio of their sRGB means,
    their count, the mean and largest :func:`colour_shift`; and on a flat grey of :data:`FLAT_GREY` (256 x 256) the
    output's channel means and its ripple (the largest of the channels' standard deviations over pixels: a pattern the
    input lacks)."""
    restorer = Restorer(create_model(weights), device=device, tile=0)
    outputs = [restorer.restore_array(rgb) for rgb in photos]
    ratios = [float(out.mean() / rgb.mean()) for rgb, out in zip(photos, outputs, strict=True)]
    shifts = [colour_shift(rgb, out) for rgb, out in zip(photos, outputs, strict=True)]
    flat = restorer.restore_array(np.full((256, 256, 3), FLAT_GREY, np.float32))
    return {
        "kept_ratio": float(np.mean(ratios)),
        "kept_max": float(np.max(ratios)),
        "kept_n": len(ratios),
        "colour_shift": float(np.mean(shifts)),
        "colour_shift_max": float(np.max(shifts)),
        "flat_rgb": [float(c) for c in flat.reshape(-1, 3).mean(0)],
        "flat_ripple": float(flat.std(axis=(0, 1)).max()),
    }


def pooled(per_folder: dict[str, dict]) -> dict[str, float]:
    """Over several folders: PSNR/SSIM/detail as the mean of the folders' means, tone pooled over every image."""
    rows = list(per_folder.values())
    shade = tone(
        [b for r in rows for b in r["brightness"]],
        [b for r in rows for b in r["ref_brightness"]],
    )
    means = {key: float(np.mean([r[key] for r in rows])) for key in ("psnr", "ssim", "psnr_detail", "ssim_detail")}
    return {**means, "correlation": shade.correlation, "ratio": shade.ratio, "n": sum(r["n"] for r in rows)}


def tone_ok(row: dict[str, float]) -> bool:
    """Whether a pooled row's tone follows the scene at the right level."""
    return row["correlation"] >= MIN_CORRELATION and abs(row["ratio"] - 1) <= MAX_RATIO_ERROR


def choose(rows: dict[str, dict[str, float]]) -> str:
    """The checkpoint to keep among ``name -> pooled row`` (the rule in the module docstring)."""
    good = [name for name, row in rows.items() if tone_ok(row)]
    if good:
        return max(good, key=lambda name: rows[name]["psnr_detail"])

    def distance(name: str) -> float:
        row = rows[name]
        return max(MIN_CORRELATION - row["correlation"], 0) + abs(row["ratio"] - 1)

    return min(rows, key=distance)


def line(label: str, row: dict[str, float]) -> str:
    """One printed row."""
    return (
        f"{label}\tPSNR {row['psnr']:.2f}\tSSIM {row['ssim']:.4f}\tdetail {row['psnr_detail']:.2f} / "
        f"{row['ssim_detail']:.4f}\tbrightness ratio {row['ratio']:.3f}\tcorrelation {row['correlation']:.2f}"
        f"\t({row['n']} images)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="checkpoint paths or zoo names")
    parser.add_argument("--data", action="append", required=True, help="paired folder (repeat)")
    parser.add_argument("--unpaired", action="append", default=[], help="unpaired folder of photos (repeat)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    rows, summary = [], {}
    photos = well_exposed_photos(args.unpaired)
    for weights in args.checkpoints:
        per_folder = {}
        for folder in args.data:
            per_folder[folder] = score(weights, Path(folder), args.device)
            rows.append({"weights": weights, "data": folder, **per_folder[folder]})
            print(line(f"{weights}\t{folder}", per_folder[folder]), flush=True)
        summary[weights] = pooled(per_folder)
        rows.append({"weights": weights, "data": "pooled", **summary[weights]})
        print(line(f"{weights}\tpooled", summary[weights]), flush=True)
        if photos:
            kept = brightness_kept(weights, photos, args.device)
            rows.append({"weights": weights, "data": "well-exposed", **kept})
            print(
                f"{weights}\twell-exposed\tbrightness out/in {kept['kept_ratio']:.3f} (largest {kept['kept_max']:.3f}, "
                f"{kept['kept_n']} photos)\tcolour shift {kept['colour_shift']:.3f} (largest "
                f"{kept['colour_shift_max']:.3f})\tflat grey {FLAT_GREY} -> "
                f"{'/'.join(f'{c:.3f}' for c in kept['flat_rgb'])}, ripple {kept['flat_ripple']:.4f}",
                flush=True,
            )
    if len(summary) > 1:
        print(f"chosen: {choose(summary)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
