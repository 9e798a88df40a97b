// The output projection [vocab, n_embd]: the rows the head reads and the quantizers that write them.
//
// int8 or 4-bit rows with one scale each (a quarter or an eighth of the F32 bytes), or plain float32 (the
// reference the quantized heads are checked against). A quantized head picks candidates; its top `rescore_k`
// logits per token are then recomputed exactly from the stored table (`exact`, F32/F16/BF16 rows), so greedy
// decoding agrees with the full-precision head whenever the true best token is among the quantized head's top k,
// at a cost of k rows read per token.
#pragma once
#include <cstdint>
#include <string>

#include "block_layouts.h"

namespace ryz {

enum class TableType : int { F32 = 0, F16 = 1, BF16 = 2 };

struct OutputHead {
    const int8_t* q = nullptr;      // int8 rows [vocab, n_embd]
    const uint8_t* q4 = nullptr;    // or 4-bit rows [vocab, n_embd / 2] in the I4x4 layout (block_layouts.h)
    const float* q_scale = nullptr; // one per row, for either
    const float* f32 = nullptr;
    const void* exact = nullptr;
    TableType exact_type = TableType::F32;
    int rescore_k = 0;
};

// "F32", "F16" or "BF16"; std::invalid_argument otherwise.
TableType table_type_from_name(const std::string& name);
int64_t table_item_bytes(TableType type);
// Row r of a [rows, d] table, as floats.
void table_row(const void* table, TableType type, int64_t r, int64_t d, float* out);

// Per-row symmetric int8 (w: [rows, cols] float32): scale = max|w| / 127, q = round_half_even(w / scale) in
// [-127, 127]; an all-zero row gets scale 1.
void quantize_head_rows_i8(const float* w, int64_t rows, int64_t cols, int8_t* q, float* scales);

// Bytes of one 4-bit row of cols weights; std::invalid_argument unless cols is a multiple of kI4Block.
int64_t i4_row_bytes(int64_t cols);
// Per-row symmetric 4-bit: scale = max|w| / 7, q = round_half_even(w / scale) in [-7, 7], written as BlockI4
// rows (q: [rows, i4_row_bytes(cols)]).
void quantize_head_rows_i4(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scales);
// Bytes of the I4x4 layout of rows 4-bit rows (padded to a multiple of four rows).
int64_t i4x4_bytes(int64_t rows, int64_t cols);
// Row-major 4-bit rows (as quantize_head_rows_i4 writes them) -> the I4x4 layout (out: i4x4_bytes; pad rows zero).
void interleave_head_i4(const uint8_t* q, int64_t rows, int64_t cols, uint8_t* out);

}  // namespace ryz
