"""The signals that stop a darkir command cleanly besides Ctrl-C (the CLI's commands, and a training run after its
step, saved)."""

from __future__ import annotations

import signal


def stopping_signals() -> list[signal.Signals]:
    """SIGTERM, and SIGHUP (the terminal closed, an ssh session lost) unless it is ignored (``nohup``)."""
    hang_up = getattr(signal, "SIGHUP", None)
    ignored = hang_up is None or signal.getsignal(hang_up) == signal.SIG_IGN
    return [signal.SIGTERM, *([] if ignored else [hang_up])]
