"""Where a model runs: one module per way of reaching an onnxruntime (`remote`: SSH boards, qemu-user, a local Python)."""
