"""The training loop: seed recipe, validation, best/last checkpoints, exact resume, DDP, clean Ctrl-C (started by
:func:`darkir.train.run.train`)."""

from __future__ import annotations

import itertools
import math
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from darkir.checkpoint import read_checkpoint, save_checkpoint
from darkir.data.dataset import loader_worker_init
from darkir.data.layouts import DatasetError
from darkir.data.synth import SynthDataset
from darkir.errors import CheckpointError, ConfigError, DarkIRError, is_whole, warn
from darkir.eval.paired import Scores
from darkir.models.darkir import DarkIR
from darkir.models.factory import create_model
from darkir.models.state_dict import load_state_dict_strict
from darkir.models.weights import resolve_weights
from darkir.options import Options
from darkir.progress import progress_bar
from darkir.replacing import save_text
from darkir.runtime import keep_freed_memory_for_reuse, usable_cpus
from darkir.train import ddp
from darkir.train.checks import check_trainable
from darkir.train.resume import (
    best_gone,
    best_of_run,
    check_held_out,
    check_new_length,
    check_own_best,
    check_same_network,
    check_training_checkpoint,
    data_changes,
    file_changes,
    kept_schedule_settings,
    loss_changes,
    per_process_batch,
    rng_state,
    saved_train_data,
    set_rng_state,
    stretch_schedule,
    validation_changes,
    validation_dropped,
)
from darkir.train.runlog import RunLog
from darkir.train.runpaths import checkpoint_paths, log_folder, snapshot_path, snapshots, validates
from darkir.train.sampler import GlobalBatchSampler
from darkir.train.sets import file_list, run_sets
from darkir.train.step import TrainStep
from darkir.train.stopping import ResumableError, StopOnInterrupt, failure_line
from darkir.train.validation import scores_line, validate


@dataclass
class TrainResult:
    """Where a run ended: steps and epochs done, best validation PSNR and the checkpoint paths."""

    steps: int
    epochs: int
    best_psnr: float | None
    last: Path
    best: Path | None
    interrupted: bool = False


def _in_part(name: str, prefixes: list[str]) -> bool:
    """Whether the parameter ``name`` lies in one of the parts ``prefixes`` name (a module path, whole components)."""
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def training_memory_format(setting: str, device: torch.device) -> torch.memory_format:
    """The memory format ``train.memory_format`` asks for on ``device`` ('auto': channels_last on the CPU only)."""
    if setting == "channels_last" or (setting == "auto" and device.type == "cpu"):
        return torch.channels_last
    return torch.contiguous_format


class Trainer:
    """Trains the model an options file describes; see :func:`darkir.train.run.train`."""

    def __init__(self, options: Options, device: str = "auto", progress: bool = True) -> None:
        check_trainable(options)
        self.options, self.progress = options, progress
        self.context = ddp.setup(device)
        self.device = self.context.device
        if self.device.type == "cpu":
            keep_freed_memory_for_reuse()
        self.last_path, self.best_path = checkpoint_paths(options)
        with ddp.main_process_warnings():  # each process reads the same sets
            self._load_datasets()
        torch.manual_seed(options.train.seed)
        self.step = self.epoch = self.epoch_step = 0
        self._make_model()
        self.train_step = TrainStep(options, self.model, self.net, self.total_steps, self.device, self.memory_format)
        anchor = self.train_step.anchor
        self.files["anchor"] = anchor.digest if anchor is not None else None  # (a resume compares it too)
        self.best_psnr: float | None = None
        #: Names this run in each of its checkpoints, so that continuing it never replaces another run's best one.
        self.run_id: str | None = uuid.uuid4().hex
        #: An epoch's validation is due and not done (a failure stopped it: the resumed run validates first).
        self.validation_due = False
        #: The step the run resumed at (:meth:`resume`), None for a new run.
        self.resumed_at: int | None = None
        self.run_log = RunLog(log_folder(options), enabled=self.context.is_main)

    def _load_datasets(self) -> None:
        """The training set (with its sampler and loader) and the validation set, if any."""
        self.train_set, self.val_set, train_root = run_sets(self.options)
        self.files = {"train": file_list(self.train_set), "val": file_list(self.val_set)}  # what a resume compares
        self._batches(self.options.datasets.train.batch_size_train)
        if self.sampler.steps_per_epoch() == 0:
            raise DatasetError(
                f"{train_root}: {len(self.train_set)} training pairs are fewer than one global batch "
                f"({self.sampler.global_batch}); lower datasets.train.batch_size_train"
            )

    def _make_model(self) -> None:
        """The network of ``network:`` (random init from the seed), on the device, wrapped in DDP when distributed."""
        self.memory_format = training_memory_format(self.options.train.memory_format, self.device)
        self.model: DarkIR = create_model(self.options.network.settings()).to(
            self.device, memory_format=self.memory_format
        )
        self.model.side_out.requires_grad_(self.options.train.enhance)
        if self.options.train.trainable is not None:
            self._train_only(self.options.train.trainable)
        if self.context.distributed:
            # on the CPU, the gradients of the (1, C, 1, 1) scales and (C, 1, 3, 3) depth-wise kernels differ from
            # their DDP buckets' strides in size-1 dimensions only, which hold no values: torch's warning of a layout
            # mismatch "that may impair performance" (at every process's first step) is spurious
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        self.net = (
            DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if self.context.distributed
            else self.model
        )

    def _train_only(self, prefixes: list[str]) -> None:
        """Freeze every parameter whose name does not start with one of ``prefixes`` (module paths); a prefix that
        names no parameter is an error listing the network's top-level parts."""
        if not prefixes:
            raise ConfigError(
                f"{self.options.source}: train.trainable is empty, so nothing would train; leave it unset"
            )
        names = [name for name, _ in self.model.named_parameters()]
        for prefix in prefixes:
            if not any(_in_part(name, [prefix]) for name in names):
                parts = sorted({name.split(".")[0] for name in names})
                raise ConfigError(
                    f"{self.options.source}: train.trainable: {prefix!r} names no parameter of this network; its "
                    f"parts are {', '.join(parts)} (a part's blocks are numbered, e.g. encoders.2)"
                )
        for name, parameter in self.model.named_parameters():
            if not _in_part(name, prefixes):
                parameter.requires_grad_(False)

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole schedule: ``train.epochs`` of the sampler's global batches. Counted from where
        the run is (the steps done, the rest of this epoch, the epochs left), so that a run resumed on a training set
        of another size still trains every epoch it has left, whole."""
        per_epoch, epochs = self.sampler.steps_per_epoch(), self.options.train.epochs
        if self.epoch >= epochs:
            return self.step
        return self.step + max(0, per_epoch - self.epoch_step) + (epochs - self.epoch - 1) * per_epoch

    def _batches(self, per_process: int) -> None:
        """(Re)build the sampler and loader for ``per_process`` samples per process and step."""
        self.sampler = GlobalBatchSampler(
            len(self.train_set), per_process, self.options.train.seed, self.context.rank, self.context.world_size
        )
        self.loader = DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            num_workers=_loader_workers(self.options.datasets.train.n_workers),
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=loader_worker_init,
        )

    def _stored_global_batch(self, payload: dict[str, Any]) -> int:
        """The samples per step of the run a checkpoint holds: as it records them, or, in an older darkir's (before
        fbfc6ec, which recorded no count), its saved options' ``batch_size_train`` on as many processes as now (the
        options' batch now was taken, and silently changed the run's); this run's where neither says."""
        if "global_batch" in payload:
            return int(payload["global_batch"])
        per_process = saved_train_data(payload).get("batch_size_train")
        if is_whole(per_process) and per_process >= 1:
            return int(per_process) * self.context.world_size
        return self.sampler.global_batch

    def _keep_global_batch(self, global_batch: int, path: Path) -> None:
        """Resume a run of ``global_batch`` samples per step on this many processes: the same samples per step,
        split evenly, so the run continues as it would have (any process count that divides the global batch). The
        options saved with the run say the batch it takes."""
        if global_batch == self.sampler.global_batch:
            return
        world, train = self.context.world_size, self.options.datasets.train
        given, train.batch_size_train = train.batch_size_train, per_process_batch(path, global_batch, world)
        self._batches(train.batch_size_train)
        self._tell(
            f"darkir: note: resuming a run of {global_batch} samples per step on {world} process(es): "
            f"{train.batch_size_train} per process (not datasets.train.batch_size_train {given}; the options saved "
            "with the run say so)",
            stderr=False,
        )

    @property
    def optimizer(self) -> torch.optim.AdamW:
        """The run's optimizer (:class:`TrainStep`'s)."""
        return self.train_step.optimizer

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.CosineAnnealingLR:
        """The run's learning-rate schedule (:class:`TrainStep`'s)."""
        return self.train_step.scheduler

    # ----------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        split = (
            {"held_out_photos": self.train_set.held_out, "trained_photos": self.train_set.names}
            if isinstance(self.train_set, SynthDataset)
            else {}
        )
        return {
            **split,
            "options": self.options.model_dump(mode="json"),
            **self.train_step.state_dict(),
            "rng": rng_state(),
            "step": self.step,
            "epoch": self.epoch,
            "epoch_step": self.epoch_step,
            "best_psnr": self.best_psnr,
            "global_batch": self.sampler.global_batch,
            "run_id": self.run_id,
            "validation_due": self.validation_due,
            "data_files": self.files,
        }

    def save(self, path: Path | None = None) -> Path:
        """Write the full training state to ``path`` (default: the last checkpoint); a failure to write the run's first
        last checkpoint says that the steps trained are lost."""
        target = path or self.last_path
        first = target == self.last_path and not target.exists()
        try:
            save_checkpoint(target, self.model, **self._state())
        except CheckpointError as exc:
            if not first:
                raise
            raise CheckpointError(f"{exc}; the run has no checkpoint yet: its {self.step} step(s) are lost") from None
        save_text(target.with_suffix(".yml"), self.options.to_yaml())
        return target

    def init_from(self, weights: str | Path) -> Path:
        """Start this (new) schedule from the weights of a checkpoint or zoo name; returns their file. Weights that
        store their config must be of the run's network (a field that differs is named), others must fit it."""
        path, _ = resolve_weights(weights)
        with torch.random.fork_rng(devices=[]):  # making the weights' model leaves the run's random state as seeded
            source = create_model(weights, require_weights=True, **self.model.config)
        self.model.load_state_dict(source.state_dict())
        return path

    def resume(self, path: Path | None = None) -> bool:
        """Load the full training state from ``path`` (default: the last checkpoint) if it exists, checked and
        reconciled with the options as :mod:`darkir.train.resume` says."""
        path = path or self.last_path
        if not path.is_file():
            return False
        try:
            state_dict, config, payload = read_checkpoint(path)
        except CheckpointError as exc:  # a damaged file: the run's other full states are named
            raise CheckpointError(f"{exc}{self._other_states(path)}") from None
        check_training_checkpoint(path, payload)
        if isinstance(self.train_set, SynthDataset):
            synth = self.options.datasets.train.synth.model_dump(mode="json")
            self._tell(check_held_out(path, payload, self.train_set.names, self.train_set.held_out, synth))
        stored_id = payload.get("run_id")  # None in checkpoints from before run ids
        best_score = check_own_best(self.best_path, stored_id) if validates(self.options) else None
        self.run_id = stored_id or self.run_id
        stored = payload.get("options")
        train = self.options.train
        check_same_network(path, config, stored, self.model.config, train.enhance, train.trainable)
        load_state_dict_strict(self.model, state_dict, source=f"checkpoint {path}")
        self.train_step.load_state_dict(payload)
        set_rng_state(payload["rng"])
        self.step, self.epoch, self.epoch_step = payload["step"], payload["epoch"], payload["epoch_step"]
        self.best_psnr, best_missing = self._resumed_best(payload["best_psnr"], best_score)
        self.validation_due = bool(payload.get("validation_due", False))
        self._keep_global_batch(self._stored_global_batch(payload), path)
        self.options.train, warning = kept_schedule_settings(path, train, stored)  # as they were checked
        self._tell(warning)
        self._tell(loss_changes(path, self.options.train, stored, self.step))
        dumped = self.options.model_dump(mode="json")
        changed = file_changes(path, payload.get("data_files"), self.files, self.step, self.best_psnr)
        self._tell(data_changes(path, dumped, stored, self.step))
        self._tell(changed.get("train"))
        self._tell(changed.get("anchor"))
        self._reconcile_validation(path, validation_changes(path, dumped, stored, self.best_psnr), changed.get("val"))
        self._tell(best_missing)
        self._follow_new_length(path, stored)
        if self.step >= self.total_steps and not self.validation_due:
            self._tell(
                f"darkir: note: the run in {path} has finished ({self.step} steps, train.epochs "
                f"{self.options.train.epochs}): nothing is left to train (raise train.epochs to train on)"
            )
        self.resumed_at = self.step
        self.run_log.resumed(self.step, self.epoch)
        return True

    def _resumed_best(self, stored: float | None, own: float | None) -> tuple[float | None, str | None]:
        """The best score a resumed run goes on from: its last checkpoint's (``stored``), or its best checkpoint's
        (``own``) where higher (a run stopped between writing its best checkpoint and its last one). None, with the
        note saying so, where the run validates and its ``save.best`` holds no checkpoint (deleted, or renamed), so
        that its next validation writes one."""
        best = own if own is not None and (stored is None or own > stored) else stored
        if best is not None and validates(self.options) and not self.best_path.is_file():
            return None, best_gone(self.best_path, best)
        return best, None

    def _reconcile_validation(self, path: Path, *notes: str | None) -> None:
        """Say what resuming ``path`` changes in its validation: the ``notes`` of a changed validation set, or that
        validation stopped (the run validated before, and no longer does)."""
        if not validates(self.options):
            self._tell(validation_dropped(path, self.best_path, self.best_psnr, self.validation_due))
            return
        for note in notes:
            self._tell(note)

    def _other_states(self, path: Path) -> str:
        """Where else the run's full training state lies, for a resume from ``path`` that cannot read it: its newest
        step snapshot and its best checkpoint, each a state to continue from once copied to ``path``."""
        best = self.best_path
        others = [*snapshots(self.options)[-1:], *([best] if best_of_run(best, self.options.save.path) else [])]
        others = [str(other) for other in others if other != path]
        return f"; to continue from an earlier step, copy {' or '.join(others)} to {path}" if others else ""

    def _tell(self, message: str | None, stderr: bool = True) -> None:
        """Print ``message`` (if any) once, from the main process, beside the progress bar."""
        if message and self.context.is_main:
            tqdm.write(message, file=sys.stderr if stderr else None)

    def _follow_new_length(self, path: Path, stored: dict[str, Any] | None) -> None:
        """When the run's length in steps changed (``train.epochs``, or the training set's size), continue on the
        cosine schedule of the new length (:func:`stretch_schedule`), and say so. Nothing changes when the length is
        the same (an exact resume). A new length the run has already reached is refused (:func:`check_new_length`)."""
        before, after = self.scheduler.T_max, self.total_steps
        epochs, per_epoch = self.options.train.epochs, self.sampler.steps_per_epoch()
        if before == after and self.epoch <= epochs:  # (a finished run asked for fewer epochs keeps its length)
            return
        check_new_length(self.options.source, path, (self.step, self.epoch), epochs, per_epoch, after)
        was = self.train_step.lr
        stretch_schedule(self.optimizer, self.scheduler, after)
        stored_epochs = (stored or {}).get("train", {}).get("epochs", epochs)
        why = (
            f"train.epochs {stored_epochs} -> {epochs}"
            if stored_epochs != epochs
            else f"the training set now makes {per_epoch} steps per epoch"
        )
        self._tell(
            f"darkir: {why}: the cosine schedule now runs {after} steps (was {before}); at step {self.step} the "
            f"learning rate is {self.train_step.lr:.3g} (was {was:.3g})"
        )

    # ------------------------------------------------------------------ logs
    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to the run's log (see :class:`RunLog`)."""
        self.run_log.write(record)

    # ------------------------------------------------------------ the loop
    def validate(self, stop: Callable[[], bool] = lambda: False) -> Scores | None:
        """PSNR/SSIM per pair of the current weights on the validation pairs
        (:func:`~darkir.train.validation.validate`); None where ``stop()`` said to stop, asked between images."""
        return validate(self.model, self.val_set, self.device, self.options.train.val_max_memory, stop)

    def fit(self, max_steps: int = 0) -> TrainResult:
        """Train until ``train.epochs`` (or ``max_steps`` optimizer steps in all) and return where it ended. An error
        reading the data or validating saves the last checkpoint first (see :meth:`_stop_after_failure`)."""
        stop = min(self.total_steps, max_steps) if max_steps else self.total_steps
        if max_steps and max_steps < self.total_steps and self.step >= max_steps:
            self._tell(
                f"darkir: note: --max-steps {max_steps} (steps in all, not more steps): the run is at step "
                f"{self.step} already, so none is taken"
            )
        self.model.train()
        bar = progress_bar(
            total=stop,
            initial=self.step,
            desc="training",
            unit="step",
            disable=not (self.progress and self.context.is_main),
        )
        with StopOnInterrupt(self.context) as interrupt:
            try:
                self._epochs(stop, bar, interrupt)
            except ResumableError as failure:
                bar.close()
                self._stop_after_failure(failure)
            finally:  # the bar ends its line before any message (a checkpoint that could not be written)
                bar.close()
            interrupted = interrupt.requested()
        return self._finish(interrupted)

    def _epochs(self, stop: int, bar: tqdm, interrupt: StopOnInterrupt) -> None:
        """Train epoch after epoch until step ``stop``, the last epoch or a request to stop."""
        epochs, steps_per_epoch = self.options.train.epochs, self.sampler.steps_per_epoch()
        start = (time.perf_counter(), self.step)
        if self.validation_due:  # the validation that a failure or a stop cut short, before the run goes on
            self._end_of_epoch(self.epoch == epochs, interrupt)
        while self.epoch < epochs and self.step < stop and not interrupt.requested():
            self.sampler.set_epoch(self.epoch, self.epoch_step)
            self.train_set.set_epoch(self.epoch)
            for batch in self._epoch_batches():
                loss = self.train_step(batch, self.step)
                self.step += 1
                self.epoch_step += 1
                bar.update()
                bar.set_postfix(loss=f"{loss:.4f}", epoch=self.epoch + 1, refresh=False)
                self._after_step(loss, stop, start)
                if self.step >= stop or interrupt.requested():
                    break
            if self.epoch_step >= steps_per_epoch:
                self.epoch, self.epoch_step = self.epoch + 1, 0
                self._end_of_epoch(self.epoch == epochs, interrupt)

    def _epoch_batches(self) -> Iterator[dict[str, Any]]:
        """The loader's batches of this epoch; an error making one becomes a :class:`ResumableError` (the state is
        still that of the last completed step), in every process of the run at once (so that rank 0 saves)."""
        try:
            batches = iter(self.loader)
        except OSError as exc:  # its workers could not start: few file descriptors or processes (ulimit -n, -u)
            failure: Exception | None = exc
        else:
            failure = None
        if ddp.any_process(self.context, failure is not None):
            what = f"{self.loader.num_workers} data loader workers"
            doing = f"starting {what} (raise ulimit -n and -u, or set datasets.train.n_workers=0)"
            raise ResumableError(doing, elsewhere=failure is None) from failure
        while True:
            failure = None
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as exc:
                failure = exc
            if ddp.any_process(self.context, failure is not None):
                doing = f"loading the training batch of step {self.step + 1}"
                if failure is None:
                    raise ResumableError(doing, elsewhere=True)
                raise ResumableError(doing, self._batch_inputs()) from failure
            yield batch

    def _batch_inputs(self) -> list[str]:
        """The input files of the batch the loader is making (the next step's), where the training set has files."""
        pairs = getattr(self.train_set, "pairs", None)
        if pairs is None:
            return []
        batch = next(itertools.islice(iter(self.sampler), self.epoch_step - self.sampler.start_step, None), [])
        return [str(pairs[index].low) for index in batch]

    def _stop_after_failure(self, failure: ResumableError) -> NoReturn:
        """Save the last checkpoint (the last completed step, resumable exactly; none before the first step of a new
        run) and raise one error that says what failed: the file at fault where the data names it, else the inputs of
        the batch being made."""
        cause = failure.__cause__
        gist = failure_line(cause) if cause is not None else "failed"
        if failure.elsewhere:
            gist = "failed in another process of this run (its message names what failed)"
        if failure.inputs and not isinstance(cause, DarkIRError):
            gist += f" (the batch's inputs: {', '.join(failure.inputs)})"
        if not self.context.is_main:
            raise DarkIRError(f"{failure}: {gist}") from cause
        self.run_log.close()
        if self.step == 0 and self.resumed_at is None:  # a step-0 checkpoint would only make a rerun ask for --resume
            raise DarkIRError(
                f"{failure}: {gist}; nothing was trained or saved: repair or replace what failed"
            ) from cause
        try:
            self.save()
        except DarkIRError as exc:
            raise DarkIRError(f"{failure}: {gist}; and the last checkpoint could not be saved: {exc}") from cause
        raise DarkIRError(
            f"{failure}: {gist}; training stopped and the last checkpoint {self.last_path} holds step {self.step}: "
            "repair or replace what failed, then pass resume=True to continue from there"
        ) from cause

    def _after_step(self, loss: float, stop: int, start: tuple[float, int]) -> None:
        """Log every 10 steps (and the last), and save the checkpoints ``train.save_every_steps`` and
        ``train.keep_every_steps`` ask for; ``start``: the time and step this fit began at."""
        if self.step % 10 == 0 or self.step == stop:
            loss = ddp.mean(self.context, loss)
            lr = self.scheduler.get_last_lr()[0]
            rate = (self.step - start[1]) / max(time.perf_counter() - start[0], 1e-9)
            self.log(
                {"kind": "train", "step": self.step, "epoch": self.epoch, "loss": loss, "lr": lr, "steps_per_s": rate}
            )
        every = self.options.train.save_every_steps
        if every and self.step % every == 0 and self.context.is_main:
            self.save()
        keep = self.options.train.keep_every_steps
        if keep and self.step % keep == 0 and self.context.is_main:
            self._keep_snapshot()

    def _keep_snapshot(self) -> None:
        """Write the step snapshot of this step; where it cannot be written, save the last checkpoint and raise an
        error that names ``train.keep_every_steps`` and where to continue."""
        try:
            self.save(snapshot_path(self.last_path, self.step))
        except DarkIRError as exc:
            try:
                self.save()
            except DarkIRError:
                raise CheckpointError(
                    f"train.keep_every_steps: {exc}; nor could the last checkpoint be saved"
                ) from None
            raise CheckpointError(f"train.keep_every_steps: {exc}; {self._where_to_continue()}") from None

    def _where_to_continue(self) -> str:
        """Where a run stopped by a checkpoint it could not write continues from (once the last one is saved)."""
        return f"the last checkpoint {self.last_path} holds step {self.step}, pass resume=True to continue from there"

    def _finish(self, interrupted: bool) -> TrainResult:
        """Save the last checkpoint (unless the run resumed and took no step: the file holds it already), close the
        log and leave the process group; where the run ended."""
        if self.context.is_main and self.step != self.resumed_at:
            self.save()
        ddp.barrier(self.context)
        self.run_log.close()
        result = TrainResult(
            self.step,
            self.epoch,
            self.best_psnr,
            self.last_path,
            self.best_path if self.best_path.is_file() else None,
            interrupted,
        )
        ddp.teardown(self.context)
        return result

    def _end_of_epoch(self, final: bool, interrupt: StopOnInterrupt) -> None:
        """Validate where due (every ``train.val_every`` epochs, and after the last) and save the last checkpoint,
        and the best one where it improved; without validation, save the last checkpoint once an epoch where
        ``train.save_every_steps`` is 0 (the end of the run saves it anyway). A request to stop (``interrupt``) ends
        the validation at the next image, left due: the run saves, and its resumed run validates first."""
        if self.val_set is None or not (final or self.epoch % self.options.train.val_every == 0):
            self.validation_due = False  # none is (a resumed run whose validation set was taken away)
            if self.context.is_main and not final and not self.options.train.save_every_steps:
                self.save()
            return
        self.validation_due = True  # until done: a failure saves the run so, and the resumed run validates first
        scores: Scores | None = None
        failure: Exception | None = None
        if self.context.is_main:  # (the others wait, and learn whether it failed)
            interrupt.doing = "this validation image"
            try:
                scores = self.validate(stop=lambda: interrupt.flag)
            except Exception as exc:
                failure = exc
            finally:
                interrupt.doing = "this step"
        if ddp.any_process(self.context, failure is not None):
            raise ResumableError(f"validating after epoch {self.epoch}", elsewhere=failure is None) from failure
        if self.context.is_main and scores is None:
            tqdm.write(f"epoch {self.epoch}: validation stopped; it runs first when the run resumes (--resume)")
        if scores is not None:
            self.validation_due = False
            means = {key: scores.mean(key) for key in scores.values}
            self.log({"kind": "val", "step": self.step, "epoch": self.epoch, **means})
            tqdm.write(f"epoch {self.epoch}: val {scores_line(scores)}")
            previous = self.best_psnr
            self.save()  # first, with the best score so far: a failure to write the best checkpoint loses no training
            if previous is None or (not math.isnan(means["psnr"]) and means["psnr"] > previous):
                self._save_best(means["psnr"], previous)
        elif not self.context.is_main:
            self.validation_due = False  # (only the main process's checkpoint records it)
        ddp.barrier(self.context)

    def _save_best(self, score: float, previous: float | None) -> None:
        """Write the best checkpoint (validated at ``score``), then the last one again with that score. The last
        checkpoint already holds the ``previous`` best score, so if the best one cannot be written, a resumed run
        saves its next better validation as best; the error names save.best and says where to continue."""
        self.best_psnr = score
        try:
            self.save(self.best_path)
        except DarkIRError as exc:
            self.best_psnr = previous
            raise CheckpointError(f"save.best: {exc}; {self._where_to_continue()}") from None
        self.save()


def _loader_workers(asked: int) -> int:
    """``datasets.train.n_workers``, at most the CPUs this process may run on (with a one-line warning): more only
    contend for them (the official files ask for 4), and torch warned of it in lines of its own. The batches are
    the same with any number of workers."""
    cpus = usable_cpus()
    if asked > cpus:
        warn(f"datasets.train.n_workers {asked} is more than the CPUs this run may use ({cpus}): using {cpus}")
        return cpus
    return asked
