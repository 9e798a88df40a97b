// SIMD kernel bodies, written once against a traits struct `T` and included by
// kernels_avx2.cpp and kernels_avx512.cpp inside an anonymous namespace.
//
// Dot products use codes c = w + 1 in {0,1,2} as the unsigned operand and the
// int8 activations as the signed one (pmaddubsw / vpdpbusd), then subtract the
// activation sum: sum(w*x) = sum(c*x) - sum(x).
//
// GEMV walks each row in 32-byte units of packed weights, extracting 32 codes
// at a time, and reads activations in the packing's kernel order (formats.h),
// which the driver prepares once per call. A vector holds T::kRows rows' units.
//
// GEMM unpacks a panel of rows into natural-order codes once, then runs an
// R x NT register-blocked micro-kernel over all tokens.

using V = typename T::V;
using VF = typename T::VF;
using Acc = typename T::Acc;

inline uint16_t load_u16(const uint8_t* p) { uint16_t v; __builtin_memcpy(&v, p, 2); return v; }
inline float half_at(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

// Byte offset of 2-bit unit u from its row's start (row_at): a TQ2_0 block holds two units of codes, then its
// scale; an I2_S group is one unit; an I2_S4 row's units are a group of four rows' units apart.
template <Format F>
inline int64_t unit_offset(int64_t u) {
    static_assert(F != Format::TQ1_0, "TQ1_0 has no 2-bit units");
    if (F == Format::TQ2_0) return (u >> 1) * kTQ2Bytes + (u & 1) * kUnitBytes;
    return u * (F == Format::I2_S4 ? kI2S4UnitStride : kI2Bytes);
}
inline int64_t unit_offset(Format f, int64_t u) {
    if (f == Format::TQ2_0) return unit_offset<Format::TQ2_0>(u);
    return f == Format::I2_S4 ? unit_offset<Format::I2_S4>(u) : unit_offset<Format::I2_S>(u);
}

// -------------------------------------------------------------------- GEMV

// Rows r .. r+n-1 of the group; rows past r1 repeat the last one (results discarded). I2_S4 groups start at a
// multiple of four (see first_row) and take the padding rows as they are, so R neighbours share one load.
template <int NR>
inline void group_rows(const MatView& m, int64_t r, int64_t r1, const uint8_t* (&p)[NR]) {
    if (m.fmt == Format::I2_S4)
        for (int i = 0; i < NR; ++i) p[i] = row_at(m, r + i);
    else
        for (int i = 0; i < NR; ++i) p[i] = row_at(m, (r + i < r1) ? r + i : r1 - 1);
}
// Where a walk over rows [r0, r1) starts: I2_S4 at its group's first row (rows before r0 are computed, not stored).
inline int64_t first_row(const MatView& m, int64_t r0) {
    return m.fmt == Format::I2_S4 ? r0 - r0 % kI2S4Rows : r0;
}
// R rows' units at off: I2_S4 rows of a group are neighbours, one load; else one load per row.
template <Format F>
inline V load_rows(const uint8_t* const* p, int64_t off) {
    static_assert(F != Format::I2_S4 || kI2S4Rows % T::kRows == 0, "a vector's rows lie in one group");
    if (F == Format::I2_S4) return T::load_adjacent(p[0] + off);
    return T::load_unit(p, off);
}

// Weights stream from memory once per token: prefetch this far ahead in every row.
#ifndef RYZ_PREFETCH
#define RYZ_PREFETCH 1024
#endif
constexpr int64_t kPrefetch = RYZ_PREFETCH;
// I2_S4: bytes ahead in the group's one stream.
#ifndef RYZ_PREFETCH_I2S4
#define RYZ_PREFETCH_I2S4 4096
#endif
constexpr int64_t kPrefetchI2S4 = RYZ_PREFETCH_I2S4;

// TQ2_0 (kBlockScales) and I2_S: 128 weights per 32-byte unit.
// Codes are extracted with 5 operations per unit instead of 7: masks 0x03 and
// 0x0C on the unit and on the unit shifted by 4. The 0x0C codes are 4x too
// large, so they feed a second accumulator that is divided by 4 (exactly) when widened.
// Int16 bounds: per unit each lane gains at most 2 * 2*(3*4)*128 = 6144, so
// four units (one flush period) stay below 32767.
// F: TQ2_0 rows (BlockTQ2), I2_S rows (BlockI2S) or I2_S4 groups.
// kBlockScales: apply each block's f16 scale (TQ2_0); else one scale (m.tensor_scale) at the end.
template <int NV, Format F, bool kBlockScales>
void gemv_2bit(const MatView& m, const ActRow& a, float* y, int64_t r0, int64_t r1) {
    constexpr int R = T::kRows, NR = NV * R;
    static_assert(F != Format::I2_S4 || kI2S4Rows % NR == 0 || NR % kI2S4Rows == 0, "row groups align");
    constexpr int64_t kFlushUnits = kBlockScales ? 2 : 4;
    const int64_t units = m.cols / kUnitCodes2;
    const V lo2 = T::set1_8(0x03), hi2 = T::set1_8(0x0c);
    for (int64_t r = first_row(m, r0); r < r1; r += NR) {
        const uint8_t* p[NR];
        group_rows<NR>(m, r, r1, p);
        Acc acc1[NV], acc4[NV];
        V iacc[NV];
        VF facc[NV];
        float corr[NR] = {};
        for (int v = 0; v < NV; ++v) {
            acc1[v] = T::acc_zero(); acc4[v] = T::acc_zero(); iacc[v] = T::zero(); facc[v] = T::fzero();
        }
        for (int64_t u = 0; u < units; ++u) {
            const int64_t off = unit_offset<F>(u);
            const int8_t* xk = a.qk + u * kUnitCodes2;
            const V x0 = T::bcast_x(xk), x1 = T::bcast_x(xk + kUnitBytes), x2 = T::bcast_x(xk + 2 * kUnitBytes),
                    x3 = T::bcast_x(xk + 3 * kUnitBytes);
            if (F == Format::I2_S4) {  // one stream: the group's next lines
                for (int i = 0; i < NR; i += 2)
                    _mm_prefetch(reinterpret_cast<const char*>(p[i] + off + kPrefetchI2S4), _MM_HINT_T0);
            } else if ((u & 1) == 0) {
                for (int i = 0; i < NR; ++i) _mm_prefetch(reinterpret_cast<const char*>(p[i] + off + kPrefetch), _MM_HINT_T0);
            }
            for (int v = 0; v < NV; ++v) {
                const V w = load_rows<F>(p + v * R, off);
                const V w4 = T::template srli16<4>(w);
                acc1[v] = T::dot(acc1[v], T::and_(w, lo2), x0);
                acc4[v] = T::dot(acc4[v], T::and_(w, hi2), x1);
                acc1[v] = T::dot(acc1[v], T::and_(w4, lo2), x2);
                acc4[v] = T::dot(acc4[v], T::and_(w4, hi2), x3);
            }
            if ((u + 1) % kFlushUnits != 0 && u + 1 != units) continue;
            for (int v = 0; v < NV; ++v) {
                const V s = T::add32(T::widen(acc1[v]), T::widen4(acc4[v]));
                acc1[v] = T::acc_zero();
                acc4[v] = T::acc_zero();
                if (kBlockScales) {  // end of a 256-block: apply its f16 scale
                    const int64_t b = u >> 1;
                    float d[R];
                    for (int i = 0; i < R; ++i) {
                        d[i] = half_at(p[v * R + i] + b * kTQ2Bytes + kTQ2ScaleAt);
                        corr[v * R + i] += d[i] * static_cast<float>(a.bsum[b]);
                    }
                    facc[v] = T::fmadd(T::cvt(s), T::row_scales(d), facc[v]);
                } else {
                    iacc[v] = T::add32(iacc[v], s);
                }
            }
        }
        for (int v = 0; v < NV; ++v) {
            if (kBlockScales) {
                float s[R];
                T::hsumf(facc[v], s);
                for (int i = 0; i < R; ++i)
                    if (r + v * R + i < r1) y[r + v * R + i] = s[i] - corr[v * R + i];
            } else {
                int32_t s[R];
                T::hsum32(iacc[v], s);
                for (int i = 0; i < R; ++i) {
                    const int64_t row = r + v * R + i;
                    if (row >= r0 && row < r1) y[row] = m.tensor_scale * static_cast<float>(s[i] - a.total);
                }
            }
        }
    }
}

// Base-3 digits of TQ1_0 bytes. With q' = q ^ 0x80 (q shifted into the signed
// range), multiplying by 3 mod 256 commutes with the shift, and the digit
// ((q*3) >> 8) = [q >= 86] + [q >= 171] becomes two signed compares.
inline V tq1_digit(V qs) {
    const V m1 = T::cmpgt8(qs, T::set1_8(-43));
    const V m2 = T::cmpgt8(qs, T::set1_8(42));
    return T::abs8(T::add8(m1, m2));
}
inline V mul3(V q) { return T::add8(T::add8(q, q), q); }

// Kernel-order activations per TQ1_0 block: unit 0's five digit planes, then unit 1's (formats.cpp: make_order).
constexpr int64_t kTQ1Slots = 2 * kTQ1Digits * kUnitBytes;

template <int NV>
void gemv_tq1(const MatView& m, const ActRow& a, float* y, int64_t r0, int64_t r1) {
    constexpr int R = T::kRows, NR = NV * R;
    const int64_t blocks = m.cols / kTQBlock;
    const V flip = T::set1_8(static_cast<int8_t>(0x80));
    for (int64_t r = r0; r < r1; r += NR) {
        const uint8_t* p[NR];
        group_rows<NR>(m, r, r1, p);
        VF facc[NV];
        float corr[NR] = {};
        for (int v = 0; v < NV; ++v) facc[v] = T::fzero();
        for (int64_t b = 0; b < blocks; ++b) {
            const int64_t off = b * kTQ1Bytes;
            const int8_t* xk = a.qk + b * kTQ1Slots;
            Acc acc[NV];
            V q0[NV], q1[NV];
            for (int i = 0; i < NR; ++i)
                _mm_prefetch(reinterpret_cast<const char*>(p[i] + off + kPrefetch), _MM_HINT_T0);
            for (int v = 0; v < NV; ++v) {
                acc[v] = T::acc_zero();
                q0[v] = T::xor_(T::load_unit(p + v * R, off), flip);
                q1[v] = T::xor_(T::load_unit_tq1_tail(p + v * R, off), flip);
            }
            for (int n = 0; n < kTQ1Digits; ++n) {
                const V x0 = T::bcast_x(xk + kUnitBytes * n), x1 = T::bcast_x(xk + kTQ1Slots / 2 + kUnitBytes * n);
                for (int v = 0; v < NV; ++v) {
                    if (n > 0) { q0[v] = mul3(q0[v]); q1[v] = mul3(q1[v]); }
                    acc[v] = T::dot(acc[v], tq1_digit(q0[v]), x0);
                    acc[v] = T::dot(acc[v], tq1_digit(q1[v]), x1);
                }
            }
            for (int v = 0; v < NV; ++v) {
                float d[R];
                for (int i = 0; i < R; ++i) {
                    d[i] = half_at(p[v * R + i] + off + kTQ1ScaleAt);
                    corr[v * R + i] += d[i] * static_cast<float>(a.bsum[b]);
                }
                facc[v] = T::fmadd(T::cvt(T::widen(acc[v])), T::row_scales(d), facc[v]);
            }
        }
        for (int v = 0; v < NV; ++v) {
            float s[R];
            T::hsumf(facc[v], s);
            for (int i = 0; i < R; ++i)
                if (r + v * R + i < r1) y[r + v * R + i] = s[i] - corr[v * R + i];
        }
    }
}

void gemv(const MatView& m, const ActRow& a, float* y, int64_t r0, int64_t r1) {
    switch (m.fmt) {
        case Format::TQ2_0:
            if (m.uniform_scale) gemv_2bit<T::kGemvVecs, Format::TQ2_0, false>(m, a, y, r0, r1);
            else gemv_2bit<T::kGemvVecs, Format::TQ2_0, true>(m, a, y, r0, r1);
            break;
        case Format::I2_S: gemv_2bit<T::kGemvVecs, Format::I2_S, false>(m, a, y, r0, r1); break;
        case Format::I2_S4: gemv_2bit<T::kGemvVecs, Format::I2_S4, false>(m, a, y, r0, r1); break;
        case Format::TQ1_0: gemv_tq1<T::kGemvVecs>(m, a, y, r0, r1); break;
    }
}

// Small batches (a draft-verify pass, a short append): the GEMV walk with each unit's codes extracted once per
// group of tokens. A row's packed units (at most a few KiB) stay in L1 while every group of tokens runs over them,
// so the weights stream from memory once for all tokens (the GEMM's unpacking costs more than it saves at these
// sizes). Integer paths only: I2_S, and TQ2_0 whose blocks share one scale.
// Tokens per group: with more, the accumulators no longer fit in the vector registers and spill.
constexpr int kMultiGroup = T::kMultiGroup;

// The int32 lane sums of rows p[0..R) against NT tokens.
template <int NT, Format F>
inline void multi_rows_dot(const uint8_t* const* p, int64_t units, const ActRow* a, bool prefetch, V* out) {
    const V lo2 = T::set1_8(0x03), hi2 = T::set1_8(0x0c);
    Acc acc1[NT], acc4[NT];
    for (int j = 0; j < NT; ++j) { acc1[j] = T::acc_zero(); acc4[j] = T::acc_zero(); out[j] = T::zero(); }
    for (int64_t u = 0; u < units; ++u) {
        const int64_t off = unit_offset<F>(u);
        if (prefetch && (u & 1) == 0)
            for (int i = 0; i < T::kRows; ++i)
                _mm_prefetch(reinterpret_cast<const char*>(p[i] + off + kPrefetch), _MM_HINT_T0);
        const V w = load_rows<F>(p, off);
        const V w4 = T::template srli16<4>(w);
        const V c0 = T::and_(w, lo2), c1 = T::and_(w, hi2), c2 = T::and_(w4, lo2), c3 = T::and_(w4, hi2);
        for (int j = 0; j < NT; ++j) {
            const int8_t* xk = a[j].qk + u * kUnitCodes2;
            acc1[j] = T::dot(acc1[j], c0, T::bcast_x(xk));
            acc4[j] = T::dot(acc4[j], c1, T::bcast_x(xk + kUnitBytes));
            acc1[j] = T::dot(acc1[j], c2, T::bcast_x(xk + 2 * kUnitBytes));
            acc4[j] = T::dot(acc4[j], c3, T::bcast_x(xk + 3 * kUnitBytes));
        }
        if ((u + 1) % 4 != 0 && u + 1 != units) continue;  // int16 lanes hold 4 units (see gemv_2bit)
        for (int j = 0; j < NT; ++j) {
            out[j] = T::add32(out[j], T::add32(T::widen(acc1[j]), T::widen4(acc4[j])));
            acc1[j] = T::acc_zero();
            acc4[j] = T::acc_zero();
        }
    }
}

template <Format F>
void gemv_multi_2bit(const MatView& m, const ActRow* a, int nt, float* const* y, int64_t r0, int64_t r1) {
    constexpr int R = T::kRows, G = kMultiGroup;
    const int64_t units = m.cols / kUnitCodes2;
    for (int64_t r = first_row(m, r0); r < r1; r += R) {
        const uint8_t* p[R];
        group_rows<R>(m, r, r1, p);
        for (int j0 = 0; j0 < nt; j0 += G) {
            V sums[G];
            const int g = nt - j0 < G ? nt - j0 : G;
            const bool first = j0 == 0;  // the first group reads the rows from memory (and prefetches ahead)
            switch (g) {
                case 1: multi_rows_dot<1, F>(p, units, a + j0, first, sums); break;
                case 2: multi_rows_dot<2, F>(p, units, a + j0, first, sums); break;
                case 3: multi_rows_dot<3, F>(p, units, a + j0, first, sums); break;
                default: multi_rows_dot<G < 4 ? G : 4, F>(p, units, a + j0, first, sums); break;
            }
            for (int j = 0; j < g; ++j) {
                int32_t s[R];
                T::hsum32(sums[j], s);
                for (int i = 0; i < R; ++i)
                    if (r + i >= r0 && r + i < r1)
                        y[j0 + j][r + i] = m.tensor_scale * static_cast<float>(s[i] - a[j0 + j].total);
            }
        }
    }
}

void gemv_multi(const MatView& m, const ActRow* a, int nt, float* const* y, int64_t r0, int64_t r1) {
    if (m.fmt == Format::I2_S) gemv_multi_2bit<Format::I2_S>(m, a, nt, y, r0, r1);
    else if (m.fmt == Format::I2_S4) gemv_multi_2bit<Format::I2_S4>(m, a, nt, y, r0, r1);
    else gemv_multi_2bit<Format::TQ2_0>(m, a, nt, y, r0, r1);  // with uniform scales (the driver checks)
}

// -------------------------------------------------------------------- GEMM

// Natural-order codes of one packed row (AVX2 width; both units have AVX2).
void unpack_row_codes(const MatView& m, const uint8_t* row, uint8_t* codes) {
    const __m256i mask3 = _mm256_set1_epi8(3);
    auto st = [](uint8_t* dst, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v); };
    if (m.fmt == Format::TQ1_0) {
        const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
        const __m256i lo = _mm256_set1_epi8(-43), hi = _mm256_set1_epi8(42);
        auto digit = [&](__m256i q) {
            return _mm256_abs_epi8(_mm256_add_epi8(_mm256_cmpgt_epi8(q, lo), _mm256_cmpgt_epi8(q, hi)));
        };
        auto m3 = [](__m256i q) { return _mm256_add_epi8(_mm256_add_epi8(q, q), q); };
        // Digit n of each part lands at first + lanes * n: 32 bytes of part 0, then 16 and 4 of unit 1's halves.
        constexpr TQ1Part P0 = kTQ1Parts[0], P1 = kTQ1Parts[1], P2 = kTQ1Parts[2];
        static_assert(P0.lanes == 32 && P1.lanes == 16 && P2.lanes == 4, "the stores below are 32, 16 and 4 bytes");
        for (int64_t b = 0; b < m.cols / kTQBlock; ++b) {
            const uint8_t* src = row + b * kTQ1Bytes;
            uint8_t* dst = codes + b * kTQBlock;
            __m256i q0 = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + P0.byte0)), flip);
            __m256i q1 = _mm256_xor_si256(load_tq1_tail(src), flip);
            for (int n = 0; n < kTQ1Digits; ++n) {
                if (n > 0) { q0 = m3(q0); q1 = m3(q1); }
                st(dst + P0.first + P0.lanes * n, digit(q0));
                const __m256i d1 = digit(q1);
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + P1.first + P1.lanes * n), _mm256_castsi256_si128(d1));
                if (n < P2.digits) {
                    const uint32_t t = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(d1, 1)));
                    __builtin_memcpy(dst + P2.first + P2.lanes * n, &t, sizeof t);
                }
            }
        }
        return;
    }
    const bool tq2 = m.fmt == Format::TQ2_0;
    for (int64_t u = 0; u < m.cols / kUnitCodes2; ++u) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + unit_offset(m.fmt, u)));
        for (int k = 0; k < 4; ++k) {
            const __m256i c = _mm256_and_si256(_mm256_srli_epi16(w, 2 * k), mask3);
            st(codes + u * kUnitCodes2 + kUnitBytes * (tq2 ? k : 3 - k), c);
        }
    }
}

// Thread-local scratch for a panel of unpacked rows (internal linkage, plain memory).
struct Scratch {
    uint8_t* p = nullptr;
    size_t n = 0;
    ~Scratch() { free(p); }
    uint8_t* get(size_t bytes) {
        if (bytes > n) {
            free(p);
            p = static_cast<uint8_t*>(aligned_alloc(64, (bytes + 63) / 64 * 64));
            n = p ? bytes : 0;
        }
        return p;
    }
};
thread_local Scratch t_scratch;

// Micro-kernel: R code rows x NT token rows over K elements, width T::kGW.
// kBlock: flush per 256-block with per-(row, block) scales into floats; else
// widen to int32 every 1024 elements. Adds its lanes into the vector sums
// vs[i][j] (horizontal sums wait until the whole row of K is done).
template <int R, int NT, bool kBlock>
inline void micro(const uint8_t* const* c, const int8_t* const* x, int64_t K, const float* const* dsc,
                  typename T::GV* const* vs) {
    constexpr int W = T::kGW;
    const int64_t steps = K / W;
    if constexpr (!kBlock && T::kGAccInt32) {
        // Integer lanes that cannot overflow within a slice (|sum| <= 2 * 128 * kKc): accumulate straight into
        // them. Half the registers of the flushing loop below, so the 4 x 4 block stays in registers.
        typename T::GAcc acc[R][NT];
        for (int i = 0; i < R; ++i)
            for (int j = 0; j < NT; ++j) acc[i][j] = T::gacc_zero();
        for (int64_t s = 0; s < steps; ++s) {
            typename T::GV w[R];
            for (int i = 0; i < R; ++i) w[i] = T::gload(c[i] + s * W);
            for (int j = 0; j < NT; ++j) {
                const typename T::GV xv = T::gload(x[j] + s * W);
                for (int i = 0; i < R; ++i) acc[i][j] = T::gdot(acc[i][j], w[i], xv);
            }
        }
        for (int i = 0; i < R; ++i)
            for (int j = 0; j < NT; ++j) vs[j][i] = T::gadd32(vs[j][i], acc[i][j]);
        return;
    }
    constexpr int kFlush = kBlock ? kTQBlock / W : 1024 / W;
    typename T::GV i32[R][NT];
    typename T::GVF f32[R][NT];
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < NT; ++j) { i32[i][j] = T::gzero(); f32[i][j] = T::gfzero(); }
    for (int64_t s0 = 0; s0 < steps; s0 += kFlush) {
        const int64_t s1 = s0 + kFlush < steps ? s0 + kFlush : steps;
        typename T::GAcc acc[R][NT];
        for (int i = 0; i < R; ++i)
            for (int j = 0; j < NT; ++j) acc[i][j] = T::gacc_zero();
        for (int64_t s = s0; s < s1; ++s) {
            typename T::GV w[R];
            for (int i = 0; i < R; ++i) w[i] = T::gload(c[i] + s * W);
            for (int j = 0; j < NT; ++j) {
                const typename T::GV xv = T::gload(x[j] + s * W);
                for (int i = 0; i < R; ++i) acc[i][j] = T::gdot(acc[i][j], w[i], xv);
            }
        }
        for (int i = 0; i < R; ++i)
            for (int j = 0; j < NT; ++j) {
                if (kBlock) {
                    const float d = dsc[i][s0 * W / kTQBlock];
                    f32[i][j] = T::gfmadd(T::gcvt(T::gwiden(acc[i][j])), T::gfset1(d), f32[i][j]);
                } else {
                    i32[i][j] = T::gadd32(i32[i][j], T::gwiden(acc[i][j]));
                }
            }
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < NT; ++j) {
            typename T::GV* v = vs[j] + i;
            if (kBlock) *v = T::gfbits_add(*v, f32[i][j]);
            else *v = T::gadd32(*v, i32[i][j]);
        }
}

// One panel of np unpacked rows against every token. K is walked in slices of
// kKc so the panel's slice and a token group's slice stay in L1 while all
// token groups and row groups use them; partial sums collect in fsum / isum.
constexpr int64_t kKc = 1024;

template <bool kBlock>
void gemm_panel(const MatView& m, const ActBatch& a, float* Y, int64_t ldy, int64_t p0, int np,
                const uint8_t* codes, const float* dsc, const float* rscale, typename T::GV* vsum) {
    constexpr int R = T::kGemmRows, NT = T::kGemmToks;
    const int64_t K = m.cols, nb = m.cols / kTQBlock, n = a.n;
    const int64_t npad = (np + R - 1) / R * R;
    // vsum[t * npad + i]: lanes of row i's sum for token t (int32, or float bits when kBlock)
    for (int64_t i = 0; i < (n + NT) * npad; ++i) vsum[i] = T::gzero();
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t kl = K - k0 < kKc ? K - k0 : kKc;
        for (int64_t t0 = 0; t0 < n; t0 += NT) {
            const int8_t* x[NT];
            for (int j = 0; j < NT; ++j) x[j] = a.q + ((t0 + j < n) ? t0 + j : n - 1) * K + k0;
            for (int i0 = 0; i0 < np; i0 += R) {
                const uint8_t* c[R];
                const float* d[R];
                for (int i = 0; i < R; ++i) {
                    const int ii = i0 + i < np ? i0 + i : np - 1;
                    c[i] = codes + ii * K + k0;
                    d[i] = dsc + ii * nb + k0 / kTQBlock;
                }
                // padded tokens (t >= n) land in spare rows of vsum and are never read
                typename T::GV* vs[NT];
                for (int j = 0; j < NT; ++j) vs[j] = vsum + (t0 + j) * npad + i0;
                micro<R, NT, kBlock>(c, x, kl, d, vs);
            }
        }
    }
    for (int64_t t = 0; t < n; ++t)
        for (int i = 0; i < np; ++i) {
            float yv;
            if (kBlock) {
                float corr = 0.0f;
                for (int64_t b = 0; b < nb; ++b) corr += dsc[i * nb + b] * static_cast<float>(a.bsum[t * nb + b]);
                yv = T::ghsumf(T::gasf(vsum[t * npad + i])) - corr;
            } else {
                yv = rscale[i] * static_cast<float>(T::ghsum32(vsum[t * npad + i]) - a.total[t]);
            }
            Y[t * ldy + p0 + i] = yv;
        }
}

void gemm(const MatView& m, const ActBatch& a, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t K = m.cols, nb = m.cols / kTQBlock;
    // Panel height: a kKc slice of the panel (P * 1 KiB) stays in L1 beside a token group's slice.
    constexpr int P = 16;
    static_assert(P % T::kGemmRows == 0, "panel must hold whole row groups");
    const size_t codes_bytes = static_cast<size_t>(P) * K;
    const size_t scales_bytes = (static_cast<size_t>(P) * (nb + 1) + P) * sizeof(float);
    const size_t sums_bytes = static_cast<size_t>(a.n + T::kGemmToks) * P * sizeof(typename T::GV);
    uint8_t* buf = t_scratch.get(codes_bytes + scales_bytes + sums_bytes + 256);
    if (buf == nullptr) return;  // the driver checks for allocation failure before calling
    uint8_t* codes = buf;
    float* dsc = reinterpret_cast<float*>(buf + (codes_bytes + 63) / 64 * 64);
    float* rscale = dsc + static_cast<size_t>(P) * (nb + 1);
    auto* vsum = reinterpret_cast<typename T::GV*>(
        buf + (codes_bytes + scales_bytes + 64 + 127) / 64 * 64);
    const bool tq1 = m.fmt == Format::TQ1_0;
    const int64_t block_bytes = tq1 ? kTQ1Bytes : kTQ2Bytes, scale_at = tq1 ? kTQ1ScaleAt : kTQ2ScaleAt;
    for (int64_t p0 = r0; p0 < r1; p0 += P) {
        const int np = static_cast<int>(r1 - p0 < P ? r1 - p0 : P);
        bool uniform = true;
        for (int i = 0; i < np; ++i) {
            const uint8_t* row = row_at(m, p0 + i);
            uint8_t* ci = codes + static_cast<size_t>(i) * K;
            unpack_row_codes(m, row, ci);
            if (is_i2(m.fmt)) { rscale[i] = m.tensor_scale; continue; }
            // Rows whose nonzero block scales are all equal run on the integer path;
            // zero-scale blocks contribute nothing, so their codes become zeros (c = 1).
            float common = 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
                const float d = half_at(row + b * block_bytes + scale_at);
                dsc[i * nb + b] = d;
                if (d == 0.0f) {
                    __builtin_memset(ci + b * kTQBlock, 1, kTQBlock);
                } else if (common == 0.0f) {
                    common = d;
                } else if (d != common) {
                    uniform = false;
                }
            }
            rscale[i] = common;
        }
        if (uniform)
            gemm_panel<false>(m, a, Y, ldy, p0, np, codes, dsc, rscale, vsum);
        else
            gemm_panel<true>(m, a, Y, ldy, p0, np, codes, dsc, rscale, vsum);
    }
}
