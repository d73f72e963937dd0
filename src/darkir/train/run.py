"""Starting a training run: its settings and save paths checked, its files held for the whole run, then a new run,
a fine-tune from given weights or the continuation of the run in ``save.path`` (:func:`train`)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from darkir.errors import ConfigError
from darkir.options import Options
from darkir.replacing import clean_up_after_killed_runs
from darkir.runtime import resolve_device
from darkir.train import ddp
from darkir.train.checks import check_trainable
from darkir.train.resume import best_of_run
from darkir.train.runpaths import (
    back_up_run,
    check_save_paths,
    checkpoint_paths,
    continue_or_start,
    holding_run_paths,
    snapshots,
    validates,
)
from darkir.train.trainer import Trainer, TrainResult


def _states(options: Options) -> str:
    """Where a run whose last checkpoint is missing left a state to continue from (its newest step snapshot, else its
    best checkpoint), for the message refusing its resume."""
    best = checkpoint_paths(options)[1]
    kept = snapshots(options)
    if kept:
        return f" (its newest step snapshot is {kept[-1]}: copy it there to continue from it)"
    if validates(options) and best.is_file() and best_of_run(best, options.save.path):
        return (
            f" (its best checkpoint {best} holds the run's state at its best step: copy it there to continue from it)"
        )
    return ""


def train(
    options: Options,
    resume: bool = False,
    device: str = "auto",
    max_steps: int = 0,
    progress: bool = True,
    init_from: str | Path | None = None,
    restart: bool = False,
) -> TrainResult:
    """Train the model described by ``options``.

    With ``resume`` (or ``network.resume_training`` when ``save.path`` holds a last checkpoint and neither
    ``restart`` nor ``init_from`` is given), continue exactly from ``save.path``; with ``init_from`` (a checkpoint or
    zoo name), start a new schedule (optimizer, learning rate, step 0) from those weights. The save paths are checked
    first. A new run never replaces an earlier run's checkpoints: it stops with an error unless ``restart``, which
    moves them (and their logs) into time-stamped backup folders beside them once the options, the data and the
    weights to start from have passed every check. The main process holds a lock on ``save.path`` (by its stem, like
    the files beside it), ``save.best`` and ``train.log_dir`` for the whole run, so a second run on any of them stops
    at once (:class:`RunBusyError`).
    """
    if resume and init_from is not None:
        raise ConfigError("resume=True continues a run, init_from starts a new one from given weights: pass one")
    if resume and restart:
        raise ConfigError("resume=True continues the run in save.path, restart=True starts it over: pass one")
    check_trainable(options)
    resolve_device(device)
    last, best = checkpoint_paths(options)
    is_main = ddp.is_main_process()
    if is_main:
        check_save_paths(options)
    with contextlib.ExitStack() as held:
        if is_main:  # the run's checkpoints are its own while it runs: a second run on either stops at once
            held.enter_context(holding_run_paths(options))
            clean_up_after_killed_runs([last, best])
        continuing, earlier = continue_or_start(options, resume, restart, init_from)
        trainer = Trainer(options, device=device, progress=progress)
        weights = trainer.init_from(init_from) if init_from is not None else None
        if earlier and is_main:
            folders = back_up_run(options)
            print(f"darkir: the earlier run's files were moved to {', '.join(map(str, folders))}", file=sys.stderr)
        if weights is not None:
            trainer.log({"kind": "init", "step": trainer.step, "epoch": trainer.epoch, "init_from": str(weights)})
        elif continuing and not trainer.resume():
            raise ConfigError(
                f"{options.source}: save.path: nothing to resume, {last} does not exist{_states(options)}"
            )
        return trainer.fit(max_steps=max_steps)
