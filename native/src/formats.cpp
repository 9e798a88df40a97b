#include "formats.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace ryz {

const char* format_name(Format f) {
    switch (f) {
        case Format::TQ1_0: return "TQ1_0";
        case Format::TQ2_0: return "TQ2_0";
        case Format::I2_S: return "I2_S";
        case Format::I2_S4: return "I2_S4";
        case Format::Q2_0: return "Q2_0";
        case Format::Q2_0_128: return "Q2_0_128";
        case Format::I2_R16: return "I2_R16";
        case Format::I2_R16_G64: return "I2_R16_G64";
        case Format::I2_R16_G128: return "I2_R16_G128";
        case Format::I2_R16_G256: return "I2_R16_G256";
    }
    return "?";
}

Format format_from_name(const std::string& name) {
    if (name == "TQ1_0" || name == "tq1_0") return Format::TQ1_0;
    if (name == "TQ2_0" || name == "tq2_0") return Format::TQ2_0;
    if (name == "I2_S" || name == "i2_s") return Format::I2_S;
    if (name == "I2_S4" || name == "i2_s4") return Format::I2_S4;
    for (int i = static_cast<int>(Format::Q2_0); i < kFormats; ++i)
        if (name == format_name(static_cast<Format>(i))) return static_cast<Format>(i);
    throw std::invalid_argument("unknown ternary packing '" + name +
                                "' (expected TQ1_0, TQ2_0, I2_S, I2_S4, Q2_0, Q2_0_128, I2_R16 or I2_R16_G64/128/256)");
}

int col_multiple(Format f) {
    if (scale_group(f) > 0) return static_cast<int>(scale_group(f));
    return f == Format::I2_R16 ? 64 : kI2Group;
}

void check_shape(Format f, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0)
        throw std::invalid_argument(std::string(format_name(f)) + ": rows and cols must be positive, got " +
                                    std::to_string(rows) + "x" + std::to_string(cols));
    if (cols % col_multiple(f) != 0)
        throw std::invalid_argument(std::string(format_name(f)) + ": row length " + std::to_string(cols) +
                                    " is not a multiple of " + std::to_string(col_multiple(f)));
}

int64_t row_bytes(Format f, int64_t cols) {
    switch (f) {
        case Format::TQ1_0: return cols / kTQBlock * kTQ1Bytes;
        case Format::TQ2_0: return cols / kTQBlock * kTQ2Bytes;
        case Format::Q2_0: return cols / 64 * static_cast<int64_t>(sizeof(BlockQ2_64));
        case Format::Q2_0_128: return cols / 128 * static_cast<int64_t>(sizeof(BlockQ2_128));
        default: return cols / 4;  // I2_S, I2_S4, I2_R16*: 2 bits a weight, scales (if any) apart
    }
}

int64_t scale_bytes(Format f, int64_t rows, int64_t cols) {
    if (is_i2(f)) return kI2Tail;
    if (!is_r16(f)) return 0;  // in the blocks
    const int64_t g = rows_per_group(f);
    return (rows + g - 1) / g * g * (cols / scale_group(f)) * 2;
}

int64_t packed_bytes(Format f, int64_t rows, int64_t cols) {
    const int64_t g = rows_per_group(f);
    return (rows + g - 1) / g * g * row_bytes(f, cols) + scale_bytes(f, rows, cols);
}

int64_t scale_count(Format f, int64_t rows, int64_t cols) {
    return is_i2(f) ? 1 : rows * (cols / scale_group(f));
}

// Block bytes and the scale's offset in a block, for the packings whose blocks carry their scale.
static void block_geometry(Format f, int64_t* bytes, int64_t* scale_at) {
    switch (f) {
        case Format::TQ1_0: *bytes = kTQ1Bytes; *scale_at = kTQ1ScaleAt; return;
        case Format::TQ2_0: *bytes = kTQ2Bytes; *scale_at = kTQ2ScaleAt; return;
        case Format::Q2_0: *bytes = sizeof(BlockQ2_64); *scale_at = offsetof(BlockQ2_64, d); return;
        case Format::Q2_0_128: *bytes = sizeof(BlockQ2_128); *scale_at = offsetof(BlockQ2_128, d); return;
        default: throw std::logic_error("block_geometry: the packing has no per-block scales");
    }
}

uint16_t tq_scale_bits(Format f, const uint8_t* row, int64_t b) {
    int64_t bytes, at;
    block_geometry(f, &bytes, &at);
    uint16_t d;
    std::memcpy(&d, row + b * bytes + at, sizeof d);
    return d;
}

float group_scale(const MatView& m, int64_t r, int64_t g) {
    if (m.gscales != nullptr) {
        const int64_t ng = m.cols / m.group;
        uint16_t h;
        std::memcpy(&h, m.gscales + ((r / kR16Rows) * ng + g) * kR16Rows + r % kR16Rows, sizeof h);
        return f16_to_f32(h);
    }
    if (m.group == 0) return m.tensor_scale;
    return f16_to_f32(tq_scale_bits(m.fmt, row_at(m, r), g));
}

// ---- f16 ------------------------------------------------------------------

float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: renormalise
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; --exp; }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // rounds to infinity
    if (absx < 0x38800000u) {  // subnormal half (or zero): round to nearest even at 2^-24
        float a;
        std::memcpy(&a, &absx, 4);
        const float scaled = a * 16777216.0f;  // exact: multiply by 2^24
        return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
    }
    // normal: round mantissa to 10 bits, nearest even
    const uint32_t mant_round = absx + 0xfff + ((absx >> 13) & 1);
    return static_cast<uint16_t>(sign | ((mant_round - 0x38000000u) >> 13));
}

// ---- pack / unpack ----------------------------------------------------------

static uint8_t code_of(int8_t w) {
    if (w < -1 || w > 1)
        throw std::invalid_argument("ternary weights must be -1, 0 or 1, got " + std::to_string(int(w)));
    return static_cast<uint8_t>(w + 1);
}

// Packs five (or, with a trailing zero digit, four) base-3 digits, most significant first.
static uint8_t pack_base3(const uint8_t* digits, int n) {
    int v = 0;
    for (int i = 0; i < 5; ++i) v = v * 3 + (i < n ? digits[i] : 0);
    return static_cast<uint8_t>((v * 256 + 242) / 243);  // ceil(v*256/243)
}

static uint8_t base3_digit(uint8_t b, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t q = static_cast<uint8_t>(b * pow3[n]);
    return static_cast<uint8_t>((q * 3) >> 8);
}

static void pack_tq1_block(const uint8_t* c, uint16_t d, uint8_t* out) {
    uint8_t digits[kTQ1Digits];
    for (const TQ1Part& p : kTQ1Parts)
        for (int m = 0; m < p.lanes; ++m) {
            for (int n = 0; n < p.digits; ++n) digits[n] = c[p.first + p.lanes * n + m];
            out[p.byte0 + m] = pack_base3(digits, p.digits);
        }
    std::memcpy(out + kTQ1ScaleAt, &d, sizeof d);
}

static void decode_tq1_block(const uint8_t* in, uint8_t* c) {
    for (const TQ1Part& p : kTQ1Parts)
        for (int m = 0; m < p.lanes; ++m)
            for (int n = 0; n < p.digits; ++n) c[p.first + p.lanes * n + m] = base3_digit(in[p.byte0 + m], n);
}

// Unit h of the block holds elements [128h, 128h + 128): 2-bit digit n of its byte m is element 128h + 32n + m.
static void pack_tq2_block(const uint8_t* c, uint16_t d, uint8_t* out) {
    for (int h = 0; h < 2; ++h)
        for (int m = 0; m < kUnitBytes; ++m) {
            uint8_t b = 0;
            for (int n = 0; n < 4; ++n) b |= static_cast<uint8_t>(c[kUnitCodes2 * h + kUnitBytes * n + m] << (2 * n));
            out[offsetof(BlockTQ2, qs) + kUnitBytes * h + m] = b;
        }
    std::memcpy(out + kTQ2ScaleAt, &d, sizeof d);
}

static void decode_tq2_block(const uint8_t* in, uint8_t* c) {
    for (int h = 0; h < 2; ++h)
        for (int m = 0; m < kUnitBytes; ++m) {
            const uint8_t b = in[offsetof(BlockTQ2, qs) + kUnitBytes * h + m];
            for (int n = 0; n < 4; ++n) c[kUnitCodes2 * h + kUnitBytes * n + m] = (b >> (2 * n)) & 3;
        }
}

// Digit n of byte m (bits 6 - 2n) is element 32n + m.
static void pack_i2_group(const uint8_t* c, uint8_t* out) {
    for (int m = 0; m < kUnitBytes; ++m) {
        uint8_t b = 0;
        for (int n = 0; n < 4; ++n) b |= static_cast<uint8_t>(c[kUnitBytes * n + m] << (6 - 2 * n));
        out[m] = b;
    }
}

static void decode_i2_unit(const uint8_t* in, uint8_t* c) {
    for (int m = 0; m < kUnitBytes; ++m)
        for (int n = 0; n < 4; ++n) c[kUnitBytes * n + m] = (in[m] >> (6 - 2 * n)) & 3;
}

// Weight j of a Q2_0 block at byte j / 4, bits 2 * (j % 4).
static void decode_q2_block(const uint8_t* qs, int n, uint8_t* c) {
    for (int j = 0; j < n; ++j) c[j] = (qs[j / 4] >> (2 * (j % 4))) & 3;
}

static void pack_q2_block(const uint8_t* c, int n, uint8_t* qs) {
    std::memset(qs, 0, static_cast<size_t>(n / 4));
    for (int j = 0; j < n; ++j) qs[j / 4] |= static_cast<uint8_t>(c[j] << (2 * (j % 4)));
}

// An I2_R16 row (from row_at): column k's code sits in chunk k / 16, byte k % 4 of the row's four, bits
// 2 * ((k % 16) / 4).
static void decode_r16_row(const uint8_t* row, int64_t cols, uint8_t* c) {
    for (int64_t ch = 0; ch < cols / kR16Cols; ++ch)
        for (int kk = 0; kk < 4; ++kk) {
            const uint8_t b = row[ch * kR16Chunk + kk];
            for (int p = 0; p < 4; ++p) c[ch * kR16Cols + 4 * p + kk] = (b >> (2 * p)) & 3;
        }
}

// Whole bytes: each of the row's bytes holds 4 of its codes, one per plane (no read-modify-write).
static void pack_r16_row(const uint8_t* c, int64_t cols, uint8_t* row) {
    for (int64_t ch = 0; ch < cols / kR16Cols; ++ch) {
        const uint8_t* cc = c + ch * kR16Cols;
        for (int kk = 0; kk < 4; ++kk)
            row[ch * kR16Chunk + kk] =
                static_cast<uint8_t>(cc[kk] | (cc[4 + kk] << 2) | (cc[8 + kk] << 4) | (cc[12 + kk] << 6));
    }
}

void decode_row_codes(Format f, const uint8_t* row, int64_t cols, uint8_t* codes) {
    switch (f) {
        case Format::TQ1_0:
            for (int64_t b = 0; b < cols / kTQBlock; ++b) decode_tq1_block(row + b * kTQ1Bytes, codes + b * kTQBlock);
            break;
        case Format::TQ2_0:
            for (int64_t b = 0; b < cols / kTQBlock; ++b) decode_tq2_block(row + b * kTQ2Bytes, codes + b * kTQBlock);
            break;
        case Format::I2_S:
        case Format::I2_S4: {
            const int64_t stride = f == Format::I2_S4 ? kI2S4UnitStride : kI2Bytes;
            for (int64_t g = 0; g < cols / kI2Group; ++g) decode_i2_unit(row + g * stride, codes + g * kI2Group);
            break;
        }
        case Format::Q2_0:
            for (int64_t b = 0; b < cols / 64; ++b)
                decode_q2_block(row + b * sizeof(BlockQ2_64) + offsetof(BlockQ2_64, qs), 64, codes + b * 64);
            break;
        case Format::Q2_0_128:
            for (int64_t b = 0; b < cols / 128; ++b)
                decode_q2_block(row + b * sizeof(BlockQ2_128) + offsetof(BlockQ2_128, qs), 128, codes + b * 128);
            break;
        default: decode_r16_row(row, cols, codes); break;
    }
}

// Row r of a packed tensor (see row_at in kernel_api.h).
static int64_t row_offset(Format f, int64_t r, int64_t rb) {
    if (f == Format::I2_S4) return (r / kI2S4Rows) * kI2S4Rows * rb + (r % kI2S4Rows) * kUnitBytes;
    if (is_r16(f)) return (r / kR16Rows) * kR16Rows * rb + (r % kR16Rows) / 8 * 32 + (r % 8) * 4;
    return r * rb;
}

static int64_t body_bytes(Format f, int64_t rows, int64_t cols) {
    return packed_bytes(f, rows, cols) - scale_bytes(f, rows, cols);
}

// I2_R16_G*: where the f16 scale of row r, group g sits, after the codes (read and written with memcpy: the
// buffer may sit at any address).
static int64_t r16_scale_at(Format f, int64_t rows, int64_t cols, int64_t r, int64_t g) {
    return body_bytes(f, rows, cols) + (((r / kR16Rows) * (cols / scale_group(f)) + g) * kR16Rows + r % kR16Rows) * 2;
}

static float r16_scale(Format f, const uint8_t* data, int64_t rows, int64_t cols, int64_t r, int64_t g) {
    uint16_t h;
    std::memcpy(&h, data + r16_scale_at(f, rows, cols, r, g), sizeof h);
    return f16_to_f32(h);
}

// Writes one row's codes (natural order) and its scales (scale_count / rows of them: one per group, none for
// one-scale packings) into a packed tensor whose body was prefilled (padding rows: code 1).
static void pack_row(Format f, const uint8_t* c, const float* sc, int64_t rows, int64_t cols, int64_t r,
                     uint8_t* out) {
    const int64_t rb = row_bytes(f, cols);
    uint8_t* dst = out + row_offset(f, r, rb);
    switch (f) {
        case Format::TQ1_0:
        case Format::TQ2_0:
            for (int64_t b = 0; b < cols / kTQBlock; ++b) {
                const uint16_t d = f32_to_f16(sc[b]);
                if (f == Format::TQ1_0) pack_tq1_block(c + b * kTQBlock, d, dst + b * kTQ1Bytes);
                else pack_tq2_block(c + b * kTQBlock, d, dst + b * kTQ2Bytes);
            }
            break;
        case Format::Q2_0:
        case Format::Q2_0_128: {
            const int n = static_cast<int>(scale_group(f));
            int64_t bytes, at;
            block_geometry(f, &bytes, &at);
            for (int64_t b = 0; b < cols / n; ++b) {
                const uint16_t d = f32_to_f16(sc[b]);
                std::memcpy(dst + b * bytes + at, &d, sizeof d);
                pack_q2_block(c + b * n, n, dst + b * bytes + 2);
            }
            break;
        }
        case Format::I2_S:
        case Format::I2_S4: {
            const int64_t stride = f == Format::I2_S4 ? kI2S4UnitStride : kI2Bytes;
            for (int64_t g = 0; g < cols / kI2Group; ++g) pack_i2_group(c + g * kI2Group, dst + g * stride);
            break;
        }
        default:
            pack_r16_row(c, cols, dst);
            if (f != Format::I2_R16)
                for (int64_t g = 0; g < cols / scale_group(f); ++g) {
                    const uint16_t h = f32_to_f16(sc[g]);
                    std::memcpy(out + r16_scale_at(f, rows, cols, r, g), &h, sizeof h);
                }
            break;
    }
}

static void write_tail(Format f, int64_t rows, int64_t cols, float scale, uint8_t* out) {
    uint8_t* tail = out + body_bytes(f, rows, cols);
    std::memset(tail, 0, kI2Tail);
    std::memcpy(tail + offsetof(I2STail, scale), &scale, sizeof scale);
}

void pack(Format f, const int8_t* w, const float* scales, int64_t rows, int64_t cols, uint8_t* out) {
    check_shape(f, rows, cols);
    std::vector<uint8_t> c(static_cast<size_t>(cols));
    if (rows_per_group(f) > 1) {  // padding rows: all codes 1 (zero), zero scales
        std::memset(out, 0x55, static_cast<size_t>(body_bytes(f, rows, cols)));
        std::memset(out + body_bytes(f, rows, cols), 0, static_cast<size_t>(scale_bytes(f, rows, cols)));
    }
    const int64_t per_row = is_i2(f) ? 0 : cols / scale_group(f);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < cols; ++k) c[k] = code_of(w[r * cols + k]);
        pack_row(f, c.data(), scales + r * per_row, rows, cols, r, out);
    }
    if (is_i2(f)) write_tail(f, rows, cols, scales[0], out);
}

void unpack(Format f, const uint8_t* data, int64_t rows, int64_t cols, int8_t* w, float* scales) {
    check_shape(f, rows, cols);
    std::vector<uint8_t> c(static_cast<size_t>(cols));
    const int64_t rb = row_bytes(f, cols);
    const int64_t per_row = is_i2(f) ? 0 : cols / scale_group(f);
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* src = data + row_offset(f, r, rb);
        decode_row_codes(f, src, cols, c.data());
        for (int64_t k = 0; k < cols; ++k) {
            // Codes are 0..2 in a well-formed file; a 2-bit code 3 reads as +2, as the kernels
            // (and llama.cpp's) compute it, so unpack and matmul always agree.
            w[r * cols + k] = static_cast<int8_t>(c[k] - 1);
        }
        for (int64_t b = 0; b < per_row; ++b)
            scales[r * per_row + b] = is_r16(f) ? r16_scale(f, data, rows, cols, r, b) : f16_to_f32(tq_scale_bits(f, src, b));
    }
    if (is_i2(f))
        std::memcpy(scales, data + body_bytes(f, rows, cols) + offsetof(I2STail, scale), sizeof(I2STail::scale));
}

static void count_codes(const uint8_t* c, int64_t n, int64_t* counts) {
    int64_t k[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; ++i) ++k[c[i] & 3];
    counts[0] += k[0];
    counts[1] += k[1];
    counts[2] += k[2];
    counts[3] += k[3];
}

void trit_counts(Format f, const uint8_t* data, int64_t rows, int64_t cols, int64_t* counts) {
    check_shape(f, rows, cols);
    counts[0] = counts[1] = counts[2] = counts[3] = 0;
    std::vector<uint8_t> c(static_cast<size_t>(cols));
    const int64_t rb = row_bytes(f, cols);
    for (int64_t r = 0; r < rows; ++r) {
        decode_row_codes(f, data + row_offset(f, r, rb), cols, c.data());
        count_codes(c.data(), cols, counts);
    }
}

// The one scale every block of a block-scaled tensor shares (0 when they differ or it is zero), or the I2 tail's.
static float shared_scale(Format f, const uint8_t* data, int64_t rows, int64_t cols) {
    if (is_i2(f)) {
        float scale;
        std::memcpy(&scale, data + body_bytes(f, rows, cols) + offsetof(I2STail, scale), sizeof scale);
        return scale;
    }
    if (is_r16(f)) {
        const float first = r16_scale(f, data, rows, cols, 0, 0);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t g = 0; g < cols / scale_group(f); ++g)
                if (r16_scale(f, data, rows, cols, r, g) != first) return 0.0f;
        return first;
    }
    const uint16_t first = tq_scale_bits(f, data, 0);
    for (int64_t b = 0; b < rows * (cols / scale_group(f)); ++b)  // a tensor's blocks are contiguous across rows
        if (tq_scale_bits(f, data, b) != first) return 0.0f;
    return f16_to_f32(first);
}

// Re-encodes every row of a tensor into another packing, with the given one scale (one-scale targets) or the
// source's own per-block scales (group targets, whose group is the source's).
static void repack(Format f, const uint8_t* data, int64_t rows, int64_t cols, Format to, float scale, uint8_t* out,
                   int64_t* counts) {
    if (rows_per_group(to) > 1) {
        std::memset(out, 0x55, static_cast<size_t>(body_bytes(to, rows, cols)));  // padding rows: codes 1 (zero)
        std::memset(out + body_bytes(to, rows, cols), 0, static_cast<size_t>(scale_bytes(to, rows, cols)));
    }
    std::vector<uint8_t> c(static_cast<size_t>(cols));
    const int64_t groups = is_i2(to) ? 0 : cols / scale_group(to);
    std::vector<float> sc(static_cast<size_t>(groups));
    std::vector<int8_t> wrow;
    if (counts != nullptr) counts[0] = counts[1] = counts[2] = counts[3] = 0;
    const int64_t rb = row_bytes(f, cols);
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* src = data + row_offset(f, r, rb);
        decode_row_codes(f, src, cols, c.data());
        if (counts != nullptr) count_codes(c.data(), cols, counts);
        for (int64_t g = 0; g < groups; ++g)
            sc[g] = is_r16(f) ? r16_scale(f, data, rows, cols, r, g) : f16_to_f32(tq_scale_bits(f, src, g));
        pack_row(to, c.data(), sc.data(), rows, cols, r, out);
    }
    if (is_i2(to)) write_tail(to, rows, cols, scale, out);
}

bool repack_i2s4(Format f, const uint8_t* data, int64_t rows, int64_t cols, uint8_t* out, int64_t* counts) {
    check_shape(f, rows, cols);
    if (f == Format::I2_S4 || cols % kI2Group != 0) return false;
    const float scale = shared_scale(f, data, rows, cols);
    if (scale == 0.0f) return false;
    repack(f, data, rows, cols, Format::I2_S4, scale, out, counts);
    return true;
}

Format r16_target(Format f, const uint8_t* data, int64_t rows, int64_t cols) {
    check_shape(f, rows, cols);
    if (shared_scale(f, data, rows, cols) != 0.0f && cols % col_multiple(Format::I2_R16) == 0) return Format::I2_R16;
    switch (scale_group(f)) {
        case 64: return Format::I2_R16_G64;
        case 128: return Format::I2_R16_G128;
        case 256: return Format::I2_R16_G256;
        default: return Format::I2_R16;  // a one-scale tensor with a zero scale: all its products are zero
    }
}

Format repack_r16(Format f, const uint8_t* data, int64_t rows, int64_t cols, uint8_t* out, int64_t* counts) {
    const Format to = r16_target(f, data, rows, cols);
    repack(f, data, rows, cols, to, shared_scale(f, data, rows, cols), out, counts);
    return to;
}

// ---- kernel order -------------------------------------------------------------

static KernelOrder make_order(Format f) {
    KernelOrder o;
    switch (f) {
        case Format::TQ2_0:
            // two units per block; extract k of unit h -> 128h + 32k + m
            o.block = kTQBlock;
            for (int h = 0; h < 2; ++h)
                for (int k = 0; k < 4; ++k)
                    for (int m = 0; m < kUnitBytes; ++m)
                        o.slots.push_back(static_cast<int16_t>(kUnitCodes2 * h + kUnitBytes * k + m));
            break;
        case Format::I2_S:
        case Format::I2_S4:
            // one unit per group; extract k (shift 2k) -> 32(3-k) + m
            o.block = kI2Group;
            for (int k = 0; k < 4; ++k)
                for (int m = 0; m < kUnitBytes; ++m) o.slots.push_back(static_cast<int16_t>(kUnitBytes * (3 - k) + m));
            break;
        case Format::TQ1_0:
            // Unit 0 is part 0 (qs[0..31]); unit 1 is parts 1 and 2 side by side, zero-padded: [qs[32..47] | qh |
            // zeros]. Digit n of a unit's lane m is the element the lane's part puts there, or nothing.
            o.block = kTQBlock;
            for (int unit = 0; unit < 2; ++unit)
                for (int n = 0; n < kTQ1Digits; ++n)
                    for (int m = 0; m < kUnitBytes; ++m) {
                        int e = -1;
                        for (const TQ1Part& p : kTQ1Parts) {
                            const int lane0 = p.byte0 - unit * kUnitBytes;  // the part's first lane in this unit
                            if (m >= lane0 && m < lane0 + p.lanes && n < p.digits)
                                e = p.first + p.lanes * n + (m - lane0);
                        }
                        o.slots.push_back(static_cast<int16_t>(e));
                    }
            break;
        default:  // the outer-product and group layouts read activations in natural order
            o.block = col_multiple(f);
            for (int k = 0; k < o.block; ++k) o.slots.push_back(static_cast<int16_t>(k));
            break;
    }
    o.identity = static_cast<int>(o.slots.size()) == o.block;
    for (size_t i = 0; i < o.slots.size(); ++i) o.identity = o.identity && o.slots[i] == static_cast<int16_t>(i);
    for (size_t i = 0; i < o.slots.size();) {
        if (o.slots[i] < 0) { ++i; continue; }
        size_t j = i + 1;
        while (j < o.slots.size() && o.slots[j] == o.slots[j - 1] + 1) ++j;
        o.runs.push_back({static_cast<int16_t>(i), o.slots[i], static_cast<int16_t>(j - i)});
        i = j;
    }
    return o;
}

const KernelOrder& kernel_order(Format f) {
    static const std::vector<KernelOrder> orders = [] {
        std::vector<KernelOrder> v;
        for (int i = 0; i < kFormats; ++i) v.push_back(make_order(static_cast<Format>(i)));
        return v;
    }();
    return orders[static_cast<size_t>(f)];
}

}  // namespace ryz
