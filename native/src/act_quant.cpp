#include "act_quant.h"

#include <cmath>

namespace ryz {

// Written without libm calls (fmax, nearbyint are out-of-line at the baseline ISA) so the loops vectorize:
// adding and subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to an integer, half to even, in the
// default rounding mode; |x * s| <= 127 here.
static float abs_max(const float* x, int64_t k) {
    float amax = 0.0f;
    for (int64_t i = 0; i < k; ++i) {
        const float a = std::fabs(x[i]);
        amax = a > amax ? a : amax;
    }
    return amax > 1e-5f ? amax : 1e-5f;
}

// q = round_half_even(x * s), clamped.
static void round_to_int8(const float* x, int64_t k, float s, int8_t* q) {
    constexpr float kRound = 12582912.0f;
    for (int64_t i = 0; i < k; ++i) {
        float v = (x[i] * s + kRound) - kRound;
        v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
        q[i] = static_cast<int8_t>(static_cast<int>(v));
    }
}

void quantize_rows(const float* x, int64_t n, int64_t k, int8_t* q, float* scale) {
    for (int64_t t = 0; t < n; ++t) {
        scale[t] = 127.0f / abs_max(x + t * k, k);
        round_to_int8(x + t * k, k, scale[t], q + t * k);
    }
}

void quantize_blocks(const float* x, int64_t n, int64_t k, int64_t block, int8_t* q, float* d) {
    const int64_t nb = k / block;
    for (int64_t t = 0; t < n; ++t)
        for (int64_t b = 0; b < nb; ++b) {
            const float* xb = x + t * k + b * block;
            const float amax = abs_max(xb, block);
            d[t * nb + b] = amax / 127.0f;
            round_to_int8(xb, block, 127.0f / amax, q + t * k + b * block);
        }
}

}  // namespace ryz
