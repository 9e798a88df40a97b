// AVX2 kernels: pmaddubsw into int16 lanes (widened before they can
// overflow), one row per vector. Compiled with -mavx2 -mfma -mf16c only.
#include <immintrin.h>
#include <stdlib.h>

#include "kernel_api.h"

namespace ryz {
namespace {

#include "simd_helpers.inl"

struct T {
    using V = __m256i;
    using VF = __m256;
    using Acc = __m256i;  // int16 lanes
    static constexpr int kRows = 1;      // rows per GEMV vector
    static constexpr int kGemvVecs = 4;  // vectors per GEMV row group
    static constexpr int kMultiGroup = 2;  // tokens per pass of the small-batch GEMV (register budget)

    static V zero() { return _mm256_setzero_si256(); }
    static VF fzero() { return _mm256_setzero_ps(); }
    static Acc acc_zero() { return _mm256_setzero_si256(); }
    static V set1_8(int8_t v) { return _mm256_set1_epi8(v); }
    static V and_(V a, V b) { return _mm256_and_si256(a, b); }
    static V xor_(V a, V b) { return _mm256_xor_si256(a, b); }
    static V add8(V a, V b) { return _mm256_add_epi8(a, b); }
    static V cmpgt8(V a, V b) { return _mm256_cmpgt_epi8(a, b); }
    static V abs8(V a) { return _mm256_abs_epi8(a); }
    template <int N> static V srli16(V a) { return _mm256_srli_epi16(a, N); }
    static V bcast_x(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static V load_unit(const uint8_t* const* p, int64_t off) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[0] + off));
    }
    static V load_unit_tq1_tail(const uint8_t* const* p, int64_t off) { return load_tq1_tail(p[0] + off); }
    static V load_adjacent(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static Acc dot(Acc acc, V c, V x) { return _mm256_add_epi16(_mm256_maddubs_epi16(c, x), acc); }
    static V widen(Acc a) { return _mm256_madd_epi16(a, _mm256_set1_epi16(1)); }
    // acc holds 4x the true sums (codes masked in place by 0x0C): widen, then divide exactly.
    static V widen4(Acc a) { return _mm256_srai_epi32(_mm256_madd_epi16(a, _mm256_set1_epi16(1)), 2); }
    static V add32(V a, V b) { return _mm256_add_epi32(a, b); }
    static VF cvt(V a) { return _mm256_cvtepi32_ps(a); }
    static VF fmadd(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
    static VF row_scales(const float* d) { return _mm256_set1_ps(d[0]); }
    static void hsum32(V a, int32_t* out) { out[0] = hsum_epi32(a); }
    static void hsumf(VF a, float* out) { out[0] = hsum_ps(a); }

    // GEMM: natural-order vectors of 32 codes / activations.
    static constexpr int kGW = 32, kGemmRows = 2, kGemmToks = 4;
    static constexpr bool kGAccInt32 = false;  // GEMM accumulators are int32 lanes (no int16 flush needed)
    using GV = __m256i;
    using GVF = __m256;
    using GAcc = __m256i;
    static GV gzero() { return _mm256_setzero_si256(); }
    static GVF gfzero() { return _mm256_setzero_ps(); }
    static GAcc gacc_zero() { return _mm256_setzero_si256(); }
    static GV gload(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static GAcc gdot(GAcc acc, GV c, GV x) { return dot(acc, c, x); }
    static GV gwiden(GAcc a) { return widen(a); }
    static GV gadd32(GV a, GV b) { return _mm256_add_epi32(a, b); }
    static GVF gcvt(GV a) { return _mm256_cvtepi32_ps(a); }
    static GVF gfmadd(GVF a, GVF b, GVF c) { return _mm256_fmadd_ps(a, b, c); }
    // float lanes kept in an integer vector slot of the GEMM sums
    static GV gfbits_add(GV a, GVF b) { return _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a), b)); }
    static GVF gasf(GV a) { return _mm256_castsi256_ps(a); }
    static GVF gfset1(float d) { return _mm256_set1_ps(d); }
    static int32_t ghsum32(GV a) { return hsum_epi32(a); }
    static float ghsumf(GVF a) { return hsum_ps(a); }
};

#include "kernels_simd.inl"

const KernelSet kSet{gemv, gemm, gemv_multi};

}  // namespace

const KernelSet& avx2_kernels() { return kSet; }

}  // namespace ryz
