"""Measure a device's calibration (`calibrate`): the design's graphs through the device's own runner, in batches.

Each batch is one `Runner.measure` call: the batch's graphs and the reference graph timed interleaved (``budget_s``
per graph), then each profiled (``design.profile_runs`` runs under onnxruntime's profiler), on whatever the device
is: this machine, an SSH board, or qemu-user. After every batch the records measured so far are written atomically
to a partial file; a calibration that stops (Ctrl-C, a lost board) resumes from it, unless the design or the
environment changed, in which case it starts again and says so.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..devices import DeviceProfile
from ..errors import UsageError
from ..files import read_json, write_json_atomic
from ..measure.sampling import SamplingPolicy
from ..measure.stats import Measurement
from ..models import ModelRef, is_zoo_model, resolve_model
from ..prepared import PreparedModel
from ..runners.base import Progress, RunResult
from ..runners.lookup import runner_for
from .calibration import (Calibration, calibrations_dir, fingerprint, layout_of, new_calibration, save_calibration,
                          stored_path)
from .design import (LAYOUT_PROBE, REFERENCE_INPUT, REFERENCE_SHAPE, SUBJECT_INPUT, Case, Design, build_graph,
                     build_reference, subject_shape, with_reference)
from .fit import Peaks
from .kernels import base_kind, is_compute
from .records import GraphRecord, kernel_time_us, record_of

PARTIAL_SCHEMA = "shufflebench.calibration-partial"
PARTIAL_VERSION = 1
BATCH = 12  # graphs per runner call (one process start on a board, one interleaved timing loop)
MIN_PEAK_MADD = 10_000_000  # kernels smaller than this do not count towards the peak multiply-add rate
MIN_BANDWIDTH_US = 5.0  # nor kernels shorter than this towards the cache bandwidth (the profiler counts whole us)
# Kernels that read and write every byte they are charged with (a reshape may move nothing at all).
STREAMING = frozenset({"elementwise", "elementwise.binary", "concat", "split", "transpose", "reorder"})


class CalibrationGraph(PreparedModel):
    """A calibration graph as a runner takes it: an ONNX file whose subject input is named and shaped here (its
    other inputs, the reference branch's among them, are filled from the graph's declared shapes)."""

    def __init__(self, path: Path, label: str, input_name: str, input_shape: tuple[int, ...]) -> None:
        super().__init__(ModelRef(label, "onnx", tuple(input_shape), path=path))
        self._input_name = input_name

    @cached_property
    def input_name(self) -> str:
        return self._input_name


def _graph(case: Case, folder: Path) -> CalibrationGraph:
    if case.builder == "model":
        model = PreparedModel(resolve_model(case.params["model"]))
        path = with_reference(model.onnx_path, folder / f"{case.name.replace('/', '-')}.onnx")
        return CalibrationGraph(path, case.name, model.input_name, model.input_shape)
    return CalibrationGraph(build_graph(case, folder), case.name, SUBJECT_INPUT, subject_shape(case))


def check_networks(models: Sequence[str]) -> None:
    """Refuse, in one line and before anything is measured, a network of one's own (`design.with_networks`) that a
    calibration cannot build on its own: anything but a zoo model or an ONNX file, or one that does not resolve."""
    for model in models:
        if not (is_zoo_model(model) or model.lower().endswith(".onnx")):
            raise UsageError(f"--network {model!r} is neither a zoo model nor an .onnx file; allowed: a zoo name "
                             "with options, or an ONNX file (export a module of your own with torch.onnx.export)")
        resolve_model(model)


def partial_path(device: DeviceProfile, design: Design) -> Path:
    """The partial file of a calibration of ``design`` on ``device``."""
    return calibrations_dir() / f".partial-{device.name}-{design.digest}.json"


def _load_partial(path: Path, design: Design) -> tuple[dict[str, GraphRecord], dict[str, Any] | None]:
    if not path.is_file():
        return {}, None
    try:
        data = read_json(path, schema_prefix=PARTIAL_SCHEMA)
        if data["schema"] != f"{PARTIAL_SCHEMA}/{PARTIAL_VERSION}" or data["design"] != design.digest:
            return {}, None
        return {r["case"]: GraphRecord.from_dict(r) for r in data["records"]}, data["environment"]
    except (UsageError, KeyError, TypeError, ValueError):
        return {}, None


def measure_records(device: DeviceProfile, design: Design, policy: SamplingPolicy, *, on_progress: Progress = None,
                    status: Callable[[str], None] = lambda message: None,
                    resume: bool = True) -> tuple[list[GraphRecord], dict[str, Any], bool]:
    """Measure every graph of ``design`` on ``device`` (end-to-end timing under ``policy``, ``budget_s`` per graph);
    returns the records (in design order), the environment and whether it was emulated. Partial results are kept in
    `partial_path` after every batch."""
    if device.backend != "onnxruntime":
        raise UsageError(f"calibrate uses onnxruntime's profiler; device {device.name} runs {device.backend}")
    if device.counted:
        raise UsageError(f"calibrate times kernels; device {device.name} counts instructions instead (calibrate the "
                         "device it counts for, without a counter)")
    runner = runner_for(device)
    partial = partial_path(device, design)
    done, environment = _load_partial(partial, design) if resume else ({}, None)
    if done:
        status(f"resuming: {len(done)} of {len(design.cases)} graphs already measured")
    emulated = bool(environment and environment.get("emulated"))
    finished = len(done)
    with tempfile.TemporaryDirectory(prefix="shufflebench-calibration-") as work:
        folder = Path(work)
        reference = CalibrationGraph(build_reference(folder), "reference", REFERENCE_INPUT, REFERENCE_SHAPE)
        todo = [case for case in design.cases if case.name not in done]
        for start in range(0, len(todo), BATCH):
            batch = todo[start: start + BATCH]
            status(f"calibrating {device.name}: graphs {finished + 1}-{finished + len(batch)} of "
                   f"{len(design.cases)}")
            offset = finished * policy.budget_s

            def progress(phase: str, runs: int, elapsed: float, offset: float = offset) -> None:
                if on_progress is not None:
                    on_progress(phase, runs, offset + elapsed * len(batch) / (len(batch) + 1))

            graphs = [_graph(case, folder) for case in batch]
            runs = runner.measure([*graphs, reference], policy, on_progress=progress,
                                  profile_runs=design.profile_runs)
            measured_in = runs[0].environment
            if environment is not None and (fingerprint(environment, device) != fingerprint(measured_in, device)):
                status("the environment changed since the partial calibration; starting again")
                done = {}
            environment, emulated = measured_in, runs[0].emulated
            reference_samples = _timed(runs[-1]).samples_s
            for case, run in zip(batch, runs):
                if run.node_profile is None:
                    raise UsageError(f"device {device.name} returned no kernel profile for {case.name}")
                done[case.name] = record_of(case.name, case.group, run.node_profile, _timed(run).samples_s,
                                            reference_samples)
            finished = len(done)
            write_json_atomic(partial, {"schema": f"{PARTIAL_SCHEMA}/{PARTIAL_VERSION}", "design": design.digest,
                                        "device": device.name, "environment": environment,
                                        "records": [r.to_dict() for r in done.values()]})
    assert environment is not None  # at least one batch ran or was resumed
    return [done[case.name] for case in design.cases], environment, emulated


def measured_peaks(records: Sequence[GraphRecord], reference_us: float, reference_e2e_us: float) -> Peaks:
    """The device's peaks from its calibration: the fastest multiply-add rate of any sizeable convolution or matrix
    product, the bandwidth of the large element-wise add, and the best bandwidth of any memory-bound kernel."""
    madd_rates, cache = [], []
    memory = 0.0
    for record in records:
        for sample in record.kernels:
            seconds = kernel_time_us(record, sample, reference_us, reference_e2e_us) * 1e-6
            kernel = sample.kernel
            if is_compute(kernel.kind) and (kernel.madd >= MIN_PEAK_MADD or record.group == "peak"):
                madd_rates.append(kernel.madd / seconds)
            elif base_kind(kernel.kind) in STREAMING and seconds * 1e6 >= MIN_BANDWIDTH_US:
                cache.append(kernel.bytes / seconds)
            if record.case == "peak/bandwidth" and kernel.op == "Add":
                memory = kernel.bytes / seconds
    if not madd_rates or not memory:
        raise UsageError("the calibration has no peak graphs (peak/matmul, peak/bandwidth); use a shipped design")
    return Peaks(max(madd_rates), memory, max(cache + [memory]))


def _timed(run: RunResult) -> Measurement:
    if run.measurement is None:  # only a counted device answers without timings, and it is refused before
        raise UsageError("the device answered with counts, not timings")
    return run.measurement


def calibrate(device: DeviceProfile, design: Design, policy: SamplingPolicy, *, on_progress: Progress = None,
              status: Callable[[str], None] = lambda message: None, resume: bool = True) -> Calibration:
    """Measure ``design`` on ``device`` (``policy.budget_s`` seconds of end-to-end timing per graph) and fit its
    predictors. The calibration is stored (`calibration.stored_path`, its ``path``) and the partial file removed."""
    records, environment, emulated = measure_records(device, design, policy, on_progress=on_progress,
                                                     status=status, resume=resume)
    status("fitting the predictors")
    layout = {"nchwc_block": layout_of(records, LAYOUT_PROBE.name), "optimization_level": device.optimization_level,
              "onnxruntime": (environment.get("versions") or {}).get("onnxruntime")}
    design_data: Mapping[str, Any] = {"name": design.name, "digest": design.digest, "graphs": len(design.cases),
                                      "profile_runs": design.profile_runs, "policy": policy.to_dict()}
    calibration = new_calibration(device, environment, emulated, design_data, records, measured_peaks, layout)
    stored = save_calibration(calibration, stored_path(calibration))
    partial_path(device, design).unlink(missing_ok=True)
    return replace(calibration, path=stored)

