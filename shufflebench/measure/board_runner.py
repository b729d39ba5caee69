"""Measure one ONNX model with onnxruntime in this process: the code that runs on the board.

Dependencies: the standard library, numpy and onnxruntime, nothing else. It is shipped to ARM boards (and to
emulated ones) with its siblings `sampling.py` and `environment.py` and imported there as a top-level module, so it
must not import anything else from shufflebench.

Protocol: `main()` reads a request (JSON) on stdin and prints one result (JSON) on stdout; `serve(request)` does the
same for a request already parsed. Anything native code prints while the model runs is diverted to stderr, so stdout
carries only the JSON. A failure prints ``{"error": {"kind": ..., "message": ...}}`` and exits with status 2; kinds:

- "bad_request": the request does not follow the schema below (a bug on the host side, or mismatched versions),
- "missing_onnxruntime": numpy or onnxruntime cannot be imported here,
- "missing_provider": an execution provider asked for is not in this onnxruntime build,
- "load_failed": onnxruntime refused the model (not ONNX, unsupported opset, missing external data),
- "run_failed": the model loaded but running it failed (wrong input shapes, an op that fails at run time).

Request (all keys but "model" optional)::

    {"model": "path/to/model.onnx",
     "inputs": {"x": {"shape": [1, 3, 224, 224], "dtype": "float32"}},   # or {"x": [[1,3,224,224], "float32"]};
                                     # inputs left out are taken from the model, dynamic dimensions set to 1
     "seed": 0,                      # inputs are uniform in [-1, 1) (integers: [0, 10)), identical on every platform
     "intra_op_threads": 1,          # 0 = onnxruntime's default (one per physical core)
     "graph_optimization_level": "all",    # "all" | "extended" | "basic" | "disabled"
     "providers": ["CPUExecutionProvider"],
     "policy": {"warmup_runs": 10, ...},   # sampling.SamplingPolicy fields
     "return_outputs": false,        # true: outputs as base64 of little-endian float32, with shape
     "io_binding": false,            # true: inputs and outputs bound on CUDA device 0 (CUDA provider)
     "profile_runs": 0}              # > 0: that many extra runs under onnxruntime's profiler (per-kernel time)

Counted requests (`count_many`): ``{"interleaved": [requests], "policy": {...}, "count": {...}}`` where "count" is
``{"runs": 3, "warmup": 1, "marker": {"kind": "callgrind", "library": "path/to/callgrind_marker.so"}}`` or
``{..., "marker": {"kind": "syscall"}}``. Nothing is timed: each model runs "warmup" inferences, then "runs"
inferences each between two markers that the counting tool around this process sees (valgrind's callgrind, or the
qemu plugin; see `Marker`). The answer per model is the one above without samples, with ``"counted": {"runs",
"warmup"}``; the counts themselves are read by the host from the tool's files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
import traceback

try:
    from . import environment, sampling
except ImportError:  # shipped flat to a board: the siblings are top-level modules there
    import environment  # type: ignore[no-redef, import-not-found]
    import sampling  # type: ignore[no-redef, import-not-found]

SCHEMA = 1
ERROR_EXIT = 2

OPTIMIZATION_LEVELS = {
    "all": "ORT_ENABLE_ALL",
    "extended": "ORT_ENABLE_EXTENDED",
    "basic": "ORT_ENABLE_BASIC",
    "disabled": "ORT_DISABLE_ALL",
}

# The lseek offset the qemu plugin (shufflebench/counters/insn_count.c) takes for a marker, with descriptor -1.
MARKER_OFFSET = 0x53484655464C
MARKER_KINDS = ("callgrind", "syscall")

ERROR_KINDS = ("bad_request", "missing_onnxruntime", "missing_provider", "load_failed", "run_failed")

REQUEST_DEFAULTS = {
    "inputs": {},
    "seed": 0,
    "intra_op_threads": 1,
    "graph_optimization_level": "all",
    "providers": ["CPUExecutionProvider"],
    "policy": {},
    "return_outputs": False,
    "io_binding": False,
    "profile_runs": 0,
}

# onnxruntime's input type strings -> numpy dtype names.
ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}
DTYPES = tuple(sorted(set(ONNX_TYPES.values())))


class RunnerError(Exception):
    """A failure with one of `ERROR_KINDS`; its message is one line."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def _one_line(text: object, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _input_spec(name: str, spec) -> dict:
    if isinstance(spec, dict):
        shape, dtype = spec.get("shape"), spec.get("dtype", "float32")
    elif isinstance(spec, (list, tuple)) and len(spec) == 2:
        shape, dtype = spec
    else:
        raise ValueError(f"inputs[{name!r}]={spec!r} is not {{'shape': [...], 'dtype': ...}} or [shape, dtype]")
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(f"inputs[{name!r}] shape={shape!r} is not a list of non-negative integers")
    if dtype not in DTYPES:
        raise ValueError(f"inputs[{name!r}] dtype={dtype!r}; allowed: {', '.join(DTYPES)}")
    return {"shape": [int(d) for d in shape], "dtype": dtype}


def validate_request(request) -> dict:
    """Check a request against the schema in the module docstring and fill in defaults.

    Returns a new dict; raises ValueError with a one-line message naming the bad key and what is allowed.
    """
    if not isinstance(request, dict):
        raise ValueError(f"request is a {type(request).__name__}, not a JSON object")
    known = set(REQUEST_DEFAULTS) | {"model"}
    unknown = sorted(set(request) - known)
    if unknown:
        raise ValueError(f"request key {unknown[0]!r} is unknown; allowed: {', '.join(sorted(known))}")
    out = dict(REQUEST_DEFAULTS)
    out.update(request)
    if not isinstance(out.get("model"), str) or not out["model"]:
        raise ValueError(f"request model={out.get('model')!r} is not a path to an .onnx file")
    if not isinstance(out["inputs"], dict):
        raise ValueError(f"request inputs={out['inputs']!r} is not a mapping of input name to shape and dtype")
    out["inputs"] = {str(name): _input_spec(name, spec) for name, spec in out["inputs"].items()}
    for key in ("seed", "intra_op_threads"):
        value = out[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"request {key}={value!r} is not an integer >= 0")
    level = out["graph_optimization_level"]
    if level not in OPTIMIZATION_LEVELS:
        raise ValueError(f"request graph_optimization_level={level!r}; allowed: {', '.join(OPTIMIZATION_LEVELS)}")
    providers = out["providers"]
    if not isinstance(providers, list) or not providers:
        raise ValueError(f"request providers={providers!r} is not a non-empty list of execution provider names")
    for entry in providers:
        ok_name = isinstance(entry, str)
        ok_pair = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], dict)
        if not (ok_name or ok_pair):
            raise ValueError(f"request providers entry {entry!r} is not a name or [name, {{options}}]")
    if not isinstance(out["policy"], dict):
        raise ValueError(f"request policy={out['policy']!r} is not a mapping of SamplingPolicy fields")
    sampling.SamplingPolicy.from_dict(out["policy"])  # raises ValueError naming the field
    runs = out["profile_runs"]
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 0:
        raise ValueError(f"request profile_runs={runs!r} is not an integer >= 0")
    for key in ("return_outputs", "io_binding"):
        if not isinstance(out[key], bool):
            raise ValueError(f"request {key}={out[key]!r} is not true or false")
    return out


def validate_count(count) -> dict:
    """Check the "count" part of a counted request (module docstring); returns it with defaults filled in.

    Raises ValueError with a one-line message naming the bad key and what is allowed.
    """
    if not isinstance(count, dict):
        raise ValueError(f"request count={count!r} is not a mapping of runs, warmup and marker")
    unknown = sorted(set(count) - {"runs", "warmup", "marker"})
    if unknown:
        raise ValueError(f"request count key {unknown[0]!r} is unknown; allowed: marker, runs, warmup")
    out = {"runs": 3, "warmup": 1, **count}
    for key, least in (("runs", 1), ("warmup", 0)):
        value = out[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"request count {key}={value!r} is not an integer >= {least}")
    marker = out.get("marker")
    if not isinstance(marker, dict) or marker.get("kind") not in MARKER_KINDS:
        raise ValueError(f"request count marker={marker!r}; allowed kinds: {', '.join(MARKER_KINDS)}")
    if marker["kind"] == "callgrind" and not isinstance(marker.get("library"), str):
        raise ValueError("request count marker of kind callgrind needs the path of its library")
    return out


def make_inputs(specs: dict, seed: int) -> dict:
    """Seeded random arrays for ``{name: {"shape": [...], "dtype": ...}}``, bit-identical on every platform.

    Floats are uniform in [-1, 1): numpy's ``Generator.random`` builds them from 53 random bits with exact
    arithmetic, unlike normal variates whose libm calls may differ in the last bit between x86 and ARM. Integers are
    uniform in [0, 10) and booleans fair coin flips. Each input gets its own stream, in sorted name order.
    """
    import numpy as np

    arrays = {}
    for index, name in enumerate(sorted(specs)):
        shape, dtype = tuple(specs[name]["shape"]), specs[name]["dtype"]
        rng = np.random.Generator(np.random.PCG64([seed, index]))
        if dtype.startswith("float"):
            arrays[name] = (rng.random(shape) * 2.0 - 1.0).astype(dtype)
        elif dtype == "bool":
            arrays[name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            arrays[name] = rng.integers(0, 10, size=shape).astype(dtype)
    return arrays


def encode_array(array) -> dict:
    """An array as JSON-able data: shape, original dtype, and its values as base64 of little-endian float32."""
    import numpy as np

    data = np.ascontiguousarray(array, dtype="<f4")
    return {
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "float32_le_b64": base64.b64encode(data.tobytes()).decode("ascii"),
    }


def decode_array(encoded: dict):
    """Inverse of `encode_array`: a float32 numpy array of the recorded shape."""
    import numpy as np

    raw = base64.b64decode(encoded["float32_le_b64"])
    return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(encoded["shape"])


def decode_outputs(result: dict) -> dict:
    """``{name: float32 array}`` from a result made with ``return_outputs: true`` (empty dict otherwise)."""
    return {name: decode_array(enc) for name, enc in (result.get("outputs") or {}).items()}


def _import_runtime():
    try:
        import numpy  # noqa: F401  (checked first: onnxruntime and make_inputs both need it)
        import onnxruntime
    except ImportError as exc:
        raise RunnerError("missing_onnxruntime", f"cannot import onnxruntime/numpy with {sys.executable}: {exc}")
    return onnxruntime


def _model_inputs(session, requested: dict) -> dict:
    """The model's inputs with shapes: the request's where given, else from the model with dynamic dims = 1."""
    declared = {i.name: i for i in session.get_inputs()}
    unknown = sorted(set(requested) - set(declared))
    if unknown:
        raise RunnerError(
            "bad_request", f"input {unknown[0]!r} is not in the model; its inputs: {', '.join(declared) or 'none'}"
        )
    specs = {}
    for name, info in declared.items():
        if name in requested:
            specs[name] = requested[name]
            continue
        dtype = ONNX_TYPES.get(info.type)
        if dtype is None:
            raise RunnerError(
                "run_failed", f"input {name!r} has type {info.type}; supported: {', '.join(sorted(ONNX_TYPES))}"
            )
        shape = [d if isinstance(d, int) and d >= 0 else 1 for d in info.shape]
        specs[name] = {"shape": shape, "dtype": dtype}
    return specs


class OpenModel:
    """A model loaded into an onnxruntime session with its seeded inputs, ready to be timed."""

    def __init__(self, request: dict, ort, session, specs: dict, feeds: dict, load_s: float):
        self.request, self.ort, self.session, self.specs, self.feeds, self.load_s = request, ort, session, specs, feeds, load_s
        self.output_names = [o.name for o in session.get_outputs()]
        if request["io_binding"]:
            self.run_once = _bound_run(ort, session, feeds, self.output_names)
        else:
            self.run_once = lambda: session.run(self.output_names, feeds)


def _session_options(ort, request: dict, counting: bool = False):
    options = ort.SessionOptions()
    # One thread pool for the ops (intra-op) and strictly sequential graph execution: the parallelism measured is
    # the one the request names, not whatever onnxruntime chooses on this board.
    options.intra_op_num_threads = request["intra_op_threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[request["graph_optimization_level"]]
    )
    options.log_severity_level = 3  # errors only: warnings would bury the result in stderr noise
    if counting:  # no thread may spin on its own while instructions are counted
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _create_session(ort, request: dict, options):
    providers = [p if isinstance(p, str) else (p[0], p[1]) for p in request["providers"]]
    try:
        return ort.InferenceSession(request["model"], sess_options=options, providers=providers)
    except Exception as exc:
        raise RunnerError("load_failed", f"onnxruntime cannot load the model: {_one_line(exc)}")


def open_model(request: dict, counting: bool = False) -> OpenModel:
    """Validate ``request``, load its model with the requested session options and make its seeded inputs
    (``counting``: with the session settings of a counted run, see `_session_options`)."""
    try:
        request = validate_request(request)
    except ValueError as exc:
        raise RunnerError("bad_request", str(exc))
    ort = _import_runtime()
    names = [p if isinstance(p, str) else p[0] for p in request["providers"]]
    available = ort.get_available_providers()
    missing = [n for n in names if n not in available]
    if missing:
        raise RunnerError(
            "missing_provider",
            f"execution provider {missing[0]} is not in onnxruntime {ort.__version__} here; "
            f"available: {', '.join(available)}",
        )
    load_start = time.perf_counter()
    session = _create_session(ort, request, _session_options(ort, request, counting))
    load_s = time.perf_counter() - load_start
    specs = _model_inputs(session, request["inputs"])
    return OpenModel(request, ort, session, specs, make_inputs(specs, request["seed"]), load_s)


def _first_outputs(models: list, check) -> list:
    """Each model's outputs for its seeded inputs (when asked), from one run BEFORE any timing, so a caller's
    ``check(index, {name: array})`` can refuse a model that computes something else before it is timed."""
    outputs: list = []
    for index, model in enumerate(models):
        if not model.request["return_outputs"]:
            outputs.append(None)
            continue
        try:
            values = model.session.run(model.output_names, model.feeds)
        except Exception as exc:
            raise RunnerError("run_failed", f"onnxruntime failed running the model: {_one_line(exc)}")
        outputs.append(values)
        if check is not None:
            check(index, dict(zip(model.output_names, values)))
    return outputs


def _result(model: OpenModel, samples, outputs, counted=None) -> dict:
    """The JSON-able answer for one measured model (see `run`), or for one counted model (``samples`` None,
    ``counted`` = {"runs", "warmup"})."""
    request, session = model.request, model.session
    names = [p if isinstance(p, str) else p[0] for p in request["providers"]]
    result: dict = {"schema": SCHEMA}
    result.update(samples.to_dict() if samples is not None else {"counted": counted})
    result.update(
        {
            "load_s": model.load_s,
            "seed": request["seed"],
            "inputs": {
                name: dict(model.specs[name], sha256=hashlib.sha256(model.feeds[name].tobytes()).hexdigest())
                for name in sorted(model.specs)
            },
            "session": {
                "intra_op_num_threads": request["intra_op_threads"],
                "inter_op_num_threads": 1,
                "execution_mode": "sequential",
                "graph_optimization_level": request["graph_optimization_level"],
                "providers_requested": names,
                "providers_used": list(session.get_providers()),
                "io_binding": request["io_binding"],
                "onnxruntime": model.ort.__version__,
            },
            "environment": environment.capture(
                threads=request["intra_op_threads"] or None,
                provider=session.get_providers()[0],
                optimization_level=request["graph_optimization_level"],
            ),
        }
    )
    if outputs is not None:
        result["outputs"] = {name: encode_array(value) for name, value in zip(model.output_names, outputs)}
    if request["profile_runs"] and samples.stop_reason != "interrupted":  # Ctrl-C: stop, do not profile on
        result["node_profile"] = profile_nodes(model, request["profile_runs"])
    return result


def run(request: dict, on_progress=None, check=None) -> dict:
    """Measure the model named in `request` (schema in the module docstring) and return JSON-able results: the
    interleaved run (`run_many`) of one model, under the request's own policy.

    Keys: schema, samples_s / warmup_s (seconds, unrounded), stop_reason, policy, elapsed_s (seconds, whole sampling
    loop), load_s (session creation, seconds), inputs (shape, dtype, sha256 of the bytes), seed, session (the
    options actually used, with the providers onnxruntime kept), environment (`environment.capture`), outputs
    when asked, and node_profile when ``profile_runs`` > 0 (see `profile_nodes`). Raises `RunnerError`.
    In-process callers may pass ``check(index, outputs)``, called before timing (see `_first_outputs`).
    """
    policy_fields = request.get("policy", {}) if isinstance(request, dict) else {}
    return run_many([request], policy_fields, on_progress=on_progress, check=check)[0]


def run_many(requests: list, policy_fields: dict, on_progress=None, check=None) -> list:
    """Measure several models interleaved round-robin (`sampling.collect_interleaved`) under one policy.

    Each request follows `run`'s schema (its own "policy" is ignored); answers come back in the same order, with
    sample ``i`` of every model taken in the same round.

    Sessions created earlier run measurably slower than later ones (on this project's x86 machines about 0.3% per
    place in creation order: an identical model measured against itself came out 0.6% slower when its session was
    made first). So with several models every model gets a second session, the second set made in reverse order
    (A1 B1 ... B2 A2), and each model alternates between its two sessions round by round: every model's average
    place in the creation order is the same, and the order cannot favour one of them.
    """
    prepared = [dict(r, policy=policy_fields) if isinstance(r, dict) else r for r in requests]
    models = [open_model(r) for r in prepared]
    outputs = _first_outputs(models, check)
    policy = sampling.SamplingPolicy.from_dict(policy_fields)
    run_onces = [m.run_once for m in models]
    if len(models) > 1:
        twins = [open_model(r) for r in reversed(prepared)][::-1]
        settle, turn = sampling.turn_shape(policy, len(models))
        run_onces = [_alternate(m.run_once, t.run_once, policy.warmup_runs, settle + turn)
                     for m, t in zip(models, twins)]
    try:
        all_samples = sampling.collect_interleaved(run_onces, policy, on_progress=on_progress)
    except Exception as exc:
        raise RunnerError("run_failed", f"onnxruntime failed running the model: {_one_line(exc)}")
    return [_result(m, samples, out) for m, samples, out in zip(models, all_samples, outputs)]


def _alternate(first, second, warmup_runs: int, per_turn: int):
    """A run that calls ``first`` or ``second``, switching at every round of the timing loop: after each of the
    ``warmup_runs`` warm-up runs (one per round), then after each turn of ``per_turn`` runs, so a turn's settling
    runs warm the very session its timed runs use."""
    calls = [0]

    def run_once():
        call = calls[0]
        calls[0] += 1
        round_index = call if call < warmup_runs else warmup_runs + (call - warmup_runs) // per_turn
        return (first, second)[round_index % 2]()

    return run_once


class Marker:
    """Where a counted inference starts and ends, said to the counting tool around this process.

    ``callgrind``: client requests through the marker library (callgrind_marker.c, loaded with ctypes):
    instrumentation on before the warm-up, counters zeroed at `start`, dumped at `stop`, instrumentation off at
    `finish`. ``syscall``: ``lseek(-1, MARKER_OFFSET, SEEK_SET)`` at `start` and at `stop`, which the qemu plugin
    records (the kernel only answers EBADF). Either way the markers' own cost is measured once by `count_many`
    (an empty region) and taken off on the host.
    """

    def __init__(self, spec: dict):
        self.kind = spec["kind"]
        self._library = None
        if self.kind == "callgrind":
            import ctypes

            try:
                self._library = ctypes.CDLL(spec["library"])
            except OSError as exc:
                raise RunnerError("bad_request", f"cannot load the callgrind marker library: {_one_line(exc)}")

    def _call(self, name: str) -> None:
        if self._library is not None:
            getattr(self._library, name)()

    def instrument(self) -> None:
        self._call("shufflebench_instrument")

    def start(self) -> None:
        if self.kind == "syscall":
            self._syscall()
        self._call("shufflebench_zero")

    def stop(self) -> None:
        if self.kind == "syscall":
            self._syscall()
        self._call("shufflebench_dump")

    def finish(self) -> None:
        self._call("shufflebench_finish")

    @staticmethod
    def _syscall() -> None:
        try:
            os.lseek(-1, MARKER_OFFSET, os.SEEK_SET)
        except OSError:
            pass


def count_many(requests: list, policy_fields: dict, count: dict, check=None) -> list:
    """Run several models for a counting tool to count (module docstring, "Counted requests"): no timing.

    The models are opened, the markers switched on and one empty region marked (the markers' own cost); then each
    model in turn runs ``warmup`` inferences and ``runs`` marked ones. Its first run's outputs are returned when
    asked (and given to ``check``, as in `run_many`, after counting). One thread; inputs seeded as for timing.
    """
    try:
        count = validate_count(count)
    except ValueError as exc:
        raise RunnerError("bad_request", str(exc))
    models = [open_model(dict(r, policy=policy_fields) if isinstance(r, dict) else r, counting=True)
              for r in requests]
    marker = Marker(count["marker"])
    outputs: list = []
    try:
        marker.instrument()
        marker.start()
        marker.stop()
        for model in models:
            runs = [model.run_once() for _ in range(count["warmup"])]
            for _ in range(count["runs"]):
                marker.start()
                value = model.run_once()
                marker.stop()
                runs.append(value)
            # The outputs of the model's first run: a run for them alone would cost as much as a counted one.
            outputs.append(runs[0] if model.request["return_outputs"] else None)
    except Exception as exc:
        raise RunnerError("run_failed", f"onnxruntime failed running the model: {_one_line(exc)}")
    finally:
        marker.finish()
    if check is not None:
        for index, values in enumerate(outputs):
            if values is not None:
                check(index, dict(zip(models[index].output_names, values)))
    counted = {"runs": count["runs"], "warmup": count["warmup"]}
    return [_result(m, None, out, counted) for m, out in zip(models, outputs)]


def profile_nodes(model: OpenModel, runs: int) -> dict:
    """Per-kernel time from onnxruntime's profiler, in a second session with the same options.

    Returns ``kernels`` (``[{"name", "op", "time_us", "samples_us", "inputs", "outputs"}]``: mean microseconds per
    run, the first run -- which allocates -- left out; the kernel's time in each kept run, in run order; the shapes
    of its inputs and outputs as the engine executed them, e.g. channels padded for a blocked layout), ``run_us``
    (mean end-to-end run time of the same runs, microseconds), ``run_samples_us`` (each kept run's time) and
    ``optimized_graph_b64`` (the graph onnxruntime executed, weights left out, for mapping kernels back on the host,
    where the onnx package is).
    """
    import bisect
    import tempfile

    ort, request = model.ort, model.request
    with tempfile.TemporaryDirectory(prefix="shufflebench-profile-") as folder:
        options = _session_options(ort, request)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "profile")
        options.optimized_model_filepath = os.path.join(folder, "optimized.onnx")
        # Weights go to a side file: only the graph is needed, and it then stays small enough to send back.
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "weights.bin")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "0")
        session = _create_session(ort, request, options)
        for _ in range(runs + 1):
            session.run(model.output_names, model.feeds)
        with open(session.end_profiling()) as handle:
            events = json.load(handle)
        with open(options.optimized_model_filepath, "rb") as handle:
            graph = base64.b64encode(handle.read()).decode("ascii")
    run_events = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    if len(run_events) < 2:
        raise RunnerError("run_failed", "onnxruntime's profiler recorded no runs")
    first_end = run_events[0]["ts"] + run_events[0]["dur"]
    kept = run_events[1:]
    starts = [e["ts"] for e in kept]
    kernels: dict = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time") or event["ts"] < first_end:
            continue
        name = event["name"][: -len("_kernel_time")]
        if name not in kernels:
            args = event["args"]
            kernels[name] = {"name": name, "op": args.get("op_name", "?"), "samples_us": [0.0] * len(kept),
                             "inputs": _shapes(args.get("input_type_shape")),
                             "outputs": _shapes(args.get("output_type_shape"))}
        run = max(0, bisect.bisect_right(starts, event["ts"]) - 1)
        kernels[name]["samples_us"][run] += event["dur"]
    for kernel in kernels.values():
        kernel["time_us"] = sum(kernel["samples_us"]) / len(kept)
    return {
        "kernels": list(kernels.values()),
        "run_us": sum(e["dur"] for e in kept) / len(kept),
        "run_samples_us": [e["dur"] for e in kept],
        "runs": len(kept),
        "optimized_graph_b64": graph,
    }


def _shapes(typed) -> list:
    """``[{"float": [1, 8, 4, 4]}, ...]`` (the profiler's typed shapes) -> ``[[1, 8, 4, 4], ...]``."""
    return [list(next(iter(entry.values()))) if isinstance(entry, dict) and entry else [] for entry in typed or []]


def _bound_run(ort, session, feeds: dict, output_names: list):
    """A run with inputs and outputs bound on the GPU, so host<->device copies stay outside the timed region.

    onnxruntime synchronizes the CUDA stream at the end of each run, so timing the call covers the GPU work.
    """
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
    for name in output_names:
        binding.bind_output(name, "cuda", 0)
    return lambda: session.run_with_iobinding(binding)


def handle(request) -> tuple:
    """`run` (or `run_many` for ``{"interleaved": [requests], "policy": {...}}``, or `count_many` when "count" is
    there too, answered as ``{"results": [...]}``) with every failure turned into an error object: returns
    ``(json_able_dict, exit_status)``."""
    try:
        if isinstance(request, dict) and "count" in request:
            answers = count_many(request.get("interleaved", []), request.get("policy", {}), request["count"])
            return {"schema": SCHEMA, "results": answers}, 0
        if isinstance(request, dict) and "interleaved" in request:
            return {"schema": SCHEMA, "results": run_many(request["interleaved"], request.get("policy", {}))}, 0
        return run(request), 0
    except RunnerError as exc:
        error = {"kind": exc.kind, "message": exc.message}
    except Exception as exc:  # a bug or an unexpected runtime failure: still one JSON answer, never a bare traceback
        error = {"kind": "run_failed", "message": _one_line(f"{type(exc).__name__}: {exc}")}
    error["traceback"] = traceback.format_exc(limit=-8)
    return {"schema": SCHEMA, "error": error}, ERROR_EXIT


def serve(request) -> int:
    """Run `handle` with file descriptor 1 pointed at stderr, then print the JSON answer on the real stdout.

    Returns the exit status. Native libraries may print to fd 1 (onnxruntime, OpenMP); the host parses stdout as
    JSON, so nothing but the answer may reach it.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        answer, status = handle(request)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return status


def main() -> int:
    """Read a request as JSON on stdin, print the result JSON on stdout; exit status 0, or 2 with an error object."""
    try:
        request = json.loads(sys.stdin.read())
    except ValueError as exc:
        answer = {"schema": SCHEMA, "error": {"kind": "bad_request", "message": f"stdin is not JSON: {exc}"}}
        sys.stdout.write(json.dumps(answer) + "\n")
        return ERROR_EXIT
    return serve(request)


if __name__ == "__main__":
    sys.exit(main())
