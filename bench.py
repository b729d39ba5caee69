#!/usr/bin/env python3
"""Reproduce the ShuffleNet and MobileNet papers' experiments on one device, end to end.

    python bench.py --device cpu            # the full run (under 30 minutes on 2 cores)
    python bench.py --device cpu --quick    # a small run (a couple of minutes)

Writes results/<device>/: one schema-versioned JSON file per experiment, REPORT.md (the papers' tables with the
published values beside the measured ones) and the plots. Interrupted runs resume where they stopped; a rerun with
nothing left to measure only rebuilds the report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="device profile name or .toml file (default: cpu)")
    parser.add_argument("--host", default=None, help="SSH destination for the arm device")
    parser.add_argument("--quick", action="store_true", help="a small run: fewer models, short budgets")
    parser.add_argument("--out", default="results", type=Path, help="results folder (default: results)")
    args = parser.parse_args(argv)

    from shufflebench.devices import resolve_device
    from shufflebench.errors import ShufflebenchError
    from shufflebench.report.bench import run_suite

    try:
        device = resolve_device(args.device, host=args.host)
        run_suite(device, args.out, quick=args.quick, log=lambda line: print(line, flush=True))
    except ShufflebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished experiments are kept; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
