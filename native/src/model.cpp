#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "act_quant.h"
#include "thread_pool.h"
#include "vec_ops.h"

namespace ryz {

KvCache::KvCache(const ModelConfig& c, int64_t n_ctx_)
    : n_ctx(n_ctx_), kv_dim(c.n_head_kv * c.head_dim), head_dim(c.head_dim),
      ctx_pad((n_ctx_ + kKeyTile - 1) / kKeyTile * kKeyTile) {
    if (n_ctx < 1) throw std::invalid_argument("context length must be >= 1");
    k.assign(static_cast<size_t>(c.n_layer * kv_dim * ctx_pad), 0.0f);
    v.assign(static_cast<size_t>(c.n_layer * n_ctx * kv_dim), 0.0f);
}

Model::Model(const ModelConfig& cfg) : cfg_(cfg), isa_(resolve_auto_isa()) {
    auto need = [](bool ok, const std::string& what) {
        if (!ok) throw std::invalid_argument("model config: " + what);
    };
    need(cfg.n_embd > 0 && cfg.n_ff > 0 && cfg.n_layer > 0 && cfg.vocab > 0, "dimensions must be positive");
    need(cfg.n_head > 0 && cfg.n_head_kv > 0 && cfg.n_head % cfg.n_head_kv == 0,
         "head_count must be a positive multiple of head_count_kv");
    need(cfg.head_dim > 0 && cfg.head_dim % 2 == 0, "head dimension must be even");
    need(cfg.rope_dim > 0 && cfg.rope_dim <= cfg.head_dim && cfg.rope_dim % 2 == 0,
         "rope dimension must be even and at most the head dimension");
    need(cfg.norm_eps > 0 && cfg.rope_base > 0, "rms epsilon and rope base must be positive");
    need(cfg.act_block >= 0 && (cfg.act_block == 0 || cfg.act_block % 32 == 0), "act_block must be 0 or a multiple of 32");
    for (int64_t w : {cfg.n_embd, cfg.n_ff, cfg.n_head * cfg.head_dim})
        need(cfg.act_block == 0 || w % cfg.act_block == 0, "act_block must divide every projection's input width");
    layers_.resize(static_cast<size_t>(cfg.n_layer));
    inv_freq_.resize(static_cast<size_t>(cfg.rope_dim / 2));
    for (int64_t i = 0; i < cfg.rope_dim / 2; ++i)
        inv_freq_[i] = static_cast<float>(std::pow(double(cfg.rope_base), -2.0 * double(i) / double(cfg.rope_dim)));
}

void Model::set_linear(int64_t layer, const char* name, std::unique_ptr<TernaryMatrix> m, float scale) {
    if (layer < 0 || layer >= cfg_.n_layer) throw std::invalid_argument("layer index out of range");
    const int64_t qd = cfg_.n_head * cfg_.head_dim, kvd = cfg_.n_head_kv * cfg_.head_dim;
    Layer& L = layers_[layer];
    const std::string n(name);
    Linear* slot;
    int64_t rows, cols;
    if (n == "attn_q") slot = &L.wq, rows = qd, cols = cfg_.n_embd;
    else if (n == "attn_k") slot = &L.wk, rows = kvd, cols = cfg_.n_embd;
    else if (n == "attn_v") slot = &L.wv, rows = kvd, cols = cfg_.n_embd;
    else if (n == "attn_output") slot = &L.wo, rows = cfg_.n_embd, cols = qd;
    else if (n == "ffn_gate") slot = &L.gate, rows = cfg_.n_ff, cols = cfg_.n_embd;
    else if (n == "ffn_up") slot = &L.up, rows = cfg_.n_ff, cols = cfg_.n_embd;
    else if (n == "ffn_down") slot = &L.down, rows = cfg_.n_embd, cols = cfg_.n_ff;
    else throw std::invalid_argument("unknown projection '" + n + "'");
    if (m->view().rows != rows || m->view().cols != cols)
        throw std::invalid_argument("blk." + std::to_string(layer) + "." + n + " has shape " +
                                    std::to_string(m->view().rows) + "x" + std::to_string(m->view().cols) +
                                    ", the config needs " + std::to_string(rows) + "x" + std::to_string(cols));
    if (!std::isfinite(scale)) throw std::invalid_argument("blk." + std::to_string(layer) + "." + n + ": scale is not finite");
    slot->m = std::move(m);
    slot->scale = scale;
}

void Model::set_norm(int64_t layer, const char* name, const float* w) {
    const std::string n(name);
    if (layer == -1 && n == "output_norm") {
        output_norm_ = w;
        return;
    }
    if (layer < 0 || layer >= cfg_.n_layer) throw std::invalid_argument("layer index out of range");
    Layer& L = layers_[layer];
    if (n == "attn_norm") L.attn_norm = w;
    else if (n == "attn_q_norm") L.attn_q_norm = w;
    else if (n == "attn_k_norm") L.attn_k_norm = w;
    else if (n == "attn_sub_norm") L.attn_sub_norm = w;
    else if (n == "ffn_norm") L.ffn_norm = w;
    else if (n == "ffn_sub_norm") L.ffn_sub_norm = w;
    else throw std::invalid_argument("unknown norm '" + n + "'");
}

void Model::set_head(const OutputHead& head) {
    const int kinds = (head.q != nullptr) + (head.q4 != nullptr) + (head.f32 != nullptr);
    if (kinds != 1 || (head.f32 == nullptr && head.q_scale == nullptr))
        throw std::invalid_argument("output head: give int8 or 4-bit rows with scales, or float32 rows");
    if (head.q4 != nullptr && cfg_.n_embd % kI4Block != 0)
        throw std::invalid_argument("output head: 4-bit rows need n_embd to be a multiple of " +
                                    std::to_string(kI4Block));
    head_ = head;
    head_ternary_ = Linear{};
}

void Model::set_head_ternary(std::unique_ptr<TernaryMatrix> m) {
    if (m->view().rows != cfg_.vocab || m->view().cols != cfg_.n_embd)
        throw std::invalid_argument("ternary output head has shape " + std::to_string(m->view().rows) + "x" +
                                    std::to_string(m->view().cols) + ", the config needs " +
                                    std::to_string(cfg_.vocab) + "x" + std::to_string(cfg_.n_embd));
    head_ = OutputHead{};
    head_ternary_ = Linear{std::move(m), 1.0f};
}

void Model::check_complete() const {
    auto need = [](bool ok, const std::string& what) {
        if (!ok) throw std::invalid_argument("model is incomplete: missing " + what);
    };
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
        const Layer& L = layers_[l];
        const std::string p = "blk." + std::to_string(l) + ".";
        need(L.attn_norm && L.ffn_norm, p + "attn_norm/ffn_norm");
        need(!cfg_.sub_norms || (L.attn_sub_norm && L.ffn_sub_norm), p + "attn_sub_norm/ffn_sub_norm");
        need(!cfg_.qk_norm || (L.attn_q_norm && L.attn_k_norm), p + "attn_q_norm/attn_k_norm");
        need(L.wq.m && L.wk.m && L.wv.m && L.wo.m, p + "attention projections");
        need(L.gate.m && L.up.m && L.down.m, p + "feed-forward projections");
    }
    need(output_norm_ != nullptr, "output_norm");
    need(head_.q != nullptr || head_.q4 != nullptr || head_.f32 != nullptr || head_ternary_.m, "output head");
}

// ---- pieces of the step ------------------------------------------------------------

// v's data, grown to at least n elements first. Never shrinks: a buffer sized for the largest batch serves every
// smaller one after it without a trip to the allocator.
template <class T>
static T* fit(std::vector<T>& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
}

// Elementwise work over n rows of width d, split over the pool's threads when it is big enough to pay for the
// wake-up (a prefill chunk; never a decode step).
template <class Fn>
static void over_rows(int64_t n, int64_t d, Fn&& fn) {
    if (n * d < (int64_t(1) << 16) || n < 2) {
        fn(int64_t(0), n);
        return;
    }
    parallel_rows(n, 1, std::forward<Fn>(fn), 1);
}

// Rotates each head's pairs by angle pos * inv_freq[i]: NEOX pairs (i, i + rope_dim/2), or the original
// interleaved pairs (2i, 2i + 1) that llama.cpp's GGUF llama files expect.
static void rope(float* v, int64_t n_heads, int64_t head_dim, int64_t rope_dim, bool neox, const float* cs,
                 const float* sn) {
    const int64_t half = rope_dim / 2;
    const int64_t stride = neox ? 1 : 2, other = neox ? half : 1;
    for (int64_t h = 0; h < n_heads; ++h) {
        float* a = v + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
            float& x0 = a[i * stride];
            float& x1 = a[i * stride + other];
            const float y0 = x0 * cs[i] - x1 * sn[i], y1 = x0 * sn[i] + x1 * cs[i];
            x0 = y0;
            x1 = y1;
        }
    }
}

Acts Model::quantize(const float* x, int64_t n, int64_t k, ForwardScratch& s) const {
    const VecOps& ops = vec_ops_for(isa_);
    int8_t* q = fit(s.act, n * k);
    if (cfg_.act_block == 0) {
        float* sc = fit(s.act_scale, n);
        over_rows(n, k, [&](int64_t t0, int64_t t1) { ops.quantize_rows(x + t0 * k, t1 - t0, k, q + t0 * k, sc + t0); });
        return Acts{q, n, nullptr, 0};
    }
    const int64_t nb = k / cfg_.act_block;
    float* d = fit(s.act_scale, n * nb);
    over_rows(n, k, [&](int64_t t0, int64_t t1) {
        ops.quantize_blocks(x + t0 * k, t1 - t0, k, cfg_.act_block, q + t0 * k, d + t0 * nb);
    });
    return Acts{q, n, d, cfg_.act_block};
}

void Model::rms_norm(const float* x, const float* w, int64_t n, int64_t d, float* out) const {
    const VecOps& ops = vec_ops_for(isa_);
    over_rows(n, d, [&](int64_t t0, int64_t t1) { ops.rms_norm(x + t0 * d, w, t1 - t0, d, cfg_.norm_eps, out + t0 * d); });
}

// x += h over n rows of d.
void Model::residual(float* x, const float* h, int64_t n, int64_t d) const {
    const VecOps& ops = vec_ops_for(isa_);
    over_rows(n, d, [&](int64_t t0, int64_t t1) { ops.add(x + t0 * d, h + t0 * d, (t1 - t0) * d); });
}

// The output's scale: the projection's own, divided by each token's activation scale (per-token activations; per
// block, the kernels applied them).
static void scale_rows(const VecOps& ops, float* out, int64_t n, int64_t rows, float scale, const Acts& x,
                       const float* act_scale) {
    over_rows(n, rows, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const float s = x.bscale != nullptr ? scale : scale / act_scale[t];
            if (s != 1.0f) ops.scale(out + t * rows, s, rows);
        }
    });
}

void Model::linear(const Linear& l, const Acts& x, const ForwardScratch& s, float* out) const {
    if (x.n == 1) l.m->gemv(x, out, isa_);
    else l.m->gemm(x, out, isa_);
    scale_rows(vec_ops_for(isa_), out, x.n, l.m->view().rows, l.scale, x, s.act_scale.data());
}

void Model::linears(std::initializer_list<std::pair<const Linear*, float*>> ls, const Acts& x,
                    const ForwardScratch& s) const {
    if (x.n != 1) {
        for (const auto& [l, out] : ls) linear(*l, x, s, out);
        return;
    }
    const TernaryMatrix* ms[8] = {};
    float* ys[8] = {};
    int count = 0;
    for (const auto& [l, out] : ls) {
        ms[count] = l->m.get();
        ys[count++] = out;
    }
    gemv_many(ms, ys, count, x, isa_);
    for (const auto& [l, out] : ls) scale_rows(vec_ops_for(isa_), out, 1, l->m->view().rows, l->scale, x, s.act_scale.data());
}

// Causal attention of n new query rows (positions kv.n_past + i, their keys and values already in the cache) over
// the cache. One task per KV head and block of query tokens: the block's rows (its tokens x the query heads that
// share the KV head) are scored against the keys in one small GEMM, softmaxed row by row (each up to its own
// position), and summed over the values in another.
void Model::attention(KvCache& kv, int64_t layer, const float* Q, int64_t n, float* out) const {
    const VecOps& ops = vec_ops_for(isa_);
    const int64_t hd = cfg_.head_dim, qd = cfg_.n_head * hd, group = cfg_.n_head / cfg_.n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int64_t pos0 = kv.n_past;
    // Tokens per task: the kernels' row block of query rows, so their register blocks are full and each key and
    // value is read once for all of them.
    const int64_t bq = std::max<int64_t>(1, ops.attn_rows / group), blocks = (n + bq - 1) / bq;
    const int64_t lds = (pos0 + n + 31) / 32 * 32;
    auto task = [&](int idx) {
        const int64_t g = idx % cfg_.n_head_kv, i0 = (idx / cfg_.n_head_kv) * bq, i1 = std::min(n, i0 + bq);
        const int64_t rows = (i1 - i0) * group, nk = pos0 + i1;
        thread_local std::vector<float> buf;
        float* S = fit(buf, rows * (lds + 2 * hd + 1));
        float* Qb = S + rows * lds;  // the block's query rows, gathered
        float* Ob = Qb + rows * hd;
        float* inv = Ob + rows * hd;  // 1 / each row's softmax sum
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t h = 0; h < group; ++h)
                std::memcpy(Qb + ((i - i0) * group + h) * hd, Q + i * qd + (g * group + h) * hd, sizeof(float) * hd);
        ops.attn_scores(Qb, hd, static_cast<int>(rows), kv.kt_at(layer, g), hd, nk, scale, S, lds);
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t own = pos0 + i0 + r / group + 1;  // this row's keys: up to its own position
            float* sr = S + r * lds;
            inv[r] = 1.0f / ops.softmax_exp(sr, own);
            for (int64_t t = own; t < nk; ++t) sr[t] = 0.0f;
        }
        ops.attn_wsum(S, lds, static_cast<int>(rows), kv.v_at(layer, g), hd, hd, nk, Ob, hd);
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t h = 0; h < group; ++h) {
                const int64_t r = (i - i0) * group + h;
                float* o = out + i * qd + (g * group + h) * hd;
                for (int64_t d = 0; d < hd; ++d) o[d] = Ob[r * hd + d] * inv[r];
            }
    };
    const int tasks = static_cast<int>(cfg_.n_head_kv * blocks);
    ThreadPool& pool = ThreadPool::instance();
    if (pool.size() > 1 && tasks > 1 && (pos0 + n) * n * cfg_.n_head > 256) pool.run(tasks, task);
    else for (int i = 0; i < tasks; ++i) task(i);
}

void Model::head(const float* h, int64_t n, float* logits, ForwardScratch& scratch) const {
    const int64_t d = cfg_.n_embd, V = cfg_.vocab;
    const VecOps& ops = vec_ops_for(isa_);
    if (head_ternary_.m) {
        linear(head_ternary_, quantize(h, n, d, scratch), scratch, logits);
        return;
    }
    if (head_.q != nullptr || head_.q4 != nullptr) {
        int8_t* q = fit(scratch.head_act, n * d);
        float* s = fit(scratch.head_act_scale, n);
        ops.quantize_rows(h, n, d, q, s);
        if (head_.q4 != nullptr && n > 1) {
            // Several tokens (a draft-verify pass): the 4-bit rows stream from memory once for all of them.
            const int8_t** xs = fit(scratch.head_xs, n);
            int32_t* xsums = fit(scratch.head_act_sum, n);
            float** ys = fit(scratch.head_ys, n);
            for (int64_t t = 0; t < n; ++t) {
                xs[t] = q + t * d;
                xsums[t] = 0;
                for (int64_t k = 0; k < d; ++k) xsums[t] += xs[t][k];
                ys[t] = logits + t * V;
            }
            parallel_rows(V, 256, [&](int64_t r0, int64_t r1) {
                // Blocks of 16 rows (20 KiB at d = 2560: they stay in L1) read from memory once, then by every token.
                for (int64_t b0 = r0; b0 < r1; b0 += 16) {
                    const int64_t b1 = b0 + 16 < r1 ? b0 + 16 : r1;
                    for (int64_t t = 0; t < n; ++t)
                        ops.gemv_i4(head_.q4, head_.q_scale, d, xs[t], xsums[t], ys[t], b0, b1);
                }
                for (int64_t t = 0; t < n; ++t) {
                    const float inv = 1.0f / s[t];
                    for (int64_t r = r0; r < r1; ++r) ys[t][r] *= inv;
                }
            });
            if (head_.exact != nullptr && head_.rescore_k > 0)
                for (int64_t t = 0; t < n; ++t) rescore_top(h + t * d, ys[t], scratch);
            return;
        }
        for (int64_t t = 0; t < n; ++t) {
            float* y = logits + t * V;
            const int8_t* qt = q + t * d;
            int32_t xsum = 0;
            for (int64_t k = 0; k < d; ++k) xsum += qt[k];
            parallel_rows(V, 256, [&](int64_t r0, int64_t r1) {
                if (head_.q4 != nullptr) ops.gemv_i4(head_.q4, head_.q_scale, d, qt, xsum, y, r0, r1);
                else ops.gemv_i8(head_.q, head_.q_scale, d, qt, y, r0, r1);
                const float inv = 1.0f / s[t];
                for (int64_t r = r0; r < r1; ++r) y[r] *= inv;
            });
            if (head_.exact != nullptr && head_.rescore_k > 0) rescore_top(h + t * d, y, scratch);
        }
    } else {
        for (int64_t t = 0; t < n; ++t) {
            float* y = logits + t * V;
            parallel_rows(V, 256, [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) y[r] = ops.dot(h + t * d, head_.f32 + r * d, d);
            });
        }
    }
}

void Model::rescore_top(const float* h, float* y, ForwardScratch& scratch) const {
    const int64_t d = cfg_.n_embd, V = cfg_.vocab, k = std::min<int64_t>(head_.rescore_k, V);
    int32_t* idx = fit(scratch.top, V);
    float* row = fit(scratch.exact_row, d);
    for (int64_t i = 0; i < V; ++i) idx[i] = static_cast<int32_t>(i);
    std::nth_element(idx, idx + (k - 1), idx + V, [&](int32_t a, int32_t b) { return y[a] > y[b]; });
    const VecOps& ops = vec_ops_for(isa_);
    for (int64_t j = 0; j < k; ++j) {
        const int64_t r = idx[j];
        table_row(head_.exact, head_.exact_type, r, d, row);
        y[r] = ops.dot(h, row, d);
    }
}

// ---- the step -------------------------------------------------------------------------

bool Model::forward(KvCache& kv, const float* x_in, int64_t n, int64_t n_logits, float* logits,
                    const std::atomic<bool>* cancel) const {
    const ModelConfig& c = cfg_;
    if (n < 1) return true;
    if (n_logits < 0 || n_logits > n) throw std::invalid_argument("n_logits must be between 0 and the token count");
    if (kv.n_past + n > kv.n_ctx)
        throw std::invalid_argument("context is full: " + std::to_string(kv.n_past) + " cached + " + std::to_string(n) +
                                    " new tokens exceed the context length " + std::to_string(kv.n_ctx));
    const int64_t d = c.n_embd, hd = c.head_dim, qd = c.n_head * hd, kvd = c.n_head_kv * hd, ff = c.n_ff;
    const int64_t wide = std::max({d, qd, ff}), half = c.rope_dim / 2;
    ForwardScratch& s = kv.scratch;
    float* x = fit(s.x, n * d);
    float* h = fit(s.h, n * wide);
    float* Q = fit(s.q, n * qd);
    float* K = fit(s.k, n * kvd);
    float* Vv = fit(s.v, n * kvd);
    float* att = fit(s.att, n * qd);
    float* G = fit(s.gate, n * ff);
    float* U = fit(s.up, n * ff);
    float* cs = fit(s.rope_cos, n * half);
    float* sn = fit(s.rope_sin, n * half);
    std::memcpy(x, x_in, sizeof(float) * static_cast<size_t>(n * d));
    const VecOps& ops = vec_ops_for(isa_);

    // RoPE angles for the new positions.
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < half; ++j) {
            const float th = static_cast<float>(kv.n_past + i) * inv_freq_[j];
            cs[i * half + j] = std::cos(th);
            sn[i * half + j] = std::sin(th);
        }

    for (int64_t l = 0; l < c.n_layer; ++l) {
        if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return false;
        const Layer& L = layers_[l];

        // Attention block.
        rms_norm(x, L.attn_norm, n, d, h);
        linears({{&L.wq, Q}, {&L.wk, K}, {&L.wv, Vv}}, quantize(h, n, d, s), s);
        if (c.qk_norm) {  // per head, before the rotation
            rms_norm(Q, L.attn_q_norm, n * c.n_head, hd, Q);
            rms_norm(K, L.attn_k_norm, n * c.n_head_kv, hd, K);
        }
        for (int64_t i = 0; i < n; ++i) {
            rope(Q + i * qd, c.n_head, hd, c.rope_dim, c.rope_neox, cs + i * half, sn + i * half);
            rope(K + i * kvd, c.n_head_kv, hd, c.rope_dim, c.rope_neox, cs + i * half, sn + i * half);
            const int64_t pos = kv.n_past + i;
            for (int64_t g = 0; g < c.n_head_kv; ++g) {  // keys go into their tile, transposed
                float* kt = kv.kt_at(l, g) + (pos / kKeyTile) * hd * kKeyTile + pos % kKeyTile;
                for (int64_t e = 0; e < hd; ++e) kt[e * kKeyTile] = K[i * kvd + g * hd + e];
                std::memcpy(kv.v_at(l, g) + pos * hd, Vv + i * kvd + g * hd, sizeof(float) * hd);
            }
        }
        attention(kv, l, Q, n, att);
        if (c.sub_norms) rms_norm(att, L.attn_sub_norm, n, qd, att);
        linear(L.wo, quantize(att, n, qd, s), s, h);
        residual(x, h, n, d);

        // Feed-forward block.
        rms_norm(x, L.ffn_norm, n, d, h);
        linears({{&L.gate, G}, {&L.up, U}}, quantize(h, n, d, s), s);
        if (c.act == FfnAct::Relu2) {
            for (int64_t i = 0; i < n * ff; ++i) {
                const float g = G[i] > 0.0f ? G[i] : 0.0f;
                G[i] = g * g * U[i];
            }
        } else {
            over_rows(n, ff, [&](int64_t t0, int64_t t1) { ops.silu_mul(G + t0 * ff, U + t0 * ff, (t1 - t0) * ff); });
        }
        if (c.sub_norms) rms_norm(G, L.ffn_sub_norm, n, ff, G);
        linear(L.down, quantize(G, n, ff, s), s, h);
        residual(x, h, n, d);
    }
    kv.n_past += n;
    if (n_logits > 0) {
        rms_norm(x + (n - n_logits) * d, output_norm_, n_logits, d, h);
        head(h, n_logits, logits, s);
    }
    return true;
}

}  // namespace ryz
