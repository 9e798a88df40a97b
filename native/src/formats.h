// Ternary weight packings: geometry, scalar pack/unpack, and the "kernel
// order" in which the SIMD kernels consume activations.
//
// Every packing stores codes c = w + 1 in {0, 1, 2} for weights w in {-1, 0, 1}.
//   TQ2_0  (GGUF type 35): blocks of 256 as {uint8 qs[64]; f16 d}, 66 bytes.
//          Byte qs[32c+m] holds element 128c+32n+m in bits 2n..2n+1.
//   TQ1_0  (GGUF type 34, "Dense243"): blocks of 256 as {uint8 qs[48]; uint8 qh[4]; f16 d}, 54 bytes.
//          qs[0..31]: 5 base-3 digits per byte, elements 32n+m; qs[32..47]: elements 160+16n+m;
//          qh[0..3]: 4 digits per byte, elements 240+4n+m. A byte of value v is stored as ceil(v*256/243).
//   I2_S   (bitnet.cpp): groups of 128 weights in 32 bytes, weight j at byte j%32, bit shift 6-2*(j/32);
//          rows*cols/4 bytes of codes, then one fp32 tensor scale in a 32-byte tail.
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
int64_t packed_bytes(Format f, int64_t rows, int64_t cols);  // whole tensor, tail included
// Scales the packing carries: TQ: one per block (rows * cols/256); I2_S: one.
int64_t scale_count(Format f, int64_t rows, int64_t cols);

// w: int8 [rows, cols] with values in {-1,0,1}; scales: scale_count floats.
// Throws std::invalid_argument on a value outside {-1,0,1}.
void pack(Format f, const int8_t* w, const float* scales, int64_t rows, int64_t cols, uint8_t* out);
void unpack(Format f, const uint8_t* data, int64_t rows, int64_t cols, int8_t* w, float* scales);

// Decodes one packed row into codes (w+1) in natural element order.
void decode_row_codes(Format f, const uint8_t* row, int64_t cols, uint8_t* codes);

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
