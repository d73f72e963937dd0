"""The ``darkir`` command: thin subcommands over the public API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from darkir.errors import DarkIRError

if TYPE_CHECKING:
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
