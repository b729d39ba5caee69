"""onnxruntime on an aarch64 board over SSH, or under qemu-user emulation on this machine.

Both ship the exported model and the self-contained `board_runner` over one process's stdin (`remote.run_remote`)
and read the result back as JSON. When shufflebench itself runs on an aarch64 machine and no host is named, the
``arm`` device runs right here, in-process, like the ``cpu`` device.
"""

from __future__ import annotations

import platform

from ..devices import HOST_ENV, DeviceProfile
from ..errors import SetupError
from ..export import export_onnx
from ..measure.sampling import SamplingPolicy
from ..models import ModelRef
from .base import OutputCheck, Progress, RunnerBase, RunResult
from .onnxruntime_local import OnnxRuntimeRunner, board_request, result_from_board
from .remote import EmulatedArm, SshTarget, run_remote

ARM_MACHINES = ("aarch64", "arm64")


def target_for(profile: DeviceProfile):
    """The `remote.Target` for an ``ssh`` or ``emulated`` profile."""
    if profile.location == "emulated":
        return EmulatedArm(qemu_cpu=profile.qemu_cpu)
    if not profile.host:
        raise SetupError(
            f"device {profile.name} needs a board: give --host user@board, set {HOST_ENV}, or set host in "
            f"{profile.path or 'the profile'}"
        )
    return SshTarget(profile.host, port=profile.port, ssh_options=profile.ssh_options, python=profile.python)


class BoardRunner(RunnerBase):
    """A profile whose model runs in another Python: an SSH board or qemu-user emulation."""


    def measure_many(self, refs: list[ModelRef], policy: SamplingPolicy, *, on_progress: Progress = None,
                     return_outputs: bool = False, profile_runs: int = 0,
                     check: OutputCheck = None) -> list[RunResult]:
        """Ship every model and the runner in one bundle; the board times them interleaved round-robin. A board
        cannot call back before timing, so ``check`` judges the outputs that come back with the samples."""
        if self.profile.location == "ssh" and not self.profile.host and platform.machine().lower() in ARM_MACHINES:
            return OnnxRuntimeRunner(self.profile).measure_many(refs, policy, on_progress=on_progress,
                                                                return_outputs=return_outputs,
                                                                profile_runs=profile_runs, check=check)
        target = target_for(self.profile)
        paths = [export_onnx(ref) for ref in refs]
        requests = []
        for ref, path in zip(refs, paths):
            request = board_request(ref, self.profile, policy, str(path), return_outputs=return_outputs,
                                    profile_runs=profile_runs)
            request.pop("model")
            requests.append(request)
        if len(refs) == 1:
            answers = [run_remote(target, paths[0], requests[0])]
        else:
            answers = run_remote(target, paths, {"interleaved": requests, "policy": policy.to_dict()})["results"]
        results = [result_from_board(answer, emulated=target.emulated) for answer in answers]
        if check is not None:
            for index, result in enumerate(results):
                check(index, result.outputs)
        return results
