// AVX2-width helpers shared by the SIMD kernel units, included inside each
// unit's anonymous namespace (internal linkage: no copy crosses ISA units).

inline int32_t hsum_epi32(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

inline float hsum_ps(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Unit 1 of the TQ1_0 block at `block`: parts 1 and 2 side by side, [qs[32..47] | qh[0..3] | zeros]
// (block_layouts.h). Reads exactly those 20 bytes, never past the block.
inline __m256i load_tq1_tail(const uint8_t* block) {
    static_assert(kTQ1Parts[1].lanes == 16 && kTQ1Parts[2].lanes == 4, "one 16-byte and one 4-byte load");
    uint32_t qh;
    __builtin_memcpy(&qh, block + kTQ1Parts[2].byte0, sizeof qh);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + kTQ1Parts[1].byte0));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(qs), _mm_cvtsi32_si128(static_cast<int>(qh)), 1);
}
