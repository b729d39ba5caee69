"""A real slowdown for the gate benchmark: ShuffleNet V2 1.0x with extra element-wise work on its input.

`slow_shufflenet_v2` runs ``EXTRA_OPS`` multiply-add pairs over the 1x3x224x224 input before the network, in a
forward pre-hook, so every module keeps its name and the exact proxies differ only by those operators. They are
real kernels (onnxruntime keeps a multiply by 0.9 and an add of 0.1: neither is a no-op it may drop), each touches
150,528 floats, and they cost a fixed time whatever the network does, so the slowdown is steady. ``EXTRA_OPS`` was
tuned on the ``cpu`` device (onnxruntime, 1 thread) of the project's 2-core x86 build machine to cost about 10%;
`benchmarks/gate.py` measures and prints the actual cost every time it runs.

`slightly_slow_shufflenet_v2` adds ``SLIGHT_OPS`` pairs: by proportion about 0.7% slower on ``cpu``; counted, it
executes 0.8% more estimated cycles on ``cpu-counted`` and 0.6% more instructions on ``arm-counted``
(`benchmarks/counters.py` uses it for the counted gate's small-slowdown test).
"""

from __future__ import annotations

from torch import nn

EXTRA_OPS = 14
SLIGHT_OPS = 1


def shufflenet_v2() -> nn.Module:
    """ShuffleNet V2 1.0x from the zoo, with the zoo's seeded weights."""
    from shufflebench.models import resolve_model

    return resolve_model("shufflenet_v2").build()


def _extra_work(ops: int):
    def hook(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        for _ in range(ops):
            x = x * 0.9 + 0.1
        return (x,)

    return hook


def slow_shufflenet_v2(ops: int = EXTRA_OPS) -> nn.Module:
    """ShuffleNet V2 1.0x plus ``ops`` element-wise multiply-add pairs on its input (about 10% slower on ``cpu``)."""
    net = shufflenet_v2()
    net.register_forward_pre_hook(_extra_work(ops))
    return net


def slightly_slow_shufflenet_v2() -> nn.Module:
    """ShuffleNet V2 1.0x plus ``SLIGHT_OPS`` element-wise multiply-add pair(s) on its input (about 1% slower)."""
    return slow_shufflenet_v2(SLIGHT_OPS)
