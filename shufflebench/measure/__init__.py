"""The measurement stage: time a model, keep the raw samples, derive statistics, record the environment.

`sampling` (the timing loop and the median's confidence interval), `environment` and `board_runner` use only the
standard library plus numpy/onnxruntime, because they are shipped to ARM boards and run there as top-level modules.
`stats` holds `Measurement`, the object the rest of shufflebench reads.
"""

from .sampling import Samples, SamplingPolicy, collect, median_ci
from .stats import Measurement

__all__ = ["Measurement", "Samples", "SamplingPolicy", "collect", "median_ci"]
