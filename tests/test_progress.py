"""Progress bars into a log: redrawn seldom, not once or twice per file."""

from __future__ import annotations

import numpy as np
from PIL import Image

from darkir.cli import main
from darkir.progress import LOG_INTERVAL_S, progress_bar


def test_a_bar_into_a_log_is_redrawn_at_most_every_few_seconds(capsys):
    with progress_bar(total=10_000, desc="counting") as bar:
        for _ in range(10_000):
            bar.update()
    assert bar.mininterval == LOG_INTERVAL_S
    redraws = capsys.readouterr().err.count("\r")
    assert 1 <= redraws <= 4  # the first and last states (a slow machine may add one)


def test_restore_logs_its_bar_seldom_not_per_file(tmp_path, tiny_checkpoint, capsys):
    """``darkir restore ... 2> log`` wrote 38 KB of bars for 300 files (1.5 redraws a file: the file name shown
    forced one each time)."""
    for index in range(24):
        Image.fromarray(np.full((16, 16, 3), index * 8, np.uint8)).save(tmp_path / f"{index:02d}.png")
    args = ["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)]
    assert main(args) == 0
    assert capsys.readouterr().err.count("\r") <= 4


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
    assert err.count("\r") <= 4
    failed = [line for line in err.splitlines() if "darkir: failed:" in line]
    assert len(failed) == 30 and all(line.startswith("darkir: failed: ") for line in failed)
