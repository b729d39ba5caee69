"""Deterministic cost: what one inference executes in the real onnxruntime kernels, counted instead of timed.

Two counting tools, each around the self-contained board runner (numpy and onnxruntime only, no torch):

* valgrind's callgrind on x86-64 (device ``cpu-counted``): instructions, data reads and writes, and from its cache
  simulation the first-level and last-level misses (`callgrind`);
* qemu-user on aarch64 (devices ``arm-counted``, ``arm-counted-n1``) with a TCG plugin of this project's own
  (``insn_count.c``): instructions, loads and stores of the real aarch64 kernels of the emulated CPU model
  (`qemu_plugin`).

The counted process marks where each counted inference starts and ends; the tools count between the marks, so
start-up never enters the figure. `figures.Counters` holds the result; `build` compiles the two small C helpers.
"""
