"""The request every onnxruntime runner sends to `board_runner`, and the `RunResult` made from its answer.

Shared by the local runner (which calls `board_runner` in this process) and the board runner (which ships it to an
SSH board or qemu-user), so both measure with the same request and read the same answer.
"""

from __future__ import annotations

from typing import Any

from ..devices import DeviceProfile
from ..measure import board_runner
from ..measure.sampling import Samples, SamplingPolicy
from ..measure.stats import Measurement
from ..prepared import SEED, PreparedModel
from .base import RunResult


def board_request(model: PreparedModel, profile: DeviceProfile, policy: SamplingPolicy, *, return_outputs: bool,
                  profile_runs: int = 0) -> dict[str, Any]:
    """The `board_runner` request for ``model`` on ``profile``, without its "model" key (the path differs between
    this machine and a board; the caller sets it)."""
    providers = [profile.provider]
    if profile.provider != "CPUExecutionProvider":
        providers.append("CPUExecutionProvider")
    request: dict[str, Any] = {
        "inputs": {model.input_name: {"shape": list(model.input_shape), "dtype": "float32"}},
        "seed": SEED,
        "intra_op_threads": profile.threads,
        "graph_optimization_level": profile.optimization_level,
        "providers": providers,
        "policy": policy.to_dict(),
        "return_outputs": return_outputs,
        "profile_runs": profile_runs,
    }
    if profile.provider == "CUDAExecutionProvider":
        request["io_binding"] = True
    return request


def result_from_board(answer: dict[str, Any], *, emulated: bool) -> RunResult:
    """Turn a `board_runner` answer into a `RunResult` (outputs decoded when present)."""
    samples = Samples.from_dict(answer)
    outputs = board_runner.decode_outputs(answer) if "outputs" in answer else None
    environment = dict(answer["environment"])
    environment["emulated"] = bool(environment.get("emulated")) or emulated
    return RunResult(Measurement.from_samples(samples), environment, answer["session"],
                     environment["emulated"], outputs, answer.get("load_s"), answer.get("node_profile"))
