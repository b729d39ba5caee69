#!/usr/bin/env bash
# Install what the counted devices need and build their two C helpers into shufflebench's cache:
#   cpu-counted                 valgrind (its callgrind tool, and the header valgrind/callgrind.h) and a C compiler;
#   arm-counted, arm-counted-n1 qemu-user (the dynamically linked qemu-aarch64: a static qemu cannot load plugins),
#                               a C compiler, and the aarch64 rootfs of scripts/setup-arm-emulation.sh (run that too).
#
# Usage: scripts/setup-counters.sh
#   Idempotent: packages already there are not installed again, helpers already built are kept.
# Environment:
#   PYTHON  a Python with shufflebench installed, used to build the helpers now (default: .venv/bin/python of this
#           checkout, else python3). Without one they are built on first use, which needs the same compiler.
# Needs root or sudo for apt-get only; the helpers are built as the calling user, into $SHUFFLEBENCH_CACHE/counters
# (default ~/.cache/shufflebench/counters).
set -euo pipefail

say() { printf 'setup-counters: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
here="$(cd "$(dirname "$0")/.." && pwd)"

if [[ $# -gt 0 ]]; then
    die "unknown argument '$1'; this script takes none"
fi

# --- 1. system packages --------------------------------------------------------------------------------------------
packages=()
command -v valgrind >/dev/null && [[ -f /usr/include/valgrind/callgrind.h ]] || packages+=(valgrind)
command -v qemu-aarch64 >/dev/null || packages+=(qemu-user)
command -v setarch >/dev/null || packages+=(util-linux)
command -v cc >/dev/null || command -v gcc >/dev/null || packages+=(gcc libc6-dev)
if [[ ${#packages[@]} -gt 0 ]]; then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "run as root (apt-get needs it), or install sudo; missing: ${packages[*]}"
        SUDO=(sudo)
    fi
    command -v apt-get >/dev/null || die "no apt-get here; install ${packages[*]} with this system's package manager"
    say "installing ${packages[*]}"
    "${SUDO[@]}" apt-get update -q >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" \
        >/dev/null
fi
qemu-aarch64 -h 2>/dev/null | grep -q -- '-plugin' \
    || die "$(command -v qemu-aarch64) cannot load plugins (a static or plugin-less build); install Debian's qemu-user"

# --- 2. the helpers ------------------------------------------------------------------------------------------------
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$here/.venv/bin/python" ]]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python3; fi
fi
if "$PYTHON" -c 'import shufflebench.counters.build' 2>/dev/null; then
    "$PYTHON" -m shufflebench.counters.build | sed 's/^/setup-counters: built /' >&2
else
    say "$PYTHON has no shufflebench; the helpers will be built on first use"
fi
say "ok: $(valgrind --version), $(qemu-aarch64 --version | head -n 1)"
