"""The compare command: variants beside the input and auto-exposure baselines, on paired images (PSNR, SSIM, LPIPS,
with bootstrap intervals, cost and pictures) or, with ``--unpaired``, on inputs alone (NIQE, brightness, noise)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from darkir.cli.common import (
    AddCommand,
    add_eval_options,
    add_runtime,
    evaluation_sets,
    load_lpips_or_none,
    positive_float,
    positive_int,
    refuse_empty,
    settings_from_args,
    trained_model,
    use_threads,
)
from darkir.cli.evaluate import input_folders, refuse_paired
from darkir.errors import DarkIRError, warn, warnings_held

if TYPE_CHECKING:
    from darkir.data.pairs import Pair


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... if it is taken."""
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f"{name} ({index})", index + 1
    return candidate


def _refuse_reference_flags(args: argparse.Namespace) -> None:
    """Refuse, under ``--unpaired``, the flags of scores against references (they changed nothing without a word)."""
    given = [flag for flag, on in (("--convention reference", args.convention != "8bit"),
             ("--lpips-backbone", args.lpips_backbone), ("--lpips-heads", args.lpips_heads)) if on]  # fmt: skip
    if given:
        raise DarkIRError(
            f"{', '.join(given)}: scores against references, which --unpaired has none of (its NIQE, brightness and "
            "noise are of the outputs as saved, 8-bit)"
        )


def _compare_unpaired(args: argparse.Namespace, methods: list, pairs: list[Pair]) -> int:
    """``darkir compare --unpaired``: NIQE, brightness and noise of every method on a folder of inputs."""
    from darkir.eval.compare_unpaired import compare_unpaired, niqe_apart_lines, unpaired_line
    from darkir.eval.noreference import NO_REFERENCE_NOTE

    summary = compare_unpaired(
        methods,
        pairs,
        Path(args.output),
        args.resamples,
        progress=not args.quiet,
        latency_size=args.size,
        **_latency_runs(args),
    )
    print(NO_REFERENCE_NOTE)
    for name, entry in summary["methods"].items():
        print(unpaired_line(name, entry, summary["images"]))
    for line in niqe_apart_lines(summary):
        print(line)
    print(f"report -> {Path(args.output) / 'report.md'}")
    return 0


def _compared_variants(args: argparse.Namespace, reserved: set[str]) -> list:
    """The methods of the variants that ``-p``/``--weights`` name, restored with the runtime flags; each named apart
    from the others and from the ``reserved`` names (the baselines'), ``input (2)`` for a variant called ``input``."""
    from darkir.eval.methods import model_method
    from darkir.options import load_options

    sources = args.weights or []
    options = args.options or []
    if len(options) + len(sources) < 1:
        raise DarkIRError("give at least one variant: -p OPTIONS (its save.path) and/or --weights NAME_OR_PATH")
    if options and sources and len(options) != len(sources):
        raise DarkIRError("pass either one --weights per -p OPTIONS, or --weights alone")
    settings = settings_from_args(args)
    use_threads(args)
    variants = []
    for index in range(max(len(options), len(sources))):
        weights = sources[index] if sources else None
        opts = load_options(options[index]) if options else None
        name = opts.network.name if opts else Path(str(weights)).stem
        name = _unique(name, reserved | {v.name for v in variants})
        weights = weights or str(opts.require_path("save.path", kind="file"))  # (opts is set where weights is not)
        source = weights  # a file as the report's reader can find it (below); a zoo name as it is
        if Path(source).expanduser().is_file():
            source = str(Path(source).expanduser().resolve())
        variants.append(model_method(name, settings.restorer(trained_model(weights, opts)), source))
    return variants


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare variants beside the input and auto-exposure baselines, with bootstrap CIs and pictures."""
    from darkir.data.pairs import find_unpaired
    from darkir.eval.compare import compare, method_line
    from darkir.eval.methods import auto_exposure, clahe, identity, zero_dce
    from darkir.eval.reports import check_report_folder
    from darkir.eval.unpaired import outside_earlier_runs
    from darkir.outputs import check_writable_dir, output_folder

    refuse_empty(args)
    if args.exposure_target > 1:
        raise DarkIRError(f"--exposure-target is a mean brightness in (0, 1], got {args.exposure_target:g}")
    if args.unpaired:
        _refuse_reference_flags(args)
        refuse_paired(Path(args.data), None, "compare --unpaired")
    output = Path(args.output)
    with warnings_held():  # the set's notes, once the report folder and the variants are taken
        if args.resamples < ADVISED_RESAMPLES:
            warn(
                f"--resamples {args.resamples}: 95% intervals from fewer than {ADVISED_RESAMPLES:,} bootstrap "
                "resamples have rough ends (from one, a single point), and so have the verdicts drawn from them; the "
                "default is 2000"
            )
        if args.unpaired:  # an earlier test-unpaired run's results inside the data are outputs, not inputs
            pairs = outside_earlier_runs(find_unpaired(args.data), Path(args.data))
        else:
            pairs = evaluation_sets(args, None)[""]
        check_report_folder(output, input_folders(args.data, pairs))
        check_writable_dir(output)
        baselines = [identity(), auto_exposure(args.exposure_target), clahe()]
        baselines += [zero_dce(args.zero_dce)] if args.zero_dce else []
        variants = _compared_variants(args, {baseline.name for baseline in baselines})
    if args.max_images:
        pairs = pairs[: args.max_images]
    with output_folder(output):
        if args.unpaired:
            return _compare_unpaired(args, variants + baselines, pairs)
        summary = compare(
            variants,
            baselines,
            pairs,
            output,
            args.convention,
            load_lpips_or_none(args),
            latency_size=args.size,
            resamples=args.resamples,
            progress=not args.quiet,
            **_latency_runs(args),
        )
    for name, entry in summary["methods"].items():
        print(method_line(name, entry, summary["images"]))
    print(f"report -> {output / 'report.md'}")
    return 0


#: The most bootstrap resamples: each draws every image, and all are held at once (8 bytes an image each).
MAX_RESAMPLES = 100_000


#: Fewer bootstrap resamples than this give rough interval ends (from one, a point), and verdicts drawn from them.
ADVISED_RESAMPLES = 1000


def _latency_runs(args: argparse.Namespace) -> dict[str, int]:
    """The ``latency_runs`` keyword of ``--latency-runs`` where given (else the library's default)."""
    return {"latency_runs": args.latency_runs} if args.latency_runs is not None else {}


def resample_count(text: str) -> int:
    """argparse type: a number of bootstrap resamples, from 1 to :data:`MAX_RESAMPLES`."""
    value = positive_int(text)
    if value > MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(
            f"{value} resamples are more than {MAX_RESAMPLES:,}, whose intervals are already exact to a few "
            "thousandths (and each resample holds 8 bytes per image in memory)"
        )
    return value


def register(add: AddCommand) -> None:
    """Add ``darkir compare`` (its numeric options are checked as they are parsed, before any work)."""
    compare = add(
        "compare",
        cmd_compare,
        "Compare variants (plus input, auto-exposure, CLAHE and optionally Zero-DCE) with CIs and pictures.",
    )
    compare.add_argument(
        "-p", "--options", "--config", action="append", metavar="YAML", help="a variant's options (repeat)"
    )
    compare.add_argument("--weights", action="append", metavar="NAME_OR_PATH", help="a variant's weights (repeat)")
    compare.add_argument(
        "--data", required=True, help="paired folder or split manifest (with --unpaired: a folder of inputs)"
    )
    compare.add_argument(
        "--unpaired", action="store_true", help="--data holds inputs only: compare NIQE, brightness and noise"
    )
    compare.add_argument("--split", help="split of a .json manifest (default test)")
    compare.add_argument(
        "-o",
        "--output",
        required=True,
        help="report folder, outside the data: new, empty, or an earlier report (replaced); never over other files "
        "named like its report files",
    )
    compare.add_argument("--size", type=positive_int, default=256, help="input side for MACs and latency (default 256)")
    compare.add_argument(
        "--latency-runs",
        type=positive_int,
        metavar="N",
        help="timed calls of each model, after a warm-up: the report gives their median, fastest and slowest "
        "(default 5)",
    )
    compare.add_argument("--max-images", type=positive_int, metavar="N", help="use the first N images (default all)")
    compare.add_argument(
        "--resamples",
        type=resample_count,
        default=2000,
        help=f"bootstrap resamples (default 2000, at most {MAX_RESAMPLES:,})",
    )
    compare.add_argument(
        "--exposure-target", type=positive_float, default=0.4, help="auto-exposure mean target in (0, 1] (default 0.4)"
    )
    compare.add_argument(
        "--zero-dce", metavar="PTH", help="also compare the official Zero-DCE weights (its Epoch99.pth, by path)"
    )
    add_runtime(compare, precision="fp32", job_compiles=False)  # scores are computed exactly by default
    add_eval_options(compare)
