#!/usr/bin/env bash
# Build an aarch64 Debian rootfs with CPython, onnxruntime and numpy, run under qemu-user by
# shufflebench.runners.remote.EmulatedArm (and by the `arm` tests).
#
# Usage: scripts/setup-arm-emulation.sh [--rebuild]
#   Rootfs: $SHUFFLEBENCH_ARM_ROOTFS, else ~/.cache/shufflebench/arm-rootfs. Wheels are cached beside it.
#   Idempotent: each step is skipped when its result is already there, so a second run only repeats the smoke test.
#   --rebuild removes the rootfs first.
# Environment:
#   SHUFFLEBENCH_DEBIAN_MIRROR  Debian mirror for the rootfs; default: the first Debian archive in this machine's apt
#                               configuration (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and *.sources).
#   SHUFFLEBENCH_ARM_SUITE      Debian suite of the rootfs (default bookworm: Python 3.11, matching the wheels).
#   PYTHON                      a host Python with pip (default python3); pip uses its own configured index.
# Needs root (apt-get, debootstrap) or sudo. Only the rootfs directory and the wheel cache are written, plus the
# qemu-user-static and debootstrap packages.
set -euo pipefail

ORT_VERSION=1.32.0
NUMPY_VERSION=2.4.6
SUITE="${SHUFFLEBENCH_ARM_SUITE:-bookworm}"
ROOTFS="${SHUFFLEBENCH_ARM_ROOTFS:-$HOME/.cache/shufflebench/arm-rootfs}"
ROOTFS="${ROOTFS%/}"
WHEELS="${ROOTFS}-wheels"
PYTHON="${PYTHON:-python3}"
# Every tag must be listed: protobuf, pulled in by onnxruntime, ships only manylinux2014 aarch64 wheels.
PLATFORMS=(--platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64)

started=$(date +%s.%N)
say() { printf 'setup-arm-emulation: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

if [[ "${1:-}" == "--rebuild" ]]; then
    rebuild=1
elif [[ $# -gt 0 ]]; then
    die "unknown argument '$1'; allowed: --rebuild"
else
    rebuild=0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "run as root (apt-get and debootstrap need it), or install sudo"
    SUDO=(sudo)
fi

# --- 1. host tools -------------------------------------------------------------------------------------------------
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null; then
    say "installing qemu-user-static and debootstrap"
    "${SUDO[@]}" apt-get update -q >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends qemu-user-static debootstrap >/dev/null
fi
command -v unshare >/dev/null || die "unshare not found; install util-linux"

# --- 2. the Debian mirror, from this machine's apt configuration ---------------------------------------------------
# Prints the URI of the first "deb" source whose suite is a Debian release name (so not -security, -updates,
# -backports, nor a third-party repository's "nodistro"), in apt's reading order: sources.list, then sources.list.d/ in name order; one-line (.list) and deb822
# (.sources) formats. Debian's own archive-keyring check in debootstrap then confirms it is a Debian archive.
DEBIAN_SUITES='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)$'
debian_mirror() {
    local files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    shopt -s nullglob
    files+=(/etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    shopt -u nullglob
    local f
    for f in "${files[@]}"; do
        if [[ "$f" == *.sources ]]; then
            # deb822: stanzas separated by blank lines; fields Types, URIs, Suites (each may hold several values).
            awk -v debian="$DEBIAN_SUITES" '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && enabled != "no")
                        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                            if (suites[j] ~ debian && uris[i] ~ /^https?:/) { print uris[i]; exit }
                    types = ""; nu = 0; ns = 0; enabled = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                tolower($1) == "types:"   { types = ""; for (k = 2; k <= NF; k++) types = types " " $k; types = types " " }
                tolower($1) == "uris:"    { for (k = 2; k <= NF; k++) uris[++nu] = $k }
                tolower($1) == "suites:"  { for (k = 2; k <= NF; k++) suites[++ns] = $k }
                tolower($1) == "enabled:" { enabled = tolower($2) }
                END { flush() }
            ' "$f"
        else
            # one-line: deb [options] URI suite component...
            awk -v debian="$DEBIAN_SUITES" '
                /^[ \t]*deb[ \t]/ {
                    sub(/^[ \t]*deb[ \t]+/, "")
                    if ($0 ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "")
                    if ($2 ~ debian && $1 ~ /^https?:/) { print $1; exit }
                }
            ' "$f"
        fi
    done | head -n 1
}

# --- 3. the rootfs: debootstrap's first stage only, unpacked with dpkg -x ------------------------------------------
# The real second stage (maintainer scripts under emulation) takes minutes and adds nothing Python needs.
python_in_rootfs() { { ls "$ROOTFS"/usr/bin/python3.* 2>/dev/null || true; } | grep -E '/python3\.[0-9]+$' | sort -V | tail -n 1 || true; }

if [[ $rebuild -eq 1 && -e "$ROOTFS" ]]; then
    say "removing $ROOTFS"
    "${SUDO[@]}" rm -rf "$ROOTFS"
fi

if [[ ! -f "$ROOTFS/.shufflebench-rootfs" ]]; then
    MIRROR="${SHUFFLEBENCH_DEBIAN_MIRROR:-$(debian_mirror)}"
    [[ -n "$MIRROR" ]] || die "no Debian archive in /etc/apt/sources.list or /etc/apt/sources.list.d/; set SHUFFLEBENCH_DEBIAN_MIRROR"
    partial="${ROOTFS}.partial"
    "${SUDO[@]}" rm -rf "$partial"
    mkdir -p "$(dirname "$ROOTFS")"
    say "debootstrap arm64 $SUITE (minbase + python3) into $partial"
    "${SUDO[@]}" debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 \
        "$SUITE" "$partial" "$MIRROR" >"${ROOTFS}.debootstrap.log" 2>&1 \
        || die "debootstrap failed; see ${ROOTFS}.debootstrap.log"
    for deb in "$partial"/var/cache/apt/archives/*.deb; do
        "${SUDO[@]}" dpkg -x "$deb" "$partial"
    done
    # No maintainer script ran, so users and groups come from base-passwd's templates (Python's pwd module, tmp
    # file ownership and onnxruntime's user lookups expect them).
    "${SUDO[@]}" cp "$partial/usr/share/base-passwd/passwd.master" "$partial/etc/passwd"
    "${SUDO[@]}" cp "$partial/usr/share/base-passwd/group.master" "$partial/etc/group"
    "${SUDO[@]}" rm -rf "$partial"/var/cache/apt/archives/*.deb "$partial/debootstrap"
    "${SUDO[@]}" chmod 1777 "$partial/tmp"
    "${SUDO[@]}" touch "$partial/.shufflebench-rootfs"
    "${SUDO[@]}" rm -rf "$ROOTFS"
    "${SUDO[@]}" mv "$partial" "$ROOTFS"   # a half-built rootfs never sits at the final path
    rm -f "${ROOTFS}.debootstrap.log"
fi
PY_BIN="$(python_in_rootfs)"
[[ -n "$PY_BIN" ]] || die "$ROOTFS has no usr/bin/python3.X; rerun with --rebuild"
PY_VERSION="${PY_BIN##*/python}"                 # e.g. 3.11
SITE="$ROOTFS/usr/local/lib/python${PY_VERSION}/dist-packages"

# --- 4. wheels, installed by the HOST pip (pip under emulation would take minutes) ---------------------------------
if [[ ! -d "$SITE/onnxruntime-${ORT_VERSION}.dist-info" || ! -d "$SITE/numpy-${NUMPY_VERSION}.dist-info" ]]; then
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip; set PYTHON to a Python with pip"
    pip_target=(--only-binary=:all: "${PLATFORMS[@]}" --python-version "$PY_VERSION" --implementation cp)
    say "downloading aarch64 wheels onnxruntime==$ORT_VERSION numpy==$NUMPY_VERSION for Python $PY_VERSION"
    mkdir -p "$WHEELS"
    "$PYTHON" -m pip download -q "${pip_target[@]}" -d "$WHEELS" \
        "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION"
    say "installing them into $SITE"
    # --target does not touch the host's site-packages, so Debian's externally-managed marker does not apply.
    # Resolved by name from the cache (not *.whl), so wheels of older versions left there are never picked up.
    "${SUDO[@]}" "$PYTHON" -m pip install -q --root-user-action=ignore --no-index --find-links "$WHEELS" "${pip_target[@]}" --upgrade \
        --target "$SITE" "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION"
fi

# --- 5. smoke test: import onnxruntime as EmulatedArm runs it ------------------------------------------------------
say "smoke test: import onnxruntime under qemu-aarch64 (cortex-a72)"
smoke='import platform, numpy, onnxruntime as ort; print(platform.machine(), "python", platform.python_version(), "numpy", numpy.__version__, "onnxruntime", ort.__version__, ort.get_available_providers())'
unshare_args=(--mount)
if [[ $(id -u) -ne 0 ]]; then unshare_args+=(--map-root-user); fi
# An empty tmpfs over /sys/devices/system/cpu, visible only in this mount namespace: onnxruntime segfaults when it
# reads the host's CPU topology next to the host's x86 /proc/cpuinfo.
if ! out=$(env -u PYTHONHOME -u PYTHONPATH QEMU_CPU=cortex-a72 SHUFFLEBENCH_EMULATED=qemu-user \
        unshare "${unshare_args[@]}" -- sh -c \
        'mount -t tmpfs -o size=64k,mode=0555 shufflebench-nocpu /sys/devices/system/cpu && exec "$@"' sh \
        qemu-aarch64-static -L "$ROOTFS" "$PY_BIN" -I -c "$smoke" 2>"${ROOTFS}.smoke.log"); then
    die "onnxruntime does not import under emulation; see ${ROOTFS}.smoke.log (or rerun with --rebuild)"
fi
rm -f "${ROOTFS}.smoke.log"
say "ok: $out"
printf 'rootfs: %s (%s), ready in %s s\n' "$ROOTFS" "$(du -sh "$ROOTFS" 2>/dev/null | cut -f1)" "$(elapsed)"
