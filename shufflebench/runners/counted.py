"""Counted devices: every model's inferences counted by a tool around the board runner, nothing timed.

``cpu-counted`` runs this machine's Python under valgrind's callgrind (`targets.CallgrindPython`), the
``arm-counted`` devices run the aarch64 rootfs under qemu-user with the project's plugin (`targets.CountedArm`).
Either way the self-contained board runner (numpy and onnxruntime, never torch, whose start-up would cost minutes
under valgrind) gets the model over stdin (`remote.run_remote`) and runs warm-up and marked inferences
(`board_runner.count_many`); the tool's files, read back here, give each marked region's events (`counters`).
Outputs (of the first run) are checked against the reference when the answer arrives.

Each model is counted in a process of its own. Two sessions of the very same model in one process count
differently (measured: 0.14% fewer instructions for the second, under the qemu plugin), because the buffers of the
second land elsewhere; alone in its process a model counts the same every time, whatever else is measured. The
processes are independent, so up to one per core run at once: counts do not depend on load.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from ..counters.callgrind import cache_description, read_dumps
from ..counters.figures import Counters, split_models
from ..counters.qemu_plugin import read_marks
from ..devices import DeviceProfile
from ..errors import MeasurementError, UsageError
from ..measure.environment import cpu_isa
from ..measure.sampling import SamplingPolicy
from ..prepared import PreparedModel
from .base import OutputCheck, Progress, RunnerBase, RunResult
from .board_protocol import board_request
from .remote import run_remote
from .targets import CallgrindPython, CountedArm

#: Multiply-adds a counted process gets through per second, conservatively (measured: ShuffleNet V2 1.0x, 146M
#: multiply-adds, about 12 s per inference under callgrind on a busy 2-core machine, 1-3 s under the qemu plugin).
MADD_PER_S = {"valgrind": 2e6, "qemu-plugin": 10e6}
START_S = 120.0  # start-up of the counted process (imports under the tool), and slack


def timeout_for(profile: DeviceProfile, model: PreparedModel) -> float:
    """Seconds to wait for one model's counted process: start-up plus every inference it makes (warm-up and
    counted, and one more for slack) at `MADD_PER_S`."""
    inferences = 1 + profile.counter_warmup + profile.counter_runs
    return START_S + inferences * max(model.cost.flops_madd, 1e6) / MADD_PER_S[profile.counter]


class _Tool:
    """One counting tool for one run: its target, the marker the board runner uses, how its files are read."""

    def __init__(self, profile: DeviceProfile, folder: Path) -> None:
        self.target: CallgrindPython | CountedArm
        self.read: Callable[[], list[dict[str, int]]]
        if profile.counter == "valgrind":
            out_file = folder / "callgrind.out"
            self.target = CallgrindPython(out_file)
            self.read = lambda: read_dumps(out_file)
        else:
            out_file = folder / "marks.txt"
            self.target = CountedArm(out_file, qemu_cpu=profile.qemu_cpu)
            self.read = lambda: read_marks(out_file)
        self.target.check()  # the tool first: a missing valgrind or qemu is named before any compiler error
        self.marker = self.target.prepare()

    def context(self, profile: DeviceProfile, answer: dict[str, Any]) -> dict[str, Any]:
        """What the counts depend on besides the model (counts are compared only where this is equal)."""
        environment = answer["environment"]
        context = {"tool": self.target.tool_version(), "device": profile.name, "machine": environment.get("machine"),
                   "onnxruntime": answer["session"].get("onnxruntime"), "python": environment.get("python"),
                   "optimization_level": profile.optimization_level}
        if profile.counter == "valgrind":
            # valgrind presents the host's instruction set without AVX-512, so onnxruntime picks AVX2 kernels at most.
            context["isa"] = "avx2" if cpu_isa() == "avx512" else cpu_isa()
            context["caches"] = cache_description()
        else:
            context["qemu_cpu"] = profile.qemu_cpu
        return context


class CountedRunner(RunnerBase):
    """A profile with a ``counter``: each model's inferences counted, not timed (``Counters`` in every result)."""

    def measure(self, models: Sequence[PreparedModel], policy: SamplingPolicy, *, on_progress: Progress = None,
                return_outputs: bool = False, profile_runs: int = 0, check: OutputCheck = None) -> list[RunResult]:
        """Count every model, each in a process of its own, up to one process per core at once (``policy`` and
        ``return_outputs`` do not apply: nothing is timed, outputs always come back); ``check`` judges the outputs
        that come back with the counts."""
        if profile_runs:
            raise UsageError(f"--breakdown times kernels with onnxruntime's profiler; {self.profile.name} counts "
                             "instructions and times nothing")
        for model in models:  # traced and exported here, once: torch is not for several threads at a time
            _ = model.cost, model.onnx_path
        _Tool(self.profile, Path(tempfile.gettempdir()) / "unused")  # a missing tool is named before any progress
        if on_progress is not None:
            on_progress("counted", 0, 0.0)
        workers = max(1, min(len(models), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(self._count, models))
        if check is not None:
            for index, result in enumerate(results):
                check(index, result.outputs or {})
        return results

    def _count(self, model: PreparedModel) -> RunResult:
        """One model counted in its own process (its outputs come back whether asked or not: see below)."""
        profile = self.profile
        with tempfile.TemporaryDirectory(prefix="shufflebench-count-") as folder:
            tool = _Tool(profile, Path(folder))
            # The same request whatever the caller asked (outputs, a sampling policy the count ignores): what the
            # counted process reads moves its heap, and counts depend on where buffers land.
            request = board_request(model, profile, SamplingPolicy(), return_outputs=True)
            count = {"runs": profile.counter_runs, "warmup": profile.counter_warmup, "marker": tool.marker}
            answer = run_remote(tool.target, [model.onnx_path],
                                {"interleaved": [request], "policy": SamplingPolicy().to_dict(), "count": count},
                                timeout_s=timeout_for(profile, model))
            try:
                runs = split_models(tool.read(), 1, profile.counter_runs)[0]
            except (OSError, ValueError) as exc:
                raise MeasurementError(f"{tool.target.label}: cannot read the counts of {model.label}: {exc}") \
                    from None
        one = answer["results"][0]
        counters = Counters(profile.counter, tuple(runs), profile.counter_warmup, tool.context(profile, one))
        outputs = None
        if "outputs" in one:
            from ..measure.board_runner import decode_outputs

            outputs = decode_outputs(one)
        environment = dict(one["environment"])
        environment["emulated"] = bool(environment.get("emulated")) or tool.target.emulated
        return RunResult(None, environment, one["session"], environment["emulated"], outputs, one.get("load_s"),
                         counters=counters)
