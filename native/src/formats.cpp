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
    }
    return "?";
}

Format format_from_name(const std::string& name) {
    if (name == "TQ1_0" || name == "tq1_0") return Format::TQ1_0;
    if (name == "TQ2_0" || name == "tq2_0") return Format::TQ2_0;
    if (name == "I2_S" || name == "i2_s") return Format::I2_S;
    if (name == "I2_S4" || name == "i2_s4") return Format::I2_S4;
    throw std::invalid_argument("unknown ternary packing '" + name + "' (expected TQ1_0, TQ2_0, I2_S or I2_S4)");
}

int col_multiple(Format f) { return is_i2(f) ? kI2Group : kTQBlock; }

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
        case Format::I2_S:
        case Format::I2_S4: return cols / kI2Group * kI2Bytes;
    }
    return 0;
}

int64_t packed_bytes(Format f, int64_t rows, int64_t cols) {
    const int64_t g = rows_per_group(f);
    return (rows + g - 1) / g * g * row_bytes(f, cols) + (is_i2(f) ? kI2Tail : 0);
}

int64_t scale_count(Format f, int64_t rows, int64_t cols) {
    return is_i2(f) ? 1 : rows * (cols / kTQBlock);
}

uint16_t tq_scale_bits(Format f, const uint8_t* row, int64_t b) {
    uint16_t d;
    if (f == Format::TQ1_0) std::memcpy(&d, row + b * kTQ1Bytes + kTQ1ScaleAt, sizeof d);
    else std::memcpy(&d, row + b * kTQ2Bytes + kTQ2ScaleAt, sizeof d);
    return d;
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
    }
}

// Row r of a packed tensor (see row_at in kernel_api.h).
static int64_t row_offset(Format f, int64_t r, int64_t rb) {
    if (f != Format::I2_S4) return r * rb;
    return (r / kI2S4Rows) * kI2S4Rows * rb + (r % kI2S4Rows) * kUnitBytes;
}

void pack(Format f, const int8_t* w, const float* scales, int64_t rows, int64_t cols, uint8_t* out) {
    check_shape(f, rows, cols);
    std::vector<uint8_t> c(static_cast<size_t>(cols));
    const int64_t rb = row_bytes(f, cols), body = packed_bytes(f, rows, cols) - (is_i2(f) ? kI2Tail : 0);
    if (f == Format::I2_S4) std::memset(out, 0x55, static_cast<size_t>(body));  // padding rows: all codes 1 (zero)
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < cols; ++k) c[k] = code_of(w[r * cols + k]);
        uint8_t* dst = out + row_offset(f, r, rb);
        switch (f) {
            case Format::TQ1_0:
            case Format::TQ2_0: {
                const int64_t nb = cols / kTQBlock;
                for (int64_t b = 0; b < nb; ++b) {
                    const uint16_t d = f32_to_f16(scales[r * nb + b]);
                    if (f == Format::TQ1_0)
                        pack_tq1_block(c.data() + b * kTQBlock, d, dst + b * kTQ1Bytes);
                    else
                        pack_tq2_block(c.data() + b * kTQBlock, d, dst + b * kTQ2Bytes);
                }
                break;
            }
            case Format::I2_S:
            case Format::I2_S4: {
                const int64_t stride = f == Format::I2_S4 ? kI2S4UnitStride : kI2Bytes;
                for (int64_t g = 0; g < cols / kI2Group; ++g)
                    pack_i2_group(c.data() + g * kI2Group, dst + g * stride);
                break;
            }
        }
    }
    if (is_i2(f)) {
        uint8_t* tail = out + body;
        std::memset(tail, 0, kI2Tail);
        std::memcpy(tail + offsetof(I2STail, scale), scales, sizeof(I2STail::scale));
    }
}

void unpack(Format f, const uint8_t* data, int64_t rows, int64_t cols, int8_t* w, float* scales) {
    check_shape(f, rows, cols);
    std::vector<uint8_t> c(static_cast<size_t>(cols));
    const int64_t rb = row_bytes(f, cols);
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* src = data + row_offset(f, r, rb);
        decode_row_codes(f, src, cols, c.data());
        for (int64_t k = 0; k < cols; ++k) {
            // Codes are 0..2 in a well-formed file; a 2-bit code 3 reads as +2, as the kernels
            // (and llama.cpp's) compute it, so unpack and matmul always agree.
            w[r * cols + k] = static_cast<int8_t>(c[k] - 1);
        }
        if (!is_i2(f)) {
            const int64_t nb = cols / kTQBlock;
            for (int64_t b = 0; b < nb; ++b) scales[r * nb + b] = f16_to_f32(tq_scale_bits(f, src, b));
        }
    }
    if (is_i2(f))
        std::memcpy(scales, data + packed_bytes(f, rows, cols) - kI2Tail + offsetof(I2STail, scale),
                    sizeof(I2STail::scale));
}

static void count_codes(const uint8_t* c, int64_t n, int64_t* counts) {
    int64_t k[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; ++i) ++k[c[i] & 3];
    counts[0] += k[0];
    counts[1] += k[1];
    counts[2] += k[2] + k[3];
}

void trit_counts(Format f, const uint8_t* data, int64_t rows, int64_t cols, int64_t* counts) {
    check_shape(f, rows, cols);
    counts[0] = counts[1] = counts[2] = 0;
    std::vector<uint8_t> c(static_cast<size_t>(cols));
    const int64_t rb = row_bytes(f, cols);
    for (int64_t r = 0; r < rows; ++r) {
        decode_row_codes(f, data + row_offset(f, r, rb), cols, c.data());
        count_codes(c.data(), cols, counts);
    }
}

bool repack_i2s4(Format f, const uint8_t* data, int64_t rows, int64_t cols, uint8_t* out, int64_t* counts) {
    check_shape(f, rows, cols);
    if (f == Format::I2_S4) return false;
    const int64_t rb = row_bytes(f, cols);
    float scale;
    if (is_i2(f)) {
        std::memcpy(&scale, data + rows * rb + offsetof(I2STail, scale), sizeof scale);
    } else {
        const uint16_t first = tq_scale_bits(f, data, 0);
        for (int64_t b = 0; b < rows * (cols / kTQBlock); ++b)  // a tensor's blocks are contiguous across rows
            if (tq_scale_bits(f, data, b) != first) return false;
        scale = f16_to_f32(first);
    }
    if (scale == 0.0f) return false;
    const int64_t orb = row_bytes(Format::I2_S4, cols), body = packed_bytes(Format::I2_S4, rows, cols) - kI2Tail;
    std::memset(out, 0x55, static_cast<size_t>(body));  // padding rows: all codes 1 (zero)
    std::vector<uint8_t> c(static_cast<size_t>(cols));
    if (counts != nullptr) counts[0] = counts[1] = counts[2] = 0;
    for (int64_t r = 0; r < rows; ++r) {
        decode_row_codes(f, data + r * rb, cols, c.data());
        if (counts != nullptr) count_codes(c.data(), cols, counts);
        uint8_t* dst = out + row_offset(Format::I2_S4, r, orb);
        for (int64_t g = 0; g < cols / kI2Group; ++g) pack_i2_group(c.data() + g * kI2Group, dst + g * kI2S4UnitStride);
    }
    uint8_t* tail = out + body;
    std::memset(tail, 0, kI2Tail);
    std::memcpy(tail + offsetof(I2STail, scale), &scale, sizeof scale);
    return true;
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
    static const KernelOrder orders[4] = {make_order(Format::TQ1_0), make_order(Format::TQ2_0),
                                          make_order(Format::I2_S), make_order(Format::I2_S4)};
    return orders[static_cast<int>(f)];
}

}  // namespace ryz
