"""A training run's log: one JSON line per record (``train.jsonl``) and TensorBoard scalars, written by the main
process only; a failed write warns once and the run goes on."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from darkir.errors import warn
from darkir.train.runfiles import append_line

#: The JSONL log file in the log folder.
LOG_FILE = "train.jsonl"
#: How the names of TensorBoard's event files (written by ``SummaryWriter``) begin.
EVENTS_PREFIX = "events.out.tfevents."


class RunLog:
    """The log in ``folder``; ``enabled`` False (the other processes of a distributed run) writes nothing."""

    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.folder, self.enabled = folder, enabled
        self._writer: Any = None
        self._failed = False
        self._purge_step: int | None = None

    def resumed(self, step: int, epoch: int) -> None:
        """Record that the run continues from ``step`` (a ``resume`` record): the records of later steps above it are
        of work its checkpoint does not hold (a run killed between checkpoints), and TensorBoard hides them."""
        self._purge_step = step + 1
        self.write({"kind": "resume", "step": step, "epoch": epoch})

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (with ``kind`` and ``step``) to ``train.jsonl`` and its numbers to TensorBoard."""
        if not self.enabled:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            defined = {
                key: None if isinstance(value, float) and not math.isfinite(value) else value
                for key, value in record.items()
            }
            append_line(self.folder / LOG_FILE, json.dumps(defined))  # JSON has no NaN: an undefined score is null
            self._add_scalars(record)
        except OSError as exc:
            self._warn_failed(exc)

    def close(self) -> None:
        """Flush and close TensorBoard's writer (a failure warns, as in :meth:`write`)."""
        if self._writer:
            try:
                self._writer.close()
            except OSError as exc:
                self._warn_failed(exc)

    def _add_scalars(self, record: dict[str, Any]) -> None:
        """The record's numbers to TensorBoard, if it is installed (where it is not, a warning says so once); a record
        without numbers (a ``resume`` record) starts no TensorBoard file."""
        scalars = {
            key: value
            for key, value in record.items()
            if key not in ("step", "epoch", "kind") and isinstance(value, (int, float))
        }
        if not scalars:
            return
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._writer = False
                warn(
                    f"no TensorBoard logs (pip install 'darkir[train]' for them); the run's log is "
                    f"{self.folder / LOG_FILE}"
                )
            else:
                self._writer = self._summary_writer(SummaryWriter)
        if self._writer:
            for key, value in scalars.items():
                self._writer.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def _summary_writer(self, make: Any) -> Any:
        """TensorBoard's writer in the log folder, or False (said once) where TensorBoard cannot write there: its file
        layer takes UTF-8 paths only, so a folder whose name is not (bytes of another encoding) has no TensorBoard
        logs, while ``train.jsonl`` is written as ever."""
        try:
            return make(str(self.folder), purge_step=self._purge_step)
        except UnicodeEncodeError:
            warn(
                f"no TensorBoard logs: TensorBoard cannot write in {str(self.folder)!r}, whose name is not UTF-8 "
                f"text; the run's log is {LOG_FILE} there"
            )
            return False

    def _warn_failed(self, exc: OSError) -> None:
        """Say once that the log cannot be written."""
        if not self._failed:
            self._failed = True
            reason = exc.strerror or str(exc)
            warn(
                f"cannot write the training log in {self.folder}: {reason}; training goes on and checkpoints are "
                "still saved (later log errors are not shown)"
            )
