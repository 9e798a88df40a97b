#include "output_head.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "formats.h"

namespace ryz {

TableType table_type_from_name(const std::string& name) {
    if (name == "F32") return TableType::F32;
    if (name == "F16") return TableType::F16;
    if (name == "BF16") return TableType::BF16;
    throw std::invalid_argument("exact table type must be F32, F16 or BF16");
}

int64_t table_item_bytes(TableType type) { return type == TableType::F32 ? 4 : 2; }

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

void table_row(const void* table, TableType type, int64_t r, int64_t d, float* out) {
    for (int64_t c = 0; c < d; ++c) out[c] = table_value(table, type, r * d + c);
}

// max|row| / levels: the scale that maps a row onto [-levels, levels] (1 for an all-zero row).
static float symmetric_scale(const float* row, int64_t cols, float levels) {
    float amax = 0.0f;
    for (int64_t k = 0; k < cols; ++k) amax = std::max(amax, std::fabs(row[k]));
    return amax > 0.0f ? amax / levels : 1.0f;
}

void quantize_head_rows_i8(const float* w, int64_t rows, int64_t cols, int8_t* q, float* scales) {
    for (int64_t r = 0; r < rows; ++r) {
        const float scale = symmetric_scale(w + r * cols, cols, 127.0f), inv = 1.0f / scale;
        for (int64_t k = 0; k < cols; ++k) q[r * cols + k] = static_cast<int8_t>(std::nearbyint(w[r * cols + k] * inv));
        scales[r] = scale;
    }
}

int64_t i4_row_bytes(int64_t cols) {
    if (cols % kI4Block != 0)
        throw std::invalid_argument("4-bit rows need a multiple of " + std::to_string(kI4Block) + " columns");
    return cols / kI4Block * kI4Bytes;
}

void quantize_head_rows_i4(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scales) {
    const int64_t rb = i4_row_bytes(cols);
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = w + r * cols;
        const float scale = symmetric_scale(row, cols, 7.0f), inv = 1.0f / scale;
        uint8_t* out = q + r * rb;
        for (int64_t k = 0; k < cols; ++k) {
            const int v = static_cast<int>(std::nearbyint(row[k] * inv)) + kI4Offset;
            // Element k of its block: the low nibble of byte k for the first half, the high nibble of byte
            // k - kI4Bytes for the second.
            uint8_t& b = out[(k / kI4Block) * kI4Bytes + (k % kI4Bytes)];
            b = (k % kI4Block) < kI4Bytes ? static_cast<uint8_t>((b & 0xF0) | v)
                                          : static_cast<uint8_t>((b & 0x0F) | (v << 4));
        }
        scales[r] = scale;
    }
}

int64_t i4x4_bytes(int64_t rows, int64_t cols) {
    return (rows + kI4GroupRows - 1) / kI4GroupRows * kI4GroupRows * i4_row_bytes(cols);
}

void interleave_head_i4(const uint8_t* q, int64_t rows, int64_t cols, uint8_t* out) {
    const int64_t rb = i4_row_bytes(cols), blocks = rb / kI4Bytes;
    std::memset(out, 0, static_cast<size_t>(i4x4_bytes(rows, cols)));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t b = 0; b < blocks; ++b)
            std::memcpy(const_cast<uint8_t*>(i4x4_block(out, rb, r, b)), q + r * rb + b * kI4Bytes, kI4Bytes);
}

}  // namespace ryz
