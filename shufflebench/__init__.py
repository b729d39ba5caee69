"""shufflebench: FLOPs are an indirect metric; measure the gap on your own hardware.

The code is a pipeline of stages with typed data between them (docs/architecture.md):
zoo -> model reference -> prepared model (layer table, cost: multiply-adds, params, MAC, guideline findings)
-> measurement (raw samples + environment) -> report.
"""

__version__ = "0.1.0"
