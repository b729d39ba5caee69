#!/usr/bin/env python3
"""Wall time of a shufflebench command, start-up included, in fresh processes; several source trees interleaved.

    python benchmarks/command_time.py [--repeats 5] [--tree DIR ...] -- count shufflenet_v2
    python benchmarks/command_time.py --tree /path/to/old/checkout --tree . -- profile shufflenet_v2 --breakdown

Each repeat runs the command once per tree (``--tree``: a checkout whose ``shufflebench`` package is imported, with
this interpreter and its installed dependencies; without ``--tree``, the installed package), the trees taking turns
so the machine's slow and fast spells hit all alike. Prints every time and the median per tree, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LAUNCH = "import sys; from shufflebench.cli import main; sys.argv[0] = 'shufflebench'; main()"


def run_once(tree: Path | None, command: list[str]) -> float:
    """Seconds one fresh ``shufflebench COMMAND`` process took (its output discarded; a failure stops the run)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree.resolve())
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCH, *command], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"shufflebench {' '.join(command)} failed ({done.returncode}) in {tree or 'the install'}: "
                         f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tree", type=Path, action="append", help="a checkout to import shufflebench from "
                        "(repeat to compare trees; default: the installed package)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the shufflebench command and its arguments")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --, e.g. -- count shufflenet_v2")
    trees: list[Path | None] = list(args.tree) if args.tree else [None]
    times: dict[int, list[float]] = {i: [] for i in range(len(trees))}
    for _ in range(args.repeats):
        for i, tree in enumerate(trees):
            times[i].append(run_once(tree, command))
    medians = []
    for i, tree in enumerate(trees):
        median = statistics.median(times[i])
        medians.append(median)
        print(f"{tree or 'installed'}: " + ", ".join(f"{t:.2f}" for t in times[i]) + f" s (median {median:.2f} s)")
    if len(medians) > 1:
        print("median ratios against the first tree: " + ", ".join(f"{m / medians[0]:.3f}" for m in medians[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
