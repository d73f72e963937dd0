"""The ``darkir`` command: thin subcommands over the public API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from darkir.errors import DarkIRError

if TYPE_CHECKING:
    from darkir.eval.lpips import LPIPS
    from darkir.infer import Restorer
    from darkir.models import DarkIR


def _add_model_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-p", "--options", metavar="YAML", help="options file whose network: section defines the model")
    group.add_argument("-m", "--model", metavar="NAME", help="registered variant (see `darkir models`)")
    group.add_argument("--weights", metavar="NAME_OR_PATH", help="checkpoint whose stored or inferred config is used")


def _model_from_args(args: argparse.Namespace) -> DarkIR:
    from darkir.checkpoint import load_model
    from darkir.config import load_options
    from darkir.models import build_model

    if args.options:
        return build_model(load_options(args.options).network.model_kwargs())
    if args.weights:
        return load_model(args.weights)
    return build_model(args.model or "darkir-w32")


def _add_weights_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        metavar="NAME_OR_PATH",
        help="checkpoint file or zoo name with weights (default: the packaged default)",
    )
    parser.add_argument(
        "-p", "--options", metavar="YAML", help="options file: network: builds the model, save.path is the weights"
    )


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    from darkir.infer import DEFAULT_OVERLAP, DEFAULT_TILE

    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="compute precision")
    parser.add_argument(
        "--tile",
        type=int,
        default=DEFAULT_TILE,
        help=f"tile side for large inputs, 0 = whole image (default {DEFAULT_TILE})",
    )
    parser.add_argument(
        "--overlap", type=int, default=DEFAULT_OVERLAP, help=f"tile overlap (default {DEFAULT_OVERLAP})"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster after)")


def _restorer_from_args(args: argparse.Namespace) -> Restorer:
    from darkir.checkpoint import load_model
    from darkir.config import load_options
    from darkir.errors import CheckpointError
    from darkir.infer import Restorer
    from darkir.models.zoo import DEFAULT_WEIGHTS

    config = None
    weights = args.weights
    if args.options:
        options = load_options(args.options)
        config = options.network.model_kwargs()
        weights = weights or options.require_path("save.path", kind="file")
    weights = weights or DEFAULT_WEIGHTS
    if weights is None:
        raise CheckpointError(
            "this version of darkir ships no default weights yet; pass --weights PATH "
            "(an official DarkIR checkpoint or one you trained) or -p OPTIONS with save.path"
        )
    model = load_model(weights, config=config)
    return Restorer(
        model, device=args.device, precision=args.precision, tile=args.tile, overlap=args.overlap, compile=args.compile
    )


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore image files, folders and globs into an output folder."""
    from pathlib import Path

    from darkir.infer.files import ensure_writable_dir, plan_jobs, restore_files

    output = Path(args.output)
    suffix = f".{args.format.lower().lstrip('.')}" if args.format else None
    jobs, problems = plan_jobs(args.inputs, output, suffix)
    for path, reason in problems:
        print(f"darkir: {path}: {reason}", file=sys.stderr)
    if not jobs:
        print("darkir: error: nothing to restore", file=sys.stderr)
        return 2
    ensure_writable_dir(output)
    restorer = _restorer_from_args(args)
    report = restore_files(restorer, jobs, overwrite=args.overwrite, progress=not args.quiet)
    print(
        f"restored {len(report.done)}, skipped {len(report.skipped)} existing (use --overwrite), "
        f"failed {len(report.failed) + len(problems)} -> {output}"
    )
    return 1 if report.failed or problems else 0


def cmd_video(args: argparse.Namespace) -> int:
    """Restore a video frame by frame, keeping timing, resolution and audio."""
    from pathlib import Path

    from darkir.errors import DarkIRError
    from darkir.infer.files import ensure_writable_dir
    from darkir.infer.video import restore_video

    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        raise DarkIRError(f"{source}: no such video file")
    if target.is_dir() or not target.suffix:
        target = target / f"{source.stem}.mp4"
    if target.exists() and not args.overwrite:
        raise DarkIRError(f"{target} exists; pass --overwrite to replace it")
    ensure_writable_dir(target.parent)
    report = restore_video(
        _restorer_from_args(args), source, target, codec=args.codec, crf=args.crf, progress=not args.quiet
    )
    print(f"restored {report.frames} frames, audio {report.audio} -> {report.output}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    """Synthesize a LOLBlur-style paired set from clean photos."""
    from pathlib import Path

    from darkir.data.corpus import resolve_sources
    from darkir.data.synth import synthesize

    photos = resolve_sources(args.source)
    counts = synthesize(
        photos,
        Path(args.output),
        per_photo=args.per_photo,
        size=args.size,
        val_photos=args.val_photos,
        test_photos=args.test_photos,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(f"{len(photos)} photos -> " + ", ".join(f"{k} {v} pairs" for k, v in counts.items()) + f" in {args.output}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    """Write a scene-aware split manifest of a paired tree."""
    from darkir.data.split import write_manifest

    try:
        counts = dict(zip(("train", "val", "test"), (int(c) for c in args.counts.split(",")), strict=True))
    except ValueError:
        raise DarkIRError(f"--counts {args.counts!r} must be three integers: train,val,test") from None
    written = write_manifest(args.root, args.output, counts, seed=args.seed)
    print(", ".join(f"{k} {v} pairs" for k, v in written.items()) + f" -> {args.output}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model from an options file."""
    from darkir.config import load_options
    from darkir.train.trainer import train

    options = load_options(args.options, args.overrides)
    result = train(options, resume=args.resume, device=args.device, max_steps=args.max_steps, progress=not args.quiet)
    best = f", best val PSNR {result.best_psnr:.2f} dB -> {result.best}" if result.best_psnr is not None else ""
    state = "interrupted at" if result.interrupted else "stopped at"
    print(f"{state} step {result.steps} (epoch {result.epochs}); last checkpoint {result.last}{best}")
    return 130 if result.interrupted else 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Re-save any checkpoint layout as a darkir checkpoint (weights + config), e.g. .safetensors."""
    from darkir.checkpoint import load_model, save_checkpoint

    model = load_model(args.weights, config=args.model)
    path = save_checkpoint(args.output, model)
    print(f"{model.config['width']}-wide {'DarkIR+CSF' if model.use_csf else 'DarkIR'} -> {path}")
    return 0


def _load_lpips(args: argparse.Namespace) -> LPIPS | None:
    from darkir.eval.lpips import LPIPSUnavailableError, load_lpips

    if args.no_lpips:
        return None
    try:
        return load_lpips(args.lpips_backbone, args.lpips_heads)
    except LPIPSUnavailableError as exc:
        print(f"darkir: {exc}; reporting PSNR and SSIM only", file=sys.stderr)
        return None


def _add_eval_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--convention",
        default="8bit",
        choices=["8bit", "reference"],
        help="8bit: clamp to [0,1] and quantize before scoring (default); reference: raw float outputs",
    )
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    parser.add_argument("--lpips-backbone", metavar="PTH", help="AlexNet weights (default: torch hub cache)")
    parser.add_argument("--lpips-heads", metavar="PTH", help="LPIPS v0.1 alex heads (default: from the lpips package)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _test_pairs(args: argparse.Namespace, options_path: str | None) -> list:
    from darkir.config import load_options
    from darkir.data.pairs import resolve_pairs

    if args.data:
        return resolve_pairs(args.data, args.split)
    if not options_path:
        raise DarkIRError("pass --data DIR (or a manifest .json) or -p OPTIONS with datasets.val.test_path")
    return resolve_pairs(load_options(options_path).require_path("datasets.val.test_path"), args.split)


def cmd_test(args: argparse.Namespace) -> int:
    """Paired evaluation of one model: PSNR/SSIM/LPIPS, mean and per image."""
    from pathlib import Path

    from darkir.config import load_options
    from darkir.eval.methods import model_method
    from darkir.eval.paired import evaluate, summary_line, write_csv

    pairs = _test_pairs(args, args.options)
    results_dir = Path(
        args.results_dir or (load_options(args.options).save.results_dir if args.options else "images/results_test")
    )
    restorer = _restorer_from_args(args)
    scores, _ = evaluate(
        model_method(Path(str(args.weights or args.options)).stem, restorer),
        pairs,
        args.convention,
        _load_lpips(args),
        save_dir=results_dir if args.save else None,
        save_count=args.save,
        progress=not args.quiet,
    )
    if args.csv:
        write_csv(Path(args.csv), [scores])
    print(summary_line(scores, args.convention))
    if args.save:
        print(f"first {min(args.save, len(pairs))} input/output/gt triplets -> {results_dir}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """PSNR/SSIM/LPIPS of a folder of outputs against a folder of references, matched by name."""
    from pathlib import Path

    from darkir.data.layouts import Layout
    from darkir.data.pairs import find_pairs
    from darkir.eval.methods import identity
    from darkir.eval.paired import evaluate, summary_line, write_csv

    pred, gt = Path(args.pred), Path(args.gt)
    common = Path(os.path.commonpath([pred.resolve(), gt.resolve()]))
    layout = Layout("folders", str(pred.resolve().relative_to(common)), str(gt.resolve().relative_to(common)))
    pairs = find_pairs(common, layout)
    method = identity()
    method.name = pred.name
    scores, _ = evaluate(method, pairs, "8bit", _load_lpips(args), progress=not args.quiet)
    if args.csv:
        write_csv(Path(args.csv), [scores])
    print(summary_line(scores, "8bit"))
    return 0


def cmd_test_unpaired(args: argparse.Namespace) -> int:
    """Restore an unpaired set and report no-reference statistics."""
    import csv
    from pathlib import Path

    from darkir.config import load_options
    from darkir.data.pairs import find_unpaired
    from darkir.eval.unpaired import NO_REFERENCE_NOTE, restore_unpaired

    folder = args.data or (
        load_options(args.options).require_path("datasets.val.test_path", "dir") if args.options else None
    )
    if folder is None:
        raise DarkIRError("pass --data DIR or -p OPTIONS with datasets.val.test_path")
    pairs = find_unpaired(folder)
    output = Path(args.output)
    rows = restore_unpaired(_restorer_from_args(args), pairs, output, progress=not args.quiet)
    with open(output / "stats.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "brightness_in", "brightness_out", "noise_in", "noise_out"])
        writer.writerows(
            [r.name, f"{r.brightness_in:.5f}", f"{r.brightness_out:.5f}", f"{r.noise_in:.5f}", f"{r.noise_out:.5f}"]
            for r in rows
        )
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    print(NO_REFERENCE_NOTE)
    print(
        f"{len(rows)} images -> {output}: brightness {mean([r.brightness_in for r in rows]):.3f} -> "
        f"{mean([r.brightness_out for r in rows]):.3f}, noise sigma {mean([r.noise_in for r in rows]):.4f} -> "
        f"{mean([r.noise_out for r in rows]):.4f} (per image: {output / 'stats.csv'})"
    )
    return 0


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... if it is taken."""
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f"{name} ({index})", index + 1
    return candidate


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare variants beside the input and auto-exposure baselines, with bootstrap CIs and pictures."""
    from pathlib import Path

    from darkir.checkpoint import load_model
    from darkir.config import load_options
    from darkir.eval.compare import compare
    from darkir.eval.methods import auto_exposure, identity, model_method
    from darkir.infer import Restorer

    sources = args.weights or []
    options = args.options or []
    if len(options) + len(sources) < 1:
        raise DarkIRError("give at least one variant: -p OPTIONS (its save.path) and/or --weights NAME_OR_PATH")
    if options and sources and len(options) != len(sources):
        raise DarkIRError("pass either one --weights per -p OPTIONS, or --weights alone")
    variants = []
    for index in range(max(len(options), len(sources))):
        config, weights, name = None, sources[index] if sources else None, None
        if options:
            opts = load_options(options[index])
            config, name = opts.network.model_kwargs(), opts.network.name
            weights = weights or opts.require_path("save.path", "file")
        name = name or Path(str(weights)).stem
        name = _unique(name, {v.name for v in variants})
        restorer = Restorer(
            load_model(weights, config=config),
            device=args.device,
            precision=args.precision,
            tile=args.tile,
            overlap=args.overlap,
        )
        variants.append(model_method(name, restorer))
    pairs = _test_pairs(args, None)
    if args.max_images:
        pairs = pairs[: args.max_images]
    summary = compare(
        variants,
        [identity(), auto_exposure(args.exposure_target)],
        pairs,
        Path(args.output),
        args.convention,
        _load_lpips(args),
        latency_size=args.size,
        resamples=args.resamples,
        progress=not args.quiet,
    )
    for name, entry in summary["methods"].items():
        print(f"{name}: PSNR {entry['mean']['psnr']:.2f} dB, SSIM {entry['mean']['ssim']:.4f}")
    print(f"report -> {Path(args.output) / 'report.md'}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Export a model to ONNX (dynamic batch/height/width) and check it against PyTorch."""
    from darkir.checkpoint import load_model
    from darkir.config import load_options
    from darkir.export import check_onnx, export_onnx

    config = load_options(args.options).network.model_kwargs() if args.options else None
    weights = args.weights or (load_options(args.options).require_path("save.path", "file") if args.options else None)
    if weights is None:
        raise DarkIRError("pass --weights NAME_OR_PATH or -p OPTIONS with save.path")
    model = load_model(weights, config=config)
    path = export_onnx(model, args.output, opset=args.opset)
    for (height, width), diff in check_onnx(model, path):
        print(f"checked {height}x{width}: max abs difference to PyTorch {diff:.2e}")
    print(f"exported -> {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Serve the gradio demo."""
    try:
        from darkir.demo import launch
    except ImportError as exc:
        raise DarkIRError("the demo needs gradio: pip install 'darkir[demo]'") from exc
    launch(weights=args.weights, host=args.host, port=args.port, share=args.share, device=args.device)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered variants."""
    from darkir.models import get_spec, list_models

    names = list_models(args.filter, pretrained=args.pretrained)
    width = max((len(n) for n in names), default=0)
    for name in names:
        spec = get_spec(name)
        weights = "weights" if spec.weights else "-"
        print(f"{name:<{width}}  {weights:<7}  {spec.description}")
    return 0


def cmd_complexity(args: argparse.Namespace) -> int:
    """Print parameters and MACs of a model at 3 x size x size."""
    from darkir.complexity import measure_complexity

    model = _model_from_args(args)
    result = measure_complexity(model, size=args.size, channels=model.config["img_channel"])
    print(json.dumps(result.as_dict()) if args.json else result.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``darkir`` with all subcommands."""
    from darkir import __version__

    parser = argparse.ArgumentParser(
        prog="darkir", description="Low-light image restoration with DarkIR and DarkIR+CSF."
    )
    parser.add_argument("--version", action="version", version=f"darkir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(func=func)
        return command

    models = add("models", cmd_models, "List registered model variants and whether they ship weights.")
    models.add_argument("filter", nargs="?", default="*", help="glob on the names, e.g. 'darkir-csf-*'")
    models.add_argument("--pretrained", action="store_true", help="only variants that ship weights")

    complexity = add("complexity", cmd_complexity, "Count parameters and multiply-accumulates (ptflops) at 3xSxS.")
    _add_model_source(complexity)
    complexity.add_argument("--size", type=int, default=256, help="input side S (default 256)")
    complexity.add_argument("--json", action="store_true", help="print one JSON object with params and macs")

    restore = add("restore", cmd_restore, "Restore images: files, folders (recursive) and globs.")
    restore.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, folder or glob ('photos/**/*.jpg')")
    restore.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if needed)")
    _add_weights_source(restore)
    _add_runtime(restore)
    restore.add_argument("--format", metavar="EXT", help="output format (png, jpg, tif, webp, bmp); default: keep")
    restore.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    restore.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    video = add("video", cmd_video, "Restore a video (streamed; frame count, fps, resolution and audio kept).")
    video.add_argument("input", metavar="IN", help="input video file")
    video.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output file, or folder for IN's name as .mp4"
    )
    _add_weights_source(video)
    _add_runtime(video)
    video.add_argument("--codec", default="libx264", help="video encoder (default libx264, i.e. H.264)")
    video.add_argument("--crf", type=int, default=18, help="x264/x265 quality, lower is better (default 18)")
    video.add_argument("--overwrite", action="store_true", help="replace an existing output")
    video.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    convert = add("convert", cmd_convert, "Convert a checkpoint (any layout) to a darkir .safetensors/.pt file.")
    convert.add_argument("weights", metavar="CHECKPOINT", help="checkpoint to read")
    convert.add_argument("-o", "--output", required=True, help="file to write (.safetensors: weights and config only)")
    convert.add_argument("-m", "--model", metavar="NAME", help="zoo name whose config to use instead of the stored one")

    test = add("test", cmd_test, "Evaluate a model on paired images: PSNR, SSIM, LPIPS (mean and per image).")
    _add_weights_source(test)
    test.add_argument("--data", help="paired folder or split manifest (default: datasets.val.test_path)")
    test.add_argument("--split", default="test", help="split of a manifest (default test)")
    test.add_argument("--csv", help="write per-image metrics to this CSV")
    test.add_argument("--save", type=int, default=8, help="save the first N input/output/gt triplets (default 8)")
    test.add_argument("--results-dir", help="where triplets go (default save.results_dir or ./images/results_test)")
    _add_runtime(test)
    _add_eval_options(test)

    metrics = add(
        "metrics", cmd_metrics, "Metrics of a folder of outputs against a folder of references (matched by name)."
    )
    metrics.add_argument("pred", help="folder of restored images")
    metrics.add_argument("gt", help="folder of references with the same relative names")
    metrics.add_argument("--csv", help="write per-image metrics to this CSV")
    _add_eval_options(metrics)

    unpaired = add("test-unpaired", cmd_test_unpaired, "Restore an unpaired set and report no-reference statistics.")
    _add_weights_source(unpaired)
    unpaired.add_argument("--data", help="folder of low-light images (default: datasets.val.test_path)")
    unpaired.add_argument("-o", "--output", default="images/results_unpaired", help="output folder")
    _add_runtime(unpaired)
    unpaired.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    compare = add(
        "compare", cmd_compare, "Compare variants (plus input and auto-exposure baselines) with CIs and pictures."
    )
    compare.add_argument("-p", "--options", action="append", metavar="YAML", help="a variant's options (repeat)")
    compare.add_argument("--weights", action="append", metavar="NAME_OR_PATH", help="a variant's weights (repeat)")
    compare.add_argument("--data", required=True, help="paired folder or split manifest")
    compare.add_argument("--split", default="test", help="split of a manifest (default test)")
    compare.add_argument("-o", "--output", required=True, help="report folder")
    compare.add_argument("--size", type=int, default=256, help="input side for MACs and latency (default 256)")
    compare.add_argument("--max-images", type=int, default=0, help="use the first N images only")
    compare.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    compare.add_argument("--exposure-target", type=float, default=0.4, help="auto-exposure mean target (default 0.4)")
    _add_runtime(compare)
    _add_eval_options(compare)

    onnx = add("export-onnx", cmd_export_onnx, "Export to ONNX (dynamic batch/height/width), checked on two sizes.")
    _add_weights_source(onnx)
    onnx.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    onnx.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")

    demo = add("demo", cmd_demo, "Serve the web demo (gradio): upload a photo, compare before/after.")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    demo.add_argument("--weights", metavar="NAME_OR_PATH", help="serve these weights only (default: packaged variants)")
    demo.add_argument("--device", default="auto", help="auto, cpu or cuda")
    demo.add_argument("--share", action="store_true", help="also create a public gradio link")

    synth = add("synth", cmd_synth, "Make a LOLBlur-style low-light+blur+noise set from clean photos.")
    synth.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="DIR|debian",
        help="folder of clean photos, or 'debian' for the packaged wallpaper photos (repeatable)",
    )
    synth.add_argument("-o", "--output", required=True, help="output root (train/, val/, test/ and synth.json)")
    synth.add_argument("--per-photo", type=int, default=16, help="pairs per source photo (default 16)")
    synth.add_argument("--size", type=int, default=384, help="side of each square pair (default 384)")
    synth.add_argument("--val-photos", type=int, default=3, help="photos held out for validation (default 3)")
    synth.add_argument("--test-photos", type=int, default=6, help="photos held out for testing (default 6)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    split = add("split", cmd_split, "Scene-aware train/val/test split of a paired tree into a manifest JSON.")
    split.add_argument("root", help="paired dataset root (e.g. LOLBlur/train)")
    split.add_argument("-o", "--output", required=True, help="manifest file to write (.json)")
    split.add_argument("--counts", default="1620,600,540", help="pairs per split, train,val,test (default: the seed's)")
    split.add_argument("--seed", type=int, default=0)

    train = add("train", cmd_train, "Train DarkIR / DarkIR+CSF from an options file (torchrun for several processes).")
    train.add_argument("-p", "--options", required=True, metavar="YAML", help="training options file")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="option overrides, e.g. train.epochs=5")
    train.add_argument("--resume", action="store_true", help="continue from save.path exactly where it stopped")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in all (0 = all epochs)")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``darkir`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DarkIRError as exc:
        print(f"darkir: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("darkir: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
