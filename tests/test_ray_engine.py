"""``darkir restore --engine ray`` on a local 2-CPU Ray cluster: same outputs as the local engine, resumable."""

from __future__ import annotations

import filecmp
import os
import socket
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from darkir.cli import main
from darkir.cluster import restore_dataset
from darkir.errors import DarkIRError
from tests.test_video import make_video

pytest.importorskip("ray.data")


def _mixed_folder(root: Path) -> Path:
    """Images of several kinds in nested folders, one video, and one corrupt file."""
    rng = np.random.default_rng(0)
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray((rng.random((48, 64, 3)) * 60).astype(np.uint8)).save(root / "rgb.png")
    Image.fromarray((rng.random((40, 56)) * 60).astype(np.uint8)).save(root / "sub" / "gray.png")
    Image.fromarray((rng.random((64, 48, 3)) * 60).astype(np.uint8)).save(root / "sub" / "photo.jpg")
    rgba = (rng.random((36, 52, 4)) * 80).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(root / "sub" / "deeper" / "alpha.png")
    Image.fromarray((rng.random((33, 47)) * 9000).astype(np.uint16)).save(root / "deep16.png")
    make_video(root / "sub" / "clip.mp4", frames=6, size=(48, 64), audio=False)
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


@pytest.fixture
def one_thread():
    """The local engine in one thread, as each Ray worker of 1 CPU runs (sums depend on the thread count)."""
    before = torch.get_num_threads()
    yield ["--threads", "1"]
    torch.set_num_threads(before)


@pytest.mark.slow
def test_ray_engine_matches_local_skips_done_work_and_reports_bad_files(tmp_path, tiny_checkpoint, capsys, one_thread):
    source = _mixed_folder(tmp_path / "in")
    common = ["restore", str(source), "--weights", str(tiny_checkpoint), "--precision", "fp32", "-q"]

    assert main([*common, "-o", str(tmp_path / "local"), *one_thread]) == 1
    local = capsys.readouterr()
    assert "restored 6," in local.out and "failed 1" in local.out

    ray_args = ["--engine", "ray", "--workers", "2"]
    assert main([*common, "-o", str(tmp_path / "ray"), *ray_args]) == 1
    first = capsys.readouterr()
    assert "restored 6, skipped 0 existing" in first.out and "failed 1" in first.out
    assert "broken.png" in first.err and "cannot decode" in first.err

    produced = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*") if p.is_file())
    expected = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert produced == expected and Path("sub/clip.mp4") in produced and Path("sub/deeper/alpha.png") in produced
    for relative in produced:
        assert filecmp.cmp(tmp_path / "local" / relative, tmp_path / "ray" / relative, shallow=False), relative

    # a second run, from Python, finds every good output in place and only retries the broken file
    report = restore_dataset(source, tmp_path / "ray", tiny_checkpoint, workers=2, precision="fp32", progress=False)
    assert (len(report.done), len(report.skipped)) == (0, 6)
    assert [(path.name, "cannot decode" in reason) for path, reason in report.failed] == [("broken.png", True)]


def test_ray_flags_need_the_ray_engine(tmp_path, tiny_checkpoint, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code = main(["restore", str(image), "-o", str(tmp_path / "out"), "--workers", "2"])
    assert code == 2 and "--workers needs --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_nothing_left_to_do_does_not_start_ray(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import darkir.cluster

    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"kept")
    monkeypatch.setattr(darkir.cluster, "_connect", lambda *_: pytest.fail("Ray was started with nothing to do"))
    code = main(
        ["restore", str(image), "-o", str(tmp_path / "out"), "--engine", "ray", "--weights", str(tiny_checkpoint)]
    )
    assert code == 0 and "restored 0, skipped 1 existing" in capsys.readouterr().out
    assert (tmp_path / "out" / "a.png").read_bytes() == b"kept"


def test_an_output_name_too_long_fails_before_ray_starts(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import darkir.cluster

    image = tmp_path / f"{'a' * 251}.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    monkeypatch.setattr(darkir.cluster, "_connect", lambda *_: pytest.fail("Ray was started with nothing to do"))
    out = tmp_path / "out"
    args = ["restore", str(image), "-o", str(out), "--format", "jpeg", "--engine", "ray", "--weights"]
    assert main([*args, str(tiny_checkpoint)]) == 1
    captured = capsys.readouterr()
    assert "restored 0, skipped 0 existing, failed 1" in captured.out
    assert "File name too long" in captured.err


def test_a_ray_run_that_cannot_start_leaves_no_empty_output_folder(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """The local engine removes the output folder it made where nothing was written; the Ray engine left it (and
    its new parents) behind, empty, when Ray could not start its workers or every input failed."""
    import darkir.cluster

    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: _FakeRay({"CPU": 2}))
    out = tmp_path / "new" / "out"
    args = ["restore", str(image), "-o", str(out), "--engine", "ray", "--cpus-per-worker", "5", "--weights"]
    assert main([*args, str(tiny_checkpoint)]) == 2
    assert "no room for one worker" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_missing_ray_unreachable_cluster_and_bad_flags_are_named(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    command = ["restore", str(image), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "--engine", "ray"]
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "ray", None)  # as if darkir[ray] were not installed
        assert main(command) == 2
        assert "pip install 'darkir[ray]'" in capsys.readouterr().err
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    assert main([*command, "--address", address]) == 2
    assert f"cannot reach the Ray cluster at {address}" in capsys.readouterr().err
    assert main([*command, "--address", f"[::1]:{address.rsplit(':', 1)[1]}"]) == 2  # IPv6: refused, not unknown
    assert "cannot reach the Ray cluster at [::1]" in (err := capsys.readouterr().err) and "not known" not in err
    monkeypatch.setenv("RAY_ADDRESS", address)  # the default address: checked as --address is (Ray retried for minutes)
    assert main(command) == 2
    assert f"cannot reach the Ray cluster at {address}" in capsys.readouterr().err
    monkeypatch.delenv("RAY_ADDRESS")
    client = f"ray://{address}"  # a Ray Client's address: checked too (Ray tried for ~33 s after the model loaded)
    with monkeypatch.context() as patch:
        patch.setattr("darkir.cluster._ray", lambda: _FakeRay({"CPU": 2}, init_error=AssertionError))
        assert main([*command, "--address", client]) == 2
    assert f"cannot reach the Ray cluster at {client}: " in capsys.readouterr().err
    assert main([*command, "--address", ""]) == 2  # an unset variable: was "cannot reach ... at None"
    assert "the Ray cluster's address is empty" in capsys.readouterr().err
    for flag, value in (("--workers", "0"), ("--cpus-per-worker", "0"), ("--gpus-per-worker", "-1")):
        with pytest.raises(SystemExit):
            main([*command, flag, value])
        assert f"argument {flag}: expected" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.png").exists()


def test_workers_without_a_gpu_run_on_the_cpu_with_their_cpus_as_threads():
    from darkir.cluster import WorkerSettings, _for_pool

    assert _for_pool(WorkerSettings(), cpus=3, gpus=0) == WorkerSettings(device="cpu", threads=3)
    assert _for_pool(WorkerSettings(threads=2), cpus=0.5, gpus=1).device == "auto"
    assert _for_pool(WorkerSettings(), cpus=0.5, gpus=1).threads == 1
    with pytest.raises(DarkIRError, match="--device cuda:1 with --engine ray needs --gpus-per-worker"):
        _for_pool(WorkerSettings(device="cuda:1"), cpus=1, gpus=0)


def _ray_processes() -> set[int]:
    """Pids of Ray's processes on this machine (workers, raylet, GCS, agents)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and any(name in command for name in ("ray::", "raylet", "gcs_server", "dashboard")):
            found.add(int(entry.name))
    return found


@pytest.mark.slow
def test_sigterm_stops_a_ray_run_as_ctrl_c_does_and_leaves_nothing_behind(tmp_path):
    """``kill`` during a Ray run: status 143 and one line (Ray's own handler exited 15 amid stack dumps), finished
    outputs kept, no part or lock file, and the local cluster's processes gone."""
    import signal
    import subprocess
    import time

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for index in range(40):
        Image.fromarray((rng.random((256, 256, 3)) * 60).astype(np.uint8)).save(tmp_path / "in" / f"{index:02d}.png")
    out = tmp_path / "out"
    before = _ray_processes()
    command = [sys.executable, "-m", "darkir.cli", "restore", str(tmp_path / "in"), "-o", str(out), "-q"]
    command += ["--engine", "ray", "--workers", "1", "--weights", "darkir-w32-synth"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not list(out.glob("*.png")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert process.poll() is None, "the run ended before it could be stopped"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=90)
    assert process.returncode == 143, err
    assert "darkir: terminated" in err and "Traceback" not in err and "SIGTERM received" not in err, err
    kept = sorted(out.iterdir())
    assert kept and all(path.suffix == ".png" and not path.name.startswith(".") for path in kept)
    assert all(np.asarray(Image.open(path)).shape == (256, 256, 3) for path in kept)
    deadline = time.time() + 30
    while _ray_processes() - before and time.time() < deadline:
        time.sleep(0.5)
    assert not _ray_processes() - before


class _FakeRay:
    """The few calls of Ray that darkir.cluster makes before any work, recorded (no cluster is started)."""

    def __init__(self, resources: dict[str, float], init_error: type[BaseException] | None = None) -> None:
        from types import SimpleNamespace

        self.resources, self.init_error, self.calls, self.rows = resources, init_error, [], None
        self.data = self  # ray.data's calls too
        self.DataContext = SimpleNamespace(get_current=SimpleNamespace)

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs):
        self.calls.append("init")
        if self.init_error is not None:
            raise self.init_error

    def shutdown(self) -> None:
        self.calls.append("shutdown")

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def nodes(self) -> list[dict]:
        return [{"Resources": self.resources, "Alive": True}]

    def put(self, value):
        return value

    def from_items(self, rows, **kwargs):
        self.rows = rows
        if not self.run:
            raise InterruptedError("stop here: the rows are what the workers would get")
        return self

    # With ``run`` set, Ray Data's dataset too: its rows go through one worker made here, one row a batch.
    run = False

    def ActorPoolStrategy(self, size: int) -> None:  # noqa: N802 (Ray's name)
        return None

    def map_batches(self, worker, fn_constructor_kwargs, **kwargs):
        self.worker = worker(**fn_constructor_kwargs)
        return self

    def iter_rows(self):
        for row in self.rows:
            out = self.worker({key: np.array([value]) for key, value in row.items()})
            self.calls.append("row")
            yield {key: value[0] for key, value in out.items()}


def _jobs(tmp_path: Path, monkeypatch) -> list:
    from darkir.infer.jobs import Job

    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    return [Job(Path("a.png"), Path("out") / "a.png")]


def test_workers_get_absolute_paths(tmp_path, monkeypatch):
    """Workers of a cluster started elsewhere run in its working folder: relative paths named other files there."""
    import darkir.cluster

    fake = _FakeRay({"CPU": 2})
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: fake)
    with pytest.raises(InterruptedError):
        darkir.cluster.restore_jobs(torch.nn.Identity(), _jobs(tmp_path, monkeypatch), workers=1)
    assert fake.rows == [{"index": 0, "source": str(tmp_path / "a.png"), "target": str(tmp_path / "out" / "a.png")}]


@pytest.mark.parametrize(
    ("resources", "cpus", "gpus", "message"),
    [({"CPU": 2}, 3.0, 0.0, "no room for one worker of 3.0 CPU"), ({"CPU": 2}, 1.0, 1.0, "of 1.0 CPU and 1.0 GPU")],
)
def test_workers_the_cluster_cannot_hold_are_refused_not_waited_for(
    tmp_path, monkeypatch, resources, cpus, gpus, message
):
    """--workers given with more per worker than the cluster has: Ray waited for ever (it was only checked without)."""
    import darkir.cluster

    fake = _FakeRay(resources)
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: fake)
    jobs = _jobs(tmp_path, monkeypatch)
    with pytest.raises(DarkIRError, match=message):
        darkir.cluster.restore_jobs(torch.nn.Identity(), jobs, workers=1, cpus_per_worker=cpus, gpus_per_worker=gpus)
    assert fake.calls == ["init", "shutdown"] and fake.rows is None


def test_a_workers_failure_names_the_paths_as_the_run_was_given_them(tmp_path, monkeypatch):
    """Workers get absolute paths, and their failure lines named them so, where the local engine names them as
    given."""
    from darkir.cluster import _as_given
    from darkir.infer.jobs import Job

    monkeypatch.chdir(tmp_path)
    job = Job(Path("in/a.png"), Path("out/a.png"))
    worker_said = f"{tmp_path / 'in' / 'a.png'}: cannot decode; {tmp_path / 'out' / 'a.png'}: kept"
    assert _as_given(worker_said, job) == "in/a.png: cannot decode; out/a.png: kept"


def test_workers_on_one_node_plan_within_their_share_of_its_memory(monkeypatch):
    """Each worker planned within the default budget of the whole node (half its free memory, up to 2.4 GB more than
    it holds): 64 one-CPU workers on a 128 GB node could plan ~176 GB at once."""
    import ray

    import darkir.infer.memory
    from darkir.cluster import RestoreWorker, WorkerSettings, _sharers
    from darkir.infer.memory import DEFAULT_CAP, MemoryPlanner

    nodes = _FakeRay({"CPU": 2})
    nodes.nodes = lambda: [{"Resources": {"CPU": 64}, "Alive": True}, {"Resources": {"CPU": 96}, "Alive": False}]
    assert [_sharers(nodes, 100, 1, 0), _sharers(nodes, 10, 1, 0), _sharers(nodes, 100, 4, 0)] == [64, 10, 16]
    assert [_sharers(nodes, 100, 1, 0.5), _sharers(nodes, 100, 1, 1), _sharers(nodes, 1, 1, 0.25)] == [2, 1, 1]
    assert [_sharers(nodes, 100, 1, 0.2), _sharers(nodes, 1000, 0.2, 0)] == [5, 320]  # as Ray counts (1 // 0.2: 4.0)

    monkeypatch.setattr(darkir.infer.memory, "available_memory", lambda device: 128e9)
    planner = MemoryPlanner(torch.device("cpu"), torch.float32, 32)
    assert planner.budget == int(planner.base + DEFAULT_CAP)
    planner.share_memory(64, "node")
    assert planner.budget == int(planner.base + 0.5 * 128e9 / 64)
    assert planner.budget_source == "the default budget of a worker (64 share a node)"
    given = MemoryPlanner(torch.device("cpu"), torch.float32, 32, max_memory="3GB")
    given.share_memory(64, "node")  # --max-memory is each worker's own
    assert given.budget == 3 * 10**9 and given.budget_source == "max_memory"

    monkeypatch.setattr(ray, "get", lambda model: model)
    monkeypatch.setattr("darkir.opencv.use_one_thread", lambda: None)  # (for this process's other tests)
    settings = WorkerSettings(device="cpu", threads=torch.get_num_threads(), sharers=64)
    worker = RestoreWorker(torch.nn.Identity(), settings)
    assert worker.restorer.planner.budget_source == "the default budget of a worker (64 share a node)"


def test_ray_workers_write_jpegs_at_the_quality_asked_for(tmp_path, tiny_checkpoint, monkeypatch):
    """``--jpeg-quality`` reaches the workers of ``--engine ray`` as it reaches the local engine."""
    import ray

    import darkir.cluster
    from darkir.cluster import RestoreWorker

    Image.fromarray(np.random.default_rng(0).integers(0, 90, (32, 48, 3), np.uint8)).save(tmp_path / "a.jpg")
    sent = []
    monkeypatch.setattr(darkir.cluster, "preflight", lambda address: None)
    monkeypatch.setattr(darkir.cluster, "restore_jobs", lambda model, jobs, settings, *_, **__: sent.append(settings))
    args = ["restore", str(tmp_path / "a.jpg"), "--engine", "ray", "--weights", str(tiny_checkpoint), "-q"]
    main([*args, "-o", str(tmp_path / "out"), "--jpeg-quality", "40", "--threads", str(torch.get_num_threads())])
    assert sent[0].jpeg_quality == 40
    monkeypatch.setattr(ray, "get", lambda model: model)
    monkeypatch.setattr("darkir.opencv.use_one_thread", lambda: None)  # (for this process's other tests)
    rows = {"index": np.array([0]), "source": np.array([str(tmp_path / "a.jpg")])}
    sizes = {}
    for quality in (40, 95):
        target = tmp_path / f"q{quality}.jpg"
        settings = darkir.cluster.WorkerSettings(**{**vars(sent[0]), "jpeg_quality": quality, "device": "cpu"})
        worker = RestoreWorker(torch.nn.Identity(), settings)
        assert worker({**rows, "target": np.array([str(target)])})["status"].tolist() == ["done"]
        sizes[quality] = target.stat().st_size
    assert sizes[40] < sizes[95]


def test_an_address_other_than_the_cluster_ray_is_connected_to_is_warned(tmp_path, monkeypatch):
    """restore_dataset(address=...) in a process where Ray was initialised already restored on that cluster, and
    the address given was passed over without a word."""
    from types import SimpleNamespace

    import darkir.cluster
    from darkir.errors import DarkIRWarning

    fake = _FakeRay({"CPU": 2})
    fake.is_initialized = lambda: True
    fake.get_runtime_context = lambda: SimpleNamespace(gcs_address="10.0.0.1:6379")
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: fake)
    jobs = _jobs(tmp_path, monkeypatch)
    with pytest.warns(DarkIRWarning, match=r"already connected in this process at 10\.0\.0\.1:6379: restoring on "
                      r"that cluster, not at 10\.0\.0\.2:6379"), pytest.raises(InterruptedError):  # fmt: skip
        darkir.cluster.restore_jobs(torch.nn.Identity(), jobs, address="10.0.0.2:6379", workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for same in ("10.0.0.1:6379", None, "auto"):
            with pytest.raises(InterruptedError):
                darkir.cluster.restore_jobs(torch.nn.Identity(), jobs, address=same, workers=1)
    assert "init" not in fake.calls and "shutdown" not in fake.calls  # the caller's connection is left as it was


def test_an_address_naming_the_connected_cluster_by_another_name_is_not_warned(tmp_path, monkeypatch):
    """``localhost:6379`` where Ray is connected at ``127.0.0.1:6379`` (the same server) was warned as another
    cluster: addresses were compared as strings."""
    from types import SimpleNamespace

    import darkir.cluster

    fake = _FakeRay({"CPU": 2})
    fake.is_initialized = lambda: True
    fake.get_runtime_context = lambda: SimpleNamespace(gcs_address="127.0.0.1:6379")
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: fake)
    jobs = _jobs(tmp_path, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for same in ("localhost:6379", "[::1]:6379"):
            with pytest.raises(InterruptedError):
                darkir.cluster.restore_jobs(torch.nn.Identity(), jobs, address=same, workers=1)
    with pytest.warns(UserWarning, match=r"not at localhost:6380"), pytest.raises(InterruptedError):
        darkir.cluster.restore_jobs(torch.nn.Identity(), jobs, address="localhost:6380", workers=1)


def test_a_full_disk_stops_a_ray_run_as_it_stops_a_local_one(tmp_path, monkeypatch, one_thread):
    """On the Ray engine every remaining file was restored only to fail on a full disk (the local engine stops after
    FULL_STREAK in a row): the run now stops there too, and says how much was done."""
    import errno

    import darkir.cluster
    from darkir.infer.files import FULL_STREAK
    from darkir.infer.jobs import Job
    from darkir.outputs import DiskFullError

    fake = _FakeRay({"CPU": 2})
    fake.run = True
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: fake)
    monkeypatch.setattr("ray.get", lambda ref: ref)  # the worker's model, put in the fake's "object store"
    monkeypatch.setattr("darkir.opencv.use_one_thread", lambda: None)  # (the worker's process is this one)
    monkeypatch.chdir(tmp_path)
    jobs = []
    for index in range(FULL_STREAK + 5):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{index}.png")
        jobs.append(Job(Path(f"{index}.png"), Path("out") / f"{index}.png"))
    (tmp_path / "out").mkdir()

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("darkir.infer.files.write_image", no_room)
    report = darkir.cluster.Report()
    with pytest.raises(DiskFullError, match=rf"no room left \({FULL_STREAK} outputs in a row could not be written"):
        darkir.cluster.restore_jobs(torch.nn.Identity(), jobs, workers=1, progress=False, report=report)
    assert fake.calls.count("row") == FULL_STREAK and len(report.failed) == FULL_STREAK
    assert fake.calls[-1] == "shutdown"


def test_an_interrupt_while_ray_starts_shuts_down_what_it_started(tmp_path, monkeypatch):
    """Ctrl-C amid ray.init left Ray's processes running (the shutdown was only set up once init returned)."""
    import signal

    import darkir.cluster

    fake = _FakeRay({"CPU": 2}, init_error=KeyboardInterrupt)
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: fake)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        darkir.cluster.restore_jobs(torch.nn.Identity(), _jobs(tmp_path, monkeypatch), workers=1)
    assert fake.calls == ["init", "shutdown"] and signal.getsignal(signal.SIGTERM) == before


class _InterruptedRay(_FakeRay):
    """A Ray whose workers write every output, while the driver reads the first row only before Ctrl-C."""

    def ActorPoolStrategy(self, size: int) -> None:  # noqa: N802 (Ray's name)
        return None

    def from_items(self, rows, **kwargs):
        self.rows = rows
        return self

    def map_batches(self, *args, **kwargs):
        return self

    def iter_rows(self):
        for row in self.rows:  # the workers finish every file...
            Path(row["target"]).parent.mkdir(parents=True, exist_ok=True)
            Path(row["target"]).write_bytes(b"restored")
        yield {"index": 0, "status": "done", "message": "", "tiled": False, "disk_full": False}
        raise KeyboardInterrupt  # ...but Ctrl-C comes before the driver reads the second row


def test_an_interrupted_ray_run_counts_the_outputs_its_workers_wrote(tmp_path, monkeypatch):
    """The summary said a file written by a worker was not restored: only rows the driver had read counted."""
    import darkir.cluster
    from darkir.infer.files import Report
    from darkir.infer.jobs import Job

    jobs = _jobs(tmp_path, monkeypatch)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "b.png")
    jobs.append(Job(Path("b.png"), Path("out") / "b.png"))
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: _InterruptedRay({"CPU": 2}))
    report = Report()
    with pytest.raises(KeyboardInterrupt):
        darkir.cluster.restore_jobs(torch.nn.Identity(), jobs, workers=1, progress=False, report=report)
    assert report.done == [Path("out") / "a.png", Path("out") / "b.png"] and report.count() == 2


class _InterruptedAfterOne(_InterruptedRay):
    """A Ray whose workers replace the first output only (written anew, as outputs are) before Ctrl-C."""

    def iter_rows(self):
        first = Path(self.rows[0]["target"])
        first.with_suffix(".new").write_bytes(b"restored")
        first.with_suffix(".new").replace(first)
        yield {"index": 0, "status": "done", "message": "", "tiled": False, "disk_full": False}
        raise KeyboardInterrupt


def test_an_interrupted_overwrite_ray_run_counts_only_the_outputs_it_replaced(tmp_path, monkeypatch):
    """With --overwrite every output existed before the run: an interrupted run said all were restored ("0 not
    restored") though its workers had replaced none of the others."""
    import darkir.cluster
    from darkir.infer.files import Report
    from darkir.infer.jobs import Job

    jobs = _jobs(tmp_path, monkeypatch)
    for name in ("b.png", "c.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
        jobs.append(Job(Path(name), Path("out") / name))
    (tmp_path / "out").mkdir(exist_ok=True)
    for job in jobs:
        job.target.write_bytes(b"an earlier run's output")
    monkeypatch.setattr(darkir.cluster, "_ray", lambda: _InterruptedAfterOne({"CPU": 2}))
    report = Report()
    settings = darkir.cluster.WorkerSettings(overwrite=True)
    with pytest.raises(KeyboardInterrupt):
        darkir.cluster.restore_jobs(torch.nn.Identity(), jobs, settings, workers=1, progress=False, report=report)
    assert report.done == [Path("out") / "a.png"] and report.count() == 1


@pytest.mark.parametrize("threads", [-1, 0, 2.5, True])
def test_restore_dataset_refuses_a_thread_count_before_ray_starts(tmp_path, monkeypatch, threads):
    """threads=-1 started Ray, whose actor then died in torch.set_num_threads with a traceback."""
    import darkir.cluster

    monkeypatch.setattr(darkir.cluster, "preflight", lambda address: pytest.fail("Ray was prepared"))
    with pytest.raises(DarkIRError, match=r"threads must be a whole number of at least 1 or None, got "):
        darkir.cluster.restore_dataset(str(tmp_path), tmp_path / "out", torch.nn.Identity(), threads=threads)


@pytest.mark.parametrize(
    ("inputs", "output", "settings", "message"),
    [
        (["{tmp}"], "", {}, "the output folder is an empty path"),
        ([], "{tmp}/out", {}, "no inputs to restore"),
        (["{tmp}"], "{tmp}/out", {"suffix": "gif"}, "suffix 'gif': darkir writes png"),
        (["{tmp}"], "{tmp}/out", {"codec": "bogus"}, "unknown video codec 'bogus'"),
        (["{tmp}"], "{tmp}/out", {"crf": 99}, "crf 99 is out of range for libx264"),
        (["{tmp}"], "{tmp}/out", {"jpeg_quality": 101}, "jpeg_quality must be a whole number from 1 to 100"),
    ],
)
def test_restore_dataset_refuses_paths_and_formats_before_ray_starts(
    tmp_path, monkeypatch, inputs, output, settings, message
):
    """An empty output wrote into the current folder, and a bad suffix, codec or crf started Ray and loaded the model
    before each file failed (the codec's and crf's failures naming no file)."""
    import darkir.cluster

    monkeypatch.setattr(darkir.cluster, "preflight", lambda address: pytest.fail("Ray was prepared"))
    sources = [item.format(tmp=tmp_path) for item in inputs]
    with pytest.raises(DarkIRError, match=message):
        darkir.cluster.restore_dataset(sources, output.format(tmp=tmp_path), torch.nn.Identity(), **settings)
