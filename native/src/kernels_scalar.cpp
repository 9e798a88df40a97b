// The scalar reference kernels: decode a row to codes, then integer dot
// products per period, scaled. Portable C++; every SIMD path is checked against it.
#include <vector>

#include "formats.h"

namespace ryz {
namespace {

// Row r's dot product with one token. Without periods (one weight scale, per-token activations): one integer sum.
// With them: an integer sum per period of the activations, times the row's scale for that period's group and the
// period's activation scale (if any).
float row_dot(const MatView& m, int64_t r, const uint8_t* codes, const int8_t* q, int64_t period, const float* pscale) {
    if (period == 0) {
        int64_t s = 0;
        for (int64_t k = 0; k < m.cols; ++k) s += (static_cast<int32_t>(codes[k]) - 1) * q[k];
        return m.tensor_scale * static_cast<float>(s);
    }
    float acc = 0.0f;
    for (int64_t f = 0; f < m.cols / period; ++f) {
        int32_t s = 0;
        for (int64_t k = f * period; k < (f + 1) * period; ++k) s += (static_cast<int32_t>(codes[k]) - 1) * q[k];
        const float w = m.group == 0 || m.uniform_scale ? m.tensor_scale : group_scale(m, r, f * period / m.group);
        acc += w * (pscale != nullptr ? pscale[f] : 1.0f) * static_cast<float>(s);
    }
    return acc;
}

void gemv(const MatView& m, const ActRow& a, float* y, int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(m.cols));
    for (int64_t r = r0; r < r1; ++r) {
        decode_row_codes(m.fmt, row_at(m, r), m.cols, codes.data());
        y[r] = row_dot(m, r, codes.data(), a.q, a.period, a.pscale);
    }
}

void gemm(const MatView& m, const ActBatch& a, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(m.cols));
    const int64_t np = a.period > 0 ? m.cols / a.period : 0;
    for (int64_t r = r0; r < r1; ++r) {
        decode_row_codes(m.fmt, row_at(m, r), m.cols, codes.data());
        for (int64_t t = 0; t < a.n; ++t)
            Y[t * ldy + r] = row_dot(m, r, codes.data(), a.q + t * m.cols, a.period,
                                     a.pscale != nullptr ? a.pscale + t * np : nullptr);
    }
}

void gemv_multi(const MatView& m, const ActRow* a, int nt, float* const* y, int64_t r0, int64_t r1) {
    for (int t = 0; t < nt; ++t) gemv(m, a[t], y[t], r0, r1);
}

const KernelSet kSet{gemv, gemm, gemv_multi};

}  // namespace

const KernelSet& scalar_kernels() { return kSet; }

}  // namespace ryz
