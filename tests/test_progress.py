"""Progress bars into a log: redrawn seldom, not once or twice per file."""

from __future__ import annotations

import numpy as np
from PIL import Image

from darkir.cli import main
from darkir.progress import LOG_INTERVAL_S, note, progress_bar


def test_a_bar_into_a_log_is_redrawn_at_most_every_few_seconds(capsys):
    with progress_bar(total=10_000, desc="counting") as bar:
        for _ in range(10_000):
            bar.update()
    assert bar.mininterval == LOG_INTERVAL_S
    redraws = capsys.readouterr().err.splitlines()
    assert 1 <= len(redraws) <= 4  # the first and last states (a slow machine may add one)


def test_restore_logs_its_bar_seldom_not_per_file(tmp_path, tiny_checkpoint, capsys):
    """``darkir restore ... 2> log`` wrote 38 KB of bars for 300 files (1.5 redraws a file: the file name shown
    forced one each time)."""
    for index in range(24):
        Image.fromarray(np.full((16, 16, 3), index * 8, np.uint8)).save(tmp_path / f"{index:02d}.png")
    args = ["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)]
    assert main(args) == 0
    assert len(_bar_lines(capsys.readouterr().err, "restoring")) <= 4


def test_failures_into_a_log_do_not_redraw_the_bar_each(tmp_path, tiny_checkpoint, capsys):
    """Each failed file's line drew the bar again below it (tqdm.write), whatever the log interval: 20,000 unreadable
    files wrote the bar 20,000 times (5 MB of log). Each line still stands on a line of its own."""
    (tmp_path / "in").mkdir()
    for index in range(30):
        (tmp_path / "in" / f"{index:02d}.png").write_bytes(b"")
    Image.fromarray(np.full((16, 16, 3), 40, np.uint8)).save(tmp_path / "in" / "good.png")
    args = ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert len(_bar_lines(err, "restoring")) <= 4
    failed = [line for line in err.splitlines() if "darkir: failed:" in line]
    assert len(failed) == 30 and all(line.startswith("darkir: failed: ") for line in failed)


def _bar_lines(log: str, desc: str) -> list[str]:
    """The lines of ``log`` that a bar named ``desc`` drew."""
    return [line for line in log.splitlines() if line.startswith(f"{desc}:")]


def test_a_bar_into_a_log_draws_each_state_on_a_line_of_its_own(capsys):
    """A log read back showed one long line of bars overwritten with carriage returns, in block glyphs, and a video's
    bar under restore's bar of files climbed over it with cursor-up escapes."""
    with progress_bar(total=2, desc="files", mininterval=0, maxinterval=0) as outer:
        for index in range(2):
            with progress_bar(total=3, desc="frames", leave=None, mininterval=0, maxinterval=0) as inner:
                inner.update(3)
            note(f"file {index} done")
            outer.update()
    log = capsys.readouterr().err
    assert log.isascii() and "\r" not in log and "\x1b" not in log and log.endswith("\n")
    lines = log.splitlines()
    assert all(line == line.strip() and line for line in lines)
    assert [line for line in lines if not line.startswith(("files:", "frames:"))] == ["file 0 done", "file 1 done"]
    assert lines.index("file 0 done") < lines.index("file 1 done")
    assert _bar_lines(log, "files")[-1].startswith("files: 100%|##########| 2/2")
    assert len(_bar_lines(log, "frames")) >= 4  # each file's frames drawn at 0% and 100%
