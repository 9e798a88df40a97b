#include "membw.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "thread_pool.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ryz {

// Sums 64-bit words with four independent accumulators; the compiler vectorises
// it with the baseline ISA, which is plenty to saturate memory.
static uint64_t sum_words(const uint64_t* p, int64_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (int64_t i = 0; i + 4 <= n; i += 4) { a += p[i]; b += p[i + 1]; c += p[i + 2]; d += p[i + 3]; }
    return a ^ b ^ c ^ d;
}

static constexpr size_t kHuge = size_t(2) << 20;

void* alloc_weights(int64_t bytes) {
    const size_t n = (static_cast<size_t>(bytes) + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, n == 0 ? kHuge : n);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) madvise(p, n, MADV_HUGEPAGE);  // advisory: failure only costs speed
#endif
    return p;
}

void free_weights(void* p) { std::free(p); }

double measure_read_bandwidth(int64_t bytes, int threads, int reps) {
    if (bytes < (1 << 20) || threads < 1 || reps < 1) throw std::invalid_argument("bandwidth probe: bad arguments");
    const int64_t words = bytes / 8;
    auto* buf = static_cast<uint64_t*>(alloc_weights(words * 8));
    if (!buf) throw std::runtime_error("bandwidth probe: out of memory");
    std::memset(buf, 1, static_cast<size_t>(words * 8));
    ThreadPool& pool = ThreadPool::instance();
    const int saved = pool.size();
    pool.resize(threads);
    volatile uint64_t sink = 0;
    double best = 0.0;
    const int64_t per = (words / threads + 7) / 8 * 8;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.run(threads, [&](int i) {
            const int64_t w0 = i * per, w1 = w0 + per < words ? w0 + per : words;
            if (w0 < w1) sink = sink + sum_words(buf + w0, w1 - w0);
        });
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double gbs = static_cast<double>(words * 8) / s / 1e9;
        if (gbs > best) best = gbs;
    }
    pool.resize(saved);
    free_weights(buf);
    return best;
}

}  // namespace ryz
