// The transformer forward pass for BitNet-family models (llama.cpp `bitnet`,
// bitnet.cpp `bitnet-b1.58`, llama-style ternary models), read top to bottom in
// Model::forward. Weights are borrowed: the caller keeps every buffer alive.
#pragma once
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "cpu.h"
#include "matmul.h"
#include "output_head.h"

namespace ryz {

enum class FfnAct : int { Silu = 0, Relu2 = 1 };

struct ModelConfig {
    int64_t n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, rope_dim = 0, vocab = 0;
    float rope_base = 10000.0f, norm_eps = 1e-5f;
    FfnAct act = FfnAct::Silu;
    bool sub_norms = false;  // BitNet: RMSNorm before attn_output and before ffn_down
    bool rope_neox = true;   // rotate pairs (i, i + rope_dim/2); false: adjacent pairs (2i, 2i+1), llama GGUF
    bool qk_norm = false;    // Qwen3: RMSNorm over each head's q and k (weights of head_dim) before RoPE
    // Activations quantized to int8 per token (0, BitNet's rule) or per block of this many values (models not
    // trained with int8 activations: their outlier channels stay in their own blocks).
    int64_t act_block = 0;
};

// A ternary projection: packed matrix plus an optional extra output scale (GGUF `<proj>.scale`).
struct Linear {
    std::unique_ptr<TernaryMatrix> m;
    float scale = 1.0f;
};

struct Layer {
    const float* attn_norm = nullptr;
    const float* attn_q_norm = nullptr;  // [head_dim], qk_norm models
    const float* attn_k_norm = nullptr;
    const float* attn_sub_norm = nullptr;
    const float* ffn_norm = nullptr;
    const float* ffn_sub_norm = nullptr;
    Linear wq, wk, wv, wo, gate, up, down;
};

// Working memory of Model::forward and Model::head. A decode step runs once per generated token, and a dozen
// fresh vectors each time is a dozen allocator round trips (and page faults for the large ones) per token: so the
// buffers grow to the largest batch seen and are reused as they are from then on. Contents are scratch: every
// use writes before it reads.
struct ForwardScratch {
    std::vector<float> x;          // the residual stream [n, n_embd]
    std::vector<float> h;          // normed input / projection output [n, max(n_embd, q_dim, n_ff)]
    std::vector<float> q, k, v;    // attention projections [n, q_dim], [n, kv_dim], [n, kv_dim]
    std::vector<float> att;        // attention output [n, q_dim]
    std::vector<float> gate, up;   // feed-forward [n, n_ff]
    std::vector<int8_t> act;       // int8 activations of whatever feeds the next projection
    std::vector<float> act_scale;  // [n] (per-token) or [n, width / act_block] (per-block)
    std::vector<float> rope_cos, rope_sin;  // [n, rope_dim / 2]
    std::vector<float> scores;     // attention scores, one row of n_ctx per query row of a task (attention())
    // output head
    std::vector<int8_t> head_act;  // [n, n_embd]
    std::vector<float> head_act_scale;
    std::vector<int32_t> head_act_sum;
    std::vector<const int8_t*> head_xs;
    std::vector<float*> head_ys;
    std::vector<int32_t> top;      // [vocab] row indices, partially sorted by logit
    std::vector<float> exact_row;  // [n_embd]
};

// Keys and values for positions [0, n_past), float32, per KV head. Keys in tiles of kKeyTile positions,
// transposed ([layer][kv_head][ctx_pad / kKeyTile][head_dim][kKeyTile]: vec_ops.h), so the scores of a block of
// queries are a small GEMM whose vectors run along positions; values as rows ([layer][kv_head][n_ctx][head_dim]),
// the operand of the weighted sum. Each head's keys and values are one contiguous stream.
struct KvCache {
    KvCache(const ModelConfig& c, int64_t n_ctx);
    int64_t n_ctx, n_past = 0, kv_dim, head_dim, ctx_pad;  // ctx_pad: n_ctx rounded up to whole key tiles
    std::vector<float> k, v;
    // The sequence's forward() working memory: one sequence runs one forward pass at a time, so it needs no lock
    // and survives from step to step.
    ForwardScratch scratch;
    float* kt_at(int64_t layer, int64_t kv_head) {
        return k.data() + (layer * (kv_dim / head_dim) + kv_head) * head_dim * ctx_pad;
    }
    float* v_at(int64_t layer, int64_t kv_head) {
        return v.data() + (layer * (kv_dim / head_dim) + kv_head) * head_dim * n_ctx;
    }
};

class Model {
public:
    explicit Model(const ModelConfig& cfg);  // validates the dimensions (std::invalid_argument)

    const ModelConfig& config() const { return cfg_; }
    // Takes ownership of nothing but the matrix wrapper; the packed bytes stay the caller's.
    void set_linear(int64_t layer, const char* name, std::unique_ptr<TernaryMatrix> m, float scale);
    void set_norm(int64_t layer, const char* name, const float* w);  // layer -1: output_norm
    void set_head(const OutputHead& head);
    // A ternary output head [vocab, n_embd] (models whose head is ternary, e.g. Ternary-Bonsai): the projections'
    // kernels serve it, with the model's activation quantization.
    void set_head_ternary(std::unique_ptr<TernaryMatrix> m);
    // Throws std::invalid_argument naming the first missing piece.
    void check_complete() const;

    // Runs tokens whose embeddings are x [n, n_embd] at positions kv.n_past ... and appends them to kv.
    // logits: [n_logits, vocab] for the last n_logits tokens (n_logits <= n; 0 computes none).
    // If cancel becomes true the call stops between layers with kv unchanged and returns false.
    bool forward(KvCache& kv, const float* x, int64_t n, int64_t n_logits, float* logits,
                 const std::atomic<bool>* cancel = nullptr) const;
    // Output head alone: logits [n, vocab] from final hidden states h [n, n_embd] (already normed).
    void head(const float* h, int64_t n, float* logits, ForwardScratch& s) const;

    Isa isa() const { return isa_; }

private:
    void rms_norm(const float* x, const float* w, int64_t n, int64_t d, float* out) const;
    void residual(float* x, const float* h, int64_t n, int64_t d) const;
    // x [n, k] quantized the model's way into the scratch's int8 activations.
    Acts quantize(const float* x, int64_t n, int64_t k, ForwardScratch& s) const;
    // out [n, rows] = l(x); per-token scales applied here.
    void linear(const Linear& l, const Acts& x, const ForwardScratch& s, float* out) const;
    // Several projections of the same activations (q/k/v, gate/up).
    void linears(std::initializer_list<std::pair<const Linear*, float*>> ls, const Acts& x,
                 const ForwardScratch& s) const;
    void attention(KvCache& kv, int64_t layer, const float* Q, int64_t n, float* out) const;
    void rescore_top(const float* h, float* y, ForwardScratch& s) const;

    ModelConfig cfg_;
    Isa isa_;
    std::vector<Layer> layers_;
    const float* output_norm_ = nullptr;
    OutputHead head_;
    Linear head_ternary_;  // when set, the head
    std::vector<float> inv_freq_;  // RoPE: base^(-2i/rope_dim)
};

}  // namespace ryz
