#include "act_quant.h"

#include <cmath>

namespace ryz {

void quantize_rows(const float* x, int64_t n, int64_t k, int8_t* q, float* scale) {
    for (int64_t t = 0; t < n; ++t) {
        const float* xr = x + t * k;
        float amax = 0.0f;
        for (int64_t i = 0; i < k; ++i) amax = std::fmax(amax, std::fabs(xr[i]));
        const float s = 127.0f / std::fmax(amax, 1e-5f);
        scale[t] = s;
        for (int64_t i = 0; i < k; ++i) {
            float v = std::nearbyint(xr[i] * s);  // default rounding mode: half to even
            v = std::fmin(std::fmax(v, -128.0f), 127.0f);
            q[t * k + i] = static_cast<int8_t>(v);
        }
    }
}

}  // namespace ryz
