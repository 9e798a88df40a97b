// Nearest binary signatures by Hamming distance: the workspace index's first-stage search.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu.h"

namespace ryz {

struct HammingHits {
    std::vector<int64_t> rows;  // rows of the signature matrix, nearest first (ties by row)
    std::vector<int32_t> distances;
};

// The k rows of sigs [n, bytes] nearest to q, among the given rows (all n when rows is null, m = n).
// bytes: a multiple of 8, at most MAX_SIGNATURE_BYTES. Threads over rows from the kernel pool.
constexpr int64_t MAX_SIGNATURE_BYTES = 512;
HammingHits hamming_topk(const uint8_t* sigs, int64_t bytes, const uint8_t* q, const int64_t* rows, int64_t m,
                         int64_t k, Isa isa);

// For every row of sigs [n, bytes], the nearest of the k centroids [k, bytes] (lowest index on ties).
void hamming_nearest(const uint8_t* sigs, int64_t n, int64_t bytes, const uint8_t* centroids, int64_t k,
                     int32_t* label, uint16_t* distance, Isa isa);

}  // namespace ryz
