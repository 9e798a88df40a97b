// AVX2/FMA versions of the forward-pass helpers. Compiled with -mavx2 -mfma only.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "vec_ops.h"

namespace ryz {
namespace {

#include "simd_helpers.inl"

float dot(const float* a, const float* b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum_ps(_mm256_add_ps(s0, s1));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

void axpy(float* y, float a, const float* x, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

// |x| (unsigned) times sign(x)*w (signed) through pmaddubsw: each int16 pair sum is at most
// 2 * 127 * 127 < 32767 because both operands stay in [-127, 127]; widened to int32 at once.
inline __m256i dot32(__m256i w, __m256i ax, __m256i x, __m256i acc) {
    const __m256i p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, x));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

void gemv_i8(const int8_t* W, const float* row_scale, int64_t n, const int8_t* x, float* y, int64_t r0, int64_t r1) {
    const int64_t nv = n / 32 * 32;
    auto ld = [](const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const int8_t* w = W + r * n;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t k = 0; k < nv; k += 32) {
            const __m256i xv = ld(x + k), ax = _mm256_abs_epi8(xv);
            a0 = dot32(ld(w + k), ax, xv, a0);
            a1 = dot32(ld(w + n + k), ax, xv, a1);
            a2 = dot32(ld(w + 2 * n + k), ax, xv, a2);
            a3 = dot32(ld(w + 3 * n + k), ax, xv, a3);
        }
        int32_t s[4] = {hsum_epi32(a0), hsum_epi32(a1), hsum_epi32(a2), hsum_epi32(a3)};
        for (int64_t k = nv; k < n; ++k)
            for (int j = 0; j < 4; ++j) s[j] += int32_t(w[j * n + k]) * int32_t(x[k]);
        for (int j = 0; j < 4; ++j) y[r + j] = row_scale[r + j] * static_cast<float>(s[j]);
    }
    for (; r < r1; ++r) {
        const int8_t* w = W + r * n;
        __m256i a0 = _mm256_setzero_si256();
        for (int64_t k = 0; k < nv; k += 32) {
            const __m256i xv = ld(x + k);
            a0 = dot32(ld(w + k), _mm256_abs_epi8(xv), xv, a0);
        }
        int32_t s = hsum_epi32(a0);
        for (int64_t k = nv; k < n; ++k) s += int32_t(w[k]) * int32_t(x[k]);
        y[r] = row_scale[r] * static_cast<float>(s);
    }
}

// Unsigned nibbles (0..15) times signed x through pmaddubsw: pair sums stay within 2 * 15 * 128, two units
// summed within int16; the -8 offset is applied once per row through sum(x).
inline __m256i dot64_u4(__m256i b, __m256i xa, __m256i xb, __m256i acc) {
    const __m256i m = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(b, m), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xa), _mm256_maddubs_epi16(hi, xb));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

// One BlockI4 per step: its low nibbles pair with x[k .. k+32), its high nibbles with x[k+32 .. k+64).
static_assert(kI4Bytes == 32 && kI4Block == 64, "one 32-byte load of nibbles, two of activations");

#ifndef RYZ_HEAD_PREFETCH_AVX2
#define RYZ_HEAD_PREFETCH_AVX2 4096
#endif
constexpr int64_t kHeadPrefetch = RYZ_HEAD_PREFETCH_AVX2;  // bytes ahead in the group's stream

// The head in the I4x4 layout (block_layouts.h): a group of four rows is one sequential stream of 128 bytes per
// block of 64 columns; rows outside whole groups of [r0, r1) go one at a time.
void gemv_i4(const uint8_t* W, const float* row_scale, int64_t n, const int8_t* x, int32_t xsum, float* y,
             int64_t r0, int64_t r1) {
    const int64_t blocks = n / kI4Block, rb = blocks * kI4Bytes;
    auto ld = [](const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
    const float off = static_cast<float>(kI4Offset) * static_cast<float>(xsum);
    auto one_row = [&](int64_t r) {
        __m256i a0 = _mm256_setzero_si256();
        for (int64_t b = 0; b < blocks; ++b) {
            const int8_t* xk = x + b * kI4Block;
            a0 = dot64_u4(ld(i4x4_block(W, rb, r, b)), ld(xk), ld(xk + kI4Bytes), a0);
        }
        y[r] = row_scale[r] * (static_cast<float>(hsum_epi32(a0)) - off);
    };
    int64_t r = r0;
    for (; r < r1 && r % kI4GroupRows != 0; ++r) one_row(r);
    for (; r + kI4GroupRows <= r1; r += kI4GroupRows) {
        const uint8_t* w = i4x4_block(W, rb, r, 0);
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t b = 0; b < blocks; ++b, w += kI4GroupRows * kI4Bytes) {
            const int8_t* xk = x + b * kI4Block;
            const __m256i xa = ld(xk), xb = ld(xk + kI4Bytes);
            if (kHeadPrefetch) {
                _mm_prefetch(reinterpret_cast<const char*>(w + kHeadPrefetch), _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(w + kHeadPrefetch + 64), _MM_HINT_T0);
            }
            a0 = dot64_u4(ld(w), xa, xb, a0);
            a1 = dot64_u4(ld(w + kI4Bytes), xa, xb, a1);
            a2 = dot64_u4(ld(w + 2 * kI4Bytes), xa, xb, a2);
            a3 = dot64_u4(ld(w + 3 * kI4Bytes), xa, xb, a3);
        }
        y[r] = row_scale[r] * (static_cast<float>(hsum_epi32(a0)) - off);
        y[r + 1] = row_scale[r + 1] * (static_cast<float>(hsum_epi32(a1)) - off);
        y[r + 2] = row_scale[r + 2] * (static_cast<float>(hsum_epi32(a2)) - off);
        y[r + 3] = row_scale[r + 3] * (static_cast<float>(hsum_epi32(a3)) - off);
    }
    for (; r < r1; ++r) one_row(r);
}

void hamming(const uint8_t* sigs, int64_t bytes, const uint8_t* q, const int64_t* rows, int64_t i0, int64_t i1,
             uint16_t* out) {
    hamming_rows(sigs, bytes, q, rows, i0, i1, out,
                 [](uint64_t v) { return static_cast<uint32_t>(__builtin_popcountll(v)); });
}

struct F {
    using V = __m256;
    static constexpr int kW = 8;
    static constexpr int kQRows = 6;   // scores: 6 rows x 2 vectors of accumulators, 2 of keys, 1 broadcast
    static constexpr int kPvRows = 6;  // weighted sum: 6 rows x 2 vectors of accumulators, 2 of V, 1 broadcast
    static constexpr int kPvVecs = 2;
    static V set1(float v) { return _mm256_set1_ps(v); }
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V div(V a, V b) { return _mm256_div_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
    static V min(V a, V b) { return _mm256_min_ps(a, b); }
    static V max(V a, V b) { return _mm256_max_ps(a, b); }
    static V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static V scale2(V p, V n) {  // p * 2^n for integral n in [-126, 127]
        return _mm256_castsi256_ps(
            _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23)));
    }
    static V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
    // kW int8 of round-half-even'ed values, saturated to [-128, 127] (pack with signed saturation).
    static void store_i8(int8_t* q, V r) {
        const __m256i i32 = _mm256_cvtps_epi32(r);
        const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(q), _mm_packs_epi16(i16, i16));
    }
    static float hsum(V a) { return hsum_ps(a); }
    static float hmax(V a) {
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        return _mm_cvtss_f32(m);
    }
};

#include "vec_simd.inl"

}  // namespace

const VecOps& avx2_vec_ops() {
    static const VecOps ops = [] {
        VecOps o{};
        o.dot = dot, o.axpy = axpy, o.gemv_i8 = gemv_i8, o.gemv_i4 = gemv_i4, o.hamming = hamming;
        o.attn_scores = attn_scores, o.attn_rows = F::kQRows, o.attn_wsum = attn_wsum, o.softmax_exp = softmax_exp;
        o.silu_mul = silu_mul, o.rms_norm = rms_norm, o.add = add, o.scale = scale;
        o.quantize_rows = quantize_rows, o.quantize_blocks = quantize_blocks;
        return o;
    }();
    return ops;
}

}  // namespace ryz
