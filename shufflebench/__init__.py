"""shufflebench: FLOPs are an indirect metric; measure the gap on your own hardware.

The code is a pipeline of stages with plain data between them:
zoo (registry) -> layer table -> cost (FLOPs, params, MAC, guideline findings) -> measurement -> report.
"""

__version__ = "0.1.0"
