// The scalar reference kernels: decode a row to codes, then integer dot
// products per scale block. Portable C++; every SIMD path is checked against it.
#include <vector>

#include "formats.h"

namespace ryz {
namespace {

// Row r's dot product with one token: integer sums per scale block, then scaled.
float row_dot(const MatView& m, const uint8_t* row, const uint8_t* codes, const int8_t* q) {
    if (is_i2(m.fmt)) {
        int64_t s = 0;
        for (int64_t k = 0; k < m.cols; ++k) s += (static_cast<int32_t>(codes[k]) - 1) * q[k];
        return m.tensor_scale * static_cast<float>(s);
    }
    float acc = 0.0f;
    for (int64_t b = 0; b < m.cols / kTQBlock; ++b) {
        int32_t s = 0;
        for (int k = 0; k < kTQBlock; ++k)
            s += (static_cast<int32_t>(codes[b * kTQBlock + k]) - 1) * q[b * kTQBlock + k];
        acc += f16_to_f32(tq_scale_bits(m.fmt, row, b)) * static_cast<float>(s);
    }
    return acc;
}

void gemv(const MatView& m, const ActRow& a, float* y, int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(m.cols));
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = row_at(m, r);
        decode_row_codes(m.fmt, row, m.cols, codes.data());
        y[r] = row_dot(m, row, codes.data(), a.q);
    }
}

void gemm(const MatView& m, const ActBatch& a, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(m.cols));
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = row_at(m, r);
        decode_row_codes(m.fmt, row, m.cols, codes.data());
        for (int64_t t = 0; t < a.n; ++t) Y[t * ldy + r] = row_dot(m, row, codes.data(), a.q + t * m.cols);
    }
}

void gemv_multi(const MatView& m, const ActRow* a, int nt, float* const* y, int64_t r0, int64_t r1) {
    for (int t = 0; t < nt; ++t) gemv(m, a[t], y[t], r0, r1);
}

const KernelSet kSet{gemv, gemm, gemv_multi};

}  // namespace

const KernelSet& scalar_kernels() { return kSet; }

}  // namespace ryz
