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
                        corr[v * R + i] += d[i] * static_cast<float>(a.psum[b]);
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
                    corr[v * R + i] += d[i] * static_cast<float>(a.psum[b]);
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

void gemv_file(const MatView& m, const ActRow& a, float* y, int64_t r0, int64_t r1) {
    switch (m.fmt) {
        case Format::TQ2_0:
            if (m.uniform_scale) gemv_2bit<T::kGemvVecs, Format::TQ2_0, false>(m, a, y, r0, r1);
            else gemv_2bit<T::kGemvVecs, Format::TQ2_0, true>(m, a, y, r0, r1);
            break;
        case Format::I2_S: gemv_2bit<T::kGemvVecs, Format::I2_S, false>(m, a, y, r0, r1); break;
        case Format::I2_S4: gemv_2bit<T::kGemvVecs, Format::I2_S4, false>(m, a, y, r0, r1); break;
        case Format::TQ1_0: gemv_tq1<T::kGemvVecs>(m, a, y, r0, r1); break;
        default: break;  // Q2_0 files have no SIMD GEMV (the driver runs the scalar one; models repack them)
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

void gemv_multi_file(const MatView& m, const ActRow* a, int nt, float* const* y, int64_t r0, int64_t r1) {
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
    if (m.fmt != Format::TQ2_0 && m.fmt != Format::I2_S && m.fmt != Format::I2_S4) {
        decode_row_codes(m.fmt, row, m.cols, codes);  // Q2_0 files (always repacked by models), I2_R16 (unused)
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

// Thread-local scratch (internal linkage, plain memory).
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

// ------------------------------------------------------ outer-product kernels (I2_R16 GEMV, every GEMM)
//
// An outer-product step multiplies one vector of codes, kOVRows rows x 4 columns (one byte each), by one 4-byte
// broadcast of a token's activations: each row's 32-bit lane gets its dot product over those 4 columns (AVX2: two
// int16 pair sums, widened later; AVX-512: vpdpbusd into int32). Lanes are rows, so nothing is summed across lanes:
// the results are stored as they are, and a row's scale for a group of columns is one vector multiply for
// kOVRows rows at once. That is what makes group scales and per-block activation scales cheap here.
//
// Scaling happens per period of columns (ActRow::period): at each period's end the integer sums become floats,
// (sum(c x) - sum(x)) * activation scale * weight scales (per row: a vector). Without periods they stay integers to
// the end.

using OV = typename T::OV;
using OVF = typename T::OVF;
constexpr int kOVRows = T::kOVRows;
constexpr int kOVPerGroup = kR16Rows / kOVRows;  // vectors per 16-row group: AVX2 2, AVX-512 1
constexpr int64_t kOVBytes = kOVRows * 4;

// Steps (4 columns each) an accumulator may take before its lanes could overflow (AVX2: int16 pair sums of codes
// up to 2 times |x| <= 128: 2 * 2 * 128 per step, 63 steps < 32767; the loaders refuse the non-ternary code 3).
constexpr int64_t kAccSteps = T::kAccSteps;

// The longest run of units (steps, chunks) an accumulator takes between flushes: at most `most`, and dividing the
// period when there is one, so that no run crosses a period's end.
inline int64_t run_length(int64_t period_units, int64_t most) {
    if (period_units <= 0) return most;
    int64_t r = period_units < most ? period_units : most;
    while (period_units % r != 0) --r;
    return r;
}

// The f16 scales of group g for the kOVRows rows of vector v of row group rg (I2_R16_G*).
inline OVF r16_scales(const MatView& m, int64_t rg, int64_t g, int v) {
    return T::ocvtph(m.gscales + ((rg * (m.cols / m.group) + g) * kR16Rows + v * kOVRows));
}

// Stores kOVRows results for rows [r, r + kOVRows) of y, the ones in [r0, r1).
inline void store_rows(float* y, int64_t r, int64_t r0, int64_t r1, OVF v) {
    if (r >= r0 && r + kOVRows <= r1) {
        T::ostore(y + r, v);
        return;
    }
    alignas(64) float tmp[kOVRows];
    T::ostore(tmp, v);
    for (int i = 0; i < kOVRows; ++i)
        if (r + i >= r0 && r + i < r1) y[r + i] = tmp[i];
}

// GEMV over I2_R16*, NT tokens at once (NT > 1: a draft-verify pass or a short append, the chunks of a row group
// read from memory once and from L1 for the other tokens). Row groups [r0 / 16, ceil(r1 / 16)).
#ifndef RYZ_PREFETCH_R16
#define RYZ_PREFETCH_R16 8192
#endif
constexpr int64_t kPrefetchR16 = RYZ_PREFETCH_R16;  // bytes ahead in a row group's one stream

template <int NT, bool kFloat>
void gemv_r16_tokens(const MatView& m, const ActRow* a, float* const* y, int64_t r0, int64_t r1) {
    const int64_t chunks = m.cols / kR16Cols, period = a[0].period;
    const int64_t period_chunks = period > 0 ? period / kR16Cols : chunks;
    const int64_t flush_chunks = run_length(period > 0 ? period_chunks : 0, kAccSteps / 4);  // 4 steps a chunk
    const OV mask = T::oset1_8(3);
    for (int64_t rg = r0 / kR16Rows; rg * kR16Rows < r1; ++rg) {
        const uint8_t* base = m.data + rg * kR16Rows * m.row_bytes;
        // One token: two accumulators per vector (planes 0-1 and 2-3), two dependency chains instead of one. More
        // tokens are chains enough, and their registers are needed for the accumulators.
        constexpr int C = NT == 1 ? 2 : 1;
        typename T::OAcc acc[NT][kOVPerGroup][C];
        OV isum[NT][kOVPerGroup];
        OVF fsum[NT][kOVPerGroup];
        for (int j = 0; j < NT; ++j)
            for (int v = 0; v < kOVPerGroup; ++v) {
                for (int k = 0; k < C; ++k) acc[j][v][k] = T::oacc_zero();
                isum[j][v] = T::ozero();
                fsum[j][v] = T::ofzero();
            }
        // Counters, not c % n: an integer division per chunk cost more than the chunk's arithmetic.
        int64_t to_flush = flush_chunks, to_period_end = period_chunks, f = 0;
        for (int64_t c = 0; c < chunks; ++c) {
            const uint8_t* ch = base + c * kR16Chunk;
            _mm_prefetch(reinterpret_cast<const char*>(ch + kPrefetchR16), _MM_HINT_T0);
            for (int v = 0; v < kOVPerGroup; ++v) {
                const OV w = T::oload(ch + v * kOVBytes);
                const OV c0 = T::oand(w, mask), c1 = T::oand(T::template osrli16<2>(w), mask);
                const OV c2 = T::oand(T::template osrli16<4>(w), mask), c3 = T::oand(T::template osrli16<6>(w), mask);
                for (int j = 0; j < NT; ++j) {
                    const int8_t* x = a[j].q + c * kR16Cols;
                    acc[j][v][0] = T::odot(acc[j][v][0], c0, T::obcast(x));
                    acc[j][v][C - 1] = T::odot(acc[j][v][C - 1], c2, T::obcast(x + 8));
                    acc[j][v][0] = T::odot(acc[j][v][0], c1, T::obcast(x + 4));
                    acc[j][v][C - 1] = T::odot(acc[j][v][C - 1], c3, T::obcast(x + 12));
                }
            }
            const bool period_end = --to_period_end == 0;
            if (!period_end && --to_flush != 0) continue;
            to_flush = flush_chunks;
            for (int j = 0; j < NT; ++j)
                for (int v = 0; v < kOVPerGroup; ++v) {
                    for (int k = 0; k < C; ++k) {
                        isum[j][v] = T::oadd32(isum[j][v], T::owiden(acc[j][v][k]));
                        acc[j][v][k] = T::oacc_zero();
                    }
                }
            if (!period_end) continue;
            to_period_end = period_chunks;
            if (!kFloat) continue;
            for (int v = 0; v < kOVPerGroup; ++v) {
                const OVF ws = m.gscales != nullptr ? r16_scales(m, rg, f * period / m.group, v) : T::ofset1(m.tensor_scale);
                for (int j = 0; j < NT; ++j) {
                    OVF s = T::ofsub(T::ocvt(isum[j][v]), T::ofset1(static_cast<float>(a[j].psum[f])));
                    if (a[j].pscale != nullptr) s = T::ofmul(s, T::ofset1(a[j].pscale[f]));
                    fsum[j][v] = T::ofmadd(s, ws, fsum[j][v]);
                    isum[j][v] = T::ozero();
                }
            }
            ++f;
        }
        for (int j = 0; j < NT; ++j)
            for (int v = 0; v < kOVPerGroup; ++v) {
                OVF out = fsum[j][v];
                if (!kFloat)
                    out = T::ofmul(T::ocvt(T::osub32(isum[j][v], T::oset1_32(a[j].total))), T::ofset1(m.tensor_scale));
                store_rows(y[j], rg * kR16Rows + v * kOVRows, r0, r1, out);
            }
    }
}

template <int NT>
void gemv_r16(const MatView& m, const ActRow* a, float* const* y, int64_t r0, int64_t r1) {
    if (a[0].period > 0) gemv_r16_tokens<NT, true>(m, a, y, r0, r1);
    else gemv_r16_tokens<NT, false>(m, a, y, r0, r1);
}

void gemv_r16_multi(const MatView& m, const ActRow* a, int nt, float* const* y, int64_t r0, int64_t r1) {
    constexpr int G = T::kR16MultiGroup;
    for (int j0 = 0; j0 < nt; j0 += G) {
        switch (nt - j0 < G ? nt - j0 : G) {
            case 1: gemv_r16<1>(m, a + j0, y + j0, r0, r1); break;
            case 2: gemv_r16<2>(m, a + j0, y + j0, r0, r1); break;
            case 3: gemv_r16<3 <= G ? 3 : 1>(m, a + j0, y + j0, r0, r1); break;
            default: gemv_r16<4 <= G ? 4 : 1>(m, a + j0, y + j0, r0, r1); break;
        }
    }
}

void gemv(const MatView& m, const ActRow& a, float* y, int64_t r0, int64_t r1) {
    if (is_r16(m.fmt)) {
        gemv_r16<1>(m, &a, &y, r0, r1);
        return;
    }
    gemv_file(m, a, y, r0, r1);
}

void gemv_multi(const MatView& m, const ActRow* a, int nt, float* const* y, int64_t r0, int64_t r1) {
    if (is_r16(m.fmt)) gemv_r16_multi(m, a, nt, y, r0, r1);
    else gemv_multi_file(m, a, nt, y, r0, r1);
}

// -------------------------------------------------------------------- GEMM
//
// A panel of kPanel rows is unpacked once into codes in outer-product order, [cols / 4][kPanel][4] bytes (the
// vectors the steps read), with its weight scales per group; then an RV x NT register block (RV vectors of
// kOVRows rows, NT tokens) runs over all columns for each group of NT tokens. The panel of an I2_R16 tensor is
// its chunks' planes; a row-major packing is decoded row by row and transposed in 4-byte words.

constexpr int kPanel = T::kPanelRows;
constexpr int kRV = kPanel / kOVRows;
constexpr int kNT = T::kGemmToks;
static_assert(kPanel % kR16Rows == 0, "a panel holds whole I2_R16 row groups");

// 8 x 8 transpose of 32-bit words: out[i] word j = in[j] word i (AVX2; both units have it).
inline void transpose8x8_epi32(__m256i* r) {
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) { t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]); t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]); }
    for (int i = 0; i < 8; i += 4)
        for (int k = 0; k < 2; ++k) {
            u[i + k] = _mm256_unpacklo_epi64(t[i + k], t[i + 2 + k]);
            u[i + 2 + k] = _mm256_unpackhi_epi64(t[i + k], t[i + 2 + k]);
        }
    // u[0..3] hold words (0,1,2,3 of rows) for columns {0,4}, {2,6}? lay out: u0 = col 0|4, u2 = col 1|5 (lo/hi),
    // u1 = col 2|6, u3 = col 3|7 for rows 0..3; u4..u7 the same for rows 4..7.
    r[0] = _mm256_permute2x128_si256(u[0], u[4], 0x20);
    r[1] = _mm256_permute2x128_si256(u[2], u[6], 0x20);
    r[2] = _mm256_permute2x128_si256(u[1], u[5], 0x20);
    r[3] = _mm256_permute2x128_si256(u[3], u[7], 0x20);
    r[4] = _mm256_permute2x128_si256(u[0], u[4], 0x31);
    r[5] = _mm256_permute2x128_si256(u[2], u[6], 0x31);
    r[6] = _mm256_permute2x128_si256(u[1], u[5], 0x31);
    r[7] = _mm256_permute2x128_si256(u[3], u[7], 0x31);
}

// Codes of rows [p0, p0 + np) into the panel (rows past np: code 1, zero weight).
void unpack_panel(const MatView& m, int64_t p0, int np, uint8_t* panel, uint8_t* rowbuf) {
    const int64_t K = m.cols, quads = K / 4;
    if (is_r16(m.fmt)) {
        const __m256i mask = _mm256_set1_epi8(3);
        for (int g = 0; g < kPanel / kR16Rows; ++g) {
            const int64_t rg = p0 / kR16Rows + g;
            uint8_t* dst = panel + g * kR16Chunk;
            if ((rg - p0 / kR16Rows) * kR16Rows >= np) {  // a row group past the matrix: zero weights
                for (int64_t q = 0; q < quads; ++q) __builtin_memset(dst + q * kPanel * 4, 1, kR16Chunk);
                continue;
            }
            const uint8_t* src = m.data + rg * kR16Rows * m.row_bytes;
            for (int64_t c = 0; c < K / kR16Cols; ++c)
                for (int h = 0; h < 2; ++h) {
                    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + c * kR16Chunk + 32 * h));
                    for (int p = 0; p < 4; ++p)
                        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (4 * c + p) * kPanel * 4 + 32 * h),
                                            _mm256_and_si256(_mm256_srli_epi16(w, 2 * p), mask));
                }
        }
        return;
    }
    // Row-major packings: natural-order rows (8 at a time), then 8 x 8 word transposes into the panel.
    for (int i0 = 0; i0 < kPanel; i0 += 8) {
        for (int i = 0; i < 8; ++i) {
            uint8_t* row = rowbuf + static_cast<int64_t>(i) * K;
            if (i0 + i < np) unpack_row_codes(m, row_at(m, p0 + i0 + i), row);
            else __builtin_memset(row, 1, static_cast<size_t>(K));
        }
        for (int64_t q0 = 0; q0 < quads; q0 += 8) {
            __m256i r[8];
            for (int i = 0; i < 8; ++i)
                r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rowbuf + static_cast<int64_t>(i) * K + 4 * q0));
            transpose8x8_epi32(r);
            for (int j = 0; j < 8; ++j)
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + (q0 + j) * kPanel * 4 + 4 * i0), r[j]);
        }
    }
}

// The panel's weight scales: per row one scale (`uniform`: every nonzero group scale of each row equal; groups
// whose scale is zero get codes 1, so they add nothing), else per group [groups][kPanel] (rows past np: 0).
bool panel_scales(const MatView& m, int64_t p0, int np, uint8_t* panel, float* rscale, float* gsc) {
    for (int i = np; i < kPanel; ++i) rscale[i] = 0.0f;
    if (m.group == 0) {
        for (int i = 0; i < np; ++i) rscale[i] = m.tensor_scale;
        return true;
    }
    const int64_t ng = m.cols / m.group;
    bool uniform = true;
    for (int i = 0; i < kPanel; ++i) {
        float common = 0.0f;
        for (int64_t g = 0; g < ng; ++g) {
            const float d = i < np ? group_scale(m, p0 + i, g) : 0.0f;
            gsc[g * kPanel + i] = d;
            if (i >= np) continue;
            if (d == 0.0f) {
                for (int64_t k = g * m.group; k < (g + 1) * m.group; ++k) panel[(k / 4) * kPanel * 4 + 4 * i + k % 4] = 1;
            } else if (common == 0.0f) {
                common = d;
            } else if (d != common) {
                uniform = false;
            }
        }
        if (i < np) rscale[i] = common;
    }
    return uniform;
}

// The steps of one segment: kRV x NT accumulators, from zero, over `steps` steps of the panel from c, the tokens'
// activations from x (rows K apart). A function of its own, with nothing else live, so that the compiler keeps every
// accumulator in a register (inlined into the segment loop, GCC spilled them: half the speed on AVX2).
template <int NT>
__attribute__((noinline)) void block_steps(const uint8_t* c, const int8_t* x, int64_t K, int64_t steps,
                                           typename T::OAcc* out) {
    typename T::OAcc acc[kRV][NT];
    for (int v = 0; v < kRV; ++v)
        for (int j = 0; j < NT; ++j) acc[v][j] = T::oacc_zero();
    for (int64_t s = 0; s < steps; ++s, c += kPanel * 4, x += 4) {
        OV w[kRV];
        for (int v = 0; v < kRV; ++v) w[v] = T::oload(c + v * kOVBytes);
        for (int j = 0; j < NT; ++j) {
            const OV b = T::obcast(x + j * K);
            for (int v = 0; v < kRV; ++v) acc[v][j] = T::odot(acc[v][j], w[v], b);
        }
    }
    for (int v = 0; v < kRV; ++v)
        for (int j = 0; j < NT; ++j) out[v * NT + j] = acc[v][j];
}

// The K slice: columns of a panel walked for every token before the next slice, so the slice of the panel and a
// token group's activations stay in L1 (AVX2: 16 x 1024 + 6 x 1024 bytes; AVX-512: 32 x 512 + 8 x 512).
constexpr int64_t kKc = T::kGemmSlice;
static_assert(kKc % 256 == 0, "slices hold whole periods (64, 128, 256 columns) and whole accumulator segments");

// The per-token sums of a panel, kept across slices: isum [n][kPanel] int32 lanes (until a period ends), fsum
// [n][kPanel] floats (periods' scaled sums).
struct Tiles {
    int32_t* isum;
    float* fsum;
};

// NT tokens from t0 over columns [k0, k1) of the panel: segments of at most kAccSteps steps that never cross a
// period's end; each segment's sums join isum, and at a period's end isum, scaled, joins fsum.
template <int NT, bool kFloat>
void gemm_block(const uint8_t* panel, int64_t K, int64_t k0, int64_t k1, const ActBatch& a, int64_t t0,
                const float* rscale, const float* gsc, int64_t group, const Tiles& tl) {
    const int64_t period = a.period;
    const int64_t period_steps = period > 0 ? period / 4 : K / 4;
    const int64_t seg = run_length(period > 0 ? period_steps : 0, kAccSteps);
    const int64_t np = period > 0 ? K / period : 0;
    typename T::OAcc acc[kRV][NT];
    if (kFloat && T::kPeriodSumsDirect && seg == period_steps) {
        // Each segment is one whole period (slices start on a period's start): its sums are scaled into fsum
        // straight from the registers, with no trip through isum. Short periods (Qwen3's 32-column activation
        // blocks: 8 steps) made that trip a third of the GEMM's work.
        for (int64_t s0 = k0 / 4; s0 < k1 / 4; s0 += seg) {
            block_steps<NT>(panel + s0 * kPanel * 4, a.q + t0 * K + 4 * s0, K, seg, &acc[0][0]);
            const int64_t f = s0 / period_steps;
            const float* ws = group > 0 ? gsc + (f * period / group) * kPanel : rscale;
            for (int j = 0; j < NT; ++j) {
                const int64_t t = t0 + j;
                const OVF sum_x = T::ofset1(static_cast<float>(a.psum[t * np + f]));
                const OVF dx = T::ofset1(a.pscale != nullptr ? a.pscale[t * np + f] : 1.0f);
                for (int v = 0; v < kRV; ++v) {
                    float* fs = tl.fsum + t * kPanel + v * kOVRows;
                    const OVF sv = T::ofmul(T::ofsub(T::ocvt(T::owiden(acc[v][j])), sum_x), dx);
                    T::ostore(fs, T::ofmadd(sv, T::oloadf(ws + v * kOVRows), T::oloadf(fs)));
                }
            }
        }
        return;
    }
    for (int64_t s0 = k0 / 4; s0 < k1 / 4; s0 += seg) {
        const int64_t s1 = s0 + seg < k1 / 4 ? s0 + seg : k1 / 4;
        block_steps<NT>(panel + s0 * kPanel * 4, a.q + t0 * K + 4 * s0, K, s1 - s0, &acc[0][0]);
        for (int v = 0; v < kRV; ++v)
            for (int j = 0; j < NT; ++j) {
                int32_t* is = tl.isum + (t0 + j) * kPanel + v * kOVRows;
                T::ostore32(is, T::oadd32(T::oload32(is), T::owiden(acc[v][j])));
            }
        if (!kFloat || s1 % period_steps != 0) continue;
        const int64_t f = s1 / period_steps - 1;
        const float* ws = group > 0 ? gsc + (f * period / group) * kPanel : rscale;
        for (int j = 0; j < NT; ++j) {
            const int64_t t = t0 + j;
            const OVF sum_x = T::ofset1(static_cast<float>(a.psum[t * np + f]));
            const OVF dx = T::ofset1(a.pscale != nullptr ? a.pscale[t * np + f] : 1.0f);
            for (int v = 0; v < kRV; ++v) {
                int32_t* is = tl.isum + t * kPanel + v * kOVRows;
                float* fs = tl.fsum + t * kPanel + v * kOVRows;
                const OVF sv = T::ofmul(T::ofsub(T::ocvt(T::oload32(is)), sum_x), dx);
                T::ostore(fs, T::ofmadd(sv, T::oloadf(ws + v * kOVRows), T::oloadf(fs)));
                T::ostore32(is, T::ozero());
            }
        }
    }
}

template <bool kFloat>
void gemm_panel(const uint8_t* panel, int64_t K, const ActBatch& a, const float* rscale, const float* gsc,
                int64_t group, const Tiles& tl, float* Y, int64_t ldy, int64_t p0, int64_t r1) {
    for (int64_t i = 0; i < a.n * kPanel; ++i) { tl.isum[i] = 0; tl.fsum[i] = 0.0f; }
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t k1 = k0 + kKc < K ? k0 + kKc : K;
        int64_t t0 = 0;
        for (; t0 + kNT <= a.n; t0 += kNT) gemm_block<kNT, kFloat>(panel, K, k0, k1, a, t0, rscale, gsc, group, tl);
        switch (a.n - t0) {
            case 0: break;
            case 1: gemm_block<1, kFloat>(panel, K, k0, k1, a, t0, rscale, gsc, group, tl); break;
            case 2: gemm_block<2, kFloat>(panel, K, k0, k1, a, t0, rscale, gsc, group, tl); break;
            case 3: gemm_block<3, kFloat>(panel, K, k0, k1, a, t0, rscale, gsc, group, tl); break;
            case 4: gemm_block<4 < kNT ? 4 : 1, kFloat>(panel, K, k0, k1, a, t0, rscale, gsc, group, tl); break;
            case 5: gemm_block<5 < kNT ? 5 : 1, kFloat>(panel, K, k0, k1, a, t0, rscale, gsc, group, tl); break;
            default:
                for (; t0 + 6 <= a.n; t0 += 6) gemm_block<6 < kNT ? 6 : 1, kFloat>(panel, K, k0, k1, a, t0, rscale, gsc, group, tl);
                for (; t0 < a.n; ++t0) gemm_block<1, kFloat>(panel, K, k0, k1, a, t0, rscale, gsc, group, tl);
                break;
        }
    }
    for (int64_t t = 0; t < a.n; ++t) {
        float* y = Y + t * ldy;
        for (int v = 0; v < kRV; ++v) {
            OVF out = T::oloadf(tl.fsum + t * kPanel + v * kOVRows);
            if (!kFloat)
                out = T::ofmul(T::ocvt(T::osub32(T::oload32(tl.isum + t * kPanel + v * kOVRows), T::oset1_32(a.total[t]))),
                               T::oloadf(rscale + v * kOVRows));
            store_rows(y, p0 + v * kOVRows, p0, r1, out);
        }
    }
}

// Rows [r0, r1), r0 a multiple of kPanel (the driver splits on kGemmAlign).
void gemm(const MatView& m, const ActBatch& a, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t K = m.cols, ng = m.group > 0 ? K / m.group : 0;
    const size_t panel_bytes = static_cast<size_t>(kPanel) * K;
    const size_t rows_bytes = is_r16(m.fmt) ? 0 : static_cast<size_t>(8) * K;
    const size_t scale_bytes = (static_cast<size_t>(kPanel) * (ng + 1)) * sizeof(float);
    const size_t tile_bytes = static_cast<size_t>(a.n) * kPanel * 4;
    uint8_t* buf = t_scratch.get(panel_bytes + rows_bytes + scale_bytes + 2 * tile_bytes + 512);
    if (buf == nullptr) return;  // the driver checks for allocation failure before calling
    auto up64 = [](size_t b) { return (b + 63) / 64 * 64; };
    uint8_t* panel = buf;
    uint8_t* rowbuf = buf + up64(panel_bytes);
    float* rscale = reinterpret_cast<float*>(rowbuf + up64(rows_bytes));
    float* gsc = rscale + kPanel;
    uint8_t* tiles = reinterpret_cast<uint8_t*>(rscale) + up64(scale_bytes);
    const Tiles tl{reinterpret_cast<int32_t*>(tiles), reinterpret_cast<float*>(tiles + up64(tile_bytes))};
    for (int64_t p0 = r0; p0 < r1; p0 += kPanel) {
        const int np = static_cast<int>(r1 - p0 < kPanel ? r1 - p0 : kPanel);
        unpack_panel(m, p0, np, panel, rowbuf);
        const bool uniform = panel_scales(m, p0, np, panel, rscale, gsc);
        // Per-token activations on uniform rows stay integers; anything else is scaled per period.
        if (a.period == 0) {
            gemm_panel<false>(panel, K, a, rscale, gsc, 0, tl, Y, ldy, p0, r1);
        } else {
            gemm_panel<true>(panel, K, a, rscale, gsc, uniform ? 0 : m.group, tl, Y, ldy, p0, r1);
        }
    }
}
