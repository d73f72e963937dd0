"""SHA-256 of what ``darkir restore`` writes for the bundled examples: a record that a refactoring changed no output.

    python scripts/output_hashes.py [--weights NAME_OR_PATH ...] > hashes.txt

Restores each bundled example whole, in fp32 on one CPU thread (the exact path), with each of the weights (default:
both packaged models), and prints one ``<sha256>  <weights> <example>`` line per output. Run it before and after a
change and compare the two files.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import tempfile
from pathlib import Path

import torch

from darkir.cli import main as darkir
from darkir.examples import example_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", action="append", help="packaged name or checkpoint (repeat)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for weights in args.weights or ["darkir-w32-synth", "darkir-csf-w32-synth"]:
        with tempfile.TemporaryDirectory() as out:
            for example in example_images():
                command = ["restore", str(example), "-o", out, "--weights", weights, "--precision", "fp32"]
                with contextlib.redirect_stdout(io.StringIO()):  # its summary line; only the hashes are printed
                    code = darkir([*command, "--tile", "0", "--threads", "1", "-q"])
                if code != 0:
                    raise SystemExit(f"restoring {example} failed")
                digest = hashlib.sha256((Path(out) / example.name).read_bytes()).hexdigest()
                print(f"{digest}  {Path(weights).stem} {example.name}", flush=True)


if __name__ == "__main__":
    main()
