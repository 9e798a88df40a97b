// Per-token activation quantization, as BitNet does it:
// scale = 127 / max(|x|) (max clamped to 1e-5), q = clamp(round_half_even(x * scale), -128, 127).
// The matmul result is then divided by scale.
#pragma once
#include <cstdint>

namespace ryz {

void quantize_rows(const float* x, int64_t n, int64_t k, int8_t* q, float* scale);

}  // namespace ryz
