"""onnxruntime on an aarch64 board over SSH, or under qemu-user emulation on this machine.

Both ship the ONNX files and the self-contained `board_runner` over one process's stdin (`remote.run_remote`) and
read the result back as JSON. When shufflebench itself runs on an aarch64 machine and no host is named, the ``arm``
device runs right here, in-process, like the ``cpu`` device.
"""

from __future__ import annotations

import platform
from typing import Sequence

from ..devices import HOST_ENV, DeviceProfile
from ..errors import SetupError
from ..measure.sampling import SamplingPolicy
from ..prepared import PreparedModel
from .base import OutputCheck, Progress, RunnerBase, RunResult
from .board_protocol import board_request, result_from_board
from .onnxruntime_local import OnnxRuntimeRunner
from .remote import run_remote
from .targets import EmulatedArm, SshTarget, Target

ARM_MACHINES = ("aarch64", "arm64")


def target_for(profile: DeviceProfile) -> Target:
    """The `targets.Target` for an ``ssh`` or ``emulated`` profile."""
    if profile.location == "emulated":
        return EmulatedArm(qemu_cpu=profile.qemu_cpu)
    if not profile.host:
        raise SetupError(
            f"device {profile.name} needs a board: give --host user@board, set {HOST_ENV}, or set host in "
            f"{profile.path or 'the profile'}"
        )
    return SshTarget(profile.host, port=profile.port, ssh_options=profile.ssh_options, python=profile.python)


class BoardRunner(RunnerBase):
    """A profile whose models run in another Python: an SSH board or qemu-user emulation."""

    def measure(self, models: Sequence[PreparedModel], policy: SamplingPolicy, *, on_progress: Progress = None,
                return_outputs: bool = False, profile_runs: int = 0, check: OutputCheck = None) -> list[RunResult]:
        """Ship every model and the runner in one bundle; the board times them interleaved round-robin. A board
        cannot call back before timing, so ``check`` judges the outputs that come back with the samples."""
        if self.profile.location == "ssh" and not self.profile.host and platform.machine().lower() in ARM_MACHINES:
            return OnnxRuntimeRunner(self.profile).measure(models, policy, on_progress=on_progress,
                                                           return_outputs=return_outputs, profile_runs=profile_runs,
                                                           check=check)
        target = target_for(self.profile)
        requests = [board_request(model, self.profile, policy, return_outputs=return_outputs,
                                  profile_runs=profile_runs) for model in models]
        answer = run_remote(target, [model.onnx_path for model in models],
                            {"interleaved": requests, "policy": policy.to_dict()})
        results = [result_from_board(one, emulated=target.emulated) for one in answer["results"]]
        if check is not None:
            for index, result in enumerate(results):
                check(index, result.outputs or {})
        return results
