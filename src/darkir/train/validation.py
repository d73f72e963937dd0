"""A training run's validation: the current weights restored and scored on the validation pairs as ``darkir test``
restores and scores them, and the line that reports it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from darkir.eval.metrics import prepare, psnr, ssim
from darkir.eval.paired import Scores
from darkir.eval.reports import count_note
from darkir.infer.restorer import Restorer
from darkir.models.darkir import DarkIR
from darkir.models.factory import build_model


@torch.no_grad()
def validate(
    trained: DarkIR,
    val_set: Dataset,
    device: torch.device,
    max_memory: int | float | str | None,
    stop: Callable[[], bool] = lambda: False,
) -> Scores | None:
    """PSNR/SSIM per pair of the ``trained`` model's current weights on ``val_set`` (NaN where undefined), restored
    and scored as ``darkir test`` does: by a Restorer of a copy in fp32 on ``device``, whole where an image fits the
    budget ``max_memory`` (``train.val_max_memory``), else in tiles, and the output as saved (at its input's bit
    depth, in gray for a gray input). Run on the model itself, a large photo took all the memory whole (a 2400x1600
    one 7 GB at width 32), and each resumed run again. None where ``stop()`` said to stop, which it is asked
    between images."""
    model = build_model(trained.config)
    model.load_state_dict(trained.state_dict())
    if device.type == "cuda":
        torch.cuda.empty_cache()  # training's cached blocks: free for the budget, as they are for darkir test
    restorer = Restorer(
        model,
        device=device,
        precision="fp32",
        compile=False,
        max_memory=max_memory,
        memory_setting="train.val_max_memory",
    )
    scores = Scores("val", values={"psnr": [], "ssim": []})
    for index in range(len(val_set)):
        if stop():
            return None
        sample = val_set[index]
        bit_depth = int(sample.get("bit_depth", 8))  # (synthesized pairs: 8-bit RGB)
        grayscale = bool(sample.get("grayscale", False))  # scored as darkir test scores it: as it would be saved
        out = prepare(restorer.restore_tensor(sample["low"][None]), "8bit", bit_depth, grayscale)
        scores.values["psnr"].append(psnr(out, sample["high"][None]).item())
        scores.values["ssim"].append(ssim(out, sample["high"][None]).item())
    return scores


def scores_line(scores: Scores) -> str:
    """``PSNR 24.31 dB, SSIM 0.8123``, with the count of images where a mean leaves some out (SSIM of images under
    its 11 px window: ``SSIM 0.8123 (3 of 4 images)``; none: ``n/a``)."""
    defined = scores.count("ssim")
    ssim_text = f"{scores.mean('ssim'):.4f}" if defined else "n/a (images under 11 px)"
    return f"PSNR {scores.mean('psnr'):.2f} dB, SSIM {ssim_text}{count_note(defined, len(scores.values['ssim']))}"
