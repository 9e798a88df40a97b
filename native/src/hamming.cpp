#include "hamming.h"

#include <algorithm>

#include "thread_pool.h"
#include "vec_ops.h"

namespace ryz {

HammingHits hamming_topk(const uint8_t* sigs, int64_t bytes, const uint8_t* q, const int64_t* rows, int64_t m,
                         int64_t k, Isa isa) {
    HammingHits hits;
    k = std::min(k, m);
    if (k <= 0) return hits;
    const VecOps& ops = vec_ops_for(isa);
    std::vector<uint16_t> dist(static_cast<size_t>(m));
    parallel_rows(m, 16384, [&](int64_t i0, int64_t i1) { ops.hamming(sigs, bytes, q, rows, i0, i1, dist.data()); });
    // Distances are small integers: a histogram gives the k-th smallest in one pass, no sort of all m.
    const int64_t bits = bytes * 8;
    std::vector<int64_t> hist(static_cast<size_t>(bits + 1), 0);
    for (uint16_t d : dist) ++hist[d];
    int64_t threshold = 0, below = 0;
    while (below + hist[threshold] < k) below += hist[threshold++];
    std::vector<std::pair<uint16_t, int64_t>> pick;
    pick.reserve(static_cast<size_t>(below + hist[threshold]));
    for (int64_t i = 0; i < m; ++i)
        if (dist[i] <= threshold) pick.emplace_back(dist[i], rows ? rows[i] : i);
    std::partial_sort(pick.begin(), pick.begin() + k, pick.end());
    hits.rows.reserve(static_cast<size_t>(k));
    hits.distances.reserve(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
        hits.distances.push_back(pick[i].first);
        hits.rows.push_back(pick[i].second);
    }
    return hits;
}

void hamming_nearest(const uint8_t* sigs, int64_t n, int64_t bytes, const uint8_t* centroids, int64_t k,
                     int32_t* label, uint16_t* distance, Isa isa) {
    const VecOps& ops = vec_ops_for(isa);
    parallel_rows(n, 256, [&](int64_t r0, int64_t r1) {
        std::vector<uint16_t> d(static_cast<size_t>(k));
        for (int64_t r = r0; r < r1; ++r) {
            ops.hamming(centroids, bytes, sigs + r * bytes, nullptr, 0, k, d.data());
            const auto best = std::min_element(d.begin(), d.end());
            label[r] = static_cast<int32_t>(best - d.begin());
            distance[r] = *best;
        }
    });
}

}  // namespace ryz
