// Portable reference versions of the forward-pass helpers.
#include <cstring>

#include "vec_ops.h"

namespace ryz {
namespace {

float dot(const float* a, const float* b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

void axpy(float* y, float a, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void gemv_i8(const int8_t* W, const float* row_scale, int64_t n, const int8_t* x, float* y, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        const int8_t* w = W + r * n;
        int32_t s = 0;
        for (int64_t k = 0; k < n; ++k) s += int32_t(w[k]) * int32_t(x[k]);
        y[r] = row_scale[r] * static_cast<float>(s);
    }
}

void gemv_i4(const uint8_t* W, const float* row_scale, int64_t n, const int8_t* x, int32_t xsum, float* y,
             int64_t r0, int64_t r1) {
    (void)xsum;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* w = W + r * (n / kI4Block * kI4Bytes);
        int32_t s = 0;
        for (int64_t k = 0; k < n; ++k) s += i4_element(w, k) * int32_t(x[k]);
        y[r] = row_scale[r] * static_cast<float>(s);
    }
}

// Bit tricks, so the portable build needs no POPCNT instruction.
inline uint64_t popcount64_portable(uint64_t v) {
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (v * 0x0101010101010101ULL) >> 56;
}

void hamming(const uint8_t* sigs, int64_t bytes, const uint8_t* q, const int64_t* rows, int64_t i0, int64_t i1,
             uint16_t* out) {
    hamming_rows(sigs, bytes, q, rows, i0, i1, out,
                 [](uint64_t v) { return static_cast<uint32_t>(popcount64_portable(v)); });
}

}  // namespace

const VecOps& scalar_vec_ops() {
    static const VecOps ops{dot, axpy, gemv_i8, gemv_i4, hamming};
    return ops;
}

const VecOps& vec_ops_for(Isa isa) {
#if defined(RYZ_X86)
    if (isa == Isa::Avx512) return avx512_vec_ops();
    if (isa == Isa::Avx2) return avx2_vec_ops();
#endif
    (void)isa;
    return scalar_vec_ops();
}

}  // namespace ryz
