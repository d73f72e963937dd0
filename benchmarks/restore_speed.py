"""Time the reference-style eager fp32 forward against darkir's restore paths on one input, in one run.

    python benchmarks/restore_speed.py [--size 640x1120] [--repeats 3] [--weights NAME_OR_PATH] [--compile]

Runs, in this order and in the same process: the reference formulation (``tests/reference.py``,
NCHW, default allocator, as the official scripts run it); the same after darkir's allocator setting
(to show how much of the gain is that setting alone); darkir with its defaults (``Restorer(model)``: ``--tile
auto``, ``--precision auto``, what ``darkir restore`` runs); darkir fp32 (channels_last, native LayerNorm,
allocator); darkir bf16 (autocast); optionally darkir fp32 + torch.compile. Each is warmed up
once, then timed ``--repeats`` times; min and median are printed with the speed-up of the median
against the reference, the max abs difference of outputs and the PSNR of each output against the
fp32 reference output (outputs clamped to [0, 1]).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test oracle: tests/reference.py

from tests.reference import reference_forward

from darkir.infer import Restorer
from darkir.models import create_model
from darkir.runtime import keep_freed_memory_for_reuse


def timed(run: Callable[[], torch.Tensor], repeats: int) -> tuple[list[float], torch.Tensor]:
    """Warm up once, then time ``repeats`` calls; returns the durations and the last output."""
    out = run()
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        durations.append(time.perf_counter() - start)
    return durations, out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images clamped to [0, 1]."""
    mse = torch.mean((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def within_one_level(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of values of two images in [0, 1] that are within one level of each other in 8 bits."""
    levels = [torch.round(t.clamp(0, 1) * 255) for t in (a, b)]
    return (levels[0] - levels[1]).abs().le(1).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x1120", help="HxW of the input (default 640x1120)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", help="checkpoint or zoo name (default: darkir-w32 with seeded random weights)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (compiles for a minute)")
    parser.add_argument("--onnx", action="store_true", help="also time ONNX Runtime (CPU) on the exported model")
    parser.add_argument(
        "--pairs", action="append", default=[], help="paired folder (repeat): fp32 vs bf16 PSNR against ground truth"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))

    torch.manual_seed(0)
    model = create_model(args.weights or "darkir-w32")
    if not args.weights:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith(("gamma", "beta")):
                    param.uniform_(-0.1, 0.1)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    params = {k: v.clone() for k, v in model.state_dict().items()}
    rows: list[dict[str, object]] = []

    def record(name: str, run: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            durations, out = timed(run, args.repeats)
        rows.append({"path": name, "min_s": min(durations), "median_s": statistics.median(durations), "out": out})
        print(f"{name:<34} min {min(durations):7.3f} s  median {statistics.median(durations):7.3f} s", flush=True)
        return out

    reference = record("reference eager fp32", lambda: reference_forward(params, model.config, x))
    keep_freed_memory_for_reuse()
    record("reference eager fp32 + allocator", lambda: reference_forward(params, model.config, x))
    default = Restorer(model, device="cpu")
    record(f"darkir defaults ({str(default.dtype).removeprefix('torch.')})", lambda: default.restore_tensor(x))
    fast = Restorer(model, device="cpu", tile=0, precision="fp32")
    record("darkir fp32", lambda: fast.restore_tensor(x))
    bf16 = Restorer(model, device="cpu", tile=0, precision="bf16")
    record("darkir bf16", lambda: bf16.restore_tensor(x))
    if args.compile:
        compiled = Restorer(model, device="cpu", tile=0, precision="fp32", compile=True)
        record("darkir fp32 + compile", lambda: compiled.restore_tensor(x))

    if args.onnx:
        import tempfile

        import onnxruntime

        from darkir.export import export_onnx

        with tempfile.TemporaryDirectory() as tmp:
            session = onnxruntime.InferenceSession(
                str(export_onnx(model, f"{tmp}/model.onnx")), providers=["CPUExecutionProvider"]
            )
            record("onnxruntime fp32", lambda: torch.from_numpy(session.run(None, {"input": x.numpy()})[0]))
    base = rows[0]["median_s"]
    print(f"\ninput 1x3x{height}x{width}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| path | min s | median s | speed-up (median) | max abs diff | PSNR vs reference (dB) | within 1 level |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        out = row.pop("out")
        row["speedup"] = base / row["median_s"]
        row["max_abs_diff"] = (out - reference).abs().max().item()
        row["psnr_vs_reference"] = psnr(out, reference)
        row["within_one_level"] = within_one_level(out, reference)
        print(
            f"| {row['path']} | {row['min_s']:.3f} | {row['median_s']:.3f} | {row['speedup']:.2f}x "
            f"| {row['max_abs_diff']:.2e} | {row['psnr_vs_reference']:.2f} | {row['within_one_level']:.4%} |"
        )
    for folder in args.pairs:
        from darkir.data.pairs import find_pairs
        from darkir.eval.methods import model_method
        from darkir.eval.paired import evaluate

        pairs = find_pairs(folder)
        fp32_scores = evaluate(model_method("fp32", fast), pairs, progress=False)
        bf16_scores = evaluate(model_method("bf16", bf16), pairs, progress=False)
        change = bf16_scores.mean("psnr") - fp32_scores.mean("psnr")
        print(
            f"PSNR against ground truth on {len(pairs)} pairs of {folder} (8-bit convention): "
            f"fp32 {fp32_scores.mean('psnr'):.3f} dB, bf16 {bf16_scores.mean('psnr'):.3f} dB, change {change:+.3f} dB"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"size": [height, width], "threads": torch.get_num_threads(), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
