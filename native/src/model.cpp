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
    : n_ctx(n_ctx_), kv_dim(c.n_head_kv * c.head_dim) {
    if (n_ctx < 1) throw std::invalid_argument("context length must be >= 1");
    k.assign(static_cast<size_t>(c.n_layer * n_ctx * kv_dim), 0.0f);
    v.assign(k.size(), 0.0f);
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
        need(L.wq.m && L.wk.m && L.wv.m && L.wo.m, p + "attention projections");
        need(L.gate.m && L.up.m && L.down.m, p + "feed-forward projections");
    }
    need(output_norm_ != nullptr, "output_norm");
    need(head_.q != nullptr || head_.q4 != nullptr || head_.f32 != nullptr, "output head");
}

// ---- pieces of the step ------------------------------------------------------------

// v's data, grown to at least n elements first. Never shrinks: a buffer sized for the largest batch serves every
// smaller one after it without a trip to the allocator.
template <class T>
static T* fit(std::vector<T>& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
}

static void rms_norm(const float* x, const float* w, int64_t n, int64_t d, float eps, float* out) {
    for (int64_t t = 0; t < n; ++t) {
        const float* xr = x + t * d;
        float* o = out + t * d;
        double ss = 0.0;
        for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
        const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(d) + double(eps)));
        for (int64_t i = 0; i < d; ++i) o[i] = xr[i] * inv * w[i];
    }
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

void Model::linear(const Linear& l, const int8_t* q, const float* act_scale, int64_t n, float* out) const {
    const int64_t rows = l.m->view().rows;
    if (n == 1) l.m->gemv(q, out, isa_);
    else l.m->gemm(q, n, out, isa_);
    for (int64_t t = 0; t < n; ++t) {
        const float s = l.scale / act_scale[t];
        float* o = out + t * rows;
        for (int64_t r = 0; r < rows; ++r) o[r] *= s;
    }
}

void Model::linears(std::initializer_list<std::pair<const Linear*, float*>> ls, const int8_t* q,
                    const float* act_scale, int64_t n) const {
    if (n != 1) {
        for (const auto& [l, out] : ls) linear(*l, q, act_scale, n, out);
        return;
    }
    const TernaryMatrix* ms[8];
    float* ys[8];
    int count = 0;
    for (const auto& [l, out] : ls) {
        ms[count] = l->m.get();
        ys[count++] = out;
    }
    gemv_many(ms, ys, count, q, isa_);
    for (const auto& [l, out] : ls) {
        const float s = l->scale / act_scale[0];
        for (int64_t r = 0; r < l->m->view().rows; ++r) out[r] *= s;
    }
}

// Causal attention of n new query rows (positions kv.n_past + i) over the cache, one task per head.
void Model::attention(KvCache& kv, int64_t layer, const float* Q, int64_t n, float* out) const {
    const VecOps& ops = vec_ops_for(isa_);
    const int64_t hd = cfg_.head_dim, qd = cfg_.n_head * hd, group = cfg_.n_head / cfg_.n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int64_t pos0 = kv.n_past;
    float* scores = fit(kv.scratch.scores, cfg_.n_head * kv.n_ctx);
    auto head_task = [&](int h) {
        float* sc = scores + h * kv.n_ctx;
        const int64_t g = h / group;
        for (int64_t i = 0; i < n; ++i) {
            const int64_t last = pos0 + i;
            const float* q = Q + i * qd + h * hd;
            float mx = -INFINITY;
            for (int64_t t = 0; t <= last; ++t) {
                sc[t] = ops.dot(q, kv.k_at(layer, t) + g * hd, hd) * scale;
                mx = sc[t] > mx ? sc[t] : mx;
            }
            float sum = 0.0f;
            for (int64_t t = 0; t <= last; ++t) sum += (sc[t] = std::exp(sc[t] - mx));
            float* o = out + i * qd + h * hd;
            std::memset(o, 0, sizeof(float) * hd);
            const float inv = 1.0f / sum;
            for (int64_t t = 0; t <= last; ++t) ops.axpy(o, sc[t] * inv, kv.v_at(layer, t) + g * hd, hd);
        }
    };
    ThreadPool& pool = ThreadPool::instance();
    if (pool.size() > 1 && cfg_.n_head > 1 && (pos0 + n) * n > 64) pool.run(static_cast<int>(cfg_.n_head), head_task);
    else for (int h = 0; h < cfg_.n_head; ++h) head_task(h);
}

void Model::head(const float* h, int64_t n, float* logits, ForwardScratch& scratch) const {
    const int64_t d = cfg_.n_embd, V = cfg_.vocab;
    const VecOps& ops = vec_ops_for(isa_);
    if (head_.q != nullptr || head_.q4 != nullptr) {
        int8_t* q = fit(scratch.head_act, n * d);
        float* s = fit(scratch.head_act_scale, n);
        quantize_rows(h, n, d, q, s);
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
    int8_t* q8 = fit(s.act, n * wide);
    float* act_s = fit(s.act_scale, n);
    float* cs = fit(s.rope_cos, n * half);
    float* sn = fit(s.rope_sin, n * half);
    std::memcpy(x, x_in, sizeof(float) * static_cast<size_t>(n * d));

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
        rms_norm(x, L.attn_norm, n, d, c.norm_eps, h);
        quantize_rows(h, n, d, q8, act_s);
        linears({{&L.wq, Q}, {&L.wk, K}, {&L.wv, Vv}}, q8, act_s, n);
        for (int64_t i = 0; i < n; ++i) {
            rope(Q + i * qd, c.n_head, hd, c.rope_dim, c.rope_neox, cs + i * half, sn + i * half);
            rope(K + i * kvd, c.n_head_kv, hd, c.rope_dim, c.rope_neox, cs + i * half, sn + i * half);
            std::memcpy(kv.k_at(l, kv.n_past + i), K + i * kvd, sizeof(float) * kvd);
            std::memcpy(kv.v_at(l, kv.n_past + i), Vv + i * kvd, sizeof(float) * kvd);
        }
        attention(kv, l, Q, n, att);
        if (c.sub_norms) rms_norm(att, L.attn_sub_norm, n, qd, c.norm_eps, att);
        quantize_rows(att, n, qd, q8, act_s);
        linear(L.wo, q8, act_s, n, h);
        for (int64_t i = 0; i < n * d; ++i) x[i] += h[i];

        // Feed-forward block.
        rms_norm(x, L.ffn_norm, n, d, c.norm_eps, h);
        quantize_rows(h, n, d, q8, act_s);
        linears({{&L.gate, G}, {&L.up, U}}, q8, act_s, n);
        if (c.act == FfnAct::Relu2) {
            for (int64_t i = 0; i < n * ff; ++i) {
                const float g = G[i] > 0.0f ? G[i] : 0.0f;
                G[i] = g * g * U[i];
            }
        } else {
            for (int64_t i = 0; i < n * ff; ++i) G[i] = G[i] / (1.0f + std::exp(-G[i])) * U[i];
        }
        if (c.sub_norms) rms_norm(G, L.ffn_sub_norm, n, ff, c.norm_eps, G);
        quantize_rows(G, n, ff, q8, act_s);
        linear(L.down, q8, act_s, n, h);
        for (int64_t i = 0; i < n * d; ++i) x[i] += h[i];
    }
    kv.n_past += n;
    if (n_logits > 0) {
        rms_norm(x + (n - n_logits) * d, output_norm_, n_logits, d, c.norm_eps, h);
        head(h, n_logits, logits, s);
    }
    return true;
}

}  // namespace ryz
