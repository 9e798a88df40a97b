// Portable reference versions of the forward-pass helpers.
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
        const uint8_t* w = W + r * (n / 2);
        int32_t s = 0;
        for (int64_t k = 0; k < n; ++k) s += i4_element(w, k) * int32_t(x[k]);
        y[r] = row_scale[r] * static_cast<float>(s);
    }
}

}  // namespace

const VecOps& scalar_vec_ops() {
    static const VecOps ops{dot, axpy, gemv_i8, gemv_i4};
    return ops;
}

const VecOps& vec_ops_for(Isa isa) {
#if defined(RYZ_X86)
    if (isa != Isa::Scalar) return avx2_vec_ops();
#endif
    (void)isa;
    return scalar_vec_ops();
}

}  // namespace ryz
