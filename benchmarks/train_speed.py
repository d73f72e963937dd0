"""Time one training step of the reference formulation against darkir's, in one run.

    python benchmarks/train_speed.py [--batch 4] [--size 256] [--steps 3] [--width 32]

All start from the same weights and see the same batches (AdamW lr 1e-4, Charbonnier, grad clip 5).
The reference step runs ``tests/reference.py`` (explicit-statistics LayerNorm, abs/angle/cos/sin
FFT branch) under the default allocator, as the official scripts do; darkir's runs the DarkIR module
after its allocator setting (``keep_freed_memory_for_reuse``), as ``darkir train`` does, with weights and batches
contiguous and then channels_last (``train.memory_format``; ``auto`` picks channels_last on the CPU). A first,
untimed step warms both up. Prints min/median step time, the speed-up, and the largest relative
difference between the loss curves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test oracle: tests/reference.py

from tests.reference import reference_forward

from darkir.models import create_model
from darkir.runtime import keep_freed_memory_for_reuse
from darkir.train.losses import charbonnier


def run(step, steps: int) -> tuple[list[float], list[float]]:
    """Warm up once, then time ``steps`` calls of ``step``; returns (seconds, losses)."""
    step(0)
    seconds, losses = [], []
    for index in range(1, steps + 1):
        start = time.perf_counter()
        losses.append(step(index))
        seconds.append(time.perf_counter() - start)
    return seconds, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--width", type=int, default=32)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.rand(args.batch, 3, args.size, args.size, generator=generator) * 0.2,
            torch.rand(args.batch, 3, args.size, args.size, generator=generator),
        )
        for _ in range(args.steps + 1)
    ]
    torch.manual_seed(0)
    initial = create_model("darkir-w32", width=args.width).state_dict()

    def trainer(forward, memory_format=torch.contiguous_format):
        model = create_model("darkir-w32", width=args.width).to(memory_format=memory_format)
        model.load_state_dict(initial)
        model.side_out.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-4)

        def step(index: int) -> float:
            low, high = batches[index]
            low = low.contiguous(memory_format=memory_format)
            loss = charbonnier(forward(model, low), high)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            return loss.item()

        return step

    def reference_style(model, x):
        return reference_forward(dict(model.named_parameters()), model.config, x)

    ref_seconds, ref_losses = run(trainer(reference_style), args.steps)
    keep_freed_memory_for_reuse()
    ours_seconds, ours_losses = run(trainer(lambda model, x: model(x)), args.steps)
    last_seconds, last_losses = run(trainer(lambda model, x: model(x), torch.channels_last), args.steps)
    threads = torch.get_num_threads()
    print(f"batch {args.batch} x 3 x {args.size}^2, width {args.width}, torch {torch.__version__}, {threads} threads")
    print("| step | min s | median s | speed-up (median) |")
    print("| --- | --- | --- | --- |")
    base = statistics.median(ref_seconds)
    rows = (
        ("reference formulation, default allocator", ref_seconds),
        ("darkir, contiguous (train.memory_format=contiguous)", ours_seconds),
        ("darkir, channels_last (train.memory_format=auto on the CPU)", last_seconds),
    )
    for label, seconds in rows:
        median = statistics.median(seconds)
        print(f"| {label} | {min(seconds):.3f} | {median:.3f} | {base / median:.2f}x |")
    curves = list(zip(ref_losses, ours_losses, last_losses, strict=True))
    worst = max(abs(a - b) / abs(a) for a, *others in curves for b in others)
    shown = ", ".join("/".join(f"{loss:.6f}" for loss in step) for step in curves)
    print(f"losses reference/contiguous/channels_last per step: {shown}; max relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
