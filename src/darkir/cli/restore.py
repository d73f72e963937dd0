"""Restoration commands: restore, video, demo."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from darkir.cli.common import (
    AddCommand,
    add_exposure,
    add_runtime,
    add_weights_source,
    model_from_args,
    non_negative,
    positive_float,
    positive_int,
    refuse_empty,
    restorer_from_args,
    settings_from_args,
)
from darkir.errors import DarkIRError, printable

if TYPE_CHECKING:
    from pathlib import Path

    from darkir.infer.files import Report
    from darkir.infer.jobs import Job


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore image and video files, folders and globs into an output folder, here or on a Ray cluster."""
    from pathlib import Path

    from darkir.cli import in_flags
    from darkir.infer.files import Report, restore_files
    from darkir.infer.jobs import output_suffix
    from darkir.outputs import DiskFullError, check_writable_dir, output_folder

    refuse_empty(args)
    ray_flags = [flag for flag, value in _RAY_FLAGS.items() if getattr(args, value) is not None]
    if args.engine == "local" and ray_flags:
        verb = "needs" if len(ray_flags) == 1 else "need"
        print(f"darkir: error: {', '.join(ray_flags)} {verb} --engine ray", file=sys.stderr)
        return 2
    output = Path(args.output)
    suffix = output_suffix(args.format, f"--format {args.format or repr('')}")
    jobs, problems = _planned(args, output, suffix)
    videos = sum(job.is_video for job in jobs)
    if videos:
        from darkir.infer.video_output import check_video_encoding

        check_video_encoding(args.codec, args.crf)  # before the weights load
        if suffix is not None:
            print(f"darkir: note: --format applies to images; {videos} video(s) keep their container", file=sys.stderr)
    report = Report(wording=in_flags)
    try:
        if args.engine == "ray":
            _restore_on_ray(args, jobs, report)
        else:
            check_writable_dir(output)
            restorer = restorer_from_args(args)
            with output_folder(output):  # not left behind empty where every input failed
                restore_files(
                    restorer,
                    jobs,
                    args.overwrite,
                    not args.quiet,
                    args.verbose,
                    codec=args.codec,
                    crf=args.crf,
                    report=report,
                    jpeg_quality=args.jpeg_quality,
                )
    except KeyboardInterrupt:  # what was done before Ctrl-C is kept: say how much (once the work had begun)
        if output.is_dir():
            print(f"interrupted: {_summary(args, report, problems)}; {_not_restored(jobs, report, output)}")
        raise
    except DiskFullError:
        print(f"stopped: {_summary(args, report, problems)}; {_not_restored(jobs, report, output)}")
        raise
    print(f"{_summary(args, report, problems)} {_where(output)}")
    return 1 if report.failed or problems else 0


def _planned(args: argparse.Namespace, output: Path, suffix: str | None) -> tuple[list[Job], list[tuple[Path, str]]]:
    """The jobs of the inputs (``--examples`` adding the example photos), and the inputs that cannot be restored,
    each named on stderr; a DarkIRError where nothing can be."""
    from darkir.examples import example_images
    from darkir.infer.jobs import plan_jobs

    examples = example_images() if args.examples else []
    if args.examples and not examples:
        raise DarkIRError("--examples: this install of darkir holds no example photos (darkir/assets/examples)")
    inputs = [*args.inputs, *map(str, examples)]
    if not inputs:
        raise DarkIRError("nothing to restore: give INPUT files, folders or globs, or --examples")
    jobs, problems = plan_jobs(inputs, output, suffix, videos=True)
    for path, reason in problems:
        print(printable(f"darkir: {path}: {reason}", one_line=True), file=sys.stderr)
    if not jobs:
        raise DarkIRError("nothing to restore")
    return jobs, problems


def _not_restored(jobs: list, report: Report, output: Path) -> str:
    """What a run cut short left: how many of its ``jobs`` were not recorded in ``report``, and where the rest went."""
    return f"{len(jobs) - report.count()} not restored {_where(output)}"


def _where(output: Path) -> str:
    """Where a run's outputs went: ``-> OUTPUT``, or that it made no output folder (every input failed)."""
    return f"-> {output}" if output.is_dir() else f"(nothing written: {output} not made)"


def _summary(args: argparse.Namespace, report: Report, problems: list) -> str:
    """What a ``restore`` did: how many files were restored (tiled), skipped, and failed. (A fixed tile is named by its
    flag: its windows are the tile rounded down to the model's multiple, which ``--verbose`` gives per image.)"""
    busy = f", skipped {len(report.busy)} another run is writing" if report.busy else ""
    how = "to fit memory; --verbose says why" if args.tile == "auto" else f"with --tile {args.tile}"
    tiled = f" ({len(report.tiled)} tiled {how})" if report.tiled and not args.verbose else ""
    hint = " (use --overwrite)" if report.skipped else ""
    return (
        f"restored {len(report.done)}{tiled}, skipped {len(report.skipped)} existing{hint}{busy}, "
        f"failed {len(report.failed) + len(problems)}"
    )


#: Flags of the Ray engine -> their argparse names.
_RAY_FLAGS = {
    "--address": "address",
    "--workers": "workers",
    "--cpus-per-worker": "cpus_per_worker",
    "--gpus-per-worker": "gpus_per_worker",
}


def _restore_on_ray(args: argparse.Namespace, jobs: list, report: Report) -> Report:
    """``restore --engine ray``: the same jobs on a pool of Ray workers (:mod:`darkir.cluster`), recorded in
    ``report``."""
    from pathlib import Path

    from darkir.cluster import WorkerSettings, preflight, restore_jobs
    from darkir.outputs import check_writable_dir, output_folder

    restore = settings_from_args(args)
    preflight(args.address)
    check_writable_dir(Path(args.output))
    model = model_from_args(args)
    cpus = args.cpus_per_worker or 1.0
    settings = WorkerSettings(
        **vars(restore),
        threads=args.threads,
        overwrite=args.overwrite,
        codec=args.codec,
        crf=args.crf,
        jpeg_quality=args.jpeg_quality,
    )
    with output_folder(Path(args.output)):  # not left behind empty where Ray fails to start or every input fails
        return restore_jobs(
            model,
            jobs,
            settings,
            address=args.address,
            workers=args.workers,
            cpus_per_worker=cpus,
            gpus_per_worker=args.gpus_per_worker or 0.0,
            progress=not args.quiet,
            verbose=args.verbose,
            report=report,
        )


def cmd_video(args: argparse.Namespace) -> int:
    """Restore a video frame by frame, keeping timing, resolution and audio."""
    from pathlib import Path

    from darkir.infer.video import check_video_paths, restore_video
    from darkir.infer.video_output import check_video_encoding
    from darkir.outputs import check_writable_dir, clean_stale, ensure_writable_dir

    refuse_empty(args)
    source, target = Path(args.input), Path(args.output)
    if target.is_dir() or not target.suffix or args.output.endswith(("/", os.sep)):  # a folder
        target = target / f"{source.stem}.mp4"
    check_video_paths(source, target, args.overwrite)  # before the weights load
    check_video_encoding(args.codec, args.crf)
    check_writable_dir(target.parent)
    restorer = restorer_from_args(args)
    ensure_writable_dir(target.parent)
    clean_stale(target.parent)  # what a killed run left there (its temporary video, which may be gigabytes)
    report = restore_video(
        restorer,
        source,
        target,
        codec=args.codec,
        crf=args.crf,
        progress=not args.quiet,
        overwrite=args.overwrite,
        batch=args.batch,
    )
    frames = f"{report.frames} frame{'' if report.frames == 1 else 's'}"
    print(printable(f"restored {frames}, audio {report.audio} -> {report.output}"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Serve the gradio demo; stopped by a signal, end as other commands do (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP),
    at once once its results are deleted."""
    import contextlib
    import os

    from darkir.cli import stopped_line
    from darkir.demo import launch
    from darkir.runtime import resolve_device

    refuse_empty(args)
    resolve_device(args.device)
    stopped = launch(weights=args.weights, host=args.host, port=args.port, share=args.share, device=args.device)
    if stopped is None:
        return 0
    # its results deleted, the process ends at once: a restore still running in one of gradio's threads made the
    # interpreter's exit abort (exit 134, "terminate called without an active exception")
    print(stopped_line(stopped), file=sys.stderr)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(128 + stopped)


def jpeg_quality(text: str) -> int:
    """argparse type: a JPEG quality, a whole number from 1 to 100."""
    return _whole_between(text, 1, 100, "a whole number")


def crf(text: str) -> int:
    """argparse type: a constant rate factor within the range of the video encoders (0, lossless, to 51)."""
    from darkir.infer.video_output import VIDEO_CODECS

    return _whole_between(text, 0, max(VIDEO_CODECS.values()), "a whole number")


def port_number(text: str) -> int:
    """argparse type: a TCP port to serve on, 1 to 65535."""
    return _whole_between(text, 1, 65535, "a port number")


def _whole_between(text: str, low: int, high: int, what: str) -> int:
    """``text`` as a whole number from ``low`` to ``high``; else an argparse error that says so (``what``: how it
    calls the number)."""
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {what} from {low} to {high}, got {text!r}")
    return value


def register(add: AddCommand) -> None:
    """Add this module's subcommands."""
    from darkir.infer.defaults import JPEG_QUALITY

    restore = add(
        "restore", cmd_restore, "Restore images and videos: files, folders (recursive) and globs, here or on Ray."
    )
    restore.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="image or video file, folder or glob ('photos/**/*.jpg')"
    )
    restore.add_argument(
        "--examples",
        action="store_true",
        help="restore the example photos that ship with darkir (too, with INPUTs): darkir restore --examples -o out",
    )
    restore.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if needed)")
    add_weights_source(restore)
    add_runtime(restore)
    add_exposure(restore)
    restore.add_argument("--format", metavar="EXT", help="output format (png, jpg, tif, webp, bmp); default: keep")
    restore.add_argument(
        "--jpeg-quality",
        type=jpeg_quality,
        default=JPEG_QUALITY,
        metavar="Q",
        help=f"quality of JPEG outputs, 1-100 (default {JPEG_QUALITY}; colour subsampled 4:2:0)",
    )
    restore.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    restore.add_argument("--codec", default="libx264", help="encoder of restored videos (default libx264)")
    restore.add_argument("--crf", type=crf, default=18, help="x264/x265 quality of videos, 0-51 (default 18)")
    restore.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    restore.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say for each image whether it was restored whole or tiled, and why",
    )
    engine = restore.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (default): this process; ray: a pool of Ray Data workers (pip install 'darkir[ray]')",
    )
    engine.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a new local cluster)")
    engine.add_argument("--workers", type=positive_int, help="Ray workers (default: the cluster's CPUs, or GPUs)")
    engine.add_argument("--cpus-per-worker", type=positive_float, help="CPUs each Ray worker reserves (default 1)")
    engine.add_argument("--gpus-per-worker", type=non_negative, help="GPUs each Ray worker reserves (default 0)")
    _register_video(add)
    _register_demo(add)


def _register_video(add: AddCommand) -> None:
    """Add ``darkir video``."""
    video = add("video", cmd_video, "Restore a video (streamed; frame count, fps, resolution and audio kept).")
    video.add_argument("input", metavar="IN", help="input video file")
    video.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output file, or folder for IN's name as .mp4"
    )
    add_weights_source(video)
    add_runtime(video)
    add_exposure(video)
    video.add_argument("--codec", default="libx264", help="video encoder (default libx264, i.e. H.264)")
    video.add_argument("--crf", type=crf, default=18, help="x264/x265 quality, 0-51, lower is better (default 18)")
    video.add_argument(
        "--batch",
        type=positive_int,
        metavar="N",
        help="frames restored at once; memory grows with N (default 1, the fastest measured on CPU and GPU)",
    )
    video.add_argument("--overwrite", action="store_true", help="replace an existing output")
    video.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _register_demo(add: AddCommand) -> None:
    """Add ``darkir demo``."""
    demo = add("demo", cmd_demo, "Serve the web demo (gradio): upload a photo, compare before/after.")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=port_number, default=7860, help="port (default 7860)")
    demo.add_argument("--weights", metavar="NAME_OR_PATH", help="serve these weights only (default: packaged variants)")
    demo.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    demo.add_argument("--share", action="store_true", help="also create a public gradio link")
