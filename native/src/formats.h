// Ternary weight packings: geometry, scalar pack/unpack, and the "kernel
// order" in which the SIMD kernels consume activations. The byte layouts
// themselves (TQ1_0, TQ2_0, I2_S) are the structs of block_layouts.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernel_api.h"

namespace ryz {

const char* format_name(Format f);
Format format_from_name(const std::string& name);  // throws std::invalid_argument

// Weights per row must be a multiple of this.
int col_multiple(Format f);
// Throws std::invalid_argument naming the problem if rows/cols do not fit the packing.
void check_shape(Format f, int64_t rows, int64_t cols);
int64_t row_bytes(Format f, int64_t cols);            // bytes of one packed row (I2_S: codes only)
int64_t packed_bytes(Format f, int64_t rows, int64_t cols);  // whole tensor, padding rows (I2_S4, I2_R16) and scales included
// Bytes of scales kept apart from the codes, after them: the I2 tail, or I2_R16_G*'s f16 group scales.
int64_t scale_bytes(Format f, int64_t rows, int64_t cols);
// Scales the packing carries: one per block or group (rows * cols / scale_group); I2_S, I2_S4, I2_R16: one.
int64_t scale_count(Format f, int64_t rows, int64_t cols);
// The f16 bits of block b's scale in a TQ1_0 / TQ2_0 / Q2_0 / Q2_0_128 row (b counts on across rows: the blocks
// are contiguous).
uint16_t tq_scale_bits(Format f, const uint8_t* row, int64_t b);


// w: int8 [rows, cols] with values in {-1,0,1}; scales: scale_count floats.
// Throws std::invalid_argument on a value outside {-1,0,1}.
void pack(Format f, const int8_t* w, const float* scales, int64_t rows, int64_t cols, uint8_t* out);
void unpack(Format f, const uint8_t* data, int64_t rows, int64_t cols, int8_t* w, float* scales);

// The decode layout: a TQ1_0 / TQ2_0 / I2_S tensor whose blocks all share one nonzero scale (every BitNet
// checkpoint's do) written to out (packed_bytes(I2_S4, rows, cols) bytes) as I2_S4 with that scale. Returns false,
// leaving out untouched, when the scales differ (the tensor keeps its own packing). counts (if not null) gets the
// number of weights -1, 0 and +1, then of 2-bit codes 3 (+2: not ternary, never in a well-formed file; the
// kernels' int16 bounds assume there are none, so the bindings refuse a tensor that has them).
bool repack_i2s4(Format f, const uint8_t* data, int64_t rows, int64_t cols, uint8_t* out, int64_t* counts);
// The outer-product layout a tensor repacks into: I2_R16 when all its blocks share one nonzero scale, else the
// I2_R16_G* of its own group (Q2_0: G64, Q2_0_128: G128, TQ: G256).
Format r16_target(Format f, const uint8_t* data, int64_t rows, int64_t cols);
// Writes the tensor into out (packed_bytes(r16_target(...)) bytes) in that layout and returns it; counts as above.
Format repack_r16(Format f, const uint8_t* data, int64_t rows, int64_t cols, uint8_t* out, int64_t* counts);
// The number of weights -1, 0 and +1 in a packed tensor, then of codes 3 (counts[4]).
void trit_counts(Format f, const uint8_t* data, int64_t rows, int64_t cols, int64_t* counts);


// Kernel order: the SIMD kernels walk a row in 32-byte units and extract 32
// codes at a time; slot s of the activation vector they read corresponds to
// element kernel_order(f)[s % period] + (s / period) * block, or to nothing (-1).
struct KernelOrder {
    int block = 0;                // elements per period
    std::vector<int16_t> slots;   // period: element index within the block, or -1
    bool identity = false;        // slots == 0, 1, ..., block-1: no copy needed
    // The same mapping as contiguous runs, for a fast copy: slots[dst + i] = src + i
    // for i < len; slots not covered by a run are -1 (zero).
    struct Run { int16_t dst, src, len; };
    std::vector<Run> runs;
};
const KernelOrder& kernel_order(Format f);

// IEEE half <-> float, portable (no F16C needed).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace ryz
