// AVX-512 VNNI versions of the forward-pass helpers where they pay: the 4-bit output head (a quarter of a 2B
// model's bytes per token). vpdpbusd multiplies the unsigned nibbles by the signed activations straight into int32
// lanes: 5 instructions per 64 bytes of a row, where the AVX2 path needs 16. Everything else is the AVX2 set.
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "vec_ops.h"

namespace ryz {
namespace {

#ifndef RYZ_HEAD_PREFETCH
#define RYZ_HEAD_PREFETCH 4096
#endif
constexpr int64_t kHeadPrefetch = RYZ_HEAD_PREFETCH;  // bytes ahead in the group's stream
static_assert(2 * kI4Bytes == 64, "one zmm load holds one block of two rows");

// acc += unsigned a . signed b in place (see kernels_avx512.cpp: GCC copies accumulators around the intrinsic).
inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

inline int32_t hsum256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

// The head in the I4x4 layout (block_layouts.h): one zmm load is block b of two rows of a group (lanes 0-7 the
// first row, 8-15 the second), met by the block's activations broadcast into both halves; lows and highs in
// separate accumulators, so four independent vpdpbusd chains per group.
void gemv_i4(const uint8_t* W, const float* row_scale, int64_t n, const int8_t* x, int32_t xsum, float* y,
             int64_t r0, int64_t r1) {
    const int64_t blocks = n / kI4Block, rb = blocks * kI4Bytes;
    const int64_t g0 = (r0 + kI4GroupRows - 1) / kI4GroupRows * kI4GroupRows;
    const int64_t g1 = g0 + (r1 > g0 ? (r1 - g0) / kI4GroupRows * kI4GroupRows : 0);
    if (g0 >= g1) {
        avx2_vec_ops().gemv_i4(W, row_scale, n, x, xsum, y, r0, r1);
        return;
    }
    if (r0 < g0) avx2_vec_ops().gemv_i4(W, row_scale, n, x, xsum, y, r0, g0);
    const float off = static_cast<float>(kI4Offset) * static_cast<float>(xsum);
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int64_t r = g0; r < g1; r += kI4GroupRows) {
        const uint8_t* w = i4x4_block(W, rb, r, 0);
        __m512i l01 = _mm512_setzero_si512(), h01 = l01, l23 = l01, h23 = l01;
        for (int64_t b = 0; b < blocks; ++b, w += kI4GroupRows * kI4Bytes) {
            const int8_t* xk = x + b * kI4Block;
            const __m512i xa = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xk)));
            const __m512i xb =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xk + kI4Bytes)));
            _mm_prefetch(reinterpret_cast<const char*>(w + kHeadPrefetch), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(w + kHeadPrefetch + 64), _MM_HINT_T0);
            const __m512i w01 = _mm512_loadu_si512(w), w23 = _mm512_loadu_si512(w + 2 * kI4Bytes);
            l01 = dpbusd(l01, _mm512_and_si512(w01, m4), xa);
            h01 = dpbusd(h01, _mm512_and_si512(_mm512_srli_epi16(w01, 4), m4), xb);
            l23 = dpbusd(l23, _mm512_and_si512(w23, m4), xa);
            h23 = dpbusd(h23, _mm512_and_si512(_mm512_srli_epi16(w23, 4), m4), xb);
        }
        const __m512i s01 = _mm512_add_epi32(l01, h01), s23 = _mm512_add_epi32(l23, h23);
        const int32_t d[4] = {hsum256(_mm512_castsi512_si256(s01)), hsum256(_mm512_extracti64x4_epi64(s01, 1)),
                              hsum256(_mm512_castsi512_si256(s23)), hsum256(_mm512_extracti64x4_epi64(s23, 1))};
        for (int i = 0; i < 4; ++i) y[r + i] = row_scale[r + i] * (static_cast<float>(d[i]) - off);
    }
    if (g1 < r1) avx2_vec_ops().gemv_i4(W, row_scale, n, x, xsum, y, g1, r1);
}

struct F {
    using V = __m512;
    static constexpr int kW = 16;
    static constexpr int kQRows = 12;  // scores: 12 rows x 2 vectors of accumulators, 2 of keys, 1 broadcast
    static constexpr int kPvRows = 6;  // weighted sum: 6 rows x 4 vectors of accumulators, 4 of V, 1 broadcast
    static constexpr int kPvVecs = 4;
    static V set1(float v) { return _mm512_set1_ps(v); }
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V div(V a, V b) { return _mm512_div_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
    static V min(V a, V b) { return _mm512_min_ps(a, b); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static V scale2(V p, V n) { return _mm512_scalef_ps(p, n); }
    static V abs(V a) { return _mm512_abs_ps(a); }
    static void store_i8(int8_t* q, V r) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(r)));
    }
    static float hsum(V a) { return _mm512_reduce_add_ps(a); }
    static float hmax(V a) { return _mm512_reduce_max_ps(a); }
};

#include "vec_simd.inl"

VecOps make_ops() {
    VecOps ops = avx2_vec_ops();
    ops.gemv_i4 = gemv_i4;
    ops.attn_scores = attn_scores;
    ops.attn_rows = F::kQRows;
    ops.rms_norm = rms_norm;
    ops.add = add;
    ops.scale = scale;
    ops.attn_wsum = attn_wsum;
    ops.softmax_exp = softmax_exp;
    ops.silu_mul = silu_mul;
    ops.quantize_rows = quantize_rows;
    ops.quantize_blocks = quantize_blocks;
    return ops;
}

}  // namespace

const VecOps& avx512_vec_ops() {
    static const VecOps ops = make_ops();
    return ops;
}

}  // namespace ryz
