"""Evaluation commands: test, metrics, test-unpaired (compare is :mod:`darkir.cli.compare`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from darkir.cli.common import (
    AddCommand,
    add_eval_options,
    add_runtime,
    add_weights_source,
    csv_file,
    evaluation_sets,
    load_lpips_or_none,
    non_negative_int,
    refuse_empty,
    restorer_from_args,
)
from darkir.errors import DarkIRError, printable, some_of, warnings_held

if TYPE_CHECKING:
    from darkir.data.pairs import Pair
    from darkir.options import Options


#: What ``test`` and ``test-unpaired`` write in a results folder that one run holds at a time, for the messages.
TRIPLETS, UNPAIRED_RESULTS = "test's triplets", "test-unpaired's results"


def _method_name(args: argparse.Namespace) -> str:
    """How reports name the evaluated model: its weights' name, else the options file's, else the default's."""
    from darkir.models.zoo import DEFAULT_WEIGHTS

    source = args.weights or args.options
    return Path(str(source)).stem if source else str(DEFAULT_WEIGHTS)


def input_folders(location: str | Path | None, pairs: Sequence[Pair]) -> list[Path]:
    """The folders a command reads its images from: the data folder ``location`` (where it is one; a manifest's
    data, all its splits', where it is one: :func:`~darkir.data.pairs.manifest_folders`) and the folder of every
    input and reference, so that nothing is written among them."""
    from darkir.data.pairs import manifest_folders

    folders = {pair.low.parent for pair in pairs} | {pair.high.parent for pair in pairs if pair.high is not None}
    if location is not None and Path(location).is_dir():
        data = [Path(location)]
    elif location is not None and Path(location).suffix.lower() == ".json":
        data = manifest_folders(location)
    else:
        data = []
    return data + sorted(folders - set(data))


def _unreadable_status(scored: int, unreadable: list[str]) -> int:
    """Print which images were skipped as unreadable, if any, and return the exit status: 1 if some were (as
    ``darkir restore`` does for files that failed), else 0."""
    from darkir.eval.reports import unreadable_note

    if not unreadable:
        return 0
    print(printable(unreadable_note(scored, unreadable)))
    return 1


def _triplet_root(args: argparse.Namespace, options: Options | None) -> Path:
    """The folder ``test --save N`` writes its triplets under (``--results-dir``, else the options' or the default)."""
    return Path(args.results_dir or (options.save.results_dir if options else "images/results_test")).expanduser()


def _check_csv_beside_triplets(args: argparse.Namespace, options: Options | None) -> None:
    """Refuse a ``--csv`` that is the triplets' folder or a folder above it (made before any image, it would leave
    the CSV nowhere to go after every image was scored)."""
    from darkir.outputs import is_inside

    if args.csv and args.save and is_inside(_triplet_root(args, options), Path(args.csv).expanduser()):
        raise DarkIRError(
            f"--csv {args.csv} is where the triplets go (--results-dir {_triplet_root(args, options)}) or a folder "
            "above it; give the CSV file another name"
        )


def _triplet_folder(
    args: argparse.Namespace, options: Options | None, inputs: Sequence[Path], pairs: int, label: str = ""
) -> Path | None:
    """Where ``test --save N`` writes its triplets (of the set ``label`` of ``pairs`` pairs, in a sub-folder of that
    name where there are several), checked before any work (None with ``--save 0``): never an input folder nor
    inside one, and never over files there that are not triplets of an earlier run without --overwrite."""
    from darkir.eval.paired import TRIPLET_NOTE, check_triplet_folder
    from darkir.outputs import ensure_writable_dir, is_inside, is_same_file, refuse_held_folder

    if not args.save:
        return None
    results_dir = _triplet_root(args, options) / label
    for folder in inputs:
        if is_inside(results_dir, folder):
            where = "is" if is_same_file(results_dir, folder) else "is inside"
            raise DarkIRError(
                f"--results-dir {results_dir} {where} the input folder {folder}; write the triplets outside the "
                "inputs (or pass --save 0)"
            )
    try:
        ensure_writable_dir(results_dir)
    except DarkIRError as exc:  # (the default ./images/results_test, in a folder the user cannot write, say)
        go = f"the triplets of --save {args.save} go there: pass --results-dir DIR, or --save 0"
        raise DarkIRError(f"{exc}; {go}") from None
    refuse_held_folder(results_dir / TRIPLET_NOTE, TRIPLETS)
    check_triplet_folder(results_dir, min(args.save, pairs), args.overwrite)
    return results_dir


def cmd_test(args: argparse.Namespace) -> int:
    """Paired evaluation of one model: PSNR/SSIM/LPIPS, mean and per image, of one set or of each set an official
    ``datasets.name`` gathers (unreadable images are skipped and named; then the exit status is 1)."""
    from darkir.eval.methods import model_method
    from darkir.eval.paired import evaluate, summary_line, write_csv, write_triplet_note
    from darkir.options import load_options

    refuse_empty(args)
    options = load_options(args.options) if args.options else None
    with warnings_held():  # the sets' notes, once nothing below refuses the run
        sets = evaluation_sets(args, options)
        location = args.data or (options.require_path("datasets.val.test_path") if options else None)
        folders = input_folders(location, [pair for pairs in sets.values() for pair in pairs])
        _check_csv_beside_triplets(args, options)
        csv = csv_file(args.csv, [*folders, location, args.weights, args.options], args.overwrite) if args.csv else None
        results_dirs = {label: _triplet_folder(args, options, folders, len(sets[label]), label) for label in sets}
        restorer = restorer_from_args(args, options)
        lpips = load_lpips_or_none(args)
    all_scores = []
    for label, pairs in sets.items():
        method = model_method(f"{_method_name(args)} on {label}" if label else _method_name(args), restorer)
        with _holding_triplets(results_dirs[label]) as results_dir:
            if results_dir is not None:  # an earlier run's triplets go, and the folder is marked as this run's
                write_triplet_note(results_dir, method.name, pairs, args.save, saved=())
            scores = evaluate(
                method,
                pairs,
                args.convention,
                lpips,
                save_dir=results_dir,
                save_count=args.save,
                progress=not args.quiet,
                skip_unreadable=True,
            )
            print(summary_line(scores, args.convention))
            if results_dir is not None:  # (its note lists the triplets saved: written with each)
                first = min(args.save, len(pairs))
                print(f"{len(scores.saved)} input/output/gt triplets of the first {first} pairs -> {results_dir}")
        all_scores.append(scores)
    if csv:
        write_csv(csv, all_scores, overwrite=args.overwrite)
    return 1 if any(scores.unreadable for scores in all_scores) else 0


@contextlib.contextmanager
def _holding_triplets(results_dir: Path | None) -> Iterator[Path | None]:
    """``results_dir`` (None: no triplets are saved; made by :func:`_triplet_folder`), cleared of what killed runs
    left there, and held for this run within the block: another run writing triplets there is refused, not mixed
    with this one's."""
    from darkir.eval.paired import TRIPLET_NOTE
    from darkir.outputs import clean_stale, holding_folder

    if results_dir is None:
        yield None
        return
    clean_stale(results_dir)
    with holding_folder(results_dir / TRIPLET_NOTE, TRIPLETS):
        yield results_dir


def _print_no_reference(args: argparse.Namespace) -> int:
    """No-reference scores (NIQE, brightness, noise) of every image of ``args.pred``, per image and mean."""

    from darkir.data.pairs import find_unpaired
    from darkir.eval.noreference import NO_REFERENCE_NOTE, mean_line, score_folder, write_scores_csv

    csv = csv_file(args.csv, [args.pred], args.overwrite) if args.csv else None
    unreadable: list[str] = []
    rows = score_folder(find_unpaired(args.pred), progress=not args.quiet, unreadable=unreadable)
    print(NO_REFERENCE_NOTE)
    for name, scores in rows:
        print(
            f"{printable(name, one_line=True)}: NIQE {scores.niqe:.3f}, brightness {scores.brightness:.3f}, "
            f"noise sigma {scores.noise:.4f}"
        )
    print(mean_line(f"mean of {len(rows)} images", [scores for _, scores in rows]))
    if csv:
        write_scores_csv(csv, [(name, vars(scores)) for name, scores in rows], overwrite=args.overwrite)
        print(f"per image -> {csv}")
    return _unreadable_status(len(rows), unreadable)


def cmd_metrics(args: argparse.Namespace) -> int:
    """PSNR/SSIM/LPIPS of a folder of outputs against references matched by name; NIQE etc. without references."""
    from darkir.data.layouts import Layout
    from darkir.data.pairs import find_pairs
    from darkir.eval.methods import identity
    from darkir.eval.paired import evaluate, summary_line, write_csv

    refuse_empty(args)
    if args.gt is None:
        return _print_no_reference(args)
    pred, gt = Path(args.pred), Path(args.gt)
    for role, folder in (("PRED (the folder of outputs)", pred), ("GT (the reference folder)", gt)):
        if folder.is_file():
            raise DarkIRError(
                f"{role} {folder} is a file; darkir metrics compares two folders, matching images by name"
            )
        if not folder.is_dir():
            raise DarkIRError(f"{role} {folder} does not exist")
    _refuse_overlap(pred, gt)
    csv = csv_file(args.csv, [pred, gt], args.overwrite) if args.csv else None
    common = Path(os.path.commonpath([pred.resolve(), gt.resolve()]))
    layout = Layout("folders", str(pred.resolve().relative_to(common)), str(gt.resolve().relative_to(common)))
    pairs = find_pairs(common, layout, what=f"PRED {pred} against GT {gt}", notes=False, of_outputs=True)
    method = identity()
    method.name = pred.resolve().name
    scores = evaluate(method, pairs, "8bit", load_lpips_or_none(args), progress=not args.quiet, skip_unreadable=True)
    print(summary_line(scores, "8bit"))
    _note_unscored_references(pred, gt, pairs)
    _note_self_references(pairs)
    if csv:
        write_csv(csv, [scores], overwrite=args.overwrite)
    return 1 if scores.unreadable else 0


def _note_unscored_references(pred: Path, gt: Path, pairs: Sequence[Pair]) -> None:
    """Say which images of ``gt`` have no output in ``pred`` (the means cover only the pairs; a reference folder may
    hold more than was restored, but a missing output should not pass unseen)."""
    from darkir.data.layouts import list_images
    from darkir.eval.reports import MAX_NAMED, plural
    from darkir.outputs import is_inside

    scored = {Path(pair.high).resolve() for pair in pairs}
    unscored = [str(p) for p in list_images(gt) if p.resolve() not in scored and not is_inside(p, pred)]
    if unscored:
        print(
            printable(
                f"darkir: note: not scored, as PRED has no output for them: {plural(len(unscored))} of GT "
                f"({some_of(unscored, MAX_NAMED)})"
            ),
            file=sys.stderr,
        )


def _note_self_references(pairs: Sequence[Pair]) -> None:
    """Say which outputs are their references' own files (a link to it): each scored against itself, at 100 dB,
    which the means take in without a word otherwise."""
    from darkir.eval.reports import MAX_NAMED, plural
    from darkir.outputs import is_same_file

    selves = [str(pair.low) for pair in pairs if pair.high is not None and is_same_file(pair.low, pair.high)]
    if selves:
        print(
            printable(
                f"darkir: note: each scored against itself, as a link to its own reference: {plural(len(selves))} "
                f"of PRED ({some_of(selves, MAX_NAMED)})"
            ),
            file=sys.stderr,
        )


def _refuse_overlap(pred: Path, gt: Path) -> None:
    """Refuse an output folder that is the reference folder (each image scored against itself) or holds it (its
    references would be read as outputs); outputs in a folder below the references are fine."""
    from darkir.outputs import is_inside

    if is_inside(pred, gt) and is_inside(gt, pred):
        raise DarkIRError(f"PRED and GT are the same folder ({pred}): each image would be scored against itself")
    if is_inside(gt, pred):
        raise DarkIRError(
            f"the reference folder {gt} is inside the output folder {pred}: its images would be read as outputs "
            "(move the references or the outputs to a folder of their own)"
        )


def cmd_test_unpaired(args: argparse.Namespace) -> int:
    """Restore an unpaired set and report no-reference statistics."""
    from darkir.data.pairs import find_unpaired
    from darkir.eval.noreference import NO_REFERENCE_NOTE, mean_line, write_scores_csv
    from darkir.eval.reports import MAX_NAMED, plural
    from darkir.eval.unpaired import (
        earlier_outputs,
        niqe_change_line,
        outside_output,
        remove_stale,
        restore_unpaired,
        unpaired_csv_rows,
    )
    from darkir.options import load_options
    from darkir.outputs import clean_stale, ensure_writable_dir, holding_folder, refuse_held_folder

    refuse_empty(args)
    options = load_options(args.options) if args.options else None
    folder = args.data or (options.require_path("datasets.val.test_path", "dir") if options else None)
    if folder is None:
        raise DarkIRError("pass --data DIR or -p OPTIONS with datasets.val.test_path")
    refuse_paired(Path(folder), None if args.data else options)
    output = _unpaired_output(args, options)  # first: an -o that is a file (one of the data's images) is named so
    refuse_held_folder(output / "stats.csv", UNPAIRED_RESULTS)
    pairs = outside_output(find_unpaired(folder), output, Path(folder))
    restorer = restorer_from_args(args)
    ensure_writable_dir(output)
    clean_stale(output)  # what a killed run left there (its temporary files)
    with holding_folder(output / "stats.csv", UNPAIRED_RESULTS):
        earlier = earlier_outputs(output)
        unreadable: list[str] = []
        listed = earlier | {pair.name for pair in pairs}  # marked just before the first image: a failed start, none
        rows = restore_unpaired(restorer, pairs, output, progress=not args.quiet, unreadable=unreadable, listed=listed)
        removed = remove_stale(output, earlier, {row.name for row in rows})
        if removed:
            print(
                printable(
                    f"darkir: removed {plural(len(removed))} of the earlier run in {output} that this run did not "
                    f"restore ({some_of(removed, MAX_NAMED)}); give each set its own -o to keep their results"
                ),
                file=sys.stderr,
            )
        write_scores_csv(output / "stats.csv", unpaired_csv_rows(rows))
    print(NO_REFERENCE_NOTE)
    for row in rows:
        print(
            f"{printable(row.name, one_line=True)}: NIQE {row.before.niqe:.3f} -> {row.after.niqe:.3f}, brightness "
            f"{row.before.brightness:.3f} -> {row.after.brightness:.3f}, noise sigma {row.before.noise:.4f} -> "
            f"{row.after.noise:.4f}"
        )
    print(mean_line(f"input ({len(rows)} images)", [r.before for r in rows]))
    print(mean_line("output", [r.after for r in rows]))
    change = niqe_change_line(rows)
    if change:
        print(change)
    print(f"restored images -> {output}; per image: {output / 'stats.csv'}")
    return _unreadable_status(len(rows), unreadable)


def refuse_paired(folder: Path, options: Options | None, command: str = "test-unpaired") -> None:
    """Refuse a paired set for ``command`` (test-unpaired, or compare --unpaired): its references would be restored
    and scored as low-light inputs. A folder
    counts as one where a known layout's folders are there and every input has its reference (a folder that merely has,
    say, ``low/`` and ``high/`` sub-folders of unrelated photos is restored as it is)."""
    from darkir.data.layouts import COLLECTIONS, DatasetError, detect_layout
    from darkir.data.pairs import find_pairs

    if options is not None and options.datasets.name in COLLECTIONS:
        raise DarkIRError(
            f"datasets.name {options.datasets.name} names paired test sets under {folder}: score them with "
            "darkir test -p OPTIONS (test-unpaired restores a folder of low-light images: --data FOLDER)"
        )
    try:
        layout = detect_layout(folder)
        find_pairs(folder, layout, check_sizes=False, notes=False)
    except DatasetError:
        return
    paired = f"darkir test --data {folder}" if command == "test-unpaired" else "darkir compare without --unpaired"
    raise DarkIRError(
        f"{folder} is a paired set ({layout.low}/ + {layout.high}/): {command} would restore its references as "
        f"inputs; pass --data {folder / layout.low}, or score the pairs with {paired}"
    )


def _unpaired_output(args: argparse.Namespace, options: Options | None) -> Path:
    """test-unpaired's output folder (``-o``, else :func:`_unpaired_results`), checked writable
    (:func:`~darkir.outputs.check_writable_dir`); a default one that is not says how to choose another."""
    from darkir.outputs import check_writable_dir

    output = Path(args.output or _unpaired_results(options))
    try:
        check_writable_dir(output)
    except DarkIRError as exc:
        raise DarkIRError(f"{exc}{'' if args.output else '; the restored images go there: pass -o DIR'}") from None
    return output


def _unpaired_results(options: Options | None) -> str:
    """test-unpaired's output folder without ``-o``: the options file's ``save.results_dir`` where it sets one."""
    if options is not None and "results_dir" in options.save.model_fields_set:
        return options.save.results_dir
    return "images/results_unpaired"


def register(add: AddCommand) -> None:
    """Add this module's subcommands."""
    _register_test(add)
    _register_metrics(add)
    _register_unpaired(add)


def _register_test(add: AddCommand) -> None:
    test = add(
        "test", cmd_test, "Evaluate a model on paired images: PSNR, SSIM, LPIPS, detail and tone (mean and per image)."
    )
    add_weights_source(test)
    test.add_argument("--data", help="paired folder or split manifest (default: datasets.val.test_path)")
    test.add_argument("--split", help="split of a .json manifest (default test)")
    test.add_argument(
        "--csv",
        help="write per-image metrics to this .csv file (never inside the data; not over a file without --overwrite)",
    )
    test.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --csv file, and files in --results-dir named like triplets that an earlier run did "
        "not write",
    )
    test.add_argument(
        "--save",
        type=non_negative_int,
        default=8,
        metavar="N",
        help="save the first N input/output/gt triplets (default 8; 0: none)",
    )
    test.add_argument(
        "--results-dir",
        help="where triplets go, outside the data (default save.results_dir or ./images/results_test); an earlier "
        "run's triplets there are replaced, other files of their names only with --overwrite",
    )
    add_runtime(test, precision="fp32", job_compiles=False)  # scores are computed exactly by default
    add_eval_options(test)


def _register_metrics(add: AddCommand) -> None:
    metrics = add(
        "metrics",
        cmd_metrics,
        "Metrics of a folder of outputs against references (matched by name), or NIQE etc. without references.",
    )
    metrics.add_argument("pred", help="folder of restored images")
    metrics.add_argument(
        "gt", nargs="?", help="folder of references with the same relative names (without: no-reference NIQE etc.)"
    )
    metrics.add_argument(
        "--csv",
        help="write per-image metrics to this .csv file (never inside PRED or GT; not over a file without --overwrite)",
    )
    metrics.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    add_eval_options(metrics, convention=False)


def _register_unpaired(add: AddCommand) -> None:
    unpaired = add(
        "test-unpaired", cmd_test_unpaired, "Restore an unpaired set and report NIQE, brightness and noise, in and out."
    )
    add_weights_source(unpaired)
    unpaired.add_argument("--data", help="folder of low-light images (default: datasets.val.test_path)")
    unpaired.add_argument(
        "-o",
        "--output",
        help="output folder, never the data folder; inside it only a new one or an earlier run's (with its stats.csv) "
        "(default: the options file's save.results_dir, else images/results_unpaired); earlier results there are "
        "replaced",
    )
    add_runtime(unpaired, precision="fp32", job_compiles=False)  # scores are computed exactly by default
    unpaired.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
