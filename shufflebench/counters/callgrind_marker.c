/*
 * callgrind_marker: client requests to valgrind's callgrind, callable from Python through ctypes (the board runner
 * loads it in the counted process). Built by shufflebench (shufflebench/counters/build.py) with the system C compiler
 * against valgrind's own header:
 *     cc -O2 -shared -fPIC -fvisibility=hidden -o callgrind_marker.so callgrind_marker.c
 * Outside valgrind each request is a few no-op instructions.
 *
 * The counted process starts with instrumentation off (callgrind --instr-atstart=no: start-up runs several times
 * faster), turns it on before the warm-up inference, zeroes the counters before each counted inference and dumps
 * them after it (one dump file per inference), and turns instrumentation off again before exiting.
 */
#include <valgrind/callgrind.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT void shufflebench_instrument(void) { CALLGRIND_START_INSTRUMENTATION; }

EXPORT void shufflebench_zero(void) { CALLGRIND_ZERO_STATS; }

EXPORT void shufflebench_dump(void) { CALLGRIND_DUMP_STATS_AT("shufflebench inference"); }

EXPORT void shufflebench_finish(void) { CALLGRIND_STOP_INSTRUMENTATION; }
