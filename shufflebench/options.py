"""The options every command shares, as plain data with their defaults, and each command's sampling preset.

The command line declares each option group once (`cli_options`) and takes its defaults from here, so a default is
written in one place: the library's own dataclasses. This module stays light (no torch, no onnxruntime): ``--help``
imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .measure.sampling import SamplingPolicy


@dataclass(frozen=True)
class VariantOptions:
    """The model options: zoo variant flags (None: the model's own default or inline value), the batch (None: 1,
    or the device profile's) and the input shape of your own models."""

    width: float | None = None
    groups: int | None = None
    resolution: int | None = None
    batch: int | None = None
    input_shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class DeviceOptions:
    """The device options: a profile name or ``.toml`` file, and overrides of its threads and SSH host."""

    device: str = "cpu"
    threads: int | None = None
    host: str | None = None


#: How long and how precisely each command samples. ``budget_s`` is seconds of timing PER MODEL in every command.
SAMPLING_PRESETS: dict[str, SamplingPolicy] = {
    "profile": SamplingPolicy(),
    "compare": SamplingPolicy(),
    "baseline": SamplingPolicy(),
    # Eight variants per experiment and width: shorter per variant, fewer warm-ups.
    "guidelines": SamplingPolicy(warmup_runs=5, budget_s=3.0),
    # A gate decides on a ratio: a tighter target and more rounds, 5 s per model (candidate and baseline: 10 s).
    # One timed run per turn, no settling: a gate weighs a model against itself at another revision, where both run
    # equally cold, and pairing run by run cancels the machine's drift best (benchmarks/gate.py, 20 trials each:
    # median MDE 1.0% and 20/20 detections this way, 3.5% and 16/20 in turns of 5 + 5).
    "regress": SamplingPolicy(target_rel_ci=0.005, min_runs=50, budget_s=5.0, turn_runs=1, settle_runs=0),
    # Many architectures per device: 3 s each, fewer warm-ups, 1 s of timed runs before precision may stop it.
    "sweep": SamplingPolicy(warmup_runs=5, budget_s=3.0, min_time_s=1.0),
    # About 350 small graphs, each timed end to end beside the reference graph (its kernels are profiled apart):
    # 1 s each keeps a full calibration of `cpu` near 10 minutes, within 20 on a busy machine.
    "calibrate": SamplingPolicy(warmup_runs=3, min_runs=10, budget_s=1.0, min_time_s=0.0),
}
