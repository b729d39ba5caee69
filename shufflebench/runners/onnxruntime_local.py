"""onnxruntime on this machine, in this process: the CPU and CUDA execution providers.

The same `board_runner.run` that measures on ARM boards measures here, in-process, so local and remote numbers come
from one timing loop. With the CUDA provider the input and output are bound on the GPU (IO binding), so host<->device
copies are not timed; onnxruntime synchronizes its CUDA stream at the end of every run, so the wall-clock bracket
around a run covers the GPU work.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..devices import DeviceProfile
from ..errors import MeasurementError, SetupError
from ..export import export_onnx
from ..measure import board_runner
from ..measure.sampling import SamplingPolicy
from ..measure.sampling import Samples
from ..measure.stats import Measurement
from ..models import ModelRef
from .base import INPUT_NAME, SEED, OutputCheck, Progress, RunnerBase, RunResult

CUDA_HINT = "install the GPU build: pip uninstall onnxruntime && pip install onnxruntime-gpu"


def board_request(ref: ModelRef, profile: DeviceProfile, policy: SamplingPolicy, model: str, *,
                  return_outputs: bool, profile_runs: int = 0) -> dict:
    """The `board_runner` request for ``ref`` on ``profile`` (shared by the local and the remote runners)."""
    request = {
        "model": model,
        "inputs": {INPUT_NAME: {"shape": list(ref.input_shape), "dtype": "float32"}},
        "seed": SEED,
        "intra_op_threads": profile.threads,
        "graph_optimization_level": profile.optimization_level,
        "providers": [profile.provider] + (["CPUExecutionProvider"] if profile.provider != "CPUExecutionProvider" else []),
        "policy": policy.to_dict(),
        "return_outputs": return_outputs,
        "profile_runs": profile_runs,
    }
    if ref.source == "onnx":  # the file's own input name
        request["inputs"] = {_onnx_input_name(ref): {"shape": list(ref.input_shape), "dtype": "float32"}}
    if profile.provider == "CUDAExecutionProvider":
        request["io_binding"] = True
    return request


def _onnx_input_name(ref: ModelRef) -> str:
    import onnx

    model = onnx.load(str(ref.path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def result_from_board(answer: dict, *, emulated: bool) -> RunResult:
    """Turn a `board_runner` answer into a `RunResult` (outputs decoded when present)."""
    samples = Samples.from_dict(answer)
    outputs = board_runner.decode_outputs(answer) if "outputs" in answer else None
    environment = dict(answer["environment"])
    environment["emulated"] = bool(environment.get("emulated")) or emulated
    return RunResult(Measurement.from_samples(samples), environment, answer["session"],
                     environment["emulated"], outputs, answer.get("load_s"), answer.get("node_profile"))


class OnnxRuntimeRunner(RunnerBase):
    """onnxruntime with the profile's execution provider, threads and optimization level, in this process."""


    def measure_many(self, refs: list[ModelRef], policy: SamplingPolicy, *, on_progress: Progress = None,
                     return_outputs: bool = False, profile_runs: int = 0,
                     check: OutputCheck = None) -> list[RunResult]:
        """Export each model, check its outputs, then time them interleaved round-robin in one process."""
        requests = [board_request(ref, self.profile, policy, str(export_onnx(ref)), return_outputs=return_outputs,
                                  profile_runs=profile_runs) for ref in refs]
        with self._errors():
            if len(requests) == 1:
                answers = [board_runner.run(requests[0], on_progress=on_progress, check=check)]
            else:
                answers = board_runner.run_many(requests, policy.to_dict(), on_progress=on_progress, check=check)
        return [result_from_board(answer, emulated=False) for answer in answers]

    @contextmanager
    def _errors(self):
        try:
            yield
        except board_runner.RunnerError as exc:
            if exc.kind == "missing_provider":
                raise SetupError(f"device {self.profile.name}: {exc.message}; {CUDA_HINT}") from None
            raise MeasurementError(f"device {self.profile.name}: {exc.message}") from None
