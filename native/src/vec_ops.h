// Float and int8 helpers for the forward pass (attention, output head), one
// set per ISA level like the ternary kernels: plain data and function pointers only.
#pragma once
#include <cstdint>
#include <cstring>

#include "block_layouts.h"
#include "cpu.h"

namespace ryz {

// Positions per tile of the keys' transposed layout (see attn_scores): a tile's dimension rows are 128 contiguous
// bytes, so the scores read one sequential stream, never a 4 KB stride that maps every row to one cache set.
constexpr int64_t kKeyTile = 32;

struct VecOps {
    float (*dot)(const float* a, const float* b, int64_t n);
    void (*axpy)(float* y, float a, const float* x, int64_t n);  // y += a * x
    // y[r] = row_scale[r] * sum_k W[r, k] * x[k] for r in [r0, r1): W int8 row-major [rows, n],
    // every W and x value in [-127, 127] (the SIMD path relies on it to stay in int16).
    void (*gemv_i8)(const int8_t* W, const float* row_scale, int64_t n, const int8_t* x, float* y, int64_t r0,
                    int64_t r1);
    // The same for 4-bit rows (BlockI4): W [rows, n/2] bytes, n a multiple of kI4Block; xsum = sum of x.
    void (*gemv_i4)(const uint8_t* W, const float* row_scale, int64_t n, const int8_t* x, int32_t xsum, float* y,
                    int64_t r0, int64_t r1);
    // out[i] = popcount(sig(i) XOR q) for i in [i0, i1), sig(i) the row rows[i] (or i when rows is null) of sigs,
    // rows of `bytes` bytes, a multiple of 8 (the index's binary signatures).
    void (*hamming)(const uint8_t* sigs, int64_t bytes, const uint8_t* q, const int64_t* rows, int64_t i0,
                    int64_t i1, uint16_t* out);
    // Attention. S[i][t] = scale * sum_d Q[i][d] K[t][d] for i < nq, t < nk: Q rows ldq apart, the keys in tiles
    // of kKeyTile positions transposed ([nk / kKeyTile rounded up][hd][kKeyTile]: key t, dimension d at
    // (t / kKeyTile) * hd * kKeyTile + d * kKeyTile + t % kKeyTile), S rows lds apart.
    void (*attn_scores)(const float* Q, int64_t ldq, int nq, const float* Kt, int64_t hd, int64_t nk, float scale,
                        float* S, int64_t lds);
    int attn_rows;  // query rows the two attention kernels block by (a task's rows are best a multiple)
    // O[i][0..hd) = sum_{t < nk} P[i][t] V[t][0..hd) for i < nq (V rows ldv apart).
    void (*attn_wsum)(const float* P, int64_t ldp, int nq, const float* V, int64_t ldv, int64_t hd, int64_t nk,
                      float* O, int64_t ldo);
    // x[i] = exp(x[i] - max(x)) for i < n; returns their sum.
    float (*softmax_exp)(float* x, int64_t n);
    // g[i] = silu(g[i]) * u[i].
    void (*silu_mul)(float* g, const float* u, int64_t n);
    // out[t] = x[t] / rms(x[t]) * w for n rows of d (in place allowed).
    void (*rms_norm)(const float* x, const float* w, int64_t n, int64_t d, float eps, float* out);
    void (*add)(float* y, const float* x, int64_t n);  // y += x
    void (*scale)(float* y, float s, int64_t n);       // y *= s
    // Activation quantization (act_quant.h), vectorized: the same results as the scalar functions there.
    void (*quantize_rows)(const float* x, int64_t n, int64_t k, int8_t* q, float* scale);
    void (*quantize_blocks)(const float* x, int64_t n, int64_t k, int64_t block, int8_t* q, float* d);
};

// Element k of a 4-bit output-head row (block_layouts.h: BlockI4).
inline int i4_element(const uint8_t* row, int64_t k) {
    const uint8_t b = row[(k / kI4Block) * kI4Bytes + (k % kI4Bytes)];
    return ((k % kI4Block) < kI4Bytes ? (b & 15) : (b >> 4)) - kI4Offset;
}

// The Hamming loop shared by the ISA sets, each passing its own popcount (the POPCNT instruction or bit tricks).
template <class Popcount>
inline void hamming_rows(const uint8_t* sigs, int64_t bytes, const uint8_t* q, const int64_t* rows, int64_t i0,
                         int64_t i1, uint16_t* out, Popcount popcount) {
    const int64_t words = bytes / 8;
    uint64_t qw[64];  // bytes <= 512 (checked by the caller)
    std::memcpy(qw, q, static_cast<size_t>(bytes));
    for (int64_t i = i0; i < i1; ++i) {
        const uint8_t* s = sigs + (rows ? rows[i] : i) * bytes;
        uint32_t d = 0;
        for (int64_t w = 0; w < words; ++w) {
            uint64_t v;
            std::memcpy(&v, s + 8 * w, 8);
            d += popcount(v ^ qw[w]);
        }
        out[i] = static_cast<uint16_t>(d);
    }
}

const VecOps& scalar_vec_ops();
const VecOps& avx2_vec_ops();
const VecOps& avx512_vec_ops();  // the AVX2 set with a VNNI 4-bit head (vec_avx512.cpp)
// The set for an ISA level.
const VecOps& vec_ops_for(Isa isa);

}  // namespace ryz
