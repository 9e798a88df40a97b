// Byte layouts of the packed weights, as structs: every offset the packers and kernels use is a field's
// offsetof or a struct's sizeof, and the static_asserts below pin each layout to its file format.
// Plain data and constants only: the per-ISA kernel units include this header (see kernel_api.h).
//
// Ternary packings store codes c = w + 1 in {0, 1, 2} for weights w in {-1, 0, 1}. Fields are byte arrays plus
// one uint16_t of f16 bits; a block may sit at any address (rows follow each other, buffers come from files), so
// the scale is read with memcpy at its offset, never through a struct pointer.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ryz {

// The SIMD kernels read packed codes in 32-byte units: one vector of byte lanes.
constexpr int kUnitBytes = 32;
constexpr int kUnitCodes2 = 4 * kUnitBytes;  // 2-bit codes in one unit (TQ2_0, I2_S)

// ---- TQ2_0 (GGUF type 35, ggml's block_tq2_0) ---------------------------------------------------------------
// 256 weights in two units: byte qs[32h + m] holds element 128h + 32n + m in bits 2n..2n+1.
constexpr int kTQBlock = 256;  // weights per TQ1_0 / TQ2_0 block
struct BlockTQ2 {
    uint8_t qs[kTQBlock / 4];
    uint16_t d;  // f16 scale bits
};
constexpr int64_t kTQ2Bytes = sizeof(BlockTQ2);
constexpr int64_t kTQ2ScaleAt = offsetof(BlockTQ2, d);
static_assert(sizeof(BlockTQ2) == 66 && offsetof(BlockTQ2, qs) == 0 && offsetof(BlockTQ2, d) == 64,
              "TQ2_0 block: {uint8 qs[64]; f16 d}");
static_assert(sizeof(BlockTQ2::qs) == 2 * kUnitBytes, "a TQ2_0 block is two units (the kernels index u >> 1, u & 1)");

// ---- TQ1_0 (GGUF type 34, ggml's block_tq1_0, "Dense243") ---------------------------------------------------
// Base-3 digits, most significant first; a byte of value v is stored as ceil(v * 256 / 243). The block's bytes
// fall into three parts (qs[0..31], qs[32..47], qh[0..3]); digit n of the part's byte m is element
// first + lanes * n + m.
struct BlockTQ1 {
    uint8_t qs[48];
    uint8_t qh[4];
    uint16_t d;  // f16 scale bits
};
constexpr int64_t kTQ1Bytes = sizeof(BlockTQ1);
constexpr int64_t kTQ1ScaleAt = offsetof(BlockTQ1, d);
static_assert(sizeof(BlockTQ1) == 54 && offsetof(BlockTQ1, qs) == 0 && offsetof(BlockTQ1, qh) == 48 &&
                  offsetof(BlockTQ1, d) == 52,
              "TQ1_0 block: {uint8 qs[48]; uint8 qh[4]; f16 d}");

struct TQ1Part {
    int byte0;   // offset of the part's first byte in the block
    int lanes;   // bytes in the part
    int digits;  // base-3 digits per byte
    int first;   // element of digit 0 of byte 0
};
constexpr TQ1Part kTQ1Parts[3] = {
    {offsetof(BlockTQ1, qs), 32, 5, 0},
    {offsetof(BlockTQ1, qs) + 32, 16, 5, 160},
    {offsetof(BlockTQ1, qh), 4, 4, 240},
};
constexpr int kTQ1Digits = 5;  // digits per byte of qs
static_assert(kTQ1Parts[1].byte0 == kTQ1Parts[0].byte0 + kTQ1Parts[0].lanes &&
                  kTQ1Parts[2].byte0 == kTQ1Parts[1].byte0 + kTQ1Parts[1].lanes &&
                  kTQ1Parts[2].lanes == sizeof(BlockTQ1::qh),
              "the parts cover qs and qh in order");
static_assert(kTQ1Parts[1].first == kTQ1Parts[0].first + kTQ1Parts[0].lanes * kTQ1Parts[0].digits &&
                  kTQ1Parts[2].first == kTQ1Parts[1].first + kTQ1Parts[1].lanes * kTQ1Parts[1].digits &&
                  kTQBlock == kTQ1Parts[2].first + kTQ1Parts[2].lanes * kTQ1Parts[2].digits,
              "the parts cover the block's 256 elements in order");
// The SIMD kernels see a block as two units: part 0, then parts 1 and 2 zero-padded (simd_helpers.inl).
static_assert(kTQ1Parts[0].lanes == kUnitBytes && kTQ1Parts[1].lanes + kTQ1Parts[2].lanes <= kUnitBytes,
              "a TQ1_0 block fits two units");

// ---- I2_S (bitnet.cpp) --------------------------------------------------------------------------------------
// Groups of 128 weights in 32 bytes: weight j at byte j % 32, bits 6 - 2 * (j / 32). A tensor is rows * cols / 4
// bytes of groups, then a 32-byte tail holding the one fp32 scale.
constexpr int kI2Group = 128;  // weights per I2_S group
struct BlockI2S {
    uint8_t qs[kI2Group / 4];
};
struct I2STail {
    float scale;
    uint8_t zeros[28];
};
constexpr int64_t kI2Bytes = sizeof(BlockI2S);
constexpr int64_t kI2Tail = sizeof(I2STail);
static_assert(sizeof(BlockI2S) == kUnitBytes && kI2Group == kUnitCodes2, "an I2_S group is one unit");
static_assert(sizeof(I2STail) == 32 && offsetof(I2STail, scale) == 0, "I2_S tail: fp32 scale, then zeros");

// ---- I2_S4 (this engine's decode layout; never in a file) --------------------------------------------------
// I2_S units with rows interleaved in groups of four: unit u of row r sits at
// (r / 4) * 4 * row_bytes + u * 128 + (r % 4) * 32, so a GEMV over a group of rows reads one sequential stream of
// whole cache lines (a 64-byte load holds two rows' units). Rows are padded to a multiple of four with zero
// weights (code 1); then the I2_S tail with the scale.
constexpr int kI2S4Rows = 4;
constexpr int64_t kI2S4UnitStride = kI2S4Rows * kI2Bytes;
static_assert(kI2S4UnitStride == 128, "a group's unit is two cache lines");

// ---- Q2_0 (GGUF type 42): group-scaled 2-bit codes ------------------------------------------------------
// Mainline llama.cpp's block_q2_0: 64 weights, an f16 scale, then 16 bytes; weight j of the block sits in byte j / 4
// at bits 2 * (j % 4); code q means (q - 1) * d (code 3, +2, is not ternary). PrismML's original files use the same
// codes in blocks of 128 (34 bytes); a loader tells the two apart by the tensor's byte size.
template <int kWeights>
struct BlockQ2 {
    uint16_t d;  // f16 scale bits
    uint8_t qs[kWeights / 4];
};
using BlockQ2_64 = BlockQ2<64>;
using BlockQ2_128 = BlockQ2<128>;
static_assert(sizeof(BlockQ2_64) == 18 && offsetof(BlockQ2_64, qs) == 2, "Q2_0 block: {f16 d; uint8 qs[16]}");
static_assert(sizeof(BlockQ2_128) == 34 && offsetof(BlockQ2_128, qs) == 2, "Q2_0 g128 block: {f16 d; uint8 qs[32]}");

// ---- I2_R16 (this engine's row-interleaved layout; never in a file) ---------------------------------------
// Rows in groups of 16, each group's codes in chunks of 16 columns: a 64-byte chunk holds 16 rows x 16 columns,
// byte b = 32h + 4(r % 8) + (k % 4) for row r of half h = r / 8 and column k, at bits 2 * ((k % 16) / 4). So the
// chunk's 2-bit plane p (bits 2p..2p+1 of every byte) is rows 0..15 x columns 4p..4p+3, one byte each: the operand
// of an outer-product step, where one 4-byte broadcast of activations meets 8 (AVX2) or 16 (AVX-512) rows at once.
// Rows are padded to a multiple of 16 with zero weights (code 1). Scales: one fp32 for the tensor in an I2_S tail
// (I2_R16), or one f16 per row and group of G columns (I2_R16_G64 / G128 / G256), stored after the codes as
// [row group][group][16 rows], so a group's 16 row scales are one 32-byte load.
constexpr int kR16Rows = 16;
constexpr int kR16Cols = 16;                        // columns per chunk
constexpr int64_t kR16Chunk = kR16Rows * kR16Cols / 4;  // bytes per chunk
static_assert(kR16Chunk == 64, "a chunk is one cache line");

// ---- 4-bit output-head rows (output_head.h) -----------------------------------------------------------------
// Weight w in [-7, 7] stored as the nibble u = w + 8, 64 weights per 32-byte block: byte j holds element j in its
// low nibble and element 32 + j in its high nibble, so one AND and one shift give 32 consecutive elements each.
// A row is then sum(u * x) - 8 * sum(x), scaled.
struct BlockI4 {
    uint8_t nibbles[kUnitBytes];
};
constexpr int64_t kI4Block = 2 * sizeof(BlockI4);  // weights per block
constexpr int64_t kI4Bytes = sizeof(BlockI4);
constexpr int kI4Offset = 8;
static_assert(sizeof(BlockI4) == 32, "4-bit head block: 64 nibbles");

// The head as the kernels read it ("I4x4"): rows in groups of four, the group's rows interleaved one block at a
// time (row 0's block b, row 1's, row 2's, row 3's, then block b + 1), so a GEMV over four rows reads one
// sequential stream of whole cache lines instead of four row streams (the I2_S4 idea: the row-major head read at
// about half the rate of the projections in a 2B4T decode step). Rows are padded to a multiple of four; the
// row-major rows the quantizer writes are interleaved at load (interleave_head_i4, output_head.h).
constexpr int64_t kI4GroupRows = 4;
// Block b of row r in an I4x4 head whose rows are rb bytes.
inline const uint8_t* i4x4_block(const uint8_t* W, int64_t rb, int64_t r, int64_t b) {
    return W + (r / kI4GroupRows) * kI4GroupRows * rb + b * kI4GroupRows * kI4Bytes + (r % kI4GroupRows) * kI4Bytes;
}

}  // namespace ryz
