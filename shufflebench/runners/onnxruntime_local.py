"""onnxruntime on this machine, in this process: the CPU and CUDA execution providers.

The same `board_runner` that measures on ARM boards measures here, in-process, so local and remote numbers come from
one timing loop. With the CUDA provider the input and output are bound on the GPU (IO binding), so host<->device
copies are not timed; onnxruntime synchronizes its CUDA stream at the end of every run, so the wall-clock bracket
around a run covers the GPU work.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

from ..errors import MeasurementError, SetupError
from ..measure import board_runner
from ..measure.sampling import SamplingPolicy
from ..prepared import PreparedModel
from .base import OutputCheck, Progress, RunnerBase, RunResult
from .board_protocol import board_request, result_from_board

CUDA_HINT = "install the GPU build: pip uninstall onnxruntime && pip install onnxruntime-gpu"


class OnnxRuntimeRunner(RunnerBase):
    """onnxruntime with the profile's execution provider, threads and optimization level, in this process."""

    def measure(self, models: Sequence[PreparedModel], policy: SamplingPolicy, *, on_progress: Progress = None,
                return_outputs: bool = False, profile_runs: int = 0, check: OutputCheck = None) -> list[RunResult]:
        """Open each model's ONNX file, check its outputs, then time them interleaved round-robin in one process."""
        requests = [dict(board_request(model, self.profile, policy, return_outputs=return_outputs,
                                       profile_runs=profile_runs), model=str(model.onnx_path)) for model in models]
        with self._errors():
            answers = board_runner.run_many(requests, policy.to_dict(), on_progress=on_progress, check=check)
        return [result_from_board(answer, emulated=False) for answer in answers]

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except board_runner.RunnerError as exc:
            if exc.kind == "missing_provider":
                raise SetupError(f"device {self.profile.name}: {exc.message}; {CUDA_HINT}") from None
            raise MeasurementError(f"device {self.profile.name}: {exc.message}") from None
