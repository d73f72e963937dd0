"""Argument groups and objects shared by several subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkir.errors import CheckpointError, ConfigMismatchError, DarkIRError, DarkIRWarning, warnings_ignored

if TYPE_CHECKING:
    from darkir.data.pairs import Pair
    from darkir.eval.lpips import LPIPS
    from darkir.infer import Restorer
    from darkir.infer.restorer import RestoreSettings
    from darkir.models import DarkIR
    from darkir.options import Options

#: ``add(name, handler, help)`` -> the new subcommand's parser.
AddCommand = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def add_weights_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        metavar="NAME_OR_PATH",
        help="checkpoint file or zoo name with weights (default: the packaged default)",
    )
    parser.add_argument(
        "-p",
        "--options",
        "--config",
        metavar="YAML",
        help="options file: network: builds the model, save.path is the weights (--config: the official scripts' name)",
    )


def add_runtime(parser: argparse.ArgumentParser, precision: str = "auto", job_compiles: bool = True) -> None:
    """Device, precision, tiling and compile flags (``precision``: the command's default; ``job_compiles``: whether
    the command tells the Restorer its job, so that on a GPU it compiles by itself where that pays)."""
    from darkir.infer.defaults import DEFAULT_OVERLAP, DEFAULT_TILE

    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        default=precision,
        choices=["auto", "fp32", "bf16", "fp16"],
        help=f"compute precision (default {precision}; auto: bf16 on CPUs with native bf16, fp16 on CUDA GPUs with "
        "tensor cores, else fp32)",
    )
    parser.add_argument(
        "--tile",
        type=_tile,
        default=DEFAULT_TILE,
        help="auto (default): whole images when they fit --max-memory, else the largest tiles that fit; "
        "N: tiles of N px for images larger than that; 0: always whole images",
    )
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="peak memory budget of --tile auto, e.g. 3GB (default: what the process holds with the model loaded "
        "plus half the free RAM, at most 2.4 GB more; 80%% of the free GPU memory on CUDA)",
    )
    parser.add_argument(
        "--overlap",
        type=int,
        default=None,
        help=f"tile overlap (default {DEFAULT_OVERLAP}, or a quarter of a smaller tile)",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model for every image size (slow start for each, faster after); --no-compile: never "
        + (
            "(default: on a CUDA GPU, for an image size a job restores often enough to earn the compile back)"
            if job_compiles
            else "(default: not compiled)"
        ),
    )
    parser.add_argument(
        "--threads",
        type=thread_count,
        metavar="N",
        help="CPU threads for the model (default: torch's, one per core; at most 4 per core or 64, whichever is more)",
    )


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def thread_count(text: str) -> int:
    """argparse type: a number of CPU threads (see :func:`darkir.runtime.check_threads`)."""
    from darkir.runtime import check_threads

    value = positive_int(text)
    try:
        check_threads(value)
    except DarkIRError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return value


def seed(text: str) -> int:
    """argparse type: a random seed, 0 to 2**32 - 1 (numpy would read a larger one as two numbers, and repeat the draws
    of another seed)."""
    value = non_negative_int(text)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {2**32 - 1}, got {text!r}")
    return value


#: The path and name arguments of darkir's commands -> what an empty one is called.
PATH_FLAGS = {
    "inputs": "empty input path",
    "input": "empty input path",
    "pred": "PRED is empty",
    "gt": "GT is empty",
    "weights": "--weights is empty",
    "options": "-p is empty",
    "data": "--data is empty",
    "split": "--split is empty",
    "csv": "--csv is empty",
    "results_dir": "--results-dir is empty",
    "output": "-o is empty",
    "model": "-m is empty",
    "zero_dce": "--zero-dce is empty",
    "lpips_backbone": "--lpips-backbone is empty",
    "lpips_heads": "--lpips-heads is empty",
    "source": "--source is empty",
    "root": "ROOT is empty",
    "init_from": "--init-from is empty",
}


def expand_home(args: argparse.Namespace, names: Iterable[str] = PATH_FLAGS) -> None:
    """Expand a leading ``~`` or ``~user`` in the path arguments ``names``, as a shell does (a quoted one reaches
    darkir as it is, and would otherwise name a folder ``~`` in the current one); one of an unknown user is kept."""
    for name in names:
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, os.path.expanduser(value))
        elif isinstance(value, list):
            setattr(args, name, [os.path.expanduser(item) if isinstance(item, str) else item for item in value])


def refuse_empty(args: argparse.Namespace, flags: dict[str, str] = PATH_FLAGS) -> None:
    """Refuse an empty or blank path or name argument (usually an unset shell variable), which would otherwise mean
    the current folder or "not given". ``flags``: argparse name -> what an empty one is called (absent ones are
    skipped); of a repeated flag the error says which (``the 2nd of 2``), of positional ones ``argument 2 of 2``."""
    for name, empty in flags.items():
        value = getattr(args, name, None)
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            if isinstance(item, str) and not item.strip():
                which = f"the {_ordinal(index + 1)}" if empty.startswith("-") else f"argument {index + 1}"
                where = f" ({which} of {len(values)})" if len(values) > 1 else ""
                raise DarkIRError(
                    f"{empty}{where}: an unset variable? Give a path or name; an empty one is not the current folder "
                    "nor the default"
                )


def _ordinal(number: int) -> str:
    return f"{number}{'th' if 10 <= number % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th')}"


def exposure_ev(text: str) -> float:
    """argparse type: an exposure compensation in EV (a finite number within the dial's range)."""
    from darkir.errors import DarkIRError
    from darkir.infer.exposure import MAX_EV, check_exposure

    try:
        return check_exposure(float(text))
    except (ValueError, DarkIRError):
        raise argparse.ArgumentTypeError(
            f"expected a number of EV between -{MAX_EV:g} and {MAX_EV:g}, got {text!r}"
        ) from None


def add_exposure(parser: argparse.ArgumentParser) -> None:
    """``--exposure EV``: exposure compensation of the restored output."""
    parser.add_argument(
        "--exposure",
        type=exposure_ev,
        default=0.0,
        metavar="EV",
        help="exposure compensation of the result in stops, e.g. -1 (half as bright) or +0.5; applied in linear "
        "light with highlights rolled off (default 0: the model's output as it is)",
    )


def non_negative(text: str) -> float:
    """argparse type: a number of at least 0."""
    return _number(text, 0.0, "at least 0")


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    value = _number(text, 0.0, "above 0")
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def _number(text: str, minimum: float, wanted: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number {wanted}, got {text!r}")
    return value


def writable_file(path: str | Path) -> Path:
    """``path`` as an output file whose folder is checked writable before any work: a file is tried in it where it
    exists (and what killed runs left there is removed, :func:`~darkir.outputs.clean_stale`); a missing one is made
    only as the file is written, so that a run that fails or is stopped first leaves no empty folder."""
    from darkir.outputs import check_writable_dir, clean_stale, ensure_writable_dir, nearest_existing

    target = Path(path)
    if target.is_dir():
        raise DarkIRError(f"output file {target} is a folder; give a file name")
    check_writable_dir(target.parent)
    ensure_writable_dir(nearest_existing(target.parent.absolute()))  # a file tried where the folder would be made
    clean_stale(target.parent)
    return target


def csv_file(path: str | Path, inputs: Iterable[str | Path | None], overwrite: bool, flag: str = "--csv") -> Path:
    """``--csv PATH``, checked before any work: a ``.csv`` name, never one of the command's ``inputs`` nor inside an
    input folder (not even with ``--overwrite``), an existing file replaced only with ``overwrite``, its folder
    writable (:func:`writable_file`)."""
    from darkir.outputs import is_inside, is_same_file

    target = Path(path).expanduser()
    if target.is_dir():
        raise DarkIRError(f"{flag} {target} is a folder; give a file name")
    if target.suffix.lower() != ".csv":
        raise DarkIRError(f"{flag} {target}: per-image scores are written to a .csv file; name it so")
    for source in inputs:
        if source is None:
            continue
        source = Path(source).expanduser()
        if source.is_dir() and is_inside(target, source):
            raise DarkIRError(f"{flag} {target} is inside the input folder {source}; write it outside the inputs")
        if is_same_file(target, source):
            raise DarkIRError(f"{flag} {target} is the input {source}; write to another file")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise DarkIRError(f"{flag} {target} exists; pass --overwrite to replace it, or choose another file")
    return writable_file(target)


def output_file(
    path: str, suffixes: Sequence[str], inputs: Iterable[str | Path | None], overwrite: bool, what: str
) -> Path:
    """``-o PATH``, a single output file, checked before any work: one of ``suffixes``, never one of the command's
    ``inputs`` (not even with ``--overwrite``), an existing file replaced only with ``overwrite``, its folder
    writable (:func:`writable_file`). ``what``: the kind of file, for the messages."""
    from darkir.outputs import is_same_file

    target = Path(path).expanduser()
    if target.suffix.lower() not in suffixes:
        expected = " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if len(suffixes) > 1 else suffixes)
        raise DarkIRError(f"-o {target}: {what} is written to a {expected} file; name it so")
    for source in inputs:
        if source is not None and is_same_file(target, Path(source).expanduser()):
            raise DarkIRError(f"-o {target} is the input {source}; write to another file")
    if target.is_dir():
        raise DarkIRError(f"-o {target} is a folder; give a file name")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise DarkIRError(f"-o {target} exists; pass --overwrite to replace it, or choose another file")
    return writable_file(target)


def model_from_args(args: argparse.Namespace, options: Options | None = None) -> DarkIR:
    """The model that ``--weights``/``-p`` name (``options``: ``-p`` already read); see :func:`trained_model`."""
    from darkir.options import load_options

    if args.options:
        options = options or load_options(args.options)
    return trained_model(args.weights, options)


def trained_model(weights: str | None, options: Options | None = None) -> DarkIR:
    """The model of ``weights`` (a zoo name or checkpoint), else of the options' ``save.path``, else the default
    weights; the settings the options' ``network:`` section writes must agree with the config stored with the weights
    (those it leaves out come from the weights)."""
    from darkir.models import create_model, zoo

    if weights is None and options is not None:
        weights = str(options.require_path("save.path", kind="file"))
    if weights is None and zoo.DEFAULT_WEIGHTS is None:
        raise DarkIRError("no weights given: pass --weights NAME_OR_PATH or -p OPTIONS with save.path")
    network = options.network.written_kwargs() if options is not None else {}
    try:
        return create_model(weights, require_weights=True, **network)
    except ConfigMismatchError as exc:
        if options is None:
            raise
        assert weights is not None  # options given: save.path filled it
        raise CheckpointError(_network_mismatch(options.source, weights, exc)) from None
    except CheckpointError:  # weights without a stored config that do not fit: which network: settings, by key
        shown = _shown_mismatch(weights, network) if options is not None and weights is not None else None
        if shown is None:
            raise
        raise CheckpointError(_network_mismatch(options.source, weights, shown)) from None


def _shown_mismatch(weights: str, network: dict[str, object]) -> ConfigMismatchError | None:
    """Where ``network`` settings contradict the config the tensors of ``weights`` show (for weights that store none,
    whose load then failed naming hundreds of tensors): the fields that differ, leaving out what no tensor shows
    (the dilations' values, the reduction of a model without CSF); None where none does or the weights show none."""
    from darkir.models.weights import read_weights
    from darkir.models.zoo import resolve_config

    try:
        with warnings_ignored(category=DarkIRWarning):  # (read a second time: its warnings were given)
            theirs = read_weights(weights)[0]
        asked = resolve_config(theirs.as_kwargs(), **network)
    except (DarkIRError, TypeError, ValueError):
        return None
    differences = {
        key: values
        for key, values in asked.differences(theirs).items()
        if not (key == "dilations" and len(asked.dilations) == len(theirs.dilations))
        and not (key == "csf_reduction" and not theirs.use_csf)
    }
    return ConfigMismatchError("", differences, "these weights' tensors show") if differences else None


def _network_mismatch(source: str, weights: str, mismatch: ConfigMismatchError) -> str:
    """Where an options file's ``network:`` settings contradict the config stored with ``weights`` (or that their
    tensors show): by key."""
    from darkir.options import network_key, yaml_value

    differences = mismatch.differences
    asked = ", ".join(f"{network_key(key)}: {yaml_value(a)}" for key, (a, _) in differences.items())
    theirs = ", ".join(f"{network_key(key)}: {yaml_value(b)}" for key, (_, b) in differences.items())
    return (
        f"{source}: network: {asked} contradicts the one {mismatch.theirs} ({weights}: {theirs}); change or "
        "remove those network: settings (left out, they come from the weights)"
    )


def restorer_from_args(args: argparse.Namespace, options: Options | None = None) -> Restorer:
    """The Restorer that ``--weights``/``-p`` and the runtime flags describe (``options``: ``-p`` already read)."""
    settings = settings_from_args(args)
    use_threads(args)
    return settings.restorer(model_from_args(args, options))


def use_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (where the command has it) to torch."""
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def settings_from_args(args: argparse.Namespace) -> RestoreSettings:
    """The Restorer's settings from the runtime flags (device, precision, tiling, compile, exposure), checked before
    anything is loaded."""
    from darkir.infer.restorer import RestoreSettings
    from darkir.runtime import resolve_device

    resolve_device(args.device)
    exposure = getattr(args, "exposure", 0.0)
    return RestoreSettings(
        args.device,
        args.precision,
        compile="auto" if args.compile is None else args.compile,
        exposure=exposure,
        **tiling_from_args(args),
    )


def _tile(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number of pixels, got {text!r}") from None


#: The flags of the tiling settings, for :func:`darkir.infer.tiling.check_tiling`'s errors.
TILING_FLAGS = {"tile": "--tile", "overlap": "--overlap", "max_memory": "--max-memory", "auto": "--tile auto"}


def tiling_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Restorer keywords from ``--tile``/``--overlap``/``--max-memory``, checked before anything is loaded."""
    from darkir.infer.tiling import check_tiling

    max_memory = getattr(args, "max_memory", None)
    check_tiling(args.tile, args.overlap, max_memory, names=TILING_FLAGS)
    return {"tile": args.tile, "overlap": args.overlap, "max_memory": max_memory}  # as written: its unit is told


def add_eval_options(parser: argparse.ArgumentParser, convention: bool = True) -> None:
    """Metric options; ``convention=False`` where outputs are files already (their values are what they are)."""
    if convention:
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


def load_lpips_or_none(args: argparse.Namespace) -> LPIPS | None:
    """LPIPS from ``--lpips-backbone``/``--lpips-heads`` or the default files; None with ``--no-lpips``, or with a
    warning when a default file is missing. A file the user named that is missing, or any file that holds something
    else, is an error."""
    from darkir.eval.lpips import LPIPSUnavailableError, load_lpips
    from darkir.imageio import not_a_file

    if args.no_lpips:
        return None
    for flag, path in (("--lpips-backbone", args.lpips_backbone), ("--lpips-heads", args.lpips_heads)):
        if path and not Path(path).is_file():
            raise DarkIRError(f"{flag} {path}: {not_a_file(Path(path))} (pass --no-lpips to score without LPIPS)")
    try:
        return load_lpips(args.lpips_backbone, args.lpips_heads)
    except LPIPSUnavailableError as exc:
        if args.lpips_backbone or args.lpips_heads:  # LPIPS was asked for: the default file it still needs is missing
            other = "--lpips-heads" if args.lpips_backbone else "--lpips-backbone"
            raise LPIPSUnavailableError(f"{exc}; name it with {other} too, or pass --no-lpips") from None
        print(f"darkir: {exc}; reporting PSNR and SSIM only", file=sys.stderr)
        return None


def evaluation_sets(args: argparse.Namespace, options: Options | None) -> dict[str, list[Pair]]:
    """The pairs to evaluate by set: those of ``--data`` (folder or manifest split), else of the options'
    ``datasets.val.test_path``, as one set named ``""``; or, where the options' ``datasets.name`` is an official one
    that gathers several test sets under that path (``All_LOL``, ``real_LSRW``), each set by its name."""
    from darkir.data.layouts import COLLECTIONS, DatasetError
    from darkir.data.pairs import collection_pairs, resolve_pairs

    if args.data:
        location = args.data
    elif options is not None:
        location = options.require_path("datasets.val.test_path")
    else:
        raise DarkIRError("pass --data DIR (or a manifest .json) or -p OPTIONS with datasets.val.test_path")
    if args.split is not None and Path(location).suffix.lower() != ".json":
        raise DarkIRError(f"--split {args.split} picks a split of a .json manifest, and {location} is not one")
    if not args.data and options is not None and options.datasets.name in COLLECTIONS:
        return collection_pairs(location, options.datasets.name)
    try:
        return {"": resolve_pairs(location, args.split or "test")}
    except DatasetError as exc:
        if args.data:
            raise
        raise DatasetError(f"{options.source}: datasets.val.test_path: {exc}") from None  # named, as training does
