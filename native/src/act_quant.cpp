#include "act_quant.h"

#include <cmath>

namespace ryz {

// Written without libm calls (fmax, nearbyint are out-of-line at the baseline ISA) so the loops vectorize:
// adding and subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to an integer, half to even, in the
// default rounding mode; |x * s| <= 127 here.
void quantize_rows(const float* x, int64_t n, int64_t k, int8_t* q, float* scale) {
    constexpr float kRound = 12582912.0f;
    for (int64_t t = 0; t < n; ++t) {
        const float* xr = x + t * k;
        float amax = 0.0f;
        for (int64_t i = 0; i < k; ++i) {
            const float a = std::fabs(xr[i]);
            amax = a > amax ? a : amax;
        }
        const float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
        scale[t] = s;
        int8_t* qr = q + t * k;
        for (int64_t i = 0; i < k; ++i) {
            float v = (xr[i] * s + kRound) - kRound;
            v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
            qr[i] = static_cast<int8_t>(static_cast<int>(v));
        }
    }
}

}  // namespace ryz
