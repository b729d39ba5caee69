"""torch eager on this machine's CPU or CUDA GPU.

CPU: ``torch.set_num_threads`` from the profile (restored afterwards), inference mode, wall-clock timing.

CUDA: cudnn benchmark mode on (as the ShuffleNet V2 paper measured), model and input on the GPU before timing, and
the timing loop's clock replaced by `CudaEventClock`: each reading records a CUDA event and waits for it, so the
difference of two readings is the GPU timeline between them -- the kernels of one run, launch gaps included, and
no host-side copy.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Sequence

from ..errors import SetupError, UsageError
from ..measure import environment
from ..measure.sampling import SamplingPolicy, collect_interleaved
from ..measure.stats import Measurement
from ..prepared import PreparedModel, seeded_input
from .base import OutputCheck, Progress, RunnerBase, RunResult


class CudaEventClock:
    """A clock (seconds) on the GPU timeline: record an event, synchronize on it, read its time since the first."""

    def __init__(self, torch_module: Any) -> None:
        self._cuda = torch_module.cuda
        self._start = self._cuda.Event(enable_timing=True)
        self._start.record()
        self._start.synchronize()

    def __call__(self) -> float:
        event = self._cuda.Event(enable_timing=True)
        event.record()
        event.synchronize()
        return self._start.elapsed_time(event) / 1000.0  # elapsed_time is in milliseconds


def require_cuda(torch_module: Any, device_name: str) -> None:
    """`SetupError` unless torch sees a CUDA GPU."""
    if not torch_module.cuda.is_available():
        raise SetupError(
            f"device {device_name} needs a CUDA GPU, and torch {torch_module.__version__} sees none "
            "(a CPU build of torch, or no GPU on this machine)"
        )


class TorchRunner(RunnerBase):
    """torch eager inference with the profile's threads (CPU) or on the GPU (CUDA)."""

    def measure(self, models: Sequence[PreparedModel], policy: SamplingPolicy, *, on_progress: Progress = None,
                return_outputs: bool = False, profile_runs: int = 0, check: OutputCheck = None) -> list[RunResult]:
        """Time several models interleaved round-robin on the profile's device (torch is the reference itself, so
        ``check`` has nothing to compare and is not called)."""
        import torch

        for model in models:
            if model.is_onnx:
                raise UsageError(f"device {self.profile.name} runs torch models; {model.label} is an ONNX file")
        cuda = self.profile.kind == "cuda"
        if cuda:
            require_cuda(torch, self.profile.name)
        previous_threads = torch.get_num_threads()
        previous_benchmark = torch.backends.cudnn.benchmark
        try:
            torch.set_num_threads(self.profile.threads)
            torch.backends.cudnn.benchmark = cuda
            device = "cuda" if cuda else "cpu"
            # A copy goes to the GPU: .to() moves a module in place, and the prepared one stays on the CPU for the
            # stages after this one.
            pairs = [((copy.deepcopy(model.module) if cuda else model.module).to(device),
                      torch.from_numpy(seeded_input(model.input_shape)).to(device)) for model in models]
            clock: Callable[[], float] = CudaEventClock(torch) if cuda else time.perf_counter
            with torch.inference_mode():
                run_onces = [(lambda m=model, x=feed: m(x)) for model, feed in pairs]
                all_samples = collect_interleaved(run_onces, policy, clock=clock, on_progress=on_progress)
                outputs = [{"output": model(feed).float().cpu().numpy()} if return_outputs else None
                           for model, feed in pairs]
        finally:
            torch.set_num_threads(previous_threads)
            torch.backends.cudnn.benchmark = previous_benchmark
        env = environment.capture(threads=self.profile.threads, provider=f"torch-{'cuda' if cuda else 'cpu'}")
        if cuda:
            env["gpu"] = torch.cuda.get_device_name(0)
        session = {"backend": "torch", "device": "cuda" if cuda else "cpu", "threads": self.profile.threads,
                   "cudnn_benchmark": cuda, "timing": "cuda events" if cuda else "perf_counter",
                   "torch": torch.__version__}
        return [RunResult(Measurement.from_samples(samples), env, session, False, out)
                for samples, out in zip(all_samples, outputs)]
