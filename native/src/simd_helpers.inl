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

// The second 32-byte unit of a TQ1_0 block: [qs[32..47] | qh[0..3] | zeros].
// Reads exactly the 20 bytes at q, never past the block.
inline __m256i load_tq1_tail(const uint8_t* q) {
    uint32_t qh;
    __builtin_memcpy(&qh, q + 16, 4);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))),
                                   _mm_cvtsi32_si128(static_cast<int>(qh)), 1);
}
