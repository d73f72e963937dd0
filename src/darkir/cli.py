"""The ``darkir`` command: thin subcommands over the public API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from darkir.errors import DarkIRError


def _add_model_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-p", "--options", metavar="YAML", help="options file whose network: section defines the model")
    group.add_argument("-m", "--model", metavar="NAME", help="registered variant (see `darkir models`)")
    group.add_argument("--weights", metavar="NAME_OR_PATH", help="checkpoint whose stored or inferred config is used")


def _model_from_args(args: argparse.Namespace):
    from darkir.checkpoint import load_model
    from darkir.config import load_options
    from darkir.models import build_model

    if args.options:
        return build_model(load_options(args.options).network.model_kwargs())
    if args.weights:
        return load_model(args.weights)
    return build_model(args.model or "darkir-w32")


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
