// What the per-ISA kernel translation units see: plain data and function
// pointers only. Those units are compiled with wider instruction sets than the
// rest of the module, so they must not instantiate shared inline or template
// code (the linker could pick their copy for a CPU that lacks the ISA).
#pragma once
#include <cstdint>

#include "block_layouts.h"

namespace ryz {

// I2_S4 is the engine's decode layout (block_layouts.h): I2_S units with rows interleaved in fours, which models
// repack their 2-bit and TQ1_0 projections into at load when every block shares one scale. I2_R16 (and its
// group-scaled variants) is the outer-product layout: 16 rows interleaved per 64-byte chunk, read by the GEMV that
// handles group scales and per-block activation scales, and unpacked without a transpose by the GEMM. Q2_0 and
// Q2_0_128 are file packings (llama.cpp's and PrismML's) that models always repack.
enum class Format : int {
    TQ1_0 = 0, TQ2_0 = 1, I2_S = 2, I2_S4 = 3, Q2_0 = 4, Q2_0_128 = 5,
    I2_R16 = 6, I2_R16_G64 = 7, I2_R16_G128 = 8, I2_R16_G256 = 9,
};
constexpr int kFormats = 10;

// One tensor-wide fp32 scale in an I2_S tail.
static inline bool is_i2(Format f) { return f == Format::I2_S || f == Format::I2_S4 || f == Format::I2_R16; }
static inline bool is_r16(Format f) { return static_cast<int>(f) >= static_cast<int>(Format::I2_R16); }
static inline bool is_tq(Format f) { return f == Format::TQ1_0 || f == Format::TQ2_0; }
static inline int64_t rows_per_group(Format f) {
    return f == Format::I2_S4 ? kI2S4Rows : is_r16(f) ? kR16Rows : 1;
}
// Columns that share one scale: 0 for a tensor-wide scale (I2_S, I2_S4, I2_R16).
static inline int64_t scale_group(Format f) {
    switch (f) {
        case Format::TQ1_0: case Format::TQ2_0: case Format::I2_R16_G256: return kTQBlock;
        case Format::Q2_0: case Format::I2_R16_G64: return 64;
        case Format::Q2_0_128: case Format::I2_R16_G128: return 128;
        default: return 0;
    }
}

struct MatView {
    Format fmt;
    const uint8_t* data;  // packed rows: see row_at
    int64_t rows, cols, row_bytes;
    float tensor_scale;   // I2_S, I2_S4, I2_R16; and TQ when every block shares one nonzero scale
    bool uniform_scale;   // TQ: all block scales equal tensor_scale; the TQ2_0 GEMV then stays in
                          // integers (GEMM decides per panel of rows; TQ1_0 GEMV always scales per block)
    const uint16_t* gscales = nullptr;  // I2_R16_G*: f16 scales [rows / 16][cols / group][16]
    int64_t group = 0;                  // scale_group(fmt)
};

// Where row r starts: its first unit (I2_S4: the row's unit u is u * kI2S4UnitStride bytes further; I2_R16: the
// row's bytes in its group's first chunk, chunks kR16Chunk apart; other packings: the row's bytes are contiguous,
// row_bytes of them).
static inline const uint8_t* row_at(const MatView& m, int64_t r) {
    if (m.fmt == Format::I2_S4)
        return m.data + (r / kI2S4Rows) * kI2S4Rows * m.row_bytes + (r % kI2S4Rows) * kUnitBytes;
    if (is_r16(m.fmt))
        return m.data + (r / kR16Rows) * kR16Rows * m.row_bytes + (r % kR16Rows) / 8 * 32 + (r % 8) * 4;
    return m.data + r * m.row_bytes;
}

// Activation scales and sums per period: the columns [f * period, (f + 1) * period) of a token. The sums serve the
// offset trick (codes c = w + 1: sum(w x) = sum(c x) - sum(x)) wherever weight scales change inside a row; the scales
// exist only for per-block activations (each block of a token its own int8 scale: x ~ q * pscale), and are null for
// per-token activations (the caller applies the token's scale). period 0: neither is needed (one weight scale per
// tensor, per-token activations: only the total).
// One token's int8 activations, prepared by the driver.
struct ActRow {
    const int8_t* q;       // natural order, cols values
    const int8_t* qk;      // kernel order (see formats.h: kernel_order), for the SIMD GEMV
    const int32_t* psum;   // [cols / period]
    int32_t total;         // sum of all q
    const float* pscale = nullptr;  // [cols / period], or null
    int64_t period = 0;
};

// A batch of tokens, natural order, row-major [n, cols].
struct ActBatch {
    const int8_t* q;
    int64_t n;
    const int32_t* psum;   // [n, cols / period]
    const int32_t* total;  // [n]
    const float* pscale = nullptr;  // [n, cols / period], or null
    int64_t period = 0;
};

// y[r] = sum_k W[r,k] * q[k] with W's scales applied (activation scale not applied).
using GemvFn = void (*)(const MatView&, const ActRow&, float* y, int64_t r0, int64_t r1);
// Y[t, r] (row stride ldy) for t < n, r in [r0, r1).
using GemmFn = void (*)(const MatView&, const ActBatch&, float* Y, int64_t ldy, int64_t r0, int64_t r1);

// Y rows y[t][r] for nt tokens with prepared activations a[t], r in [r0, r1). Only for I2_S and TQ2_0 with one
// shared scale (multi_token_ok): a few tokens over the packed weights in one pass.
using GemvMultiFn = void (*)(const MatView&, const ActRow* a, int nt, float* const* y, int64_t r0, int64_t r1);

static inline bool multi_token_ok(const MatView& m) {
    return is_i2(m.fmt) || (m.fmt == Format::TQ2_0 && m.uniform_scale);
}

// Plain functions of formats.cpp the kernels call (declared here so the kernel units need no other header).
// Decodes one packed row (starting at row_at) into codes (w+1) in natural element order.
void decode_row_codes(Format f, const uint8_t* row, int64_t cols, uint8_t* codes);
// The scale of row r's group g (tensor_scale for one-scale packings).
float group_scale(const MatView& m, int64_t r, int64_t g);

struct KernelSet {
    GemvFn gemv;
    GemmFn gemm;
    GemvMultiFn gemv_multi;
};

const KernelSet& scalar_kernels();
const KernelSet& avx2_kernels();
const KernelSet& avxvnni_kernels();
const KernelSet& avx512_kernels();

}  // namespace ryz
