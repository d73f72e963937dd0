"""Data and training commands: synth, split, train."""

from __future__ import annotations

import argparse

from darkir.cli.common import AddCommand, non_negative_int, output_file, positive_int, refuse_empty, seed


def cmd_synth(args: argparse.Namespace) -> int:
    """Synthesize a LOLBlur-style paired set from clean photos."""
    from pathlib import Path

    from darkir.data.corpus import resolve_sources
    from darkir.data.synth import check_output, synthesize

    refuse_empty(args)
    output = Path(args.output).expanduser()
    check_output(output, [Path(source).expanduser() for source in args.source if source != "debian"])
    photos = resolve_sources(args.source)
    counts = synthesize(
        photos,
        output,
        per_photo=args.per_photo,
        size=args.size,
        val_photos=args.val_photos,
        test_photos=args.test_photos,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(f"{len(photos)} photos -> " + ", ".join(f"{k} {v} pairs" for k, v in counts.items()) + f" in {output}")
    return 0


def split_counts(text: str) -> dict[str, int]:
    """argparse type of ``--counts``: three whole numbers of at least 1, ``train,val,test``."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected three whole numbers of at least 1, train,val,test; got {text!r}")
    return dict(zip(("train", "val", "test"), values, strict=True))


def cmd_split(args: argparse.Namespace) -> int:
    """Write a scene-aware split manifest of a paired tree."""
    from darkir.data.split import write_manifest

    refuse_empty(args)
    output = output_file(args.output, (".json",), [args.root], args.overwrite, "a split manifest")
    written = write_manifest(args.root, output, args.counts, seed=args.seed, overwrite=args.overwrite)
    print(", ".join(f"{k} {v} pairs" for k, v in written.items()) + f" -> {output}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model from an options file."""
    from darkir.options import load_options
    from darkir.train import ddp
    from darkir.train.resume import epochs_in_words
    from darkir.train.run import train

    refuse_empty(args)
    with ddp.main_process_warnings():  # each process reads the same file
        options = load_options(args.options, args.overrides)
    result = train(
        options,
        resume=args.resume,
        device=args.device,
        max_steps=args.max_steps,
        progress=not args.quiet,
        init_from=args.init_from,
        restart=args.restart,
    )
    if ddp.is_main_process():  # the others' best score is not kept (only the main process validates)
        where = f"-> {result.best}" if result.best else "(its checkpoint is missing)"
        best = f", best val PSNR {result.best_psnr:.2f} dB {where}" if result.best_psnr is not None else ""
        state = "interrupted at" if result.interrupted else "stopped at"
        done = epochs_in_words(result.epochs)  # (done; the bar counts the one under way)
        print(f"{state} step {result.steps} ({done} done); last checkpoint {result.last}{best}")
    return 130 if result.interrupted else 0


def _register_synth(add: AddCommand) -> None:
    synth = add("synth", cmd_synth, "Make a LOLBlur-style low-light+blur+noise set from clean photos.")
    synth.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="DIR|debian",
        help="folder of clean photos, or 'debian' for the packaged wallpaper photos (repeatable)",
    )
    synth.add_argument(
        "-o",
        "--output",
        required=True,
        help="output root (train/, val/, test/ and synth.json): a new or empty folder, not inside a --source folder",
    )
    synth.add_argument("--per-photo", type=positive_int, default=16, help="pairs per source photo (default 16)")
    synth.add_argument("--size", type=positive_int, default=320, help="side of each square pair (default 320)")
    synth.add_argument(
        "--val-photos", type=non_negative_int, default=3, help="photos held out for validation (default 3)"
    )
    synth.add_argument(
        "--test-photos", type=non_negative_int, default=6, help="photos held out for testing (default 6)"
    )
    synth.add_argument("--seed", type=seed, default=0, help="seed of the degradations and the photo split (default 0)")
    synth.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _register_split(add: AddCommand) -> None:
    split = add("split", cmd_split, "Scene-aware train/val/test split of a paired tree into a manifest JSON.")
    split.add_argument("root", help="paired dataset root (e.g. LOLBlur/train)")
    split.add_argument("-o", "--output", required=True, help="manifest file to write (.json)")
    split.add_argument("--overwrite", action="store_true", help="replace an existing manifest file")
    split.add_argument(
        "--counts",
        type=split_counts,
        default="1620,600,540",  # the seed's LOLBlur subset
        help="pairs per split, train,val,test (default: the seed's); scenes are kept whole",
    )
    split.add_argument("--seed", type=seed, default=0, help="seed of the scenes' shuffle (default 0)")


def register(add: AddCommand) -> None:
    """Add this module's subcommands."""
    _register_synth(add)
    _register_split(add)
    train = add("train", cmd_train, "Train DarkIR / DarkIR+CSF from an options file (torchrun for several processes).")
    train.add_argument(
        "-p",
        "--options",
        "--config",
        required=True,
        metavar="YAML",
        help="training options file (--config: as the official train.py)",
    )
    train.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="option overrides, e.g. train.epochs=5 (anywhere among the flags)",
    )
    train.add_argument("--resume", action="store_true", help="continue from save.path exactly where it stopped")
    train.add_argument(
        "--restart",
        action="store_true",
        help="start over although save.path holds a run (once the new options and data pass every check, its files "
        "are moved into backup folders beside them)",
    )
    train.add_argument(
        "--init-from",
        metavar="WEIGHTS",
        help="start a new schedule from these weights (checkpoint path or zoo name); --resume continues a run instead",
    )
    train.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA if available), cpu, cuda or cuda:N (under torchrun, each process the GPU of its local rank)",
    )
    train.add_argument(
        "--max-steps", type=non_negative_int, default=0, help="stop after this many steps in all (0 = all epochs)"
    )
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
