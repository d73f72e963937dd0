"""Whether half precision holds for the packaged weights on real captures: activation range and 8-bit agreement.

    python benchmarks/fp16_range.py [--weights NAME ...] [--images DIR ...] [--exact-images 3] [--crop 384]
        [--out reports/fp16_range.txt]

fp16 keeps 10 mantissa bits (bf16 keeps 7) but ends at 65504. The frequency branch keeps its FFT and MLP in fp32
(the FFT's DC term is a sum over the whole image); every other activation runs in fp16 under autocast. For each
model this measures, in fp32 on the CPU over every image of ``--images`` (whole, up to 1.4 megapixels):

- the largest magnitude of any activation (a module's input or output) outside the frequency branch, and its
  margin below 65504;
- on the first ``--exact-images`` images (a centre crop of ``--crop`` px, CPU autocast), the share of 8-bit output
  values within one level of fp32 for fp16 and for bf16, and the largest difference in levels.

The CPU's fp16 kernels round as a GPU's do not exactly; ``benchmarks/gpu_restore.py`` measures the same share on
the GPU itself. Writes ``--out`` and prints it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from darkir import create_model
from darkir.imageio import read_image

FP16_MAX = 65504.0
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MAX_PIXELS = 1_400_000


def images(folders: list[str]) -> list[Path]:
    files = [p for folder in folders for p in sorted(Path(folder).iterdir()) if p.suffix.lower() in SUFFIXES]
    if not files:
        raise SystemExit(f"no images in {', '.join(folders)} (scripts/fetch_real_eval.sh fetches the real sets)")
    return files


def as_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(read_image(path).rgb)).permute(2, 0, 1)[None].float()


def peak_activation(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, str]:
    """The largest |activation| going into or out of any module outside the frequency branch (products computed
    between modules are the next module's input), and where."""
    peak = [0.0, ""]

    def record(name: str):
        def hook(module, inputs, output) -> None:
            for role, value in [*(("input of", t) for t in inputs), ("output of", output)]:
                if isinstance(value, torch.Tensor) and float(value.abs().max()) > peak[0]:
                    peak[:] = [float(value.abs().max()), f"{role} {name}"]

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n and ".freq" not in n]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return peak[0], peak[1]


def agreement(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype) -> tuple[float, int]:
    """Share of 8-bit values within one level of fp32 under ``dtype`` autocast, and the largest difference."""
    with torch.inference_mode():
        exact = model(x).clamp(0, 1)
        with torch.autocast("cpu", dtype=dtype):
            half = model(x).float().clamp(0, 1)
    levels = (torch.round(exact * 255) - torch.round(half * 255)).abs()
    return levels.le(1).float().mean().item(), int(levels.max())


def centre_crop(x: torch.Tensor, side: int) -> torch.Tensor:
    top, left = max(0, (x.shape[-2] - side) // 2), max(0, (x.shape[-1] - side) // 2)
    return x[..., top : top + side, left : left + side]


def model_lines(name: str, files: list[Path], args: argparse.Namespace) -> list[str]:
    model = create_model(name, require_weights=True).eval()
    peak, where, measured = 0.0, "", 0
    for path in files:
        x = as_tensor(path)
        if x.shape[-2] * x.shape[-1] > MAX_PIXELS:
            continue
        value, module = peak_activation(model, x)
        measured += 1
        if value > peak:
            peak, where = value, f"{module} on {path}"
        print(f"{name}\t{path}\t{value:.1f}", flush=True)
    lines = [
        f"{name}: {measured} images; largest activation outside the frequency branch {peak:.1f} ({where}); "
        f"fp16's range is {FP16_MAX / peak:.0f}x that"
    ]
    for label, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        shares = [agreement(model, centre_crop(as_tensor(p), args.crop), dtype) for p in files[: args.exact_images]]
        lines.append(
            f"{name}: {label} autocast (CPU) on {len(shares)} {args.crop}px crops: "
            f"{min(s for s, _ in shares):.4%} of 8-bit values within one level of fp32 (worst image), "
            f"largest difference {max(d for _, d in shares)} levels"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", default=["darkir-csf-w32-synth", "darkir-w32-synth"])
    parser.add_argument(
        "--images",
        nargs="+",
        default=["data/real/pairs/low", "data/real/lolblur_official/low", "data/real/lime", "data/real/lednet_real"],
    )  # fmt: skip
    parser.add_argument("--exact-images", type=int, default=3, help="images of the fp16/bf16 agreement (slow on CPU)")
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--out", default="reports/fp16_range.txt")
    args = parser.parse_args()
    files = images(args.images)
    command = "python benchmarks/fp16_range.py --images " + " ".join(args.images)
    lines = [f"# {command}", f"# torch {torch.__version__}, {torch.get_num_threads()} threads"]
    for name in args.weights:
        lines += model_lines(name, files, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
