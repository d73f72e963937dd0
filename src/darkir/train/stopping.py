"""How a training run stops early: on Ctrl-C or SIGTERM after the current step, or on an error after which the
state is still that of the last completed step (so the last checkpoint is saved before the error is reported)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from tqdm import tqdm

from darkir.errors import DarkIRError, first_line
from darkir.signals import stopping_signals
from darkir.train import ddp


class StopOnInterrupt:
    """Turns the first Ctrl-C (SIGINT), SIGTERM (``kill``, a batch system's time limit, ``docker stop``) or SIGHUP (the
    terminal closed, unless ``nohup``) into a request to stop after the current step and save; a second Ctrl-C
    aborts. A second SIGTERM does not: a batch system signals every process of a job and torchrun passes its own on,
    so each process may get two at once (one that must stop now is sent SIGKILL).

    With several processes the request is shared (all-reduced each step), so all stop at the same step.
    """

    def __init__(self, context: ddp.Context) -> None:
        self.context, self.flag, self.previous = context, False, {}
        #: What the run stops after, as its stop message says (``this validation image`` while validating).
        self.doing = "this step"
        self.pid = os.getpid()

    def __enter__(self) -> StopOnInterrupt:
        self.pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            signals = [signal.SIGINT, *stopping_signals()]  # SIGHUP too: an ssh session lost saves the run
            self.previous = {signum: signal.signal(signum, self._handle) for signum in signals}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if os.getpid() != self.pid:  # a data loader worker, forked with this handler: its run's process stops it
            if signum == signal.SIGTERM:  # (as torch ends a worker that does not stop): as it would without us
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return  # a terminal's Ctrl-C reaches every process of its group: told once, by the run's
        if self.flag:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.flag = True
        again = "Ctrl-C again to abort" if signum == signal.SIGINT else "SIGKILL to abort"
        name = signal.Signals(signum).name
        with contextlib.suppress(OSError):  # (the terminal that closed: SIGHUP)
            tqdm.write(f"darkir: {name}: stopping after {self.doing} and saving ({again})", file=sys.stderr)

    def requested(self) -> bool:
        """Whether any process was asked to stop."""
        return ddp.any_process(self.context, self.flag)


class ResumableError(Exception):
    """An error after which the training state is still that of the last completed step (reading the data,
    validating), so the last checkpoint is saved before it is reported. Its message says what was being done, its
    cause is the error, ``inputs`` the files being read if known."""

    def __init__(self, doing: str, inputs: list[str] | None = None, elsewhere: bool = False) -> None:
        super().__init__(doing)
        self.inputs, self.elsewhere = inputs or [], elsewhere  # elsewhere: it failed in another process of the run


def failure_line(exc: BaseException) -> str:
    """One line for ``exc``: its message (for an error re-raised from a DataLoader worker, the last line of the
    traceback it carries), after its type's name unless it is one of darkir's errors, which name their file."""
    text = str(exc).strip()
    if "Original Traceback" in text:
        kind, _, message = text.splitlines()[-1].partition(": ")
    else:
        kind, message = type(exc).__name__, first_line(exc)
    return message if isinstance(exc, DarkIRError) else f"{kind}: {message}"
