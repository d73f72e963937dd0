"""ONNX export with dynamic batch, height and width, checked against PyTorch."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkir.errors import DarkIRError, first_line, warnings_ignored
from darkir.models import DarkIR
from darkir.models.blocks import FreMLP
from darkir.outputs import parent_made, write_atomic

#: Sizes the exported graph is checked on: one multiple of 8 and one that needs padding.
CHECK_SIZES = ((64, 96), (57, 83))
#: Largest max abs difference to PyTorch an exported graph may show: one 8-bit level, so that it restores the same
#: images to the rounding. A correct export of trained weights shows about 1e-5; of weights that amplify the
#: frequency branch's rounding (random or bf16-rounded ones, outputs spanning -7 to 9 on noise) up to 3e-3.
CHECK_TOLERANCE = 1 / 255


def export_onnx(
    model: DarkIR,
    path: str | os.PathLike[str],
    opset: int = 18,
    overwrite: bool = False,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Write ``model`` as one ONNX file with dynamic (batch, height, width) input ``input`` and output ``output``.

    The frequency branch is exported on the full complex spectrum (``FreMLP.onesided = False``):
    the same result as the real spectrum, in DFT ops that ONNX Runtime runs for any size. The file is written
    atomically: ``check`` (e.g. :func:`check_onnx`) runs on the finished temporary file first, and an error there or
    anywhere before leaves ``path`` as it was. An existing ``path`` is replaced only with ``overwrite``.
    """
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise DarkIRError(f"{path}: an ONNX export is written to a .onnx file")
    data = onnx_bytes(model, opset)

    def verify(written: Path) -> bool:
        try:
            if check is not None:
                check(written)
        except Exception as exc:  # ONNX Runtime raises several types for a graph it cannot run
            reason = first_line(exc)
            raise DarkIRError(f"{path}: the exported model fails its check ({reason}); nothing written") from None
        return True

    with parent_made(path):
        return write_atomic(path, data, overwrite=overwrite, verify=verify)


def check_opset(opset: int) -> None:
    """Refuse an opset that the installed ``onnx`` does not know, or a missing ``onnx`` extra (before any export)."""
    try:
        import onnx
        import onnxscript  # noqa: F401 - required by the exporter
    except ImportError as exc:
        raise DarkIRError("ONNX export needs the onnx extra: pip install 'darkir[onnx]'") from exc
    newest = onnx.defs.onnx_opset_version()
    if not 1 <= opset <= newest:
        raise DarkIRError(f"opset {opset}: the installed onnx {onnx.__version__} knows opsets 1 to {newest}")


def onnx_bytes(model: DarkIR, opset: int = 18) -> bytes:
    """The serialized ONNX model of ``model`` in ``opset`` (see :func:`export_onnx`); a DarkIRError if the exporter
    cannot write that opset (it falls back to its own silently)."""
    check_opset(opset)
    exported = copy.deepcopy(model).cpu().eval()
    for module in exported.modules():
        if isinstance(module, FreMLP):
            module.onesided = False
    example = torch.rand(2, model.config["img_channel"], 64, 96, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=1024)
    height, width = torch.export.Dim("height", min=8, max=16384), torch.export.Dim("width", min=8, max=16384)
    with _quiet_exporter():
        program = _export(exported, example, opset, {"input": {0: batch, 2: height, 3: width}})
    proto = program.model_proto
    written = next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise DarkIRError(
            f"opset {opset}: the ONNX exporter of torch {torch.__version__} cannot write this model in it (it fell "
            f"back to opset {written}); choose another opset, e.g. {written}"
        )
    return proto.SerializeToString()


def _export(model: DarkIR, example: torch.Tensor, opset: int, dynamic_shapes: dict) -> Any:
    """torch's dynamo ONNX export of ``model`` (an ``ONNXProgram``)."""
    return torch.onnx.export(
        model,
        (example,),
        None,
        dynamo=True,
        opset_version=opset,
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes=dynamic_shapes,
        verbose=False,
    )


#: Loggers of the ONNX exporter, which report every step and fallback (an opset it cannot write is ours to report).
_EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's log lines and warnings (missing torchvision ops, version-conversion tracebacks) while
    it runs; its errors still raise."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        with warnings_ignored():
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_onnx(model: DarkIR, path: str | os.PathLike[str]) -> list[tuple[tuple[int, int], float]]:
    """Max abs difference between ONNX Runtime and PyTorch outputs at :data:`CHECK_SIZES`; a ValueError where the
    model's output is not finite (broken weights) or the difference exceeds :data:`CHECK_TOLERANCE`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = []
    generator = torch.Generator().manual_seed(0)
    for size in CHECK_SIZES:
        x = torch.rand(1, model.config["img_channel"], *size, generator=generator)
        with torch.no_grad():
            expected = model.cpu().eval()(x).numpy()
        if not np.isfinite(expected).all():
            raise ValueError("the model's output has NaN or infinite values: its weights may be broken")
        got = session.run(None, {"input": x.numpy()})[0]
        diff = float(np.abs(got - expected).max())
        if not diff <= CHECK_TOLERANCE:  # also NaN
            raise ValueError(
                f"at {size[0]}x{size[1]} it differs from PyTorch by {diff:.2e}, over one 8-bit level "
                f"({CHECK_TOLERANCE:.2e})"
            )
        results.append((size, diff))
    return results
