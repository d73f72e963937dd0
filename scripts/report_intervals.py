"""The 95% intervals MODEL_CARD.md quotes, recomputed from the committed reports' per-image scores with darkir's
bootstrap (``darkir.eval.stats.bootstrap_mean``):

    python scripts/report_intervals.py

Prints each model's mean PSNR and SSIM on the held-out synthetic test, the paired differences DarkIR+CSF minus
DarkIR on the real LOLBlur frames and the synthetic test, and the paired NIQE differences on the unpaired sets.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from darkir.eval.stats import bootstrap_mean

REPORTS = Path(__file__).resolve().parent.parent / "reports"
DARKIR, CSF = "darkir-w32-synth", "darkir-csf-w32-synth"


def _paired_scores(report: str, method: str, metric: str) -> dict[str, float]:
    """One method's per-image ``metric`` in ``reports/<report>/per_image.csv``, by image."""
    with open(REPORTS / report / "per_image.csv", newline="") as handle:
        return {row["image"]: float(row[metric]) for row in csv.DictReader(handle) if row["method"] == method}


def _line(label: str, values: np.ndarray, digits: int) -> str:
    """``label: mean [low, high] (N images)``."""
    interval = bootstrap_mean(values)
    return f"{label}: {interval.as_text(digits)} ({interval.images} images)"


def main() -> None:
    for method in (DARKIR, CSF):
        for metric, digits in (("psnr", 2), ("ssim", 3)):
            values = np.array(list(_paired_scores("synth_test", method, metric).values()))
            print(_line(f"synth_test {method} {metric}", values, digits))
    for report in ("real_lolblur_official", "synth_test"):
        for metric, digits in (("psnr", 2), ("ssim", 3)):
            csf, darkir = _paired_scores(report, CSF, metric), _paired_scores(report, DARKIR, metric)
            print(
                _line(f"{report} {metric} CSF - DarkIR", np.array([csf[name] - darkir[name] for name in csf]), digits)
            )
    for unpaired in ("lednet_real", "lime", "dicm"):
        with open(REPORTS / "real_unpaired" / unpaired / "per_image.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        diff = np.array([float(row[f"niqe:{CSF}"]) - float(row[f"niqe:{DARKIR}"]) for row in rows])
        print(_line(f"{unpaired} NIQE CSF - DarkIR", diff, 2))


if __name__ == "__main__":
    main()
