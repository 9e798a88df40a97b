// AVX-512 kernels (F, BW, VL, DQ, VNNI): vpdpbusd straight into int32 lanes.
// GEMV packs two rows per vector (one 32-byte unit of each), so it shares the
// 32-byte unit layout and kernel order with AVX2; GEMM uses 64-wide vectors.
#include <immintrin.h>
#include <stdlib.h>

#include "kernel_api.h"

namespace ryz {
namespace {

#include "simd_helpers.inl"

struct T {
    using V = __m512i;
    using VF = __m512;
    using Acc = __m512i;  // int32 lanes
    static constexpr int kRows = 2;
    static constexpr int kGemvVecs = 2;
    static constexpr int kMultiGroup = 4;  // tokens per pass of the small-batch GEMV (32 registers)

    static V zero() { return _mm512_setzero_si512(); }
    static VF fzero() { return _mm512_setzero_ps(); }
    static Acc acc_zero() { return _mm512_setzero_si512(); }
    static V set1_8(int8_t v) { return _mm512_set1_epi8(v); }
    static V and_(V a, V b) { return _mm512_and_si512(a, b); }
    static V xor_(V a, V b) { return _mm512_xor_si512(a, b); }
    static V add8(V a, V b) { return _mm512_add_epi8(a, b); }
    static V cmpgt8(V a, V b) { return _mm512_movm_epi8(_mm512_cmpgt_epi8_mask(a, b)); }
    static V abs8(V a) { return _mm512_abs_epi8(a); }
    template <int N> static V srli16(V a) { return _mm512_srli_epi16(a, N); }
    static V bcast_x(const int8_t* p) {
        return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    static V pair(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
    static V load_unit(const uint8_t* const* p, int64_t off) {
        return pair(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[0] + off)),
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[1] + off)));
    }
    static V load_adjacent(const uint8_t* p) { return _mm512_loadu_si512(p); }  // two neighbouring rows' units
    static V load_unit_tq1_tail(const uint8_t* const* p, int64_t off) {
        return pair(load_tq1_tail(p[0] + off), load_tq1_tail(p[1] + off));
    }
    static Acc dot(Acc acc, V c, V x) { return gdot(acc, c, x); }
    static V widen(Acc a) { return a; }
    static V widen4(Acc a) { return _mm512_srai_epi32(a, 2); }  // acc holds 4x the true sums
    static V add32(V a, V b) { return _mm512_add_epi32(a, b); }
    static VF cvt(V a) { return _mm512_cvtepi32_ps(a); }
    static VF fmadd(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
    static VF row_scales(const float* d) { return _mm512_insertf32x8(_mm512_set1_ps(d[0]), _mm256_set1_ps(d[1]), 1); }
    static void hsum32(V a, int32_t* out) {
        out[0] = hsum_epi32(_mm512_castsi512_si256(a));
        out[1] = hsum_epi32(_mm512_extracti64x4_epi64(a, 1));
    }
    static void hsumf(VF a, float* out) {
        out[0] = hsum_ps(_mm512_castps512_ps256(a));
        out[1] = hsum_ps(_mm512_extractf32x8_ps(a, 1));
    }

    static constexpr int kGW = 64, kGemmRows = 4, kGemmToks = 4;
    static constexpr bool kGAccInt32 = true;  // GEMM accumulators are int32 lanes (no int16 flush needed)
    using GV = __m512i;
    using GVF = __m512;
    using GAcc = __m512i;
    static GV gzero() { return _mm512_setzero_si512(); }
    static GVF gfzero() { return _mm512_setzero_ps(); }
    static GAcc gacc_zero() { return _mm512_setzero_si512(); }
    static GV gload(const void* p) { return _mm512_loadu_si512(p); }
    // In-place through asm: with the intrinsic, GCC copies every accumulator before and after each vpdpbusd,
    // which doubled the GEMM micro-kernel's instructions (measured with perf annotate).
    static GAcc gdot(GAcc acc, GV c, GV x) {
        asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(c), "v"(x));
        return acc;
    }
    static GV gwiden(GAcc a) { return a; }
    static GV gadd32(GV a, GV b) { return _mm512_add_epi32(a, b); }
    static GVF gcvt(GV a) { return _mm512_cvtepi32_ps(a); }
    static GVF gfmadd(GVF a, GVF b, GVF c) { return _mm512_fmadd_ps(a, b, c); }
    static GV gfbits_add(GV a, GVF b) { return _mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), b)); }
    static GVF gasf(GV a) { return _mm512_castsi512_ps(a); }
    static GVF gfset1(float d) { return _mm512_set1_ps(d); }
    static int32_t ghsum32(GV a) { return _mm512_reduce_add_epi32(a); }
    static float ghsumf(GVF a) { return _mm512_reduce_add_ps(a); }
};

#include "kernels_simd.inl"

const KernelSet kSet{gemv, gemm, gemv_multi};

}  // namespace

const KernelSet& avx512_kernels() { return kSet; }

}  // namespace ryz
