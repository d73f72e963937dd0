"""Train both default models side by side on one CUDA GPU within a wall-clock budget, then choose on real pairs.

    python scripts/train_gpu_weights.py --minutes 8 --real data/real/pairs --real data/real/lolblur_official \
        [--photos DIR] [--out DIR] [--init-w32 W] [--init-csf-w32 W] [--recipe 'LABEL:KEY=VALUE ...'] [KEY=VALUE ...]

1. probe: both variants (options/train/default_weights/night_gpu_*.yml) train side by side for ``--probe-steps``
   steps, which measures the speed they get while sharing the GPU;
2. train: both side by side from ``--init-*`` (default: the shipped weights), with the cosine schedule sized so that
   the whole script ends within ``--minutes`` (or ``--steps`` each, without the probe); a run still going at the
   deadline is stopped with SIGINT (it saves);
3. score the kept snapshots, the best-by-synthetic-validation and the last checkpoint of each model on the real
   pairs (decisions only, never training; scripts/score_checkpoints.py);
4. write to ``--out``: each model's best-by-real and last weights as .safetensors, ``summary.json`` (speed, steps,
   scores, choice) and ``logs.tar.gz`` (training logs, options, console output).

``--photos DIR`` uses a folder of the corpus photos instead of the installed Debian packages (a GPU machine without
them): ``--export-photos DIR`` writes that folder where the packages are installed, as the shipped run used it
(short side 1024 px, JPEG quality 93, named as ``darkir.data.corpus`` names them; 14 MB), and exits.
Trailing ``KEY=VALUE`` options override both option files (e.g. ``datasets.train.cropsize=64`` for a quick CPU check).
``--recipe`` (repeatable) trains both models once per recipe, all side by side, each recipe adding its own overrides
(e.g. ``--recipe 'mild:datasets.train.synth.degradation.photons_range=[2000,60000]'``): a degradation change is judged
on real images within the same GPU slot, both models on equal terms. Runs are named ``<model>_<recipe>``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_checkpoints import choose, pooled, score

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "darkir-w32": ("options/train/default_weights/night_gpu_w32.yml", "darkir-w32-synth"),
    "darkir-csf-w32": ("options/train/default_weights/night_gpu_csf_w32.yml", "darkir-csf-w32-synth"),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass(frozen=True)
class Run:
    """One training process: a model variant, the weights it starts from and its recipe's overrides."""

    model: str
    init: str
    overrides: tuple[str, ...] = ()


def plan_runs(args: argparse.Namespace) -> dict[str, Run]:
    """``<model>_<recipe>`` -> Run for both models and every ``--recipe`` (one unnamed recipe by default)."""
    inits = {"darkir-w32": args.init_w32, "darkir-csf-w32": args.init_csf_w32}
    recipes: dict[str, tuple[str, ...]] = {}
    for recipe in args.recipe or [""]:
        label, _, overrides = recipe.partition(":")
        if recipe and not label.replace("-", "").isalnum():
            raise SystemExit(f"--recipe {recipe!r}: the label before ':' must be letters, digits and '-'")
        recipes[label] = tuple(overrides.split())
    workers = max(2, ((os.cpu_count() or 4) - 2) // (len(inits) * len(recipes))) if len(recipes) > 1 else None
    return {
        f"{model}_{label}" if label else model: Run(
            model, init, (*overrides, *([f"datasets.train.n_workers={workers}"] if workers else []))
        )
        for label, overrides in recipes.items()
        for model, init in inits.items()
    }


def launch(run: Run, run_dir: Path, overrides: list[str], device: str, max_steps: int = 0) -> subprocess.Popen:
    """Start one `darkir train` process for ``run`` writing into ``run_dir``."""
    options, _ = VARIANTS[run.model]
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "darkir", "train", "-p", options, "--init-from", run.init, "--device", device,
        "-q", f"save.path={run_dir}/last.pt", f"save.best={run_dir}/best.pt", *overrides, *run.overrides,
    ]  # fmt: skip
    if max_steps:
        command += ["--max-steps", str(max_steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    console = open(run_dir / "console.txt", "w")  # noqa: SIM115 - closed when the process is reaped
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=console, stderr=subprocess.STDOUT)


def wait_all(processes: dict[str, subprocess.Popen], deadline: float) -> dict[str, int]:
    """Wait for every process; SIGINT (save and stop) those still running at ``deadline``, SIGKILL 90 s later."""
    interrupted = False
    while any(p.poll() is None for p in processes.values()):
        if not interrupted and time.time() > deadline:
            log("deadline reached: stopping the runs still going (they save first)")
            for p in processes.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            interrupted, deadline = True, time.time() + 90
        elif interrupted and time.time() > deadline:
            for p in processes.values():
                if p.poll() is None:
                    p.kill()
        time.sleep(1)
    return {name: p.returncode for name, p in processes.items()}


def marginal_rate(log_file: Path) -> float:
    """Steps per second over the second half of a run, from its ``train`` records (cumulative rates)."""
    records = [r for r in map(json.loads, log_file.read_text().splitlines()) if r["kind"] == "train"]
    if len(records) < 2:
        raise SystemExit(f"{log_file}: too few training records to measure the speed")
    first, last = records[len(records) // 2 - 1], records[-1]
    elapsed = last["step"] / last["steps_per_s"] - first["step"] / first["steps_per_s"]
    return (last["step"] - first["step"]) / elapsed


def plan_steps(
    args: argparse.Namespace, runs: dict[str, Run], common: list[str], work: Path, started: float, deadline: float
) -> tuple[int, float, float]:
    """Probe all runs side by side; return (steps each can take before the deadline, steps/s, start-up s)."""
    log(f"probe: {args.probe_steps} steps of each of {len(runs)} runs side by side")
    probe = {
        name: launch(run, work / "probe" / name, [*common, "train.keep_every_steps=0"], args.device, args.probe_steps)
        for name, run in runs.items()
    }
    codes = wait_all(probe, deadline)
    if any(codes.values()):
        for name in probe:
            print((work / "probe" / name / "console.txt").read_text()[-3000:])
        raise SystemExit(f"probe failed: {codes}")
    rate = min(marginal_rate(work / "probe" / name / "last_logs" / "train.jsonl") for name in probe)
    startup = time.time() - started - args.probe_steps / rate
    train_seconds = deadline - time.time() - args.reserve - startup
    log(f"speed {rate:.2f} steps/s each; start-up {startup:.0f} s")
    return max(8, int(rate * train_seconds * 0.88)), rate, startup


def export_photos(folder: Path, max_short_side: int = 1024) -> None:
    """Write the Debian corpus as downscaled JPEGs named by photo, for ``--photos`` on a machine without it."""
    import cv2

    from darkir.data.corpus import debian_photos
    from darkir.data.synth import load_photos

    folder.mkdir(parents=True, exist_ok=True)
    for name, path in sorted(debian_photos().items()):
        rgb = load_photos([path], max_short_side)[0]
        cv2.imwrite(str(folder / f"{name}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 93])
    log(f"corpus written to {folder}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of the whole script")
    parser.add_argument("--real", action="append", default=[], help="real paired folder to choose on (repeat)")
    parser.add_argument("--photos", help="folder of corpus photos instead of the Debian packages")
    parser.add_argument("--export-photos", metavar="DIR", help="write the corpus for --photos here and exit")
    parser.add_argument("--out", default="runs/gpu/out", help="where the chosen weights and logs go")
    parser.add_argument("--work", default="runs/gpu", help="run folders")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--probe-steps", type=int, default=60)
    parser.add_argument("--steps", type=int, default=0, help="schedule length per model (default: fit --minutes)")
    parser.add_argument("--reserve", type=float, default=75.0, help="seconds kept for scoring and export")
    parser.add_argument("--snapshots", type=int, default=5, help="snapshots kept per run")
    parser.add_argument("--init-w32", default="darkir-w32-synth")
    parser.add_argument("--init-csf-w32", default="darkir-csf-w32-synth")
    parser.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="'LABEL:KEY=VALUE ...'",
        help="train both models once per recipe, side by side (repeat)",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.export_photos:
        export_photos(Path(args.export_photos))
        return
    if not args.real:
        raise SystemExit("name at least one real paired folder with --real (snapshots are chosen on it)")
    started = time.time()
    deadline = started + 60 * args.minutes
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    planned = plan_runs(args)
    common = list(args.overrides)
    if args.photos:
        common.append(f"datasets.train.synth.sources=[{Path(args.photos).resolve()}]")
    summary: dict = {"device": torch.cuda.get_device_name() if args.device == "cuda" else args.device}
    summary["torch"] = torch.__version__
    log(f"training on {summary['device']}")

    batch, epochs = 8, 8
    if args.steps:
        steps = args.steps
    else:
        steps, summary["probe_steps_per_s"], summary["startup_s"] = plan_steps(
            args, planned, common, work, started, deadline
        )
    per_epoch = math.ceil(steps / epochs)
    keep = max(10, per_epoch * epochs // args.snapshots)
    summary.update(planned_steps=per_epoch * epochs, keep_every=keep)
    log(f"{per_epoch * epochs} steps each, a snapshot every {keep}")

    schedule = [
        f"datasets.train.synth.pairs_per_epoch={per_epoch * batch}",
        f"datasets.train.batch_size_train={batch}",
        f"train.epochs={epochs}",
        f"train.keep_every_steps={keep}",
        f"train.save_every_steps={keep}",
    ]
    runs = {name: launch(run, work / name, [*common, *schedule], args.device) for name, run in planned.items()}
    summary["runs"] = {name: asdict(run) for name, run in planned.items()}
    codes = wait_all(runs, deadline - args.reserve)
    summary["train_exit_codes"] = codes
    summary["train_wall_s"] = time.time() - started
    log(f"training ended: {codes}")

    summary["scores"], summary["chosen"] = {}, {}
    for name in runs:
        candidates = sorted((work / name).glob("last_step*.pt")) + [
            p for p in (work / name / "best.pt", work / name / "last.pt") if p.is_file()
        ]
        rows = {}
        for candidate in candidates:
            per_folder = {folder: score(str(candidate), Path(folder), args.device) for folder in args.real}
            rows[candidate.name] = {**pooled(per_folder), "folders": per_folder}
            row = rows[candidate.name]
            log(
                f"{name} {candidate.name}: PSNR {row['psnr']:.2f}, detail {row['psnr_detail']:.2f} (mean over sets), "
                f"brightness ratio {row['ratio']:.3f}, correlation {row['correlation']:.2f} ({row['n']} real images)"
            )
        summary["scores"][name] = rows
        if not rows:
            continue
        best = choose(rows)
        summary["chosen"][name] = best
        exports = [("best-real", best)] + ([("last", "last.pt")] if len(runs) <= 3 and best != "last.pt" else [])
        for label, checkpoint in exports:
            subprocess.run(
                [sys.executable, "-m", "darkir", "convert", str(work / name / checkpoint),
                 "-o", str(out / f"{name}-gpu-{label}.safetensors")],
                cwd=ROOT, check=True,
            )  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for path in sorted(work.rglob("*")):
            if path.is_file() and path.suffix in (".jsonl", ".yml", ".txt") and out not in path.parents:
                tar.add(path, arcname=str(path.relative_to(work)))
    log(f"done in {time.time() - started:.0f} s; chosen {summary['chosen']}")


if __name__ == "__main__":
    main()
