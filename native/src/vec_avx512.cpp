// AVX-512 VNNI versions of the forward-pass helpers where they pay: the 4-bit output head (a quarter of a 2B
// model's bytes per token). vpdpbusd multiplies the unsigned nibbles by the signed activations straight into int32
// lanes: 5 instructions per 64 bytes of a row, where the AVX2 path needs 16. Everything else is the AVX2 set.
#include <immintrin.h>

#include <vector>

#include "vec_ops.h"

namespace ryz {
namespace {

constexpr int64_t kChunk = 2 * kI4Block;  // weights in one 64-byte load of a row: two BlockI4
#ifndef RYZ_HEAD_PREFETCH
#define RYZ_HEAD_PREFETCH 8192
#endif
constexpr int64_t kHeadPrefetch = RYZ_HEAD_PREFETCH;
static_assert(2 * kI4Bytes == 64, "one zmm load holds two 4-bit blocks");

// The activations in the order one zmm load of a row needs them: per 128-weight chunk, the low nibbles of its two
// blocks pair with x[0..32) and x[64..96), the high nibbles with x[32..64) and x[96..128).
void arrange(const int8_t* x, int64_t n, int8_t* xp) {
    for (int64_t c = 0; c < n; c += kChunk) {
        __builtin_memcpy(xp + c, x + c, kI4Bytes);
        __builtin_memcpy(xp + c + kI4Bytes, x + c + kI4Block, kI4Bytes);
        __builtin_memcpy(xp + c + 2 * kI4Bytes, x + c + kI4Bytes, kI4Bytes);
        __builtin_memcpy(xp + c + 3 * kI4Bytes, x + c + kI4Block + kI4Bytes, kI4Bytes);
    }
}

// acc += unsigned a . signed b in place (see kernels_avx512.cpp: GCC copies accumulators around the intrinsic).
inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

template <int NR>
inline void rows_i4(const uint8_t* W, int64_t rb, int64_t n, const int8_t* xp, int64_t r, __m512i* acc) {
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int i = 0; i < NR; ++i) acc[i] = _mm512_setzero_si512();
    for (int64_t c = 0; c < n; c += kChunk) {
        const __m512i xl = _mm512_loadu_si512(xp + c), xh = _mm512_loadu_si512(xp + c + 2 * kI4Bytes);
        for (int i = 0; i < NR; ++i) {
            // Four rows are four streams: prefetch each ahead (measured: the head read ~35% slower without).
            _mm_prefetch(reinterpret_cast<const char*>(W + (r + i) * rb + c / 2 + kHeadPrefetch), _MM_HINT_T0);
            const __m512i w = _mm512_loadu_si512(W + (r + i) * rb + c / 2);
            acc[i] = dpbusd(acc[i], _mm512_and_si512(w, m4), xl);
            acc[i] = dpbusd(acc[i], _mm512_and_si512(_mm512_srli_epi16(w, 4), m4), xh);
        }
    }
}

void gemv_i4(const uint8_t* W, const float* row_scale, int64_t n, const int8_t* x, int32_t xsum, float* y,
             int64_t r0, int64_t r1) {
    if (n % kChunk != 0) {
        avx2_vec_ops().gemv_i4(W, row_scale, n, x, xsum, y, r0, r1);
        return;
    }
    thread_local std::vector<int8_t> xp;
    xp.resize(static_cast<size_t>(n));
    arrange(x, n, xp.data());
    const int64_t rb = n / 2;
    const float off = static_cast<float>(kI4Offset) * static_cast<float>(xsum);
    __m512i acc[4];
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        rows_i4<4>(W, rb, n, xp.data(), r, acc);
        for (int i = 0; i < 4; ++i)
            y[r + i] = row_scale[r + i] * (static_cast<float>(_mm512_reduce_add_epi32(acc[i])) - off);
    }
    for (; r < r1; ++r) {
        rows_i4<1>(W, rb, n, xp.data(), r, acc);
        y[r] = row_scale[r] * (static_cast<float>(_mm512_reduce_add_epi32(acc[0])) - off);
    }
}

VecOps make_ops() {
    VecOps ops = avx2_vec_ops();
    ops.gemv_i4 = gemv_i4;
    return ops;
}

}  // namespace

const VecOps& avx512_vec_ops() {
    static const VecOps ops = make_ops();
    return ops;
}

}  // namespace ryz
