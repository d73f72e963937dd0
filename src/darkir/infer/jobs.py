"""What to restore: files, folders (recursive, relative paths kept) and globs expanded into jobs, each with its
output path; repeats, clashing outputs and inputs inside the output folder are left out and named.

Both engines plan with :func:`plan_jobs`: the local one (:mod:`darkir.infer.files`) and Ray (:mod:`darkir.cluster`).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from darkir.data.layouts import walk_files, warn_unread
from darkir.errors import DarkIRError, some_of, warn
from darkir.imageio import IMAGE_SUFFIXES, UNREAD_IMAGE_SUFFIXES, not_a_file
from darkir.outputs import is_inside, is_same_file

#: Video files that ``darkir restore`` restores as ``darkir video`` does, each into ``<name>.mp4`` (``.h264`` and
#: ``.hevc``: raw camera streams; ``.ts``, ``.mts``, ``.m2ts``: MPEG transport streams of camcorders and recorders).
VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".h264", ".hevc", ".ts", ".mts", ".m2ts", ".3gp", ".mpg", ".mpeg"
)  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One image or video to restore: where it comes from and where its result goes."""

    source: Path
    target: Path

    @property
    def is_video(self) -> bool:
        return self.source.suffix.lower() in VIDEO_SUFFIXES


def _is_input(path: Path, suffixes: tuple[str, ...]) -> bool:
    return _named_as_input(path, suffixes) and path.is_file()  # (the name first: no stat for other files)


#: Suffixes of MPEG transport streams that other files share (``.ts``, ``.mts``: TypeScript sources): such a file met
#: in a folder or by a glob is a video only where it starts as one (a file named on its own is taken as given).
TRANSPORT_SUFFIXES = (".ts", ".mts", ".m2ts")


def _other_than_video(path: Path) -> bool:
    """Whether ``path`` has a transport stream's suffix but not its packets: the 0x47 sync byte every 188 bytes (every
    192 after a 4-byte timecode, in M2TS)."""
    if path.suffix.lower() not in TRANSPORT_SUFFIXES:
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(200)
    except OSError:
        return False  # (reading it says why)
    return not any(len(head) > second and head[first] == head[second] == 0x47 for first, second in ((0, 188), (4, 196)))


def _named_as_input(path: Path, suffixes: tuple[str, ...]) -> bool:
    """Whether ``path``'s name is an input's (one of ``suffixes``, not hidden), whatever it is."""
    return path.suffix.lower() in suffixes and not path.name.startswith(".")


def _part_regex(part: str) -> str:
    """A regex for one path part of a glob: ``*`` and ``?`` never cross a ``/``; ``[...]`` as in glob."""
    out, i = "", 0
    while i < len(part):
        char = part[i]
        close = part.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif close != -1:
            body = part[i + 1 : close]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]"
            i = close
        else:
            out += re.escape(char)
        i += 1
    return out


def _pattern_regex(parts: Sequence[str]) -> re.Pattern[str]:
    """A regex for the relative path parts of a glob; ``**`` spans any number of folders."""
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _part_regex(part) + ("" if last else "/")
    return re.compile(regex + r"\Z", re.DOTALL)


def glob_files(pattern: str) -> list[Path]:
    """Files and folders matching a glob (``**`` recursive, walking each real folder once: symlink loops end; the
    folders it matches are those holding files, at any depth)."""
    pattern = os.path.expanduser(pattern)
    if "**" not in pattern:
        return [Path(p) for p in glob.glob(pattern)]
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    regex = _pattern_regex(parts[fixed:])
    files = [path.relative_to(root) for path in walk_files(root)]
    folders = sorted({folder for path in files for folder in path.parents} - {Path()})
    itself = [root] if root.is_dir() and all(part == "**" for part in parts[fixed:]) else []  # 'p/**' is p too
    return itself + [root / path for path in [*files, *folders] if regex.match(path.as_posix())]


def _missing(path: Path) -> str:
    """Why an input that is neither a file, a folder nor a pattern gives nothing."""
    return not_a_file(path, missing="no such file or folder")


def output_suffix(name: str | None, label: str) -> str | None:
    """The file suffix of the output format ``name`` (``png``, ``.JPG`` -> ``.png``, ``.jpg``); None for None (each
    output keeps its input's format); a DarkIRError beginning with ``label`` for a format darkir does not write."""
    if name is None:
        return None
    suffix = f".{name.lower().lstrip('.')}"
    if suffix not in IMAGE_SUFFIXES:
        raise DarkIRError(f"{label}: darkir writes {', '.join(known.lstrip('.') for known in IMAGE_SUFFIXES)}")
    return suffix


def plan_jobs(
    inputs: Sequence[str], output_dir: Path, suffix: str | None = None, videos: bool = False
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Expand files, folders (recursively, keeping relative paths) and globs into jobs.

    Returns the jobs and the inputs that yielded nothing (missing paths, empty folders, no glob match),
    each with a reason. ``suffix`` (e.g. ``.png``) changes the output format of images; by default it is kept.
    ``videos``: also take video files (:data:`VIDEO_SUFFIXES`), each restored into ``<name>.mp4``.
    Files inside ``output_dir`` are left out (they are outputs), said in one :class:`DarkIRWarning`; an empty input
    (an unset shell variable, which would mean every image under the current folder) is a :class:`DarkIRError`.
    """
    for index, item in enumerate(inputs):
        if not str(item):
            raise DarkIRError(
                f"empty input path (input {index + 1} of {len(inputs)}); name a file, folder or glob ('.' for the "
                "current folder)"
            )
    jobs, problems = _expand_inputs(inputs, output_dir, suffix, videos)
    unique, clashes = _without_clashes(jobs)
    return unique, problems + clashes


def _expand_inputs(
    inputs: Sequence[str], output_dir: Path, suffix: str | None, videos: bool
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """A job for each file the inputs name, in order, and the inputs that yielded none, each with a reason."""
    expansion = _Expansion(output_dir, suffix, videos)
    for item in inputs:
        expansion.expand(item)
    _warn_left_out(expansion.inside, output_dir)
    warn_unread(list(dict.fromkeys(expansion.unread)))
    broken = [(path, _missing(path)) for path in dict.fromkeys(expansion.broken)]  # each failed, as when named
    return expansion.jobs, expansion.problems + broken


class _Expansion:
    """The jobs of inputs as they are expanded one by one (:func:`_expand_inputs`), with the inputs that yield none
    (``problems``), the files left out for being inside the output folder (``inside``), the images in formats
    darkir does not read (``unread``) and the links of an input's name to nothing (``broken``)."""

    def __init__(self, output_dir: Path, suffix: str | None, videos: bool) -> None:
        self.output_dir, self.suffix, self.videos = output_dir, suffix, videos
        self.suffixes = IMAGE_SUFFIXES + (VIDEO_SUFFIXES if videos else ())
        self.kinds = f"{', '.join(IMAGE_SUFFIXES)}{' or videos' if videos else ''}"
        self.jobs: list[Job] = []
        self.problems: list[tuple[Path, str]] = []
        self.inside: list[Path] = []
        self.unread: list[Path] = []
        self.broken: list[Path] = []

    def expand(self, item: str) -> None:
        """Add the jobs of one input: a file, a folder or a glob."""
        path = _expand_user(item)
        if path is None:
            self.problems.append((Path(item), f"cannot expand {item.split('/')[0]}: no such user"))
        elif path.is_dir():
            self._add_folder(path)
        elif path.is_file():
            self._add(path, Path(path.name))
        elif glob.has_magic(item):
            self._add_glob(item, path)
        else:
            self.problems.append((path, _missing(path)))

    def _add(self, source: Path, relative: Path) -> None:
        """Add the job of ``source``, whose output is ``relative`` in the output folder (in the output format)."""
        target = self.output_dir / relative
        if source.suffix.lower() in VIDEO_SUFFIXES and self.videos:
            target = target.with_suffix(".mp4")
        elif self.suffix:
            target = target.with_suffix(self.suffix)
        self.jobs.append(Job(source, target))

    def _add_folder(self, path: Path) -> None:
        """Add the jobs of the images in the folder ``path`` and below, their outputs named by their path in it."""
        broken = len(self.broken)
        images = self._inputs(walk_files(path))
        found = self._outside_output(images)
        if images and not found and is_same_file(path, self.output_dir):  # (``restore * -o out`` run again: out/)
            self.inside.extend(images)
        elif images and not found:
            self.problems.append(
                (path, f"its images are inside the output folder {self.output_dir}; choose another output folder")
            )
        elif not found and len(self.broken) == broken:  # (links to nothing fail each on its own line)
            self.problems.append((path, f"no images ({self.kinds}) found in this folder"))
        for source in found:
            self._add(source, source.relative_to(path))

    def _add_glob(self, item: str, path: Path) -> None:
        """Add the jobs of the files a glob matches, and of the images in the folders it matches as if each were given
        (as a shell expands it; a folder without images is passed over, as the files of other kinds are)."""
        matches = glob_files(item)
        named = [(Path(match.name), match) for match in self._inputs(matches)]
        for folder in sorted(match for match in matches if match.is_dir()):
            named += [(image.relative_to(folder), image) for image in self._inputs(walk_files(folder))]
        kept = set(self._outside_output(image for _, image in named))
        if named and not kept:
            self.problems.append((path, f"its matches are inside the output folder {self.output_dir}; choose another"))
        elif not named:
            self.problems.append((path, "no image matches this pattern"))
        for relative, source in sorted(named, key=lambda pair: pair[1]):
            if source in kept:
                self._add(source, relative)

    def _inputs(self, files: Iterable[Path]) -> list[Path]:
        """The inputs among ``files``; images in formats darkir does not read are noted in ``unread``; what is named
        as an input but holds none, a link to nothing (a photo on a drive not mounted) or a pipe, socket or device,
        in ``broken``."""
        files = list(files)
        self.unread.extend(path for path in files if _is_input(path, UNREAD_IMAGE_SUFFIXES))
        self.broken.extend(
            path
            for path in files
            if _named_as_input(path, self.suffixes)
            and not path.is_file()  # a link to nothing, or a pipe, socket or device (or a link to one)
            and (path.is_symlink() or path.exists())
            and not path.is_dir()
            and not is_inside(path, self.output_dir)
        )
        return [path for path in files if _is_input(path, self.suffixes) and not _other_than_video(path)]

    def _outside_output(self, candidates: Iterable[Path]) -> list[Path]:
        """The candidates outside the output folder, sorted; those inside are noted where some are kept (where
        none are, the input's problem says why)."""
        found = sorted(candidates)
        outside = [not is_inside(source, self.output_dir) for source in found]
        kept = [source for source, keep in zip(found, outside, strict=True) if keep]
        if kept:
            self.inside.extend(source for source, keep in zip(found, outside, strict=True) if not keep)
        return kept


def _expand_user(item: str) -> Path | None:
    """``item`` with a leading ``~`` or ``~user`` expanded; None where that user has no home folder."""
    try:
        return Path(item).expanduser()
    except RuntimeError:  # "Could not determine home directory"
        return None


#: How many of the files left out :func:`_warn_left_out` names.
LEFT_OUT_NAMED = 3


def _warn_left_out(inside: list[Path], output_dir: Path) -> None:
    """One warning naming the inputs left out for being inside ``output_dir``."""
    if not inside:
        return
    named = some_of([str(path) for path in inside], LEFT_OUT_NAMED)
    files = "file" if len(inside) == 1 else "files"
    warn(
        f"left out {len(inside)} {files} inside the output folder {output_dir} ({named}): files there are "
        "taken for outputs; choose an output folder outside the inputs to restore them"
    )


def _without_clashes(jobs: list[Job]) -> tuple[list[Job], list[tuple[Path, str]]]:
    """``jobs`` without repeats of a file, and without those whose output would replace an input or another job's
    output (returned as problems, with reasons). A file given or reached several ways (a repeated argument, a link,
    a file inside a folder also given) is restored once, under its longest output name, the one its outermost folder
    gives it, and of equal ones under a name that is not a symbolic link: so the result does not depend on the order
    of the arguments. Names of one file that differ (a link beside it) are said in one warning."""
    ids = [_file_id(job.source) for job in jobs]
    sources = {file_id: job.source for job, file_id in zip(jobs, ids, strict=True) if file_id is not None}
    longest: dict[tuple[int, int], Job] = {}
    for job, file_id in zip(jobs, ids, strict=True):
        if file_id is not None and _name_rank(job) > _name_rank(longest.setdefault(file_id, job)):
            longest[file_id] = job
    _warn_other_names([(job.source, longest[i].source) for job, i in zip(jobs, ids, strict=True) if i is not None])
    planned: set[tuple[int, int]] = set()
    candidates = []
    for job, source_id in zip(jobs, ids, strict=True):
        if source_id not in planned:
            candidates.append(job if source_id is None else longest[source_id])
        if source_id is not None:
            planned.add(source_id)
    return _one_per_output(candidates, sources)


def _one_per_output(jobs: list[Job], sources: dict[tuple[int, int], Path]) -> tuple[list[Job], list[tuple[Path, str]]]:
    """``jobs`` but those whose output would replace an input (``sources``: the inputs by file identity) or share
    another job's output, returned as problems: of inputs sharing one output name, the one whose own name it is
    (``clip.mp4`` beside ``clip.mkv``; a camera's ``CLIP.MP4`` beside ``CLIP.MOV``; ``b.jpg`` before ``b.JPG``),
    else the first."""
    own = [  # (own name: the suffix in any case, as a camera's .MP4)
        job
        for job in jobs
        if job.source.stem == job.target.stem and job.source.suffix.lower() == job.target.suffix.lower()
    ]
    owners: dict[Path, Path] = {}
    for job in sorted(own, key=lambda job: job.source.suffix != job.target.suffix):  # the very name first
        owners.setdefault(job.target, job.source)
    targets: dict[Path, Path] = {}
    unique: list[Job] = []
    problems: list[tuple[Path, str]] = []
    for job in jobs:
        target_id = _file_id(job.target)  # an output that does not exist yet cannot be an input
        clash = sources.get(target_id) if target_id is not None else None
        owner = targets.get(job.target) or owners.get(job.target, job.source)
        if clash is not None:
            problems.append(
                (job.source, f"its output {job.target} would replace the input {clash}; choose another output folder")
            )
        elif owner != job.source:
            problems.append((job.source, f"same output name as {owner}; restore it separately"))
        else:
            targets[job.target] = job.source
            unique.append(job)
    return unique, problems


def _name_rank(job: Job) -> tuple[int, bool]:
    """How much a name of a file reached several ways is preferred: the longest output path, then not a link."""
    return len(job.target.parts), not job.source.is_symlink()


def _warn_other_names(names: list[tuple[Path, Path]]) -> None:
    """One warning naming the inputs that are another name of a file restored under its own (``(name, chosen)``
    pairs; those whose file names are the same, one file reached through two folders, go unsaid)."""
    other = sorted({f"{name} (restored as {chosen})" for name, chosen in names if name.name != chosen.name})
    if other:
        warn(
            f"{len(other)} {'input names a file' if len(other) == 1 else 'inputs name files'} also found under "
            f"another name (a link), restored once: {some_of(other, LEFT_OUT_NAMED)}"
        )


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, links followed: equal for two names of one file; None if missing."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino
