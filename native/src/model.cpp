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
    if (head.q4 != nullptr && cfg_.n_embd % 64 != 0)
        throw std::invalid_argument("output head: 4-bit rows need n_embd to be a multiple of 64");
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
    auto head_task = [&](int h) {
        thread_local std::vector<float> sc;
        sc.resize(static_cast<size_t>(kv.n_ctx));
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

void Model::head(const float* h, int64_t n, float* logits) const {
    const int64_t d = cfg_.n_embd, V = cfg_.vocab;
    const VecOps& ops = vec_ops_for(isa_);
    if (head_.q != nullptr || head_.q4 != nullptr) {
        std::vector<int8_t> q(static_cast<size_t>(n * d));
        std::vector<float> s(static_cast<size_t>(n));
        quantize_rows(h, n, d, q.data(), s.data());
        if (head_.q4 != nullptr && n > 1) {
            // Several tokens (a draft-verify pass): the 4-bit rows stream from memory once for all of them.
            std::vector<const int8_t*> xs(static_cast<size_t>(n));
            std::vector<int32_t> xsums(static_cast<size_t>(n), 0);
            std::vector<float*> ys(static_cast<size_t>(n));
            for (int64_t t = 0; t < n; ++t) {
                xs[t] = q.data() + t * d;
                for (int64_t k = 0; k < d; ++k) xsums[t] += xs[t][k];
                ys[t] = logits + t * V;
            }
            parallel_rows(V, 256, [&](int64_t r0, int64_t r1) {
                ops.gemv_i4_multi(head_.q4, head_.q_scale, d, xs.data(), xsums.data(), static_cast<int>(n), ys.data(),
                                  r0, r1);
                for (int64_t t = 0; t < n; ++t) {
                    const float inv = 1.0f / s[t];
                    for (int64_t r = r0; r < r1; ++r) ys[t][r] *= inv;
                }
            });
            if (head_.exact != nullptr && head_.rescore_k > 0)
                for (int64_t t = 0; t < n; ++t) rescore_top(h + t * d, ys[t]);
            return;
        }
        for (int64_t t = 0; t < n; ++t) {
            float* y = logits + t * V;
            const int8_t* qt = q.data() + t * d;
            int32_t xsum = 0;
            for (int64_t k = 0; k < d; ++k) xsum += qt[k];
            parallel_rows(V, 256, [&](int64_t r0, int64_t r1) {
                if (head_.q4 != nullptr) ops.gemv_i4(head_.q4, head_.q_scale, d, qt, xsum, y, r0, r1);
                else ops.gemv_i8(head_.q, head_.q_scale, d, qt, y, r0, r1);
                const float inv = 1.0f / s[t];
                for (int64_t r = r0; r < r1; ++r) y[r] *= inv;
            });
            if (head_.exact != nullptr && head_.rescore_k > 0) rescore_top(h + t * d, y);
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

static float table_value(const void* table, TableType type, int64_t i) {
    switch (type) {
        case TableType::F16: return f16_to_f32(static_cast<const uint16_t*>(table)[i]);
        case TableType::BF16: {
            const uint32_t bits = uint32_t(static_cast<const uint16_t*>(table)[i]) << 16;
            float f;
            std::memcpy(&f, &bits, 4);
            return f;
        }
        default: return static_cast<const float*>(table)[i];
    }
}

void Model::rescore_top(const float* h, float* y) const {
    const int64_t d = cfg_.n_embd, V = cfg_.vocab, k = std::min<int64_t>(head_.rescore_k, V);
    thread_local std::vector<int32_t> idx;
    thread_local std::vector<float> row;
    idx.resize(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) idx[i] = static_cast<int32_t>(i);
    std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), [&](int32_t a, int32_t b) { return y[a] > y[b]; });
    row.resize(static_cast<size_t>(d));
    const VecOps& ops = vec_ops_for(isa_);
    for (int64_t j = 0; j < k; ++j) {
        const int64_t r = idx[j];
        for (int64_t c = 0; c < d; ++c) row[c] = table_value(head_.exact, head_.exact_type, r * d + c);
        y[r] = ops.dot(h, row.data(), d);
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
    const int64_t wide = std::max({d, qd, ff});
    std::vector<float> x(x_in, x_in + n * d), h(static_cast<size_t>(n * wide)), Q(static_cast<size_t>(n * qd)),
        K(static_cast<size_t>(n * kvd)), Vv(static_cast<size_t>(n * kvd)), att(static_cast<size_t>(n * qd)),
        G(static_cast<size_t>(n * ff)), U(static_cast<size_t>(n * ff)), act_s(static_cast<size_t>(n));
    std::vector<int8_t> q8(static_cast<size_t>(n * wide));

    // RoPE angles for the new positions.
    const int64_t half = c.rope_dim / 2;
    std::vector<float> cs(static_cast<size_t>(n * half)), sn(cs.size());
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
        rms_norm(x.data(), L.attn_norm, n, d, c.norm_eps, h.data());
        quantize_rows(h.data(), n, d, q8.data(), act_s.data());
        linears({{&L.wq, Q.data()}, {&L.wk, K.data()}, {&L.wv, Vv.data()}}, q8.data(), act_s.data(), n);
        for (int64_t i = 0; i < n; ++i) {
            rope(Q.data() + i * qd, c.n_head, hd, c.rope_dim, c.rope_neox, &cs[i * half], &sn[i * half]);
            rope(K.data() + i * kvd, c.n_head_kv, hd, c.rope_dim, c.rope_neox, &cs[i * half], &sn[i * half]);
            std::memcpy(kv.k_at(l, kv.n_past + i), K.data() + i * kvd, sizeof(float) * kvd);
            std::memcpy(kv.v_at(l, kv.n_past + i), Vv.data() + i * kvd, sizeof(float) * kvd);
        }
        attention(kv, l, Q.data(), n, att.data());
        if (c.sub_norms) rms_norm(att.data(), L.attn_sub_norm, n, qd, c.norm_eps, att.data());
        quantize_rows(att.data(), n, qd, q8.data(), act_s.data());
        linear(L.wo, q8.data(), act_s.data(), n, h.data());
        for (int64_t i = 0; i < n * d; ++i) x[i] += h[i];

        // Feed-forward block.
        rms_norm(x.data(), L.ffn_norm, n, d, c.norm_eps, h.data());
        quantize_rows(h.data(), n, d, q8.data(), act_s.data());
        linears({{&L.gate, G.data()}, {&L.up, U.data()}}, q8.data(), act_s.data(), n);
        if (c.act == FfnAct::Relu2) {
            for (int64_t i = 0; i < n * ff; ++i) {
                const float g = G[i] > 0.0f ? G[i] : 0.0f;
                G[i] = g * g * U[i];
            }
        } else {
            for (int64_t i = 0; i < n * ff; ++i) G[i] = G[i] / (1.0f + std::exp(-G[i])) * U[i];
        }
        if (c.sub_norms) rms_norm(G.data(), L.ffn_sub_norm, n, ff, c.norm_eps, G.data());
        quantize_rows(G.data(), n, ff, q8.data(), act_s.data());
        linear(L.down, q8.data(), act_s.data(), n, h.data());
        for (int64_t i = 0; i < n * d; ++i) x[i] += h[i];
    }
    kv.n_past += n;
    if (n_logits > 0) {
        rms_norm(x.data() + (n - n_logits) * d, output_norm_, n_logits, d, c.norm_eps, h.data());
        head(h.data(), n_logits, logits);
    }
    return true;
}

}  // namespace ryz
