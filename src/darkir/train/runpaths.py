"""A run's save paths: where its files go, checks that they can be written before any work, and how a run starts on
them: it continues the run there, or starts a new one, which refuses an earlier run's checkpoints or backs them up."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from darkir.data.pairs import manifest_folders
from darkir.errors import ConfigError
from darkir.options import Options
from darkir.outputs import is_inside, is_same_file, nearest_existing
from darkir.replacing import WIDEST_PID, replacing_path
from darkir.train import ddp
from darkir.train.runfiles import (
    back_up,
    hold_run,
    legacy_lock_path,
    log_lock_path,
    run_lock_path,
    save_problem,
)
from darkir.train.runlog import EVENTS_PREFIX, LOG_FILE
from darkir.weightfiles import not_weights


def checkpoint_paths(options: Options) -> tuple[Path, Path]:
    """(last, best) checkpoint files from ``save.path`` and ``save.best`` (a folder: a name without a suffix or an
    existing folder; else a file), ``~`` expanded as every command that reads them does."""
    if not options.save.path:
        raise ConfigError(f"{options.source}: save.path is not set (where the last checkpoint goes)")
    last = Path(options.save.path).expanduser()
    if not options.save.best:
        return last, last.with_name(f"{last.stem}_best{last.suffix}")
    best = Path(options.save.best).expanduser()
    return last, (best / f"{last.stem}_best.pt" if not best.suffix or best.is_dir() else best)


def synthetic_validation(options: Options) -> bool:
    """Whether validation runs on a fixed synthetic set of held-out photos (no ``datasets.val.test_path``)."""
    synth = options.datasets.train.synth
    return synth is not None and synth.val_photos > 0 and not options.datasets.val.test_path


def validates(options: Options) -> bool:
    """Whether the run validates, and so writes ``save.best``."""
    return bool(options.datasets.val.test_path) or synthetic_validation(options)


def check_save_paths(options: Options) -> None:
    """Refuse, before any work, a ``save.path``, ``save.best`` (when the run validates) or log folder that cannot be
    written, naming its key: a failure to save there would come only after training. Also refuse files of the run
    that would replace one another or the options file given, a ``train.log_dir`` that is or holds data, and a
    ``train.anchor`` that is one of the run's own checkpoints."""
    last, _ = checkpoint_paths(options)
    for key, path, folder in _save_targets(options):
        same = key == "save.best" and path == last
        problem = f"{path} is save.path's file too; give the best checkpoint its own name" if same else None
        problem = problem or (None if folder else _linked(path, key)) or save_problem(path, folder)
        if problem:
            _refuse(options, key, problem)
    for check in (_names_too_long, _clashing_files, _clashing_options_file, _run_files_in_data, _anchor_in_run):
        found = check(options)
        if found:
            _refuse(options, *found)


def _linked(checkpoint: Path, key: str) -> str | None:
    """Why the checkpoint file ``key`` may not be a symbolic link (None where it is none): the run replaces its
    checkpoints, and so would replace the link by a file, leaving the file it led to (on another disk, say) behind."""
    if not checkpoint.is_symlink():
        return None
    return (
        f"{checkpoint} is a link to {os.readlink(checkpoint)}; set {key} to the file it leads to (a run replaces its "
        "checkpoints: the link would become a file of its own)"
    )


def _save_targets(options: Options) -> list[tuple[str, Path, bool]]:
    """(key, path, whether a folder) for each place the run writes to: ``save.path``, ``save.best`` when the run
    validates, and the log folder."""
    last, best = checkpoint_paths(options)
    logs = "train.log_dir" if options.train.log_dir else "save.path (its log folder)"
    checkpoints = (
        [("save.path", last, False), ("save.best", best, False)] if validates(options) else [("save.path", last, False)]
    )
    return [*checkpoints, (logs, log_folder(options), True)]


def _checkpoints(options: Options) -> list[tuple[str, Path]]:
    """(key, file) for each checkpoint the run writes: the last one, and the best one when the run validates."""
    return [(key, path) for key, path, folder in _save_targets(options) if not folder]


def _refuse(options: Options, key: str, problem: str) -> NoReturn:
    """The one-line error refusing the save path ``key`` for ``problem``."""
    raise ConfigError(f"{options.source}: {key}: {problem}; nothing was trained or written")


def _written_files(options: Options) -> list[tuple[str, Path, str]]:
    """(key, file, what it is) for each checkpoint the run writes and the options file beside it."""
    kinds = {"save.path": "last", "save.best": "best"}
    return [
        (key, path, f"the {kinds[key]} checkpoint{suffix}")
        for key, checkpoint in _checkpoints(options)
        for path, suffix in ((checkpoint, ""), (checkpoint.with_suffix(".yml"), "'s options file"))
    ]


def snapshot_path(last: Path, step: int) -> Path:
    """Where the kept copy of step ``step`` of the run whose last checkpoint is ``last`` goes
    (``train.keep_every_steps``): ``<stem>_step`` and the step in six digits or more."""
    return last.with_name(f"{last.stem}_step{step:06d}{last.suffix}")


def _snapshot_named(options: Options, path: Path) -> bool:
    """Whether ``path`` has the name of a step snapshot of ``save.path`` (``train.keep_every_steps``) or of its
    options file: ``<stem>_step`` and six digits or more, as the trainer names them (not another run's
    ``model_step2.pt``)."""
    last, _ = checkpoint_paths(options)
    names = re.compile(rf"{re.escape(last.stem)}_step\d{{6,}}({re.escape(last.suffix)}|\.yml)")
    return bool(names.fullmatch(path.name)) and path.parent.resolve() == last.parent.resolve()


def _in_log_folder(options: Options, path: Path) -> bool:
    """Whether ``path`` is the log folder, lies in the default one (``--restart`` moves it whole) or has the name of
    a log file in a ``train.log_dir``."""
    folder = log_folder(options)
    if is_inside(path, folder) and not options.train.log_dir:
        return True
    return is_same_file(path, folder) or (path.parent.resolve() == folder.resolve() and _is_log_file_name(path.name))


def _is_log_file_name(name: str) -> bool:
    """Whether a file of the run's log folder has the name ``name`` (JSONL log, TensorBoard events)."""
    return name == LOG_FILE or name.startswith(EVENTS_PREFIX)


def _clashing_files(options: Options) -> tuple[str, str] | None:
    """(key, problem) when a file the run writes would replace another one: a checkpoint ending in .yml (its own
    options file), two files of one name, a best checkpoint named like a step snapshot, one in the log folder."""
    files = _written_files(options)
    for key, path, what in files:
        if what.endswith("checkpoint") and path.suffix.lower() in (".yml", ".yaml"):
            return (
                key,
                f"{path} ends in {path.suffix}, like the options file saved beside each checkpoint; use a .pt path",
            )
    for index, (key, path, what) in enumerate(files):
        other = next((other for _, file, other in files[:index] if is_same_file(path, file)), None)
        if other is not None:
            return key, f"{path} would be both {what} and {other}; give the best checkpoint another name (or stem)"
        if key == "save.best" and _snapshot_named(options, path):
            return (
                key,
                f"{path} is named like a step snapshot of save.path, which would replace it; give it another name",
            )
        if _in_log_folder(options, path):
            return (
                key,
                f"{path} ({what}) is in the log folder {log_folder(options)}, whose files would replace or move it; "
                "put it elsewhere",
            )
    return None


def _options_file(options: Options) -> Path | None:
    """The options file the run was loaded from, if it is a file."""
    source = Path(options.source)
    return source if source.is_file() else None


def _clashing_options_file(options: Options) -> tuple[str, str] | None:
    """(key, problem) when a file the run writes (an options file beside a checkpoint, or a step snapshot's) would
    replace the options file the run was loaded from."""
    source = _options_file(options)
    if source is None:
        return None
    last, _ = checkpoint_paths(options)
    key, what = next(
        ((key, what) for key, path, what in _written_files(options) if is_same_file(path, source)), (None, None)
    )
    if key is None and _snapshot_named(options, source):
        key, what = "save.path", "a step snapshot's options file"
    if key is None:
        return None
    other = f" (e.g. {last.with_name(f'{last.stem}_run{last.suffix}')})" if key == "save.path" else ""
    return key, (
        f"the run would write {what} over {source}, the options file it was given; set {key} to another name{other} "
        "or keep the options file elsewhere"
    )


def _run_files_in_data(options: Options) -> tuple[str, str] | None:
    """(key, problem) when a checkpoint of the run lies in a data folder of the run, or its log folder is, holds or
    lies in one (``--restart`` moves the files of an earlier run, so data there would be moved and replaced)."""
    for key, path, folder in _save_targets(options):
        for data_key, data in _data_folders(options):
            lies_in, holds = is_inside(path, data), folder and is_inside(data, path)
            if lies_in or holds:
                how = "is" if lies_in and holds else "lies in" if lies_in else "holds"
                what = "logs" if folder else "checkpoints"
                return key, f"{path} {how} {data_key} ({data}); give the {what} a folder of their own"
    return None


def _names_too_long(options: Options) -> tuple[str, str] | None:
    """(key, problem) when a file the run writes for a checkpoint would have a longer name than its folder allows:
    the temporary files of the checkpoint, of its options file and (``train.keep_every_steps``) of the step
    snapshots, whose writing would fail only once the run has trained that far."""
    last, _ = checkpoint_paths(options)
    for key, path in _checkpoints(options):
        files = [path, path.with_suffix(".yml")]
        if key == "save.path" and options.train.keep_every_steps:
            snapshot = snapshot_path(last, 9_999_999)  # the widest step a run of under ten million steps has
            files += [snapshot, snapshot.with_suffix(".yml")]
        longest = max(  # unshortened: the names clean_up_after_killed_runs knows
            (replacing_path(file, WIDEST_PID, shorten=False) for file in files),
            key=lambda file: len(os.fsencode(file.name)),
        )
        limit = _name_limit(path.parent)
        if len(os.fsencode(longest.name)) > limit:
            return key, (
                f"{path}: the run writes files named like {longest.name} ({len(os.fsencode(longest.name))} bytes), "
                f"over the {limit} its folder allows; give it a shorter name"
            )
    return None


def _name_limit(folder: Path) -> int:
    """The longest file name (in bytes) that ``folder``, or the folder it will be made in, takes (255 where the
    system does not say)."""
    try:
        return os.pathconf(nearest_existing(folder), "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _anchor_in_run(options: Options) -> tuple[str, str] | None:
    """(key, problem) when ``train.anchor`` is a checkpoint the run writes (its last or best one, or a step
    snapshot): the anchor would change as the run goes on, and a resumed run would load another one."""
    if options.train.anchor is None:
        return None
    anchor = Path(options.train.anchor).expanduser().resolve()
    for key, path in _checkpoints(options):  # save.best only where the run validates, and so writes it
        if anchor == path.resolve():
            return "train.anchor", f"{options.train.anchor} is this run's {key}, which the run replaces as it trains"
    if _snapshot_named(options, anchor):
        return "train.anchor", f"{options.train.anchor} is named like a step snapshot of save.path, which the run makes"
    return None


def _data_folders(options: Options) -> list[tuple[str, Path]]:
    """(key, folder) for each folder the run reads data from (those a split manifest lists included)."""
    train, val = options.datasets.train, options.datasets.val
    folders = [("datasets.train.train_path", train.train_path), ("datasets.val.test_path", val.test_path)]
    if train.synth is not None:
        folders += [("datasets.train.synth.sources", source) for source in train.synth.sources if source != "debian"]
    manifests = [(key, path) for key, path in folders if key != "datasets.train.synth.sources"]
    listed = [
        (f"a folder {key} lists", str(folder))
        for key, manifest in manifests
        if manifest and Path(manifest).suffix.lower() == ".json"
        for folder in manifest_folders(manifest)
    ]
    return [(key, Path(folder)) for key, folder in folders + listed if folder]


def log_folder(options: Options) -> Path:
    """Where the JSONL and TensorBoard logs go: ``train.log_dir``, else ``<save.path stem>_logs`` beside it."""
    last, _ = checkpoint_paths(options)
    return Path(options.train.log_dir).expanduser() if options.train.log_dir else last.parent / f"{last.stem}_logs"


def run_files(options: Options) -> list[Path]:
    """The files of the run in ``save.path`` that exist: last and best checkpoints, step snapshots, their options
    files, and its logs (the default log folder whole, a ``train.log_dir``'s JSONL and TensorBoard files only); never
    the options file the run was loaded from."""
    last, best = checkpoint_paths(options)
    checkpoints = list(dict.fromkeys([last, *snapshots(options), best]))
    paths = [path for checkpoint in checkpoints for path in (checkpoint, checkpoint.with_suffix(".yml"))]
    source = _options_file(options)
    return [
        path
        for path in [*paths, *_log_files(options)]
        if path.exists() and not (source is not None and is_same_file(path, source))
    ]


def snapshots(options: Options) -> list[Path]:
    """The step snapshots of ``save.path`` that exist (``train.keep_every_steps``), oldest first."""
    last, _ = checkpoint_paths(options)
    found = last.parent.glob(f"{glob.escape(last.stem)}_step[0-9]*{glob.escape(last.suffix)}")
    return sorted(path for path in found if _snapshot_named(options, path))  # not model_step2.pt, another run's


def _log_files(options: Options) -> list[Path]:
    """What a backup of the run moves of its logs: the default log folder whole, only the run's log files in a
    ``train.log_dir`` (which may hold other files) or in a default one holding the options file given."""
    folder, source = log_folder(options), _options_file(options)
    if not options.train.log_dir and not (source is not None and is_inside(source, folder)):
        return [folder]
    return [folder / LOG_FILE, *sorted(p for p in folder.glob(f"{EVENTS_PREFIX}*") if p.is_file())]


def back_up_run(options: Options) -> list[Path]:
    """Move the earlier run's files (see :func:`run_files`) into ``backup-<time>/`` folders beside them, all or none;
    returns the folders."""
    return back_up(run_files(options))


def _refuse_earlier_run(options: Options, last: Path, init_from: str | Path | None) -> NoReturn:
    """Refuse a new run over the last checkpoint ``last`` of an earlier run, or over weights without a run's state
    (an official file as save.path, as its training code read it: fine-tuned, they were written to save.new)."""
    if _weights_only(last):
        new = (
            f" (the official files' save.new, {options.save.new}, names where they trained to)"
            if options.save.new
            else ""
        )
        raise ConfigError(
            f"{options.source}: save.path: {last} holds weights, not a darkir training run (no optimizer or "
            f"schedule state), and a run would write its checkpoints over them: to train from them, pass "
            f"init_from={last} and give save.path another file{new}; restart=True would move them to a backup "
            "folder and train from random weights"
        )
    raise ConfigError(
        f"{options.source}: save.path: {last} holds an earlier run{_why_not_resumed(options, init_from)}; "
        "pass resume=True to continue it, or restart=True to start over (its checkpoints are moved to a backup "
        "folder first)"
    )


def _weights_only(path: Path) -> bool:
    """Whether the checkpoint ``path`` holds weights without a training run's state (an official ``{'params': ...}``
    file, a convert): no optimizer or step to continue."""
    from darkir.checkpoint import read_checkpoint
    from darkir.errors import DarkIRError

    try:
        payload = read_checkpoint(path)[2]
    except DarkIRError:
        return False
    return not {"optimizer", "step"} <= payload.keys()


def continue_or_start(
    options: Options, resume: bool, restart: bool, init_from: str | Path | None
) -> tuple[bool, Path | None]:
    """(whether the run continues the one in ``save.path``, the earlier run's checkpoint that a new run backs up).

    ``network.resume_training`` continues only from a last checkpoint, and not against ``restart`` or ``init_from``;
    otherwise the run is new, and an earlier run in its save paths (also a best checkpoint alone) is refused
    unless ``restart``."""
    last, _ = checkpoint_paths(options)
    automatic = options.network.resume_training and not restart and init_from is None and last.is_file()
    if resume or automatic:
        if automatic and not resume and ddp.is_main_process():
            print(f"darkir: network.resume_training: continuing the run in {last}", file=sys.stderr)
        return True, None
    for key, path in _checkpoints(options):  # a file of the user's, which --restart would move away as a run's
        what = not_weights(path) if path.is_file() else None
        if what:
            raise ConfigError(
                f"{options.source}: {key}: {path} exists and holds no checkpoint ({what}); give {key} the name of a "
                "new file, or move that one"
            )
    earlier = _earlier_checkpoint(options)
    if earlier and not restart and earlier == last:
        _refuse_earlier_run(options, earlier, init_from)
    stray = _stray_options_file(options)
    if stray and not earlier and not restart:
        key, path, checkpoint = stray
        raise ConfigError(
            f"{options.source}: {key}: {path} exists, but not the checkpoint {checkpoint} whose options file the run "
            f"writes there; move it, give {key} another name, or pass restart=True (it is moved to a backup folder "
            "first)"
        )
    kept = snapshots(options)
    if kept and not earlier and not restart:
        raise ConfigError(
            f"{options.source}: save.path: {last} does not exist, but {len(kept)} step snapshot(s) of an earlier run "
            f"do (the newest {kept[-1]}; a run killed before its first last checkpoint?); to continue from there, "
            f"copy that one to {last} and pass resume=True, or pass restart=True to start over (they are moved to a "
            "backup folder first)"
        )
    log = _log_without_checkpoints(options)
    if log and not (earlier or stray or kept or restart):
        raise ConfigError(
            f"{options.source}: save.path: {last} does not exist, but {log} holds an earlier run's log (a run that "
            "failed or was killed before its first checkpoint?); this run would add to it; pass restart=True to start "
            "over (the log folder is moved to a backup folder first)"
        )
    if earlier and not restart:
        why = "its run lost its last checkpoint, or another run shares this save.best"
        raise ConfigError(
            f"{options.source}: save.best: {earlier} holds an earlier run's best checkpoint, and save.path {last} "
            f"does not exist ({why}){_why_not_resumed(options, init_from)}; if it is this run's, copy it to {last} and "
            "pass resume=True to continue from its step; else give this run its own save.best, or pass restart=True "
            "to start over (the best checkpoint is moved to a backup folder first)"
        )
    return False, earlier or (stray[1] if stray else None) or (kept[-1] if kept else None) or log


def _log_without_checkpoints(options: Options) -> Path | None:
    """The log of an earlier run in ``save.path``'s default log folder (``train.jsonl`` with records, or TensorBoard
    files), where that run left no checkpoint; a ``train.log_dir`` is left out: runs may log there one after the
    other."""
    if options.train.log_dir:
        return None
    folder = log_folder(options)
    log = folder / LOG_FILE
    if (log.is_file() and log.stat().st_size > 0) or any(folder.glob(f"{EVENTS_PREFIX}*")):
        return log if log.is_file() else folder
    return None


def _stray_options_file(options: Options) -> tuple[str, Path, Path] | None:
    """(key, options file, checkpoint) for an existing options file that the run would write beside a checkpoint of
    its own, where that checkpoint does not exist: a file of the user's, or of a run whose checkpoint was removed."""
    for key, checkpoint in _checkpoints(options):
        path = checkpoint.with_suffix(".yml")
        if path.is_file() and not checkpoint.exists():
            return key, path, checkpoint
    return None


def _why_not_resumed(options: Options, init_from: str | Path | None) -> str:
    """Why ``network.resume_training``, if set, did not continue the run (for the message refusing a new run)."""
    if not options.network.resume_training:
        return ""
    if init_from is not None:
        return " (network.resume_training does not apply with init_from, which starts a new run)"
    return " (network.resume_training continues only from save.path's last checkpoint)"


def _earlier_checkpoint(options: Options) -> Path | None:
    """A checkpoint of an earlier run that a new run would replace: the last one, or a best one if it validates."""
    return next((path for _, path in _checkpoints(options) if path.exists()), None)


@contextlib.contextmanager
def holding_run_paths(options: Options) -> Iterator[None]:
    """Hold the run locks of the options' last and best checkpoints (the best one only where the run validates: its
    folder is not even made otherwise) and of ``train.log_dir``, each also under an older darkir's lock name, for
    the block (:func:`darkir.train.runfiles.hold_run`): a second run on any of them stops at once."""
    last, best = checkpoint_paths(options)
    written = [(last, "save.path"), *([(best, "save.best")] if validates(options) else [])]
    with contextlib.ExitStack() as held:
        for path, key in written:
            held.enter_context(hold_run(path, key))
        taken = {run_lock_path(path) for path, _ in written}
        for path, key in written:
            if legacy_lock_path(path) not in taken:  # (a name without suffix: the same lock, held already)
                held.enter_context(hold_run(path, key, required=False, lock=legacy_lock_path(path)))
        if options.train.log_dir:  # (the default log folder is named after save.path, held above)
            # not required: a log folder that takes no file (a full disk) stops no run, as a failing log does not
            log = log_folder(options) / LOG_FILE
            held.enter_context(hold_run(log, "train.log_dir", required=False, lock=log_lock_path(log)))
        yield
