"""Evaluation commands: test, metrics, test-unpaired, compare."""

from __future__ import annotations

import argparse
import os

from darkir.cli.common import (
    AddCommand,
    add_eval_options,
    add_runtime,
    add_weights_source,
    evaluation_pairs,
    load_lpips_or_none,
    restorer_from_args,
    tiling_from_args,
)
from darkir.errors import DarkIRError


def cmd_test(args: argparse.Namespace) -> int:
    """Paired evaluation of one model: PSNR/SSIM/LPIPS, mean and per image."""
    from pathlib import Path

    from darkir.config import load_options
    from darkir.eval.methods import model_method
    from darkir.eval.paired import evaluate, summary_line, write_csv

    options = load_options(args.options) if args.options else None
    pairs = evaluation_pairs(args, options)
    results_dir = Path(args.results_dir or (options.save.results_dir if options else "images/results_test"))
    restorer = restorer_from_args(args, options)
    scores, _ = evaluate(
        model_method(Path(str(args.weights or args.options)).stem, restorer),
        pairs,
        args.convention,
        load_lpips_or_none(args),
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
    scores, _ = evaluate(method, pairs, "8bit", load_lpips_or_none(args), progress=not args.quiet)
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
    rows = restore_unpaired(restorer_from_args(args), pairs, output, progress=not args.quiet)
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
    from darkir.eval.methods import auto_exposure, clahe, identity, model_method, zero_dce
    from darkir.infer import Restorer

    sources = args.weights or []
    options = args.options or []
    if len(options) + len(sources) < 1:
        raise DarkIRError("give at least one variant: -p OPTIONS (its save.path) and/or --weights NAME_OR_PATH")
    if options and sources and len(options) != len(sources):
        raise DarkIRError("pass either one --weights per -p OPTIONS, or --weights alone")
    tile, overlap = tiling_from_args(args)
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
            tile=tile,
            overlap=overlap,
        )
        variants.append(model_method(name, restorer))
    pairs = evaluation_pairs(args, None)
    if args.max_images:
        pairs = pairs[: args.max_images]
    summary = compare(
        variants,
        [identity(), auto_exposure(args.exposure_target), clahe()]
        + ([zero_dce(args.zero_dce)] if args.zero_dce else []),
        pairs,
        Path(args.output),
        args.convention,
        load_lpips_or_none(args),
        latency_size=args.size,
        resamples=args.resamples,
        progress=not args.quiet,
    )
    for name, entry in summary["methods"].items():
        print(f"{name}: PSNR {entry['mean']['psnr']:.2f} dB, SSIM {entry['mean']['ssim']:.4f}")
    print(f"report -> {Path(args.output) / 'report.md'}")
    return 0


def register(add: AddCommand) -> None:
    """Add this module's subcommands."""
    test = add("test", cmd_test, "Evaluate a model on paired images: PSNR, SSIM, LPIPS (mean and per image).")
    add_weights_source(test)
    test.add_argument("--data", help="paired folder or split manifest (default: datasets.val.test_path)")
    test.add_argument("--split", default="test", help="split of a manifest (default test)")
    test.add_argument("--csv", help="write per-image metrics to this CSV")
    test.add_argument("--save", type=int, default=8, help="save the first N input/output/gt triplets (default 8)")
    test.add_argument("--results-dir", help="where triplets go (default save.results_dir or ./images/results_test)")
    add_runtime(test)
    add_eval_options(test)

    metrics = add(
        "metrics", cmd_metrics, "Metrics of a folder of outputs against a folder of references (matched by name)."
    )
    metrics.add_argument("pred", help="folder of restored images")
    metrics.add_argument("gt", help="folder of references with the same relative names")
    metrics.add_argument("--csv", help="write per-image metrics to this CSV")
    add_eval_options(metrics)

    unpaired = add("test-unpaired", cmd_test_unpaired, "Restore an unpaired set and report no-reference statistics.")
    add_weights_source(unpaired)
    unpaired.add_argument("--data", help="folder of low-light images (default: datasets.val.test_path)")
    unpaired.add_argument("-o", "--output", default="images/results_unpaired", help="output folder")
    add_runtime(unpaired)
    unpaired.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    compare = add(
        "compare",
        cmd_compare,
        "Compare variants (plus input, auto-exposure, CLAHE and optionally Zero-DCE) with CIs and pictures.",
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
    compare.add_argument(
        "--zero-dce", metavar="PTH", help="also compare the official Zero-DCE weights (its Epoch99.pth, by path)"
    )
    add_runtime(compare)
    add_eval_options(compare)
