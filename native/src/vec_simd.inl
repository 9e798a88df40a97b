// Float kernels of the forward pass written once against a traits struct `F` (one float vector of F::kW lanes),
// included by vec_avx2.cpp and vec_avx512.cpp inside their anonymous namespace: attention scores and weighted
// sums as small register-blocked GEMMs, softmax and SiLU with a vectorized exp.

using FV = typename F::V;
constexpr int kW = F::kW;

// exp(x) for x in [-87.3, 88.37] (outside: clamped to those ends; exp(-87.3) is ~1e-38, not quite 0): 2^n * p(f)
// with x = n ln2 + f, |f| <= ln2 / 2, p a degree-6 polynomial (relative error ~2e-7, Cephes' coefficients).
inline FV exp_v(FV x) {
    x = F::min(F::max(x, F::set1(-87.3f)), F::set1(88.37f));
    const FV n = F::round(F::mul(x, F::set1(1.44269504088896341f)));
    FV f = F::fnmadd(n, F::set1(0.693359375f), x);
    f = F::fnmadd(n, F::set1(-2.12194440e-4f), f);
    FV p = F::set1(1.9875691500e-4f);
    p = F::fmadd(p, f, F::set1(1.3981999507e-3f));
    p = F::fmadd(p, f, F::set1(8.3334519073e-3f));
    p = F::fmadd(p, f, F::set1(4.1665795894e-2f));
    p = F::fmadd(p, f, F::set1(1.6666665459e-1f));
    p = F::fmadd(p, f, F::set1(5.0000001201e-1f));
    p = F::fmadd(F::mul(p, f), f, F::add(f, F::set1(1.0f)));
    return F::scale2(p, n);
}

// x[i] = exp(x[i] - max(x)) for i < n; returns their sum.
float softmax_exp(float* x, int64_t n) {
    FV mv = F::set1(-INFINITY);
    int64_t i = 0;
    for (; i + kW <= n; i += kW) mv = F::max(mv, F::load(x + i));
    float mx = F::hmax(mv);
    for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
    const FV m = F::set1(mx);
    FV sv = F::zero();
    for (i = 0; i + kW <= n; i += kW) {
        const FV e = exp_v(F::sub(F::load(x + i), m));
        F::store(x + i, e);
        sv = F::add(sv, e);
    }
    float s = F::hsum(sv);
    for (; i < n; ++i) s += (x[i] = expf(x[i] - mx));
    return s;
}

// g[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u.
void silu_mul(float* g, const float* u, int64_t n) {
    int64_t i = 0;
    const FV one = F::set1(1.0f);
    for (; i + kW <= n; i += kW) {
        const FV x = F::load(g + i);
        const FV s = F::div(x, F::add(one, exp_v(F::sub(F::zero(), x))));
        F::store(g + i, F::mul(s, F::load(u + i)));
    }
    for (; i < n; ++i) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// S[i][t] = scale * sum_d Q[i][d] * K[t][d] for i < nq, t < nk, in blocks of F::kQRows rows x 2 vectors of keys
// (each key vector loaded once for all the block's rows). Kt: the keys' tiles (vec_ops.h: attn_scores), whose last
// tile is readable in full.
static_assert(kKeyTile % (2 * kW) == 0, "a block of keys lies in one tile");
template <int NQ>
inline void scores_block(const float* Q, int64_t ldq, const float* Kt, int64_t hd, int64_t nk, float scale, float* S,
                         int64_t lds) {
    const FV sc = F::set1(scale);
    for (int64_t t = 0; t < nk; t += 2 * kW) {
        FV acc[NQ][2];
        for (int i = 0; i < NQ; ++i) acc[i][0] = acc[i][1] = F::zero();
        const float* kt = Kt + (t / kKeyTile) * hd * kKeyTile + t % kKeyTile;
        for (int64_t d = 0; d < hd; ++d) {
            const FV k0 = F::load(kt + d * kKeyTile), k1 = F::load(kt + d * kKeyTile + kW);
            for (int i = 0; i < NQ; ++i) {
                const FV q = F::set1(Q[i * ldq + d]);
                acc[i][0] = F::fmadd(q, k0, acc[i][0]);
                acc[i][1] = F::fmadd(q, k1, acc[i][1]);
            }
        }
        for (int i = 0; i < NQ; ++i) {
            float* s = S + i * lds + t;
            if (t + 2 * kW <= nk) {
                F::store(s, F::mul(acc[i][0], sc));
                F::store(s + kW, F::mul(acc[i][1], sc));
            } else {
                alignas(64) float tmp[2 * kW];
                F::store(tmp, F::mul(acc[i][0], sc));
                F::store(tmp + kW, F::mul(acc[i][1], sc));
                for (int64_t j = 0; j < nk - t; ++j) s[j] = tmp[j];
            }
        }
    }
}

template <int R>
inline void scores_rows(const float* Q, int64_t ldq, int nq, const float* Kt, int64_t hd, int64_t nk, float scale,
                        float* S, int64_t lds) {
    if constexpr (R > 0) {
        if (nq == R) return scores_block<R>(Q, ldq, Kt, hd, nk, scale, S, lds);
        scores_rows<R - 1>(Q, ldq, nq, Kt, hd, nk, scale, S, lds);
    }
}

void attn_scores(const float* Q, int64_t ldq, int nq, const float* Kt, int64_t hd, int64_t nk, float scale, float* S,
                 int64_t lds) {
    constexpr int R = F::kQRows;
    int i = 0;
    for (; i + R <= nq; i += R) scores_block<R>(Q + i * ldq, ldq, Kt, hd, nk, scale, S + i * lds, lds);
    if (i < nq) scores_rows<R - 1>(Q + i * ldq, ldq, nq - i, Kt, hd, nk, scale, S + i * lds, lds);
}

// O[i][0..hd) = sum_{t < nk} P[i][t] * V[t][0..hd) for i < nq: columns in chunks of F::kPvVecs vectors, rows in
// blocks of F::kPvRows (each V vector loaded once for the block's rows; the accumulators stay in registers).
template <int NQ, int NV>
inline void wsum_block(const float* P, int64_t ldp, const float* V, int64_t ldv, int64_t d0, int64_t nk, float* O,
                       int64_t ldo) {
    FV acc[NQ][NV];
    for (int i = 0; i < NQ; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = F::zero();
    for (int64_t t = 0; t < nk; ++t) {
        FV vv[NV];
        for (int v = 0; v < NV; ++v) vv[v] = F::load(V + t * ldv + d0 + v * kW);
        for (int i = 0; i < NQ; ++i) {
            const FV p = F::set1(P[i * ldp + t]);
            for (int v = 0; v < NV; ++v) acc[i][v] = F::fmadd(p, vv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < NQ; ++i)
        for (int v = 0; v < NV; ++v) F::store(O + i * ldo + d0 + v * kW, acc[i][v]);
}

template <int NQ>
inline void wsum_cols(const float* P, int64_t ldp, const float* V, int64_t ldv, int64_t hd, int64_t nk, float* O,
                      int64_t ldo) {
    constexpr int NV = F::kPvVecs;
    int64_t d0 = 0;
    for (; d0 + NV * kW <= hd; d0 += NV * kW) wsum_block<NQ, NV>(P, ldp, V, ldv, d0, nk, O, ldo);
    for (; d0 + kW <= hd; d0 += kW) wsum_block<NQ, 1>(P, ldp, V, ldv, d0, nk, O, ldo);
    for (; d0 < hd; ++d0)  // a head dimension that is not a multiple of the vector width
        for (int i = 0; i < NQ; ++i) {
            float s = 0.0f;
            for (int64_t t = 0; t < nk; ++t) s += P[i * ldp + t] * V[t * ldv + d0];
            O[i * ldo + d0] = s;
        }
}

template <int R>
inline void wsum_rows(const float* P, int64_t ldp, int nq, const float* V, int64_t ldv, int64_t hd, int64_t nk,
                      float* O, int64_t ldo) {
    if constexpr (R > 0) {
        if (nq == R) return wsum_cols<R>(P, ldp, V, ldv, hd, nk, O, ldo);
        wsum_rows<R - 1>(P, ldp, nq, V, ldv, hd, nk, O, ldo);
    }
}

void attn_wsum(const float* P, int64_t ldp, int nq, const float* V, int64_t ldv, int64_t hd, int64_t nk, float* O,
               int64_t ldo) {
    constexpr int R = F::kPvRows;
    int i = 0;
    for (; i + R <= nq; i += R) wsum_cols<R>(P + i * ldp, ldp, V, ldv, hd, nk, O + i * ldo, ldo);
    if (i < nq) wsum_rows<R - 1>(P + i * ldp, ldp, nq - i, V, ldv, hd, nk, O + i * ldo, ldo);
}

// Activation quantization (act_quant.h's rules; the same float operations as the scalar reference, so the same
// results: the product x * s rounded once, then round-half-even).
inline float absmax(const float* x, int64_t k) {
    FV m = F::zero();
    int64_t i = 0;
    for (; i + kW <= k; i += kW) m = F::max(m, F::abs(F::load(x + i)));
    float a = F::hmax(m);
    for (; i < k; ++i) a = fabsf(x[i]) > a ? fabsf(x[i]) : a;
    return a > 1e-5f ? a : 1e-5f;
}

inline void round_i8(const float* x, int64_t k, float s, int8_t* q) {
    const FV sv = F::set1(s);
    int64_t i = 0;
    for (; i + kW <= k; i += kW) F::store_i8(q + i, F::round(F::mul(F::load(x + i), sv)));
    for (; i < k; ++i) {
        float v = nearbyintf(x[i] * s);
        v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
        q[i] = static_cast<int8_t>(static_cast<int>(v));
    }
}

void quantize_rows(const float* x, int64_t n, int64_t k, int8_t* q, float* scale) {
    for (int64_t t = 0; t < n; ++t) {
        scale[t] = 127.0f / absmax(x + t * k, k);
        round_i8(x + t * k, k, scale[t], q + t * k);
    }
}

void quantize_blocks(const float* x, int64_t n, int64_t k, int64_t block, int8_t* q, float* d) {
    const int64_t nb = k / block;
    for (int64_t t = 0; t < n; ++t)
        for (int64_t b = 0; b < nb; ++b) {
            const float* xb = x + t * k + b * block;
            const float amax = absmax(xb, block);
            d[t * nb + b] = amax / 127.0f;
            round_i8(xb, block, 127.0f / amax, q + t * k + b * block);
        }
}

// Sum of squares in kW lanes x 2 accumulators (float: at the widths of a model's rows, a few ulps from double).
void rms_norm(const float* x, const float* w, int64_t n, int64_t d, float eps, float* out) {
    for (int64_t t = 0; t < n; ++t) {
        const float* xr = x + t * d;
        float* o = out + t * d;
        FV s0 = F::zero(), s1 = F::zero();
        int64_t i = 0;
        for (; i + 2 * kW <= d; i += 2 * kW) {
            const FV a = F::load(xr + i), b = F::load(xr + i + kW);
            s0 = F::fmadd(a, a, s0);
            s1 = F::fmadd(b, b, s1);
        }
        float ss = F::hsum(F::add(s0, s1));
        for (; i < d; ++i) ss += xr[i] * xr[i];
        const float inv = 1.0f / sqrtf(ss / static_cast<float>(d) + eps);
        const FV iv = F::set1(inv);
        for (i = 0; i + kW <= d; i += kW) F::store(o + i, F::mul(F::mul(F::load(xr + i), iv), F::load(w + i)));
        for (; i < d; ++i) o[i] = xr[i] * inv * w[i];
    }
}

void add(float* y, const float* x, int64_t n) {
    int64_t i = 0;
    for (; i + kW <= n; i += kW) F::store(y + i, F::add(F::load(y + i), F::load(x + i)));
    for (; i < n; ++i) y[i] += x[i];
}

void scale(float* y, float s, int64_t n) {
    const FV sv = F::set1(s);
    int64_t i = 0;
    for (; i + kW <= n; i += kW) F::store(y + i, F::mul(F::load(y + i), sv));
    for (; i < n; ++i) y[i] *= s;
}
