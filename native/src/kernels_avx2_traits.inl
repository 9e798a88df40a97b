// The AVX2 kernels' traits (kernels_simd.inl), shared by the AVX2 unit and the AVX-VNNI one (RYZ_AVXVNNI 1:
// vpdpbusd on 256-bit vectors, Intel's client cores since 2021 and AMD's since Zen 5, straight into int32 lanes
// where AVX2 needs pmaddubsw, an int16 add and periodic widening). Included inside the unit's anonymous namespace.
struct T {
    using V = __m256i;
    using VF = __m256;
#if RYZ_AVXVNNI
    using Acc = __m256i;  // int32 lanes (vpdpbusd)
#else
    using Acc = __m256i;  // int16 lanes
#endif
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
#if RYZ_AVXVNNI
    // In place through asm, as the AVX-512 unit does (GCC copies accumulators around the intrinsic).
    static Acc dot(Acc acc, V c, V x) {
        asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(c), "x"(x));
        return acc;
    }
    static V widen(Acc a) { return a; }
    static V widen4(Acc a) { return _mm256_srai_epi32(a, 2); }  // acc holds 4x the true sums
#else
    static Acc dot(Acc acc, V c, V x) { return _mm256_add_epi16(_mm256_maddubs_epi16(c, x), acc); }
    static V widen(Acc a) { return _mm256_madd_epi16(a, _mm256_set1_epi16(1)); }
    // acc holds 4x the true sums (codes masked in place by 0x0C): widen, then divide exactly.
    static V widen4(Acc a) { return _mm256_srai_epi32(_mm256_madd_epi16(a, _mm256_set1_epi16(1)), 2); }
#endif
    static V add32(V a, V b) { return _mm256_add_epi32(a, b); }
    static VF cvt(V a) { return _mm256_cvtepi32_ps(a); }
    static VF fmadd(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
    static VF row_scales(const float* d) { return _mm256_set1_ps(d[0]); }
    static void hsum32(V a, int32_t* out) { out[0] = hsum_epi32(a); }
    static void hsumf(VF a, float* out) { out[0] = hsum_ps(a); }

    // Outer-product kernels (I2_R16 GEMV, GEMM): a vector is 8 rows x 4 columns of codes; pmaddubsw gives each row
    // two int16 pair sums, widened to one int32 per row.
    using OV = __m256i;
    using OVF = __m256;
    using OAcc = __m256i;  // int16 lanes (AVX-VNNI: int32)
    static constexpr int kOVRows = 8;
#if RYZ_AVXVNNI
    static constexpr int64_t kAccSteps = int64_t(1) << 24;  // int32 lanes
#else
    static constexpr int64_t kAccSteps = 63;  // int16 lanes: 63 steps of 2 * 2 * 128 stay below 32767
#endif
    static constexpr int kPanelRows = 16;     // 2 vectors of rows ...
    static constexpr int kGemmToks = 6;       // ... x 6 tokens: 12 accumulators + 2 code vectors + 1 broadcast
    static constexpr int64_t kGemmSlice = 1024;  // K columns per slice (see kernels_simd.inl: kKc)
    // A period's sums scaled straight from the registers (gemm_block): timed on AVX2 only (Zen 3); the AVX-VNNI
    // and AVX-512 paths keep the path they were timed with.
#if RYZ_AVXVNNI
    static constexpr bool kPeriodSumsDirect = false;
#else
    static constexpr bool kPeriodSumsDirect = true;
#endif
    // Tokens per pass of the small-batch I2_R16 GEMV (measured at the 2B4T shape, 8 tokens on 2 threads: AVX2 126 ms
    // with 2, 140 with 4; AVX-VNNI 141 with 2, 116 with 4).
#if RYZ_AVXVNNI
    static constexpr int kR16MultiGroup = 4;
#else
    static constexpr int kR16MultiGroup = 2;
#endif
    static OV oset1_8(int8_t v) { return _mm256_set1_epi8(v); }
    static OV oand(OV a, OV b) { return _mm256_and_si256(a, b); }
    template <int N> static OV osrli16(OV a) { return _mm256_srli_epi16(a, N); }
    static OV oload(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static OV obcast(const int8_t* p) { int32_t v; __builtin_memcpy(&v, p, 4); return _mm256_set1_epi32(v); }
    static OAcc odot(OAcc acc, OV c, OV b) { return dot(acc, c, b); }
    static OV owiden(OAcc a) { return widen(a); }
    static OAcc oacc_zero() { return _mm256_setzero_si256(); }
    static OV ozero() { return _mm256_setzero_si256(); }
    static OVF ofzero() { return _mm256_setzero_ps(); }
    static OV oadd32(OV a, OV b) { return _mm256_add_epi32(a, b); }
    static OV osub32(OV a, OV b) { return _mm256_sub_epi32(a, b); }
    static OV oset1_32(int32_t v) { return _mm256_set1_epi32(v); }
    static OV oload32(const int32_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
    static void ostore32(int32_t* p, OV v) { _mm256_store_si256(reinterpret_cast<__m256i*>(p), v); }
    static OVF ocvt(OV a) { return _mm256_cvtepi32_ps(a); }
    static OVF ofsub(OVF a, OVF b) { return _mm256_sub_ps(a, b); }
    static OVF ofmul(OVF a, OVF b) { return _mm256_mul_ps(a, b); }
    static OVF ofmadd(OVF a, OVF b, OVF c) { return _mm256_fmadd_ps(a, b, c); }
    static OVF ofset1(float v) { return _mm256_set1_ps(v); }
    static OVF oloadf(const float* p) { return _mm256_loadu_ps(p); }
    static void ostore(float* p, OVF v) { _mm256_storeu_ps(p, v); }
    static OVF ocvtph(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
};

