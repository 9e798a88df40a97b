// What the per-ISA kernel translation units see: plain data and function
// pointers only. Those units are compiled with wider instruction sets than the
// rest of the module, so they must not instantiate shared inline or template
// code (the linker could pick their copy for a CPU that lacks the ISA).
#pragma once
#include <cstdint>

#include "block_layouts.h"

namespace ryz {

// I2_S4 is the engine's decode layout (block_layouts.h): I2_S units with rows interleaved in fours, which models
// repack their 2-bit and TQ1_0 projections into at load when every block shares one scale.
enum class Format : int { TQ1_0 = 0, TQ2_0 = 1, I2_S = 2, I2_S4 = 3 };

static inline bool is_i2(Format f) { return f == Format::I2_S || f == Format::I2_S4; }  // I2_S codes, one tensor scale
static inline int64_t rows_per_group(Format f) { return f == Format::I2_S4 ? kI2S4Rows : 1; }

struct MatView {
    Format fmt;
    const uint8_t* data;  // packed rows: see row_at
    int64_t rows, cols, row_bytes;
    float tensor_scale;   // I2_S; and TQ when every block shares one nonzero scale
    bool uniform_scale;   // TQ: all block scales equal tensor_scale; the TQ2_0 GEMV then stays in
                          // integers (GEMM decides per panel of rows; TQ1_0 GEMV always scales per block)
};

// Where row r starts: its first unit (I2_S4: the row's unit u is u * kI2S4UnitStride bytes further; other
// packings: the row's bytes are contiguous, row_bytes of them).
static inline const uint8_t* row_at(const MatView& m, int64_t r) {
    if (m.fmt != Format::I2_S4) return m.data + r * m.row_bytes;
    return m.data + (r / kI2S4Rows) * kI2S4Rows * m.row_bytes + (r % kI2S4Rows) * kUnitBytes;
}

// One token's int8 activations, prepared by the driver.
struct ActRow {
    const int8_t* q;       // natural order, cols values
    const int8_t* qk;      // kernel order (see formats.h: kernel_order), for the SIMD GEMV
    const int32_t* bsum;   // TQ: sum of q over each 256-block
    int32_t total;         // sum of all q
};

// A batch of tokens, natural order, row-major [n, cols].
struct ActBatch {
    const int8_t* q;
    int64_t n;
    const int32_t* bsum;   // TQ: [n, cols/256]
    const int32_t* total;  // [n]
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

struct KernelSet {
    GemvFn gemv;
    GemmFn gemm;
    GemvMultiFn gemv_multi;
};

const KernelSet& scalar_kernels();
const KernelSet& avx2_kernels();
const KernelSet& avx512_kernels();

}  // namespace ryz
