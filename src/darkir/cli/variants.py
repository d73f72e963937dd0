"""Commands on model variants and their weights: models, complexity, convert, export-onnx."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from darkir.cli.common import (
    PATH_FLAGS,
    AddCommand,
    add_weights_source,
    model_from_args,
    output_file,
    positive_int,
    refuse_empty,
    trained_model,
)
from darkir.errors import DarkIRError, first_line

if TYPE_CHECKING:
    from darkir.models import DarkIR


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered variants."""
    from darkir.models import get_spec, list_models

    names = list_models(args.filter, pretrained=args.pretrained)
    if not names:
        kind = "model with packaged weights" if args.pretrained else "model"
        raise DarkIRError(f"no {kind} matches {args.filter!r}; the models are {', '.join(list_models())}")
    width = max(len(n) for n in names)
    for name in names:
        spec = get_spec(name)
        weights = "weights" if spec.weights else "-"
        print(f"{name:<{width}}  {weights:<7}  {spec.description}")
    return 0


def cmd_complexity(args: argparse.Namespace) -> int:
    """Print parameters and MACs of a model at 3 x size x size."""
    from darkir.complexity import measure_complexity

    refuse_empty(args)
    model = _architecture(args)
    try:
        result = measure_complexity(model, size=args.size)
    except (RuntimeError, MemoryError) as exc:  # an input too large to allocate
        raise DarkIRError(f"--size {args.size}: cannot measure at this size ({first_line(exc)})") from None
    print(json.dumps(result.as_dict()) if args.json else result.summary())
    return 0


def _architecture(args: argparse.Namespace) -> DarkIR:
    """The network ``complexity`` measures: the options' ``network:`` section (checked against its ``save.path``
    weights where that file exists, which give the settings it leaves out, as ``test`` and ``restore`` take them), a
    zoo variant or a checkpoint's."""
    from darkir.models import create_model, has_model, list_models
    from darkir.options import load_options

    if args.options:
        options = load_options(args.options)
        if options.save.path and Path(options.save.path).expanduser().is_file():
            return trained_model(None, options)
        return create_model(options.network.settings())
    if args.model and not has_model(args.model) and not Path(args.model).expanduser().exists():
        raise DarkIRError(
            f"-m {args.model}: no model of that name (known: {', '.join(list_models())}) nor a checkpoint file; "
            "see darkir models"
        )
    return create_model(args.weights or args.model or "darkir-w32")


#: The checkpoint suffixes ``convert`` writes: safetensors (weights and config), else a torch.save dict.
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")


def cmd_convert(args: argparse.Namespace) -> int:
    """Re-save any checkpoint layout as a darkir checkpoint (weights + config), e.g. .safetensors."""
    from darkir.checkpoint import save_checkpoint, save_official_checkpoint
    from darkir.models import create_model, get_spec
    from darkir.models.weights import resolve_weights
    from darkir.replacing import clean_up_after_killed_runs

    refuse_empty(args, {**PATH_FLAGS, "weights": "CHECKPOINT is empty"})
    source, _ = resolve_weights(args.weights)
    suffixes = CHECKPOINT_SUFFIXES[1:] if args.official else CHECKPOINT_SUFFIXES
    output = output_file(
        args.output, suffixes, [source], args.overwrite, "an official checkpoint" if args.official else "a checkpoint"
    )
    config = get_spec(args.model).config if args.model else {}
    model = create_model(args.weights, require_weights=True, **config)
    clean_up_after_killed_runs([output], run_files=False)
    save = save_official_checkpoint if args.official else save_checkpoint
    path = save(output, model, overwrite=args.overwrite)  # a file made there since the check above is kept
    layout = " in the official layout ({'params': state_dict})" if args.official else ""
    print(f"{model.config['width']}-wide {'DarkIR+CSF' if model.use_csf else 'DarkIR'} -> {path}{layout}")
    if args.official:
        _warn_unstated(model)
    return 0


def _warn_unstated(model: DarkIR) -> None:
    """Warn of the network settings an official checkpoint (weights only) cannot carry, which its options must state."""
    from darkir.models.state_dict import settings_not_in_weights
    from darkir.options import network_key, yaml_value

    unstated = settings_not_in_weights(model.config, model.state_dict())
    if unstated:
        needed = ", ".join(f"{network_key(key)}: {yaml_value(v)}" for key, v in unstated.items())
        print(
            f"darkir: warning: the official layout stores no config, and the weights do not tell "
            f"{', '.join(unstated)}: the network: section that loads this file must state {needed}",
            file=sys.stderr,
        )


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Export a model to ONNX (dynamic batch/height/width) and check it against PyTorch before it is written."""
    from darkir.export import check_onnx, check_opset, export_onnx
    from darkir.options import load_options

    refuse_empty(args)
    options = load_options(args.options) if args.options else None
    inputs = [args.weights, args.options, options.get("save.path") if options is not None else None]
    output = output_file(args.output, (".onnx",), inputs, args.overwrite, "an ONNX model")
    check_opset(args.opset)
    model = model_from_args(args, options)
    checks: list[tuple[tuple[int, int], float]] = []

    def check(written: Path) -> None:
        checks.extend(check_onnx(model, written))

    path = export_onnx(model, output, opset=args.opset, overwrite=args.overwrite, check=check)
    for (height, width), diff in checks:
        print(f"checked {height}x{width}: max abs difference to PyTorch {diff:.2e}")
    print(f"exported -> {path}")
    return 0


def register(add: AddCommand) -> None:
    """Add this module's subcommands."""
    models = add("models", cmd_models, "List registered model variants and whether they ship weights.")
    models.add_argument("filter", nargs="?", default="*", help="glob on the names, e.g. 'darkir-csf-*'")
    models.add_argument("--pretrained", action="store_true", help="only variants that ship weights")

    complexity = add("complexity", cmd_complexity, "Count parameters and multiply-accumulates (ptflops) at 3xSxS.")
    source = complexity.add_mutually_exclusive_group()
    source.add_argument(
        "-p", "--options", "--config", metavar="YAML", help="options file whose network: section defines the model"
    )
    source.add_argument(
        "-m",
        "--model",
        metavar="NAME",
        help="registered variant (default darkir-w32, the paper's DarkIR; see `darkir models`)",
    )
    source.add_argument("--weights", metavar="NAME_OR_PATH", help="checkpoint whose stored or inferred config is used")
    complexity.add_argument("--size", type=positive_int, default=256, help="input side S (default 256)")
    complexity.add_argument("--json", action="store_true", help="print one JSON object with params and macs")

    convert = add("convert", cmd_convert, "Convert a checkpoint (any layout) to a darkir .safetensors/.pt file.")
    convert.add_argument("weights", metavar="CHECKPOINT", help="checkpoint to read")
    convert.add_argument(
        "-o",
        "--output",
        required=True,
        help="file to write: .safetensors (weights and config only), .pt or .pth; never the CHECKPOINT read",
    )
    convert.add_argument(
        "-m",
        "--model",
        metavar="NAME",
        help="zoo name whose config builds weights that store none (a stored config must agree with it)",
    )
    convert.add_argument(
        "--official",
        action="store_true",
        help="write the official repository's layout, {'params': state_dict} (.pt/.pth; no config stored)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    onnx = add("export-onnx", cmd_export_onnx, "Export to ONNX (dynamic batch/height/width), checked on two sizes.")
    add_weights_source(onnx)
    onnx.add_argument("-o", "--output", required=True, help="the .onnx file to write (one file, weights included)")
    onnx.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    onnx.add_argument(
        "--opset",
        type=positive_int,
        default=18,
        help="ONNX opset (default 18); one the exporter cannot write this model in is an error",
    )
