"""The bundle that carries a measurement to another Python: the runner's modules, the models and the request.

One process carries everything. The host starts ``python3 -c BOOTSTRAP`` on the target, where BOOTSTRAP is fixed
source text (below), and writes a bundle to its stdin: a magic line, an 8-byte big-endian header length, a JSON header
(file names, sizes, sha256 digests, the request) and then the bytes of sampling.py, environment.py, board_runner.py
and the models. The bootstrap writes the files into a fresh temporary directory, imports board_runner from there, runs
the request, prints the result JSON and removes the directory. Models always travel as ``model.onnx``,
``model_1.onnx``...: no user supplied name or path ever reaches a remote command line, so there is nothing to inject
into.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Optional, Sequence

from ..measure import board_runner, environment, sampling

MAGIC = b"SHUFFLEBENCH-BUNDLE-1\n"
MODEL_FILE = "model.onnx"

# The program every target runs with ``python -c``. Fixed text: nothing from the request or the user goes into it.
# It reads the bundle described in the module docstring from stdin. Kept compatible with Python 3.8 (old boards).
BOOTSTRAP = r'''
import hashlib, json, os, re, shutil, signal, struct, sys, tempfile
def fail(kind, message):
    sys.stdout.write(json.dumps({"schema": 1, "error": {"kind": kind, "message": message}}) + "\n")
    sys.stdout.flush()
    sys.exit(2)
stream = sys.stdin.buffer
def read(n):
    parts, left = [], n
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            fail("bad_bundle", "bundle ended %d bytes early" % left)
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
magic = MAGIC_LITERAL
if read(len(magic)) != magic:
    fail("bad_bundle", "stdin does not start with a shufflebench bundle")
header = json.loads(read(struct.unpack(">Q", read(8))[0]).decode("utf-8"))
def stop(signum, frame):
    raise SystemExit("shufflebench: stopped by signal %d (host timeout or lost connection)" % signum)
for name in ("SIGTERM", "SIGHUP", "SIGALRM"):
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), stop)
if hasattr(signal, "alarm") and header.get("deadline_s"):
    signal.alarm(int(header["deadline_s"]))
work = tempfile.mkdtemp(prefix="shufflebench-")
status = 2
try:
    for entry in header["files"]:
        name = entry["name"]
        if not re.fullmatch(r"[A-Za-z0-9_]+\.(py|onnx)", name):
            fail("bad_bundle", "refusing file name %r" % name)
        digest, left = hashlib.sha256(), entry["size"]
        with open(os.path.join(work, name), "wb") as out:
            while left:
                chunk = read(min(left, 1 << 20))
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
        if digest.hexdigest() != entry["sha256"]:
            fail("bad_bundle", "%s arrived corrupted" % name)
    sys.dont_write_bytecode = True
    sys.path.insert(0, work)
    import board_runner
    models = [os.path.join(work, name) for name in header["model_files"]]
    request = header["request"]
    if "interleaved" in request:
        request = dict(request, interleaved=[dict(r, model=m) for r, m in zip(request["interleaved"], models)])
    else:
        request = dict(request, model=models[0])
    status = board_runner.serve(request)
finally:
    shutil.rmtree(work, ignore_errors=True)
sys.exit(status)
'''.replace("MAGIC_LITERAL", repr(MAGIC))


def _shipped_files() -> list[tuple[str, Path]]:
    """(name, path) of the modules the board needs, all siblings in shufflebench.measure."""
    return [(Path(str(m.__file__)).name, Path(str(m.__file__))) for m in (sampling, environment, board_runner)]


def model_file(index: int) -> str:
    """The name model ``index`` of a bundle travels under."""
    return MODEL_FILE if index == 0 else f"model_{index}.onnx"


def make_bundle(model_paths: Sequence[Path], request: dict, deadline_s: Optional[float] = None) -> bytes:
    """The bytes written to the bootstrap's stdin (format in the module docstring): one model file per path, in
    order."""
    paths = [Path(p) for p in model_paths]
    models = [(model_file(i), path) for i, path in enumerate(paths)]
    files = [*_shipped_files(), *models]
    blobs = [path.read_bytes() for _, path in files]
    header = {
        "files": [
            {"name": name, "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
            for (name, _), blob in zip(files, blobs)
        ],
        "model_files": [name for name, _ in models],
        "request": request,
        "deadline_s": None if deadline_s is None else math.ceil(deadline_s),
    }
    encoded = json.dumps(header).encode("utf-8")
    return b"".join([MAGIC, struct.pack(">Q", len(encoded)), encoded, *blobs])
