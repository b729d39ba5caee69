"""The latency model: calibrate once on a device (`calibrate`), then predict and explain any model (`predictor`).

kernels (what onnxruntime runs, with shapes) -> design (the calibration graphs) -> calibrate (measured through the
runners) -> fit (a roofline per kernel kind, a learned correction where it helps) -> calibration (versioned JSON,
stored per device) -> predictor (a model's kernels predicted, the gap to multiply-adds explained).
"""
