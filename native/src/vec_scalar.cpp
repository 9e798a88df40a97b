// Portable reference versions of the forward-pass helpers.
#include <cmath>
#include <cstring>

#include "act_quant.h"
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
    const int64_t rb = n / kI4Block * kI4Bytes;
    for (int64_t r = r0; r < r1; ++r) {
        int32_t s = 0;
        for (int64_t b = 0; b < n / kI4Block; ++b) {
            const uint8_t* w = i4x4_block(W, rb, r, b);
            for (int64_t k = 0; k < kI4Block; ++k) s += i4_element(w, k) * int32_t(x[b * kI4Block + k]);
        }
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

void attn_scores(const float* Q, int64_t ldq, int nq, const float* Kt, int64_t hd, int64_t nk, float scale, float* S,
                 int64_t lds) {
    for (int i = 0; i < nq; ++i)
        for (int64_t t = 0; t < nk; ++t) {
            const float* k = Kt + (t / kKeyTile) * hd * kKeyTile + t % kKeyTile;
            float s = 0.0f;
            for (int64_t d = 0; d < hd; ++d) s += Q[i * ldq + d] * k[d * kKeyTile];
            S[i * lds + t] = s * scale;
        }
}

void attn_wsum(const float* P, int64_t ldp, int nq, const float* V, int64_t ldv, int64_t hd, int64_t nk, float* O,
               int64_t ldo) {
    for (int i = 0; i < nq; ++i) {
        float* o = O + i * ldo;
        for (int64_t d = 0; d < hd; ++d) o[d] = 0.0f;
        for (int64_t t = 0; t < nk; ++t) axpy(o, P[i * ldp + t], V + t * ldv, hd);
    }
}

float softmax_exp(float* x, int64_t n) {
    float mx = -INFINITY, s = 0.0f;
    for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
    for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - mx));
    return s;
}

void silu_mul(float* g, const float* u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void rms_norm(const float* x, const float* w, int64_t n, int64_t d, float eps, float* out) {
    for (int64_t t = 0; t < n; ++t) {
        const float* xr = x + t * d;
        float* o = out + t * d;
        double ss = 0.0;
        for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
        const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(d) + double(eps)));
        for (int64_t i = 0; i < d; ++i) o[i] = xr[i] * inv * w[i];
    }
}

void add(float* y, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void scale(float* y, float s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

}  // namespace

const VecOps& scalar_vec_ops() {
    static const VecOps ops = [] {
        VecOps o{};
        o.dot = dot, o.axpy = axpy, o.gemv_i8 = gemv_i8, o.gemv_i4 = gemv_i4, o.hamming = hamming;
        o.attn_scores = attn_scores, o.attn_rows = 1, o.attn_wsum = attn_wsum, o.softmax_exp = softmax_exp;
        o.silu_mul = silu_mul, o.rms_norm = rms_norm, o.add = add, o.scale = scale;
        o.quantize_rows = quantize_rows, o.quantize_blocks = quantize_blocks;
        return o;
    }();
    return ops;
}

const VecOps& vec_ops_for(Isa isa) {
#if defined(RYZ_X86)
    if (isa == Isa::Avx512) return avx512_vec_ops();
    if (isa == Isa::Avx2 || isa == Isa::AvxVnni) return avx2_vec_ops();  // no float or head kernel gains from VNNI
#endif
    (void)isa;
    return scalar_vec_ops();
}

}  // namespace ryz
