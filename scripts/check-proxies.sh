#!/usr/bin/env bash
# The project guards itself: the exact proxies (multiply-adds, params, MAC, onnxruntime kernels, guideline findings)
# of every registered model at 64x64 must equal the baseline committed in tests/baselines/, so an accidental change
# to a network or to a counter fails CI with a diff of what moved. No timing: it takes a few seconds.
#
#   bash scripts/check-proxies.sh            check; exit 1 with the diff on any change, 2 on a usage/setup error
#   bash scripts/check-proxies.sh --update   rewrite the baseline after an intended change (commit it with it)
#
# SHUFFLEBENCH names the command to run (default: .venv/bin/shufflebench if it exists, else shufflebench on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SHUFFLEBENCH:-}" ]; then
  if [ -x .venv/bin/shufflebench ]; then
    SHUFFLEBENCH=.venv/bin/shufflebench
  elif ! SHUFFLEBENCH=$(type -P shufflebench); then
    echo "error: no shufflebench command: install the project into .venv, or set SHUFFLEBENCH" >&2
    exit 2
  fi
fi
BASELINE=tests/baselines/zoo-proxies.json

if [ "${1:-}" = "--update" ]; then
  exec "$SHUFFLEBENCH" baseline save --zoo --resolution 64 --output "$BASELINE"
fi

status=0
"$SHUFFLEBENCH" regress --zoo --resolution 64 --baseline "$BASELINE" --no-latency --proxies strict || status=$?
if [ "$status" = 1 ]; then
  echo "exact proxies differ from $BASELINE (table above); if the change is intended, run" \
       "'bash scripts/check-proxies.sh --update' and commit the new baseline with it" >&2
fi
exit "$status"
