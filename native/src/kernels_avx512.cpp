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
    static Acc dot(Acc acc, V c, V x) {
        asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(c), "v"(x));
        return acc;
    }
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

    // Outer-product kernels (I2_R16 GEMV, GEMM): a vector is 16 rows x 4 columns of codes; vpdpbusd adds each row's
    // dot product into its int32 lane, which cannot overflow at any real width.
    using OV = __m512i;
    using OVF = __m512;
    using OAcc = __m512i;  // int32 lanes
    static constexpr int kOVRows = 16;
    static constexpr int64_t kAccSteps = int64_t(1) << 24;
    static constexpr int kPanelRows = 32;     // 2 vectors of rows ...
    static constexpr int kGemmToks = 8;       // ... x 8 tokens: 16 accumulators + 2 code vectors + 1 broadcast
    static constexpr int64_t kGemmSlice = 1024;  // K columns per slice (see kernels_simd.inl: kKc)
    static constexpr bool kPeriodSumsDirect = false;  // (see the AVX2 traits: untimed here)
    static constexpr int kR16MultiGroup = 4;
    static OV oset1_8(int8_t v) { return _mm512_set1_epi8(v); }
    static OV oand(OV a, OV b) { return _mm512_and_si512(a, b); }
    template <int N> static OV osrli16(OV a) { return _mm512_srli_epi16(a, N); }
    static OV oload(const uint8_t* p) { return _mm512_loadu_si512(p); }
    static OV obcast(const int8_t* p) { int32_t v; __builtin_memcpy(&v, p, 4); return _mm512_set1_epi32(v); }
    // In-place through asm: with the intrinsic, GCC copies every accumulator before and after each vpdpbusd
    // (measured with perf annotate on the previous GEMM).
    static OAcc odot(OAcc acc, OV c, OV b) {
        asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(c), "v"(b));
        return acc;
    }
    static OV owiden(OAcc a) { return a; }
    static OAcc oacc_zero() { return _mm512_setzero_si512(); }
    static OV ozero() { return _mm512_setzero_si512(); }
    static OVF ofzero() { return _mm512_setzero_ps(); }
    static OV oadd32(OV a, OV b) { return _mm512_add_epi32(a, b); }
    static OV osub32(OV a, OV b) { return _mm512_sub_epi32(a, b); }
    static OV oset1_32(int32_t v) { return _mm512_set1_epi32(v); }
    static OV oload32(const int32_t* p) { return _mm512_load_si512(p); }
    static void ostore32(int32_t* p, OV v) { _mm512_store_si512(p, v); }
    static OVF ocvt(OV a) { return _mm512_cvtepi32_ps(a); }
    static OVF ofsub(OVF a, OVF b) { return _mm512_sub_ps(a, b); }
    static OVF ofmul(OVF a, OVF b) { return _mm512_mul_ps(a, b); }
    static OVF ofmadd(OVF a, OVF b, OVF c) { return _mm512_fmadd_ps(a, b, c); }
    static OVF ofset1(float v) { return _mm512_set1_ps(v); }
    static OVF oloadf(const float* p) { return _mm512_loadu_ps(p); }
    static void ostore(float* p, OVF v) { _mm512_storeu_ps(p, v); }
    static OVF ocvtph(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
};

#include "kernels_simd.inl"

const KernelSet kSet{gemv, gemm, gemv_multi};

}  // namespace

const KernelSet& avx512_kernels() { return kSet; }

}  // namespace ryz
