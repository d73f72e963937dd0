"""darkir's restore paths on a GPU against the official formulation, in one run: speed, memory, exactness, planner.

    python benchmarks/gpu_restore.py [--weights NAME_OR_PATH] [--sizes 1120x640,1920x1080,3840x2160]
        [--repeats 3] [--frames 48] [--out reports/gpu_restore.json] [--device cuda]

For each size (width x height), in one process, on a real dark capture shipped with the package resized to that size:
the official formulation (the test oracle ``tests/reference.py`` run eagerly in fp32, NCHW, with torch's default TF32
settings, as the official ``inference.py`` runs), then darkir's ``Restorer`` with its defaults (what ``darkir restore``
runs for a few images: precision ``auto``, tile ``auto``, compile ``auto``), fp32 with TF32, bf16 and fp16 autocast
(the frequency branch keeps fp32). Each path is warmed up once (the first call: ``first_call_s``), then timed
``--repeats`` times; a row gives images per second (median), the speed-up against the official path at that size, the
peak GPU memory, and the share of 8-bit output values within one level of the exact fp32 output (the official forward
with TF32 off). A path that fails (out of memory, a compiler error) is recorded with ``"error"``. Then the memory
planner's estimate against the measured peak of a whole-image restore at each size; darkir's defaults in a job of
images enough that they compile (``darkir.infer.compiling``; at the middle size, on CUDA; its first call is the
process's first compile); and ``darkir video`` (its defaults, then compiled as ``compile="auto"`` does for a long
video; each a first run, then a second) against the official per-frame loop (decode, fp32 forward, encode) on a clip
of ``--frames`` frames at the middle size made from the shipped capture (panning, with sensor noise).

Writes ``--out`` (JSON: device, torch and CUDA versions, rows, planner, video, and the issue's bars checked in
``verdict``; rewritten after each stage, so a run cut short keeps what it measured) and prints the README table and
the verdict. With ``--device cpu`` it runs the same code on the CPU (for testing the script; tiny sizes advised).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reference import reference_forward  # noqa: E402

from darkir import create_model  # noqa: E402
from darkir.imageio import read_image  # noqa: E402
from darkir.infer import Restorer  # noqa: E402
from darkir.infer.compiling import images_to_earn  # noqa: E402

Run = Callable[[torch.Tensor], torch.Tensor]
#: TF32 for matmuls and for cuDNN convolutions as torch sets them by default (what ``darkir restore`` runs with).
TORCH_TF32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
EXAMPLE = ROOT / "src" / "darkir" / "assets" / "examples" / "lolv2-real-00733.png"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def timed(run: Run, x: torch.Tensor, repeats: int, device: torch.device) -> tuple[float, float, torch.Tensor]:
    """Median seconds of ``repeats`` calls after one warm-up, the warm-up's seconds (with any compile), and the last
    output (on the CPU, float32)."""
    synchronize(device)
    start = time.perf_counter()
    out = run(x)
    synchronize(device)
    first = time.perf_counter() - start
    durations = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        out = run(x)
        synchronize(device)
        durations.append(time.perf_counter() - start)
    return statistics.median(durations), first, out.float().cpu()


def within_one_level(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of values of two [0, 1] images within one level of each other in 8 bits."""
    levels = [torch.round(t.clamp(0, 1) * 255) for t in (a, b)]
    return (levels[0] - levels[1]).abs().le(1).float().mean().item()


def official_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights for the official formulation, in NCHW memory (a Restorer turns the model it is given to
    channels_last, and cuDNN follows the weights' layout)."""
    state = model.state_dict()
    return {k: v.detach().contiguous(memory_format=torch.contiguous_format).clone() for k, v in state.items()}


def official(
    params: dict[str, torch.Tensor], config: dict, device: torch.device, tf32: tuple[bool, bool] = TORCH_TF32
) -> Run:
    """The official formulation: eager fp32, NCHW, TF32 as ``tf32`` (matmuls, cuDNN) sets it (default: as torch
    does by default, which is how the official ``inference.py`` runs)."""
    on_device = {name: value.to(device) for name, value in params.items()}

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        return reference_forward(on_device, config, x.to(device))

    return run


def long_job(size: str) -> str:
    """The name of the path of darkir's defaults in a job long enough to compile at ``size`` (width x height)."""
    width, height = (int(v) for v in size.lower().split("x"))
    return f"darkir default, {images_to_earn(height, width)}+ images"


def darkir_paths(
    model: torch.nn.Module, size: str, device: torch.device, compiled: bool
) -> dict[str, Callable[[], Run]]:
    """Path name -> a factory of its run (made lazily, so that a failing path fails alone): the eager paths, or
    with ``compiled`` darkir's defaults in a job of images enough to compile (:meth:`Restorer.expect`; CUDA only,
    a minute to compile, so measured after the others and at one size)."""
    width, height = (int(v) for v in size.lower().split("x"))

    def restorer(precision: str, tf32: tuple[bool, bool] = (True, True), tile: int | str = 0, job: int = 0) -> Run:
        restorer = Restorer(model, device=str(device), precision=precision, tile=tile)
        if job and not restorer.expect({(1, height, width): job}):
            raise RuntimeError(f"a job of {job} images at {size} did not compile")

        def run(x: torch.Tensor) -> torch.Tensor:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
            return restorer.restore_tensor(x)

        return run

    if compiled:
        if device.type != "cuda":
            return {}
        job = images_to_earn(height, width)
        return {long_job(size): lambda: restorer("auto", tf32=TORCH_TF32, tile="auto", job=job)}
    paths = {
        "darkir default": lambda: restorer("auto", tf32=TORCH_TF32, tile="auto"),
        "darkir fp32/TF32": lambda: restorer("fp32"),
        "darkir bf16": lambda: restorer("bf16"),
    }
    if device.type == "cuda":
        paths["darkir fp16"] = lambda: restorer("fp16")
    return paths


def test_image(height: int, width: int) -> torch.Tensor:
    """A real dark capture shipped with the package (LOL v2 real 00733), resized to ``height`` x ``width``."""
    rgb = read_image(EXAMPLE).rgb
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)


def size_rows(
    model: torch.nn.Module, size: str, args: argparse.Namespace, device: torch.device, base_s: float | None = None
) -> list[dict]:
    """The official path and darkir's eager paths at one size (width x height); given the official path's
    ``base_s`` seconds there, darkir's compiled paths instead."""
    width, height = (int(v) for v in size.lower().split("x"))
    x = test_image(height, width)
    params = official_params(model)
    exact = official(params, model.config, device, tf32=(False, False))(x).float().cpu()
    rows: list[dict] = []
    paths: dict[str, Callable[[], Run]] = {}
    if base_s is None:
        paths["official fp32"] = lambda: official(params, model.config, device)
    paths.update(darkir_paths(model, size, device, compiled=base_s is not None))
    for name, make in paths.items():
        reset_peak(device)
        try:
            seconds, first, out = timed(make(), x, args.repeats, device)
        except Exception as error:  # a path that fails (out of memory, a compiler error) is recorded, not fatal
            rows.append({"size": size, "path": name, "error": f"{type(error).__name__}: {str(error).splitlines()[0]}"})
            print(f"{size}\t{name}\t{rows[-1]['error']}", flush=True)
            continue
        base_s = base_s or seconds
        rows.append(
            {
                "size": size,
                "path": name,
                "images_per_s": 1 / seconds,
                "speedup": base_s / seconds,
                "peak_gb": peak_gb(device),
                "within_1_level": within_one_level(out, exact),
                "first_call_s": first,
            }
        )
        print(f"{size}\t{name}\t{1 / seconds:.2f} img/s\tx{base_s / seconds:.2f}\t{rows[-1]['peak_gb']}", flush=True)
    return rows


def planner_rows(model: torch.nn.Module, sizes: list[str], device: torch.device) -> list[dict]:
    """The default Restorer's estimate of a whole-image restore against its measured peak, at each size."""
    restorer = Restorer(model, device=str(device), tile="auto", max_memory="1000GB")
    rows = []
    for size in sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        plan = restorer.plan_for(height, width)
        reset_peak(device)
        restorer.restore_tensor(torch.rand(1, 3, height, width))
        synchronize(device)
        measured = peak_gb(device)
        row = {"size": size, "estimated_gb": plan.estimate / 1e9, "measured_gb": measured}
        if measured is not None:  # the planner's bytes per pixel against what this restore took above the model
            row["bytes_per_pixel"] = restorer.planner.per_pixel["heap"]
            row["measured_bytes_per_pixel"] = (measured * 1e9 - restorer.planner.base) / (height * width)
        rows.append(row)
    return rows


def _clip(path: Path, width: int, height: int, frames: int) -> None:
    """A dark clip as a camera would film it: the shipped dark capture, panning 4 px a frame, with fresh sensor noise
    (2 levels) on every frame. (Uniform noise over the whole frame, as in runs before 2026-12-04, costs the encoder far
    more than real video does, and its time then hid the model's.)"""
    import av

    pan = 4 * frames
    scene = (test_image(height, width + pan)[0].permute(1, 2, 0).numpy() * 255).astype(np.float32)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            window = scene[:, 4 * index : 4 * index + width]
            frame = np.clip(window + rng.normal(0, 2, window.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _official_video(run: Run, source: Path, target: Path) -> int:
    """The official per-frame loop: decode a frame, run the fp32 forward, encode it."""
    import av

    count = 0
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for frame in inp.decode(video):
            x = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255
            rgb = (run(x)[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
            count += 1
        for packet in stream.encode():
            out.mux(packet)
    return count


def video_row(model: torch.nn.Module, size: str, frames: int, device: torch.device) -> dict:
    """Frames per second of ``darkir video`` (its defaults: a first run, with cuDNN's search for the fastest
    kernels, then a second; on CUDA also compiled: a first run, which compiles, then a second) and of the official
    loop on the same clip."""
    from darkir.infer.video import restore_video

    width, height = (int(v) for v in size.lower().split("x"))
    params = official_params(model)
    speeds = {}

    def run(name: str, restorer: Restorer) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = TORCH_TF32
        start = time.perf_counter()
        report = restore_video(restorer, source, Path(work) / f"{name}.mp4", progress=False)
        speeds[name] = report.frames / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "clip.mp4"
        _clip(source, width, height, frames)
        restorer = Restorer(model, device=str(device))  # the clip is too short for compile="auto" to compile
        run("default_first", restorer)
        run("default", restorer)
        if device.type == "cuda":  # what compile="auto" runs for a long video (``darkir video --compile``)
            compiled = Restorer(model, device=str(device), compile=True)
            run("compiled_first", compiled)
            run("compiled", compiled)
        start = time.perf_counter()
        count = _official_video(official(params, model.config, device), source, Path(work) / "official.mp4")
        theirs = count / (time.perf_counter() - start)
    row = {"size": size, "frames": frames, "frames_per_s": speeds.pop("default")}
    row.update({f"frames_per_s_{name}": speed for name, speed in speeds.items()})
    return {**row, "official_frames_per_s": theirs}


def table(report: dict) -> str:
    """The README's table (markdown)."""
    lines = [
        "| size | path | images/s | speed-up | peak GPU GB | within 1 level | first call s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['size']} | {row['path']} | {row['error']} | | | | |")
            continue
        peak = "-" if row["peak_gb"] is None else f"{row['peak_gb']:.2f}"
        lines.append(
            f"| {row['size']} | {row['path']} | {row['images_per_s']:.2f} | {row['speedup']:.2f}x | {peak} | "
            f"{row['within_1_level']:.4%} | {row['first_call_s']:.2f} |"
        )
    return "\n".join(lines)


def verdict(report: dict) -> list[str]:
    """The issue's bars, checked: darkir's defaults against the official formulation at each size, the planner's
    estimate against the measured peak, and video frames per second."""
    lines = []
    for row in report["rows"]:
        if row["path"].startswith("darkir default") and "error" not in row:
            fast, exact = row["speedup"] >= 3, row["within_1_level"] >= 0.999
            lines.append(
                f"{row['size']}: {row['path']} x{row['speedup']:.2f} ({'meets' if fast else 'misses'} 3x), "
                f"{row['within_1_level']:.4%} within one level of fp32 ({'meets' if exact else 'misses'} 99.9%)"
            )
    for row in report["planner"]:
        if row["measured_gb"]:
            ratio = row["estimated_gb"] / row["measured_gb"]
            ok = 0.8 <= ratio <= 1.2
            lines.append(
                f"{row['size']}: planner estimate {ratio:.2f}x the measured peak ({'within' if ok else 'outside'} 20%)"
            )
    fitted = [row["measured_bytes_per_pixel"] for row in report["planner"] if "measured_bytes_per_pixel" in row]
    if fitted:
        assumed = report["planner"][0]["bytes_per_pixel"]
        lines.append(
            f"planner: {assumed:.0f} bytes per pixel assumed, {statistics.median(fitted):.0f} measured (median); "
            f"darkir.infer.memory.CUDA_MARGIN times {statistics.median(fitted) / assumed:.2f} would match"
        )
    video = report.get("video")
    if video:
        ratio = video["frames_per_s"] / video["official_frames_per_s"]
        bar = "meets" if ratio >= 3 else "misses"
        name = f"video {video['size']}"
        lines.append(f"{name}: x{ratio:.2f} the official per-frame loop with the defaults, second run ({bar} 3x)")
        if "frames_per_s_compiled" in video:
            lines.append(_compiled_video(video))
    return lines


def _compiled_video(video: dict) -> str:
    """The verdict on ``darkir video`` compiled: its speed once compiled, and how long a clip must be for the whole
    run, compile included, to reach 3x the official loop."""
    steady, official = video["frames_per_s_compiled"], video["official_frames_per_s"]
    ratio = steady / official
    compile_s = max(0.0, video["frames"] / video["frames_per_s_compiled_first"] - video["frames"] / steady)
    line = f"video {video['size']} compiled: x{ratio:.2f} the official per-frame loop once compiled"
    if ratio <= 3:
        return f"{line} (misses 3x)"
    frames = 3 * compile_s / (1 / official - 3 / steady)
    return f"{line}; {compile_s:.0f} s to compile, so clips of {frames:.0f}+ frames reach 3x, compile included"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="darkir-csf-w32-synth", help="packaged name or checkpoint")
    parser.add_argument("--sizes", default="1120x640,1920x1080,3840x2160", help="WxH sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=48, help="frames of the video test (0: skip it)")
    parser.add_argument("--out", default="reports/gpu_restore.json")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU (--device cpu runs it on the CPU, for tests)")
    model = create_model(args.weights, require_weights=True)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    report: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "weights": args.weights,
        "rows": [],
        "planner": [],
        "video": None,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:  # the report is rewritten after each stage, so a run cut short keeps what it measured
        report["rows"] += size_rows(model, size, args, device)
        out.write_text(json.dumps(report, indent=1))
    report["planner"] = planner_rows(model, args.sizes, device)
    out.write_text(json.dumps(report, indent=1))
    middle = args.sizes[len(args.sizes) // 2]
    official_row = next((r for r in report["rows"] if r["size"] == middle and r["path"] == "official fp32"), None)
    if official_row is not None and "error" not in official_row:  # the first compile of the process: its cost
        report["rows"] += size_rows(model, middle, args, device, base_s=1 / official_row["images_per_s"])
        out.write_text(json.dumps(report, indent=1))
    if args.frames:
        report["video"] = video_row(model, middle, args.frames, device)
    report["verdict"] = verdict(report)
    out.write_text(json.dumps(report, indent=1))
    print(table(report))
    print("\n".join(report["verdict"]))
    print(f"report -> {out}")


if __name__ == "__main__":
    main()
