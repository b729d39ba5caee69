"""Exact proxies of a model, the baseline file that stores them, and their exact diff.

Exact proxies are numbers that do not move with machine noise, so any change in them is a change in the network (or
in a counter), never luck:

* ``flops_madd``, ``params``, ``mac_elements`` and ``mac_bytes`` (eager and deployed) from the layer table;
* ``kernels``: the nodes onnxruntime executes after optimizing the exported graph on the CPU provider, counted from
  the graph it saves with ``SessionOptions.optimized_model_filepath``, at two levels:
  ``all`` (ORT_ENABLE_ALL, what the ``cpu`` device runs; its layout transformer rewrites convolutions into blocked
  NCHWc kernels sized for this CPU's vector width, so the count depends on onnxruntime, torch's exporter, the
  architecture and the ISA) and ``extended`` (ORT_ENABLE_EXTENDED: fusions only, the same on any CPU for a given
  onnxruntime and torch). Each level is compared only where its `kernel_context` matches the baseline's; elsewhere
  the diff says why it was skipped instead of reporting a change the machine made;
* ``findings``: the guideline findings above their thresholds (the thresholds are stored with the baseline, and a
  comparison uses the baseline's).

A baseline file (schema ``shufflebench.baseline/1``) holds one record per model, the environment it was made in, an
environment fingerprint, and optionally measured latencies (used by `regress` only where the fingerprint matches)
or, made on a counted device, per-inference counts under ``counters`` (used where the counting context matches).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..check import Thresholds, check
from ..devices import DeviceProfile
from ..errors import UsageError
from ..files import read_json, write_json_atomic
from ..measure.environment import cpu_isa
from ..prepared import PreparedModel

BASELINE_PREFIX = "shufflebench.baseline"
BASELINE_VERSION = 1
BASELINE_SCHEMA = f"{BASELINE_PREFIX}/{BASELINE_VERSION}"

KERNEL_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED"}
#: The scalar proxies, in report order (dotted names reach into the eager/deployed dictionaries).
COUNT_PROXIES = ("flops_madd", "params", "mac_elements.eager", "mac_elements.deployed", "mac_bytes.eager",
                 "mac_bytes.deployed")
_RECORD_KEYS = ("label", "flops_madd", "params", "mac_elements", "mac_bytes", "kernels", "findings")

# What makes two latency measurements comparable: the machine, its software, and how the model is run. Kept apart
# from the rest of the environment record (warnings, emulation reason) that may change without changing speed.
_FINGERPRINT_ENV = ("machine", "system", "kernel", "cpu_model", "logical_cores", "available_cores", "governor",
                    "emulated", "qemu_cpu", "python", "versions", "thread_env", "gpu")
_FINGERPRINT_DEVICE = ("name", "kind", "backend", "provider", "threads", "batch", "location", "optimization_level")


def kernel_context() -> dict[str, Any]:
    """What the kernel counts of this process depend on, besides the model."""
    return {
        "onnxruntime": _version("onnxruntime"),
        "torch": _version("torch"),
        "machine": platform.machine(),
        "isa": cpu_isa(),
        "provider": "CPUExecutionProvider",
    }


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _context_keys(level: str) -> tuple[str, ...]:
    # ORT_ENABLE_EXTENDED only fuses; ORT_ENABLE_ALL also picks layouts for this CPU.
    return ("onnxruntime", "torch") if level == "extended" else ("onnxruntime", "torch", "machine", "isa", "provider")


def optimized_kernels(onnx_path: str | Path, level: str = "all") -> dict[str, int]:
    """``{"domain:op_type": count}`` of the graph onnxruntime runs on the CPU provider at ``level`` (see
    `KERNEL_LEVELS`), read back from the optimized model it saves."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, KERNEL_LEVELS[level])
    options.intra_op_num_threads = 1
    # Saving an ORT_ENABLE_ALL graph warns that it is hardware specific: that is exactly why it is counted here.
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="shufflebench-kernels-") as folder:
        options.optimized_model_filepath = os.path.join(folder, "optimized.onnx")
        ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
    counts: dict[str, int] = {}
    for node in graph.node:
        key = f"{node.domain or 'ai.onnx'}:{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _one_line(text: str, limit: int = 160) -> str:
    """The first sentence of an error on one line (torch's export errors go on for a screen)."""
    text = " ".join(str(text).split())
    end = text.find(". ")
    if end > 0:
        text = text[: end + 1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null: torch's exporter dumps its whole IR graph from C++ when it
    fails, which would bury the one-line reason recorded instead."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def model_proxies(model: PreparedModel, thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """The exact proxies of one model as plain data (one record of a baseline file)."""
    table = model.layer_table
    cost = model.cost
    kernels: dict[str, Any] = {}
    try:
        with _native_output_silenced():
            path = model.onnx_path
            for level in KERNEL_LEVELS:
                by_op = optimized_kernels(path, level)
                kernels[level] = {"total": sum(by_op.values()), "by_op": by_op}
    except Exception as exc:  # an export or onnxruntime failure: the counts stand, the kernels are marked unknown
        kernels = {"unavailable": _one_line(f"{type(exc).__name__}: {exc}")}
    findings = [
        {"guideline": f.guideline, "where": f.where, "value": f.value}
        for f in check(table, thresholds) if f.above
    ]
    findings.sort(key=lambda f: (str(f["guideline"]), str(f["where"])))
    identity = model.identity
    return {
        "label": identity.label,
        "model": identity.name,
        "source": identity.source,
        "variant": identity.variant,
        "input_shape": list(identity.input_shape),
        "flops_madd": cost.flops_madd,
        "params": cost.params,
        "mac_elements": dict(cost.mac_elements),
        "mac_bytes": dict(cost.mac_bytes),
        "kernels": kernels,
        "findings": findings,
    }


def environment_fingerprint(environment: dict[str, Any], device: DeviceProfile | dict | None = None) -> str:
    """A short digest of what makes latencies comparable: machine, software versions, thread settings, device.

    Equal fingerprints do not prove the same machine (no hostname is recorded, so two identical cloud instances
    match); different ones prove a different setting.
    """
    picked = {key: environment.get(key) for key in _FINGERPRINT_ENV}
    if device is not None:
        profile = device.to_dict() if isinstance(device, DeviceProfile) else device
        picked["device"] = {key: profile.get(key) for key in _FINGERPRINT_DEVICE}
    text = json.dumps(picked, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def baseline_data(records: list[dict[str, Any]], *, thresholds: Thresholds, environment: dict[str, Any],
                  device: DeviceProfile | None = None, latency: dict[str, Any] | None = None,
                  counters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A baseline file's content. ``latency`` maps a model label to `Measurement.to_dict()` (measured on
    ``device``), ``counters`` to `Counters.to_dict()` (counted on ``device``); without them the file holds exact
    proxies only."""
    labels = [r["label"] for r in records]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise UsageError(f"model {duplicates[0]!r} is given twice; a baseline holds each model once")
    data: dict[str, Any] = {
        "schema": BASELINE_SCHEMA,
        "environment": environment,
        "fingerprint": environment_fingerprint(environment, device),
        "kernel_context": kernel_context(),
        "thresholds": asdict(thresholds),
        "device": device.to_dict() if device is not None else None,
        "models": records,
    }
    if latency:
        data["latency"] = latency
    if counters:
        data["counters"] = counters
    return data


def save_baseline(path: str | Path, data: dict[str, Any]) -> Path:
    """Write a baseline atomically (a crash never leaves half a file)."""
    return write_json_atomic(path, data)


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read and check a baseline file; `UsageError` naming the file and what is wrong otherwise."""
    data = read_json(path, schema_prefix=BASELINE_PREFIX)
    version = str(data["schema"]).rpartition("/")[2]
    if version != str(BASELINE_VERSION):
        raise UsageError(f"{path} has schema {data['schema']!r}; this shufflebench reads {BASELINE_SCHEMA}")
    models = data.get("models")
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise UsageError(f"{path}: 'models' must be a list of model records")
    for i, record in enumerate(models):
        missing = [key for key in _RECORD_KEYS if key not in record]
        if missing:
            raise UsageError(f"{path}: model record {i} lacks {missing[0]!r}")
        wrong = _wrong_field(record)
        if wrong:
            raise UsageError(f"{path} is corrupt: model record {i} ({record.get('label')!r}): {wrong}")
    for key in ("environment", "kernel_context", "thresholds"):
        if not isinstance(data.get(key), dict):
            raise UsageError(f"{path}: {key!r} is missing or not an object")
    latency = data.get("latency")
    if latency is not None and not (isinstance(latency, dict) and all(
            isinstance(m, dict) and isinstance(m.get("samples_ms"), list) for m in latency.values())):
        raise UsageError(f"{path} is corrupt: 'latency' must map model labels to measurements with samples_ms")
    Thresholds.from_mapping(data["thresholds"], f"{path} thresholds")
    return data


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _wrong_field(record: dict[str, Any]) -> str | None:
    """What is wrong with a record's fields (None when every proxy has the type it is compared as)."""
    if not isinstance(record["label"], str):
        return f"label is {type(record['label']).__name__}, not a string"
    for key in ("flops_madd", "params"):
        if not _is_count(record[key]):
            return f"{key} is {record[key]!r}, not a whole number"
    for key in ("mac_elements", "mac_bytes"):
        views = record[key]
        if not isinstance(views, dict) or not all(_is_count(views.get(view)) for view in ("eager", "deployed")):
            return f"{key} is {views!r}, not whole numbers for eager and deployed"
    if not isinstance(record["kernels"], dict):
        return "kernels is not an object"
    findings = record["findings"]
    if not isinstance(findings, list) or not all(
            isinstance(f, dict) and isinstance(f.get("guideline"), str) and isinstance(f.get("where"), str)
            for f in findings):
        return "findings is not a list of {guideline, where, value} objects"
    return None


def thresholds_of(baseline: dict[str, Any]) -> Thresholds:
    """The guideline thresholds a baseline's findings were made with."""
    return Thresholds.from_mapping(baseline["thresholds"], "baseline thresholds")


@dataclass(frozen=True)
class Change:
    """One exact proxy that differs: ``proxy`` names it (``params``, ``mac_bytes.deployed``, ``kernels.all``,
    ``kernels.all[com.microsoft:FusedConv]``, ``finding``, ``model``); None stands for "absent"."""

    model: str
    proxy: str
    baseline: Any
    candidate: Any

    def describe(self) -> str:
        """``params 2,278,604 -> 2,278,700 (+96, +0.004%)``; findings and models as added / removed."""
        if self.proxy == "model":
            return "model added (not in the baseline)" if self.baseline is None else "model removed (only in the baseline)"
        if self.proxy == "finding":
            return f"finding added: {self.candidate}" if self.baseline is None else f"finding gone: {self.baseline}"
        if isinstance(self.baseline, int) and isinstance(self.candidate, int):
            delta = self.candidate - self.baseline
            rel = f", {delta / self.baseline * 100:+.3g}%" if self.baseline else ""
            return f"{self.proxy} {self.baseline:,} -> {self.candidate:,} ({delta:+,}{rel})"
        return f"{self.proxy} {self.baseline} -> {self.candidate}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "proxy": self.proxy, "baseline": self.baseline, "candidate": self.candidate,
                "summary": self.describe()}


def _dig(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _total(record: dict[str, Any], level: str) -> Any:
    kernels = record["kernels"]
    return "unavailable" if "unavailable" in kernels else kernels.get(level, {}).get("total")


def _finding_key(finding: dict[str, Any]) -> str:
    return f"{finding['guideline']} {finding['where']}"


def compare_records(baseline: dict[str, Any], candidate: dict[str, Any], *, baseline_context: dict[str, Any],
                    candidate_context: dict[str, Any]) -> tuple[list[Change], list[str]]:
    """Every exact difference between two model records, labelled with the candidate's label, and notes on what
    could not be compared (kernel counts made under another onnxruntime, torch or CPU)."""
    model = candidate["label"]
    changes: list[Change] = []
    notes: list[str] = []
    for proxy in COUNT_PROXIES:
        before, after = _dig(baseline, proxy), _dig(candidate, proxy)
        if before != after:
            changes.append(Change(model, proxy, before, after))
    for level in KERNEL_LEVELS:
        keys = _context_keys(level)
        theirs = {k: baseline_context.get(k) for k in keys}
        ours = {k: candidate_context.get(k) for k in keys}
        if theirs != ours:
            differing = ", ".join(f"{k} {theirs[k]} vs {ours[k]}" for k in keys if theirs[k] != ours[k])
            notes.append(f"{model}: kernels.{level} not compared: made with {differing} (baseline vs here)")
            continue
        gone = [side for side, rec in (("baseline", baseline), ("candidate", candidate)) if "unavailable" in rec["kernels"]]
        if gone:
            why = {rec["kernels"]["unavailable"] for rec in (baseline, candidate) if "unavailable" in rec["kernels"]}
            reasons = "; ".join(sorted(why))
            if len(gone) == 1:
                changes.append(Change(model, f"kernels.{level}", _total(baseline, level), _total(candidate, level)))
            note = f"{model}: kernels not counted in the {' and '.join(gone)}: {reasons}"
            if note not in notes:
                notes.append(note)
            continue
        before_k, after_k = baseline["kernels"].get(level, {}), candidate["kernels"].get(level, {})
        if before_k.get("total") != after_k.get("total"):
            changes.append(Change(model, f"kernels.{level}", before_k.get("total"), after_k.get("total")))
        before_ops, after_ops = before_k["by_op"], after_k["by_op"]
        for op in sorted(set(before_ops) | set(after_ops)):
            if before_ops.get(op, 0) != after_ops.get(op, 0):
                changes.append(Change(model, f"kernels.{level}[{op}]", before_ops.get(op, 0), after_ops.get(op, 0)))
    before_f = {_finding_key(f) for f in baseline["findings"]}
    after_f = {_finding_key(f) for f in candidate["findings"]}
    changes += [Change(model, "finding", key, None) for key in sorted(before_f - after_f)]
    changes += [Change(model, "finding", None, key) for key in sorted(after_f - before_f)]
    return changes, notes


def match_records(baseline: dict[str, Any], candidates: Iterable[dict[str, Any]], *,
                  complete: bool) -> tuple[list[tuple[dict, dict]], list[Change]]:
    """Pair candidate records with the baseline's by label. A candidate the file lacks is a ``model`` change
    (added); with ``complete`` (the candidates are meant to be every model of the file) so is a model only the
    file has (removed)."""
    stored = {r["label"]: r for r in baseline["models"]}
    pairs: list[tuple[dict, dict]] = []
    changes: list[Change] = []
    seen = set()
    for record in candidates:
        seen.add(record["label"])
        if record["label"] in stored:
            pairs.append((stored[record["label"]], record))
        else:
            changes.append(Change(record["label"], "model", None, record["label"]))
    if complete:
        changes += [Change(label, "model", label, None) for label in stored if label not in seen]
    return pairs, changes
