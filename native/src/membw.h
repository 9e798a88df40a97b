// Measures the machine's memory read bandwidth with the kernel thread pool.
#pragma once
#include <cstdint>

namespace ryz {

// Reads a buffer of `bytes` (far larger than the caches) `reps` times with
// `threads` threads; returns the best rate in GB/s (1e9 bytes per second).
double measure_read_bandwidth(int64_t bytes, int threads, int reps);

// Memory for weights that are streamed once per token: 2 MiB aligned and
// advised for transparent huge pages, so decode does not miss the TLB on every
// page. Returns nullptr on failure; release with free_weights.
void* alloc_weights(int64_t bytes);
void free_weights(void* p);

}  // namespace ryz
