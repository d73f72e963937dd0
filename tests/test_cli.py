"""The darkir command: help on every subcommand, complexity figures, readable errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from darkir.checkpoint import save_checkpoint
from darkir.cli import build_parser, main
from darkir.models.factory import build_model
from tests.conftest import REPO, TINY


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: darkir" in capsys.readouterr().out


def test_every_command_that_takes_an_options_file_takes_it_as_p_options_and_config():
    """The README: ``-p``/``--config``, which every command that takes an options file takes; compare took only
    ``-p``/``--options``."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    taking = {name: sub for name, sub in commands.items() if "-p" in sub._option_string_actions}
    assert {"restore", "video", "test", "test-unpaired", "compare", "train", "complexity", "export-onnx"} <= set(taking)
    for name, sub in taking.items():
        flags = sub._option_string_actions
        assert flags["-p"] is flags["--config"] is flags["--options"], name


def test_a_mistyped_flag_is_refused_below_the_commands_usage_with_the_closest_flag(capsys):
    """argparse refused unknown flags below darkir's own usage (``usage: darkir [-h] [--version] ...``), which says
    nothing of the command's flags."""
    with pytest.raises(SystemExit) as info:
        main(["restore", "in.png", "-o", "out", "--precison", "fp32", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: darkir restore ")
    assert "darkir restore: error: unrecognized arguments: --precison fp32 --bogus (did you mean --precision?)" in err


@pytest.mark.parametrize(
    ("options", "params", "gmacs"),
    [("train/LOLBlur.yml", 3.32e6, 7.25), ("train/LOLBlur_csf.yml", 3.38e6, 7.67)],
)
def test_complexity_matches_published_figures(options, params, gmacs, capsys):
    assert main(["complexity", "-p", str(REPO / "options" / options), "--size", "256", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["params"], int) and isinstance(result["macs"], int)
    assert result["params"] == pytest.approx(params, rel=0.01)
    assert result["macs"] / 1e9 == pytest.approx(gmacs, rel=0.01)


def test_complexity_takes_what_a_partial_network_section_leaves_out_from_its_weights(tmp_path, capsys):
    # as test and restore do: an 8-wide checkpoint under network: {use_csf: true} is counted 8 wide, not 32
    tiny = save_checkpoint(tmp_path / "tiny.pt", build_model("darkir-csf-w32", **TINY))
    options = tmp_path / "partial.yml"
    options.write_text(f"network:\n  use_csf: true\nsave:\n  path: {tiny}\n")
    assert main(["complexity", "-p", str(options), "--size", "32", "--json"]) == 0
    counted = json.loads(capsys.readouterr().out)["params"]
    assert counted == sum(p.numel() for p in build_model("darkir-csf-w32", **TINY).parameters())
    options.write_text("network:\n  use_csf: true\n")  # no weights: the defaults
    assert main(["complexity", "-p", str(options), "--size", "32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == pytest.approx(3.38e6, rel=0.01)


def test_complexity_refuses_a_network_section_its_weights_contradict_as_test_does(tmp_path, capsys):
    """A whole ``network:`` section was counted as written, beside weights of another network that ``test -p``
    refuses."""
    tiny = save_checkpoint(tmp_path / "tiny.pt", build_model("darkir-csf-w32", **TINY))
    whole = {**build_model("darkir-csf-w32", **TINY).config, "use_csf": False}
    named = {"img_channel": "img_channels"}  # the options file's name of the one key spelled otherwise
    network = "".join(f"  {named.get(key, key)}: {json.dumps(value)}\n" for key, value in whole.items())
    options = tmp_path / "whole.yml"
    options.write_text(f"network:\n{network}save:\n  path: {tiny}\n")
    assert main(["complexity", "-p", str(options), "--size", "32", "--json"]) == 2
    assert "network: use_csf: false contradicts the one stored with these weights" in capsys.readouterr().err


def test_complexity_by_model_name_scales_with_size(capsys):
    main(["complexity", "-m", "darkir-w16", "--size", "64", "--json"])
    small = json.loads(capsys.readouterr().out)
    main(["complexity", "-m", "darkir-w16", "--size", "128", "--json"])
    large = json.loads(capsys.readouterr().out)
    assert large["params"] == small["params"]
    assert large["macs"] == pytest.approx(4 * small["macs"], rel=0.01)


def test_a_model_that_cannot_run_at_the_size_is_one_error_naming_the_reason(capsys):
    """ptflops printed its traceback and counted nothing, and darkir went on to ``int(None)``: a TypeError."""
    import torch

    from darkir.complexity import measure_complexity

    class Refusing(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")

    with pytest.raises(RuntimeError, match=r"^DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB$"):
        measure_complexity(Refusing(), size=8)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_models_lists_the_zoo(capsys):
    assert main(["models", "darkir-csf-*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["darkir-csf-w32", "darkir-csf-w64", "darkir-csf-w32-synth"]
    assert lines[-1].split()[1] == "weights"


def test_bad_options_file_gives_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("network:\n  widht: 32\n")
    assert main(["complexity", "-p", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("darkir: error: ") and "network.widht" in err and "Traceback" not in err


def test_a_name_that_is_not_utf8_is_printed_as_its_bytes_on_a_utf8_stdout(tmp_path):
    """``split -o $'m\\xff.json'`` wrote its manifest, then ended in UnicodeEncodeError (exit 1) printing its name."""
    import os

    import numpy as np
    from PIL import Image

    for side in ("low", "high"):
        for name in ("a", "b", "c"):
            (tmp_path / "set" / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "set" / side / f"{name}.png")
    manifest = os.fsencode(tmp_path) + b"/m\xff.json"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    command = [sys.executable, "-m", "darkir.cli", "split", str(tmp_path / "set"), "-o", manifest, "--counts", "1,1,1"]
    result = subprocess.run(command, capture_output=True, env=env)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout.rstrip().endswith(manifest) and os.path.isfile(manifest)
    errors = sys.stdout.errors
    main(["models", "darkir-w32"])  # called from Python: the caller's stdout is left as it was
    assert sys.stdout.errors == errors


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "darkir.cli", "complexity", "-m", "darkir-csf-w32", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["params"] == 3375902
    script = REPO / ".venv" / "bin" / "darkir"
    exe = script if script.exists() else "darkir"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("darkir ")


def test_help_does_not_load_torch():
    """Help is instant: no subcommand's flags import torch (it takes over a second to load)."""
    script = (
        "import sys, contextlib, io\nfrom darkir.cli import main\n"
        "for command in [[]] + [[name] for name in sys.argv[1:]]:\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([*command, '--help'])\n"
        "    if 'torch' in sys.modules:\n"
        "        sys.exit(f'darkir {\" \".join(command)} --help imported torch')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *_subcommands()], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_models_filter_that_matches_nothing_lists_the_models(capsys):
    assert main(["models", "darkir-w16*", "--pretrained"]) == 2
    err = capsys.readouterr().err
    assert "no model with packaged weights matches 'darkir-w16*'; the models are darkir-w16, darkir-w32," in err
    assert main(["models", "darkir-csf-*"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("darkir-csf-w32 ")


def test_complexity_at_a_size_that_cannot_be_allocated_is_one_line(capsys):
    assert main(["complexity", "-m", "darkir-w16", "--size", "99999999"]) == 2
    assert capsys.readouterr().err.startswith("darkir: error: --size 99999999: cannot measure at this size (")


def test_complexity_at_a_size_over_the_free_memory_is_refused_before_it_runs(capsys, monkeypatch):
    """--size 10000 ran for 8 minutes and met the OOM killer (320 GB for one forward pass of width 32)."""
    from darkir.complexity import measure_complexity

    def forward(*args, **kwargs):
        raise AssertionError("the forward pass ran")

    monkeypatch.setattr("darkir.hostmemory.cpu_available_memory", lambda: 2 * 10**9)
    monkeypatch.setattr("ptflops.get_model_complexity_info", forward)
    assert main(["complexity", "-m", "darkir-w32", "--size", "10000"]) == 2
    assert capsys.readouterr().err == (
        "darkir: error: --size 10000: cannot measure at this size (its forward pass needs ~320.00 GB, more than the "
        "2.00 GB free; MACs grow with the pixel count: measure at a smaller size and scale)\n"
    )
    with pytest.raises(MemoryError, match="more than the 2.00 GB free"):
        measure_complexity(build_model("darkir-w32"), size=10000)


def test_a_closed_output_pipe_ends_quietly(monkeypatch, capsys):
    """``darkir ... | head -1``: the reader going away is not an error to report (exit 141, as for cat)."""
    import darkir.cli.variants

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(darkir.cli.variants, "cmd_models", closed)
    assert main(["models"]) == 141
    assert capsys.readouterr().err == ""


def test_a_quoted_tilde_in_any_path_argument_is_the_home_folder(tmp_path, tiny_checkpoint, monkeypatch):
    """'~' reaches darkir unexpanded when quoted: inputs were expanded, -o was not, so restore wrote into a folder
    named '~' in the current one."""
    import cv2
    import numpy as np

    from darkir.cli import _parse

    home, work = tmp_path / "home", tmp_path / "work"
    (home / "in").mkdir(parents=True)
    work.mkdir()
    cv2.imwrite(str(home / "in" / "a.png"), np.full((24, 32, 3), 20, np.uint8))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert main(["restore", "~/in", "-o", "~/out", "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert (home / "out" / "a.png").is_file() and not list(work.iterdir())
    args = _parse(["video", "~/clip.mp4", "-o", "~/v.mp4"])
    assert (args.input, args.output) == (str(home / "clip.mp4"), str(home / "v.mp4"))
    assert _parse(["split", "~/set", "-o", "~/m.json"]).root == str(home / "set")
    args = _parse(["test", "--data", "~/set", "--csv", "~/s.csv"])
    assert (args.data, args.csv) == (str(home / "set"), str(home / "s.csv"))


def test_sighup_stops_a_command_cleanly_unless_it_is_ignored(tmp_path, capsys, monkeypatch):
    """A closed terminal (SIGHUP) killed a run outright, leaving its lock and part files and saying nothing; it now
    stops as SIGTERM does (status 129). Under nohup (SIGHUP ignored) it stays ignored."""
    import os
    import signal

    import cv2
    import numpy as np

    from darkir.signals import stopping_signals

    class NotHandledError(Exception):
        """Raised where darkir did not take SIGHUP over."""

    def outer(signum: int, frame: object) -> None:
        raise NotHandledError

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr("darkir.cli.restore.restorer_from_args", lambda *a, **k: os.kill(os.getpid(), signal.SIGHUP))
    previous = signal.signal(signal.SIGHUP, outer)
    try:
        assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "-q"]) == 129
        assert signal.getsignal(signal.SIGHUP) is outer  # the caller's handler is back
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        assert stopping_signals() == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert "darkir: terminated (SIGHUP)" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_unwritable_stderr_or_stdout_stops_no_work(tmp_path, tiny_checkpoint):
    """Run from cron or a script: a full log disk or a closed stderr (where bars, warnings and notes go) ended every
    command at once with exit 1 (``train --restart`` after moving the earlier run away); a closed stdout ended a
    finished run in AttributeError, and a name its encoding cannot write in UnicodeEncodeError; a removed working
    folder ended in a fatal error of torch's math library."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 30, np.uint8)).save(tmp_path / "a.png")

    def run(output: str, source: str = "a.png", **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **kwargs.pop("env", {})}  # (absolute: cwd is removed)
        command = [sys.executable, "-m", "darkir.cli", "restore", str(tmp_path / source), "-o", str(tmp_path / output)]
        return subprocess.run([*command, "--weights", str(tiny_checkpoint)], env=env, **kwargs)

    with open("/dev/full", "w") as full:
        assert run("full", stdout=subprocess.DEVNULL, stderr=full).returncode == 0
    assert run("closed", stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(2)).returncode == 0
    assert run("no_stdout", stderr=subprocess.DEVNULL, preexec_fn=lambda: os.close(1)).returncode == 0
    named = run("日本", capture_output=True, env={"PYTHONIOENCODING": "ascii"}, text=True)
    assert named.returncode == 0 and named.stdout.rstrip().endswith("\\u65e5\\u672c"), named.stderr
    for output in ("full", "closed", "no_stdout", "日本"):
        assert (tmp_path / output / "a.png").is_file()
    strict = {"PYTHONIOENCODING": "ascii:strict"}  # a non-ASCII line on a strict stderr dropped every line after it
    missing = run("x", "nope日本.png", capture_output=True, env=strict, text=True)
    assert missing.returncode == 2 and "darkir: error: nothing to restore" in missing.stderr, missing.stderr
    (tmp_path / "gone").mkdir()
    removed = {"cwd": tmp_path / "gone", "preexec_fn": lambda: os.rmdir(tmp_path / "gone")}
    gone = run("never", capture_output=True, text=True, **removed)
    assert gone.returncode == 2 and "darkir: error: the current folder no longer exists" in gone.stderr, gone.stderr


def test_a_full_stdout_is_named_in_the_error():
    """``darkir models > /dev/full`` (a full disk under the file a summary goes to) ended in "darkir: error: OSError:
    [Errno 28] No space left on device", naming neither the stream nor the file."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    command = [sys.executable, "-m", "darkir.cli", "models"]
    for buffering in ({}, {"PYTHONUNBUFFERED": "1"}):  # (buffered, a file's stdout fails once flushed)
        with open("/dev/full", "w") as full:
            run_env = {**env, "PYTHONPATH": str(REPO / "src"), **buffering}
            done = subprocess.run(command, env=run_env, stdout=full, stderr=subprocess.PIPE)
        assert done.returncode == 1, done.stderr
        assert done.stderr.decode().strip() == "darkir: error: standard output: No space left on device"


@pytest.mark.parametrize(
    "script", ["train.py", "testing.py", "testing_unpaired.py", "inference.py", "inference_video.py", "app.py"]
)
def test_a_seed_script_run_where_darkir_is_not_set_up_says_how_to_set_it_up(script, tmp_path):
    """``python train.py`` right after cloning, with a Python that has no darkir, ended in a traceback."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-S", str(REPO / script), "--help"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert done.stderr == (
        "No module named 'darkir': set darkir up first "
        "(pip install -e ., or scripts/quickstart.sh and .venv/bin/python)\n"
    )
