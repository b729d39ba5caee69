#!/usr/bin/env python3
"""Wall time of `shufflebench count shufflenet_v2`, start-up included (the foundation's promise: under 5 s).

    python benchmarks/count_time.py [--repeats 5] [--model shufflenet_v2]

Runs the installed command in a fresh process each time and prints every time and the median.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="shufflenet_v2")
    args = parser.parse_args()
    command = shutil.which("shufflebench") or str(Path(sys.executable).with_name("shufflebench"))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([command, "count", args.model, "--format", "json"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    print("wall seconds:", ", ".join(f"{t:.2f}" for t in times), f"(median {statistics.median(times):.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
