"""What resuming a run takes from its checkpoint and what it checks against it (:meth:`Trainer.resume`).

A resumed run must be a darkir training checkpoint of the same network, trained parts and side-output loss; it keeps
its own schedule settings over the options' (its optimizer and scheduler state hold them) and its global batch on any
process count that divides it; it takes the options' loss, data and step settings (a change is noted) and a new length
in steps (its cosine schedule then runs to the new end). Functions here decide; the trainer applies and prints.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkir.errors import ConfigError, DarkIRError, first_line, some_of
from darkir.models.config import ModelConfig
from darkir.options import LOSS_TERMS, TrainOptions, network_key

#: ``train:`` settings that a resumed run takes from its checkpoint (its optimizer and scheduler state hold them).
SCHEDULE_KEYS = ("lr_initial", "betas", "weight_decay", "eta_min")
#: ``train:`` settings of the loss, which a resumed run takes from the options (a change is noted, not refused):
#: the keys of every term darkir trains with but ``train.enhance``, which adds the network's side output
#: (:func:`check_same_network`).
LOSS_KEYS = (
    *(key for term in LOSS_TERMS if term.trained for key in (term.criterion, term.reduction) if key is not None),
    *(
        key
        for term in LOSS_TERMS
        if term.trained
        for key in (term.switch, term.weight)
        if key is not None and key != "enhance"
    ),
)


def rng_state() -> dict[str, Any]:
    """Global RNG states in types that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": pos,
        "has_gauss": has_gauss,
        "gauss": gauss,
    }
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global RNG states :func:`rng_state` gave."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy_state["kind"], keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["gauss"]))
    random.setstate(state["python"])


def check_training_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Refuse a checkpoint without the schedule's state (weights only, or an official training checkpoint)."""
    missing = [k for k in ("optimizer", "scheduler", "step", "epoch") if k not in payload]
    if missing:
        official = "optimizer_state_dict" in payload
        kind = "an official DarkIR training checkpoint" if official else "not a darkir training checkpoint"
        raise ConfigError(
            f"{path}: {kind} (no {', '.join(missing)}), so darkir cannot resume its schedule; start a new one "
            f"from its weights with --init-from {path} (and a new save.path)"
        )


def saved_train_data(payload: dict[str, Any]) -> dict[str, Any]:
    """The ``datasets.train`` section of the options a training checkpoint's ``payload`` saved (empty where it holds
    none, or an older darkir saved none)."""
    datasets = (payload.get("options") or {}).get("datasets") or {}
    return datasets.get("train") or {}


#: The ``datasets.train.synth`` settings that choose which of its photos are held out (with the photos themselves).
SPLIT_KEYS = ("val_photos", "test_photos", "split_seed")


def check_held_out(
    path: Path, payload: dict[str, Any], training: list[str], held_out: list[str], synth: dict[str, Any]
) -> str | None:
    """Refuse to resume the run of ``path`` where the photos it held out (stored in its checkpoint ``payload``)
    would be trained on, or the photos it trained on would be held out (``training``, ``held_out``: the split now):
    the split of ``datasets.train.synth``'s photos moves with the sources' photos and with ``val_photos``,
    ``test_photos`` and ``split_seed``. Where the checkpoint (of an older darkir) records no split, a change of those
    settings (``synth``: the section now) is refused, and otherwise a note says the photos cannot be checked."""
    if "held_out_photos" not in payload:
        saved = saved_train_data(payload).get("synth") or {}
        changed = [
            f"{key} {saved[key]} -> {synth[key]}" for key in SPLIT_KEYS if key in saved and saved[key] != synth[key]
        ]
        if changed:
            raise ConfigError(
                f"{path}: datasets.train.synth: the settings that split its photos changed since this run began "
                f"({'; '.join(changed)}), which moves photos between training and the held-out ones; put them back "
                "as they were, or start a new run"
            )
        return (
            f"darkir: warning: {path} (saved by an older darkir) does not record which photos its run held out, so "
            "a changed split cannot be detected: if photos were added to or removed from datasets.train.synth's "
            "sources since the run began, it may now train on photos it held out for validation and testing"
        )
    crossed = sorted(
        (set(payload["held_out_photos"] or ()) & set(training))
        | (set(payload.get("trained_photos") or ()) & set(held_out))
    )
    if crossed:
        raise ConfigError(
            f"{path}: datasets.train.synth: the photo split changed since this run began, and photos would cross "
            f"between training and the held-out ones ({some_of(crossed, 5)}); put the photo sources and "
            "val_photos, test_photos and split_seed back as they were (adding or removing photos moves the split), "
            "or start a new run"
        )
    return None


def best_of_run(best: Path, save_path: str | None) -> bool:
    """Whether the best checkpoint ``best`` is of the run whose last checkpoint is ``save_path`` (the options saved
    in it say so), not of another run that shares ``save.best``, whose state it would fork: for the messages that
    name the states a run can continue from."""
    from darkir.checkpoint import read_checkpoint

    try:
        saved = read_checkpoint(best)[2]["options"]["save"]["path"]
    except (DarkIRError, KeyError, TypeError):
        return False
    return isinstance(saved, str) and isinstance(save_path, str) and same_path(saved, save_path)


def check_own_best(best: Path, run_id: str | None) -> float | None:
    """Refuse to continue a run (``run_id``: the one its last checkpoint names; None for checkpoints from before run
    ids) into a ``save.best`` that holds something else than its own best checkpoint: another run's checkpoint (a
    save.best changed since the run began, or shared), or a file that is no checkpoint. A best checkpoint written
    before run ids existed is taken as the run's own. Returns the best score the run's own best checkpoint holds
    (None where there is none)."""
    from darkir.checkpoint import read_checkpoint

    if not best.is_file():
        return None
    try:
        _, _, payload = read_checkpoint(best)
    except Exception as exc:
        raise ConfigError(
            f"save.best: {best} is not a checkpoint this run can replace ({first_line(exc)}); move it, or give the run "
            "its own save.best"
        ) from None
    theirs = payload.get("run_id")
    if theirs is not None and theirs != run_id:
        options = payload.get("options")
        other = options.get("save", {}).get("path") if isinstance(options, dict) else None
        raise ConfigError(
            f"save.best: {best} holds a checkpoint of another run{f' (save.path {other})' if other else ''}, which "
            "continuing this one would replace; give this run its own save.best (the one it had, or a new name)"
        )
    score = payload.get("best_psnr")
    return float(score) if isinstance(score, (int, float)) and theirs is not None else None


#: Settings of what a run trains on and how a step runs, which a resumed run takes from the options (a change is
#: noted, as the run then ends otherwise than it would have uninterrupted); a section is compared key by key.
DATA_KEYS = ("datasets.train", "train.seed", "train.grad_clip", "train.amp", "train.memory_format")
#: Settings of what a run validates on: a change is noted, as the best checkpoint was chosen on the earlier set.
VALIDATION_KEYS = ("datasets.val", "train.val_max_images", "train.val_max_memory")
#: Keys within those that change nothing the run computes, or that :meth:`Trainer.resume` reconciles itself.
UNCOMPARED_KEYS = {
    "datasets.train.n_workers",
    "datasets.train.verbose",
    "datasets.train.batch_size_train",
    "datasets.val.batch_size_test",
}


def check_same_network(
    path: Path,
    config: dict[str, Any] | None,
    stored: dict[str, Any] | None,
    network: dict[str, Any],
    side_loss: bool,
    trainable: list[str] | None,
) -> None:
    """Refuse to resume a run as another ``network`` (or with the side-output loss or ``train.trainable`` changed,
    which train other parameters), naming each key that differs with the checkpoint's value and the options' one.
    ``config``: the checkpoint's model config; ``stored``: the options saved with it."""
    theirs = ModelConfig.from_kwargs(config).as_kwargs() if config else network
    differing = [
        (f"network.{network_key(key)}", value, network[key]) for key, value in theirs.items() if value != network[key]
    ]
    enhance = (stored or {}).get("train", {}).get("enhance", side_loss)
    if enhance != side_loss:
        differing.append(("train.enhance", enhance, side_loss))
    stored_trainable = (stored or {}).get("train", {}).get("trainable")
    if stored_trainable != trainable:
        differing.append(("train.trainable", stored_trainable, trainable))
    if differing:
        shown = "; ".join(f"{key}: {old} in the checkpoint, {new} in the options" for key, old, new in differing)
        raise ConfigError(
            f"{path}: cannot resume this run with other settings than it was trained with ({shown}); set them "
            "back to continue it, or start a new run under another save.path; the checkpoint was left as it was"
        )


def kept_schedule_settings(
    path: Path, train: TrainOptions, stored: dict[str, Any] | None
) -> tuple[TrainOptions, str | None]:
    """``train`` with the run's own schedule settings where the options differ (so that the options saved with the
    run say what it trains with), and a warning naming each one (None: none differ)."""
    theirs = (stored or {}).get("train", {})
    ignored, kept = [], {}
    for key in SCHEDULE_KEYS:
        if key not in theirs:
            continue
        old, new = theirs[key], getattr(train, key)
        old = tuple(old) if isinstance(old, list) else old
        if old != new:
            ignored.append(f"train.{key} {new} (the run keeps {old})")
            kept[key] = old
    warning = None
    if ignored:
        warning = (
            f"darkir: warning: --resume continues the schedule of {path}; ignored {'; '.join(ignored)}; start a "
            "new schedule from its weights with --init-from to change them"
        )
    return train.model_copy(update=kept), warning


def loss_changes(path: Path, train: TrainOptions, stored: dict[str, Any] | None, step: int) -> str | None:
    """A note naming each loss setting of ``train`` that differs from the run's own, from ``step`` on (None: none)."""
    theirs = (stored or {}).get("train", {})
    changed = [
        f"train.{key} {theirs[key]} -> {getattr(train, key)}"
        for key in LOSS_KEYS
        if key in theirs and theirs[key] != getattr(train, key)
    ]
    if not changed:
        return None
    return f"darkir: note: --resume continues {path} with other loss settings from step {step} on: {'; '.join(changed)}"


def data_changes(path: Path, options: dict[str, Any], stored: dict[str, Any] | None, step: int) -> str | None:
    """A note naming each setting of :data:`DATA_KEYS` that differs between the run's ``stored`` options and
    ``options`` (both as saved: JSON values), from ``step`` on (None: none, or a checkpoint without options). A key
    that one of them lacks (an option of another darkir version) is not compared."""
    changed = _changed(DATA_KEYS, options, stored)
    if not changed:
        return None
    return (
        f"darkir: note: --resume continues {path} with other training data or settings from step {step} on: "
        f"{'; '.join(changed)} (so it may not end as it would have uninterrupted)"
    )


def validation_changes(
    path: Path, options: dict[str, Any], stored: dict[str, Any] | None, best_psnr: float | None
) -> str | None:
    """A note naming each setting of :data:`VALIDATION_KEYS` that differs (as :func:`data_changes` compares them),
    and that the run's best checkpoint, of ``best_psnr``, was chosen on the earlier set (None: none differs)."""
    changed = _changed(VALIDATION_KEYS, options, stored)
    if not changed:
        return None
    return (
        f"darkir: note: --resume validates the run in {path} on another set: {'; '.join(changed)}; "
        f"{_chosen_earlier(best_psnr, 'one', 'this one')}"
    )


def file_changes(
    path: Path, stored: dict[str, Any] | None, current: dict[str, Any], step: int, best_psnr: float | None
) -> dict[str, str]:
    """Notes, by set (``train``, ``val``), where the pairs of a folder set differ from those the run's checkpoint
    recorded (:func:`darkir.train.sets.file_list`: pairs added, removed, renamed or of another size) under the same
    options, and (``anchor``) where ``train.anchor`` holds other weights than it did; none where the checkpoint (of
    an older darkir) records none."""
    notes = {}
    theirs_anchor, ours_anchor = (stored or {}).get("anchor"), current.get("anchor")
    if isinstance(theirs_anchor, str) and ours_anchor is not None and theirs_anchor != ours_anchor:
        notes["anchor"] = (
            f"darkir: note: --resume continues {path} with other train.anchor weights from step {step} on: the "
            "anchor holds other weights than when the run was saved (so it may not end as it would have "
            "uninterrupted)"
        )
    for key in ("train", "val"):
        theirs, ours = (stored or {}).get(key), current.get(key)
        if not isinstance(theirs, dict) or ours is None or theirs == ours:
            continue
        counts = f"{theirs.get('pairs')} pairs when it was saved, {ours['pairs']} now"
        if key == "train":
            notes[key] = (
                f"darkir: note: --resume continues {path} on training pairs that changed since it was saved "
                f"({counts}) from step {step} on (so it may not end as it would have uninterrupted)"
            )
        else:
            notes[key] = (
                f"darkir: note: --resume validates the run in {path} on validation pairs that changed since it was "
                f"saved ({counts}); {_chosen_earlier(best_psnr, 'ones', 'these')}"
            )
    return notes


def best_gone(best: Path, best_psnr: float) -> str:
    """The note for a run resumed with a validation set whose ``save.best`` holds no checkpoint (its best of
    ``best_psnr``)."""
    return (
        f"darkir: note: save.best {best} holds no checkpoint (deleted, or save.best renamed): the run's best "
        f"validation so far ({best_psnr:.2f} dB) is not there, so its next validation's checkpoint becomes the best"
    )


def validation_dropped(path: Path, best: Path, best_psnr: float | None, due: bool) -> str | None:
    """The note for a run in ``path`` resumed without a validation set that validated before (a best score of
    ``best_psnr``, or a validation ``due``); None for a run that never validated."""
    if best_psnr is None and not due:
        return None
    kept = (
        f"; {best} keeps its best checkpoint ({best_psnr:.2f} dB)" if best_psnr is not None and best.is_file() else ""
    )
    dropped = ", and the validation that was due is dropped" if due else ""
    return (
        f"darkir: note: --resume continues {path} without a validation set (none is set now){dropped}: no best "
        f"checkpoint is chosen from here on{kept}"
    )


def _chosen_earlier(best_psnr: float | None, earlier: str, now: str) -> str:
    """What a changed validation set means for the run's best checkpoint (of ``best_psnr``; None: it has none)."""
    if best_psnr is None:
        return "it has no best checkpoint yet, so its next validation writes one"
    return (
        f"its best checkpoint was chosen on the earlier {earlier}, at {best_psnr:.2f} dB, and a new best must score "
        f"higher on {now}"
    )


def _changed(keys: tuple[str, ...], options: dict[str, Any], stored: dict[str, Any] | None) -> list[str]:
    """``key old -> new`` for each of ``keys`` (or key within a section) that differs between ``stored`` and
    ``options``, where both have it."""
    changed = []
    for key in keys:
        section, name = key.split(".", 1)
        theirs, ours = (stored or {}).get(section, {}), options.get(section, {})
        if name in theirs and name in ours:
            changed += _differences(key, theirs[name], ours[name])
    return changed


def _differences(key: str, old: Any, new: Any) -> list[str]:
    """``key old -> new`` for ``key`` and, in a section (a dict on both sides), each key of it on both sides."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for name in old if name in new for line in _differences(f"{key}.{name}", old[name], new[name])]
    if key in UNCOMPARED_KEYS or old == new or (key in PATH_KEYS and same_path(old, new)):
        return []
    return [f"{key} {old} -> {new}"]


#: Settings that name a folder: the same folder written otherwise (``data/``, ``~/data``, its absolute path from the
#: folder the path is relative to) is no change.
PATH_KEYS = {"datasets.train.train_path", "datasets.val.test_path"}


def same_path(old: object, new: object) -> bool:
    """Whether two path settings name the same folder from here (``~`` expanded, relative to the working folder)."""
    if not (isinstance(old, str) and isinstance(new, str)):
        return False
    return os.path.abspath(os.path.expanduser(old)) == os.path.abspath(os.path.expanduser(new))


def per_process_batch(path: Path, global_batch: int, world: int) -> int:
    """The samples per process that keep a run's ``global_batch`` samples per step on ``world`` processes; a
    ConfigError where they cannot share it evenly."""
    if global_batch % world:
        divisors = [n for n in range(1, global_batch + 1) if global_batch % n == 0]
        raise ConfigError(
            f"{path}: this run trains on {global_batch} samples per step, which {world} processes cannot share "
            f"evenly; resume on {', '.join(map(str, divisors))} processes"
        )
    return global_batch // world


def check_new_length(
    source: Path | str, path: Path, done: tuple[int, int], epochs: int, per_epoch: int, after: int
) -> None:
    """Refuse a new length of ``after`` steps (``epochs`` epochs of ``per_epoch``) that the run in ``path`` has
    already reached (``done``: its steps and epochs): it would train nothing and only rewrite the checkpoint (on a
    wrapped-around schedule). ``source``: the options file, which the error names."""
    step, epoch = done
    if step < after and epoch < epochs:
        return
    raise ConfigError(
        f"{source}: train.epochs: the run in {path} has done {step} steps ({epochs_in_words(epoch)}), and "
        f"{epochs_in_words(epochs)} of {per_epoch} steps make {epochs * per_epoch}, so nothing is left to train; set "
        f"train.epochs to {max(step // per_epoch, epoch) + 1} or more to continue it; the checkpoint was left as it was"
    )


def epochs_in_words(count: int) -> str:
    """``count`` epochs, in words ("1 epoch", "2 epochs")."""
    return f"{count} epoch{'' if count == 1 else 's'}"


def stretch_schedule(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.CosineAnnealingLR, after: int
) -> None:
    """Continue on the cosine schedule of ``after`` steps: the learning rates move to its value at this step."""
    scheduler.T_max = after
    progress = (1 + math.cos(math.pi * scheduler.last_epoch / after)) / 2
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * progress
