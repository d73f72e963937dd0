"""The model's forward pass alone on a GPU, across the settings a GPU path can choose, and where its time goes.

    python benchmarks/gpu_forward.py [--weights NAME_OR_PATH] [--sizes 1120x640,1920x1080] [--repeats 5]
        [--compile] [--profile 1920x1080] [--out gpu_forward.json]

For each size (width x height) and each combination of memory format (NCHW, channels_last), precision (fp32 with
TF32, fp16 and bf16 autocast) and ``torch.backends.cudnn.benchmark`` (off, on), the median milliseconds of
``--repeats`` forwards of a random input already on the GPU (CUDA events; two warm-ups first, so that cuDNN's
search is not timed), with the official formulation (``tests/reference.py``, eager NCHW fp32) as the baseline of the
same run. ``--compile`` adds ``torch.compile`` (default mode, then ``reduce-overhead``: CUDA graphs) of the fastest
eager setting at the first size, with its compile time. ``--profile`` prints the kernels that take the most GPU time
in one forward of the official formulation and of darkir's default setting at that size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reference import reference_forward  # noqa: E402

from darkir import create_model  # noqa: E402

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def milliseconds(run: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median GPU milliseconds of ``run`` after two warm-ups."""
    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def darkir_run(model: torch.nn.Module, x: torch.Tensor, precision: str, memory: str) -> Callable[[], torch.Tensor]:
    dtype = PRECISIONS[precision]
    model = model.to(memory_format=FORMATS[memory])
    x = x.contiguous(memory_format=FORMATS[memory])

    @torch.inference_mode()
    def run() -> torch.Tensor:
        autocast = torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            return model(x)

    return run


def official_run(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The official formulation on NCHW weights (the darkir runs turn the model to channels_last in place)."""
    params = {k: v.detach().contiguous(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}

    @torch.inference_mode()
    def run() -> torch.Tensor:
        return reference_forward(params, model.config, x)

    return run


def profile(run: Callable[[], torch.Tensor], label: str, rows: int = 15) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    run()
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=70)
    return f"== {label}\n{table}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="darkir-csf-w32-synth")
    parser.add_argument("--sizes", default="1120x640,1920x1080")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--profile", default="")
    parser.add_argument("--out", default="gpu_forward.json")
    args = parser.parse_args()
    model = create_model(args.weights, require_weights=True).eval().cuda()
    rows = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        x = torch.rand(1, 3, height, width, device="cuda")
        torch.backends.cudnn.benchmark = False
        base = milliseconds(official_run(model, x), args.repeats)
        rows.append({"size": size, "path": "official fp32", "ms": base})
        print(f"{size}\tofficial fp32\t{base:.1f} ms", flush=True)
        for bench in (False, True):
            torch.backends.cudnn.benchmark = bench
            for memory in FORMATS:
                for precision in PRECISIONS:
                    ms = milliseconds(darkir_run(model, x, precision, memory), args.repeats)
                    name = f"darkir {precision} {memory}{' cudnn.benchmark' if bench else ''}"
                    rows.append({"size": size, "path": name, "ms": ms, "speedup": base / ms})
                    print(f"{size}\t{name}\t{ms:.1f} ms\tx{base / ms:.2f}", flush=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))
    if args.compile:
        size = args.sizes.split(",")[0]
        width, height = (int(v) for v in size.split("x"))
        x = torch.rand(1, 3, height, width, device="cuda")
        best = min((r for r in rows if r["size"] == size and r["path"].startswith("darkir")), key=lambda r: r["ms"])
        _, precision, memory, *bench = best["path"].split()
        torch.backends.cudnn.benchmark = bool(bench)
        for mode in ("default", "reduce-overhead"):
            compiled = torch.compile(model.to(memory_format=FORMATS[memory]), mode=mode, dynamic=False)
            start = time.perf_counter()
            try:
                run = darkir_run(compiled, x, precision, memory)
                run()
                torch.cuda.synchronize()
                ms = milliseconds(run, args.repeats)
            except Exception as error:  # a compiler failure is a result here
                print(f"{size}\tcompile {mode}\t{type(error).__name__}: {str(error).splitlines()[0]}", flush=True)
                continue
            seconds = time.perf_counter() - start
            name = f"{best['path']} + compile {mode}"
            rows.append({"size": size, "path": name, "ms": ms, "compile_s": seconds})
            print(f"{size}\t{name}\t{ms:.1f} ms (compile and timing {seconds:.0f} s)", flush=True)
            torch._dynamo.reset()
        Path(args.out).write_text(json.dumps(rows, indent=1))
    if args.profile:
        width, height = (int(v) for v in args.profile.split("x"))
        x = torch.rand(1, 3, height, width, device="cuda")
        torch.backends.cudnn.benchmark = False
        print(profile(official_run(model, x), "official fp32"))
        print(profile(darkir_run(model, x, "fp16", "channels_last"), "darkir fp16 channels_last"))
        print(profile(darkir_run(model, x, "fp16", "nchw"), "darkir fp16 nchw"))


if __name__ == "__main__":
    main()
