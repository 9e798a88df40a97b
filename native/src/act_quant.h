// Activation quantization to int8.
// Per token, as BitNet does it: scale = 127 / max(|x|) (max clamped to 1e-5), q = clamp(round_half_even(x * scale),
// -128, 127); the matmul result is then divided by scale.
// Per block of `block` values (models not trained with per-token int8 activations, whose outlier channels would
// crush every other channel of the token to a few levels): each block gets d = max(|x|) / 127 (max clamped as
// above), q = round_half_even(x / d), and x ~ q * d.
#pragma once
#include <cstdint>

namespace ryz {

void quantize_rows(const float* x, int64_t n, int64_t k, int8_t* q, float* scale);
// d: [n, k / block]; k must be a multiple of block.
void quantize_blocks(const float* x, int64_t n, int64_t k, int64_t block, int8_t* q, float* d);

}  // namespace ryz
