// Float and int8 helpers for the forward pass (attention, output head), one
// set per ISA level like the ternary kernels: plain data and function pointers only.
#pragma once
#include <cstdint>

#include "cpu.h"

namespace ryz {

struct VecOps {
    float (*dot)(const float* a, const float* b, int64_t n);
    void (*axpy)(float* y, float a, const float* x, int64_t n);  // y += a * x
    // y[r] = row_scale[r] * sum_k W[r, k] * x[k] for r in [r0, r1): W int8 row-major [rows, n],
    // every W and x value in [-127, 127] (the SIMD path relies on it to stay in int16).
    void (*gemv_i8)(const int8_t* W, const float* row_scale, int64_t n, const int8_t* x, float* y, int64_t r0,
                    int64_t r1);
};

const VecOps& scalar_vec_ops();
const VecOps& avx2_vec_ops();
// The set for an ISA level (AVX-512 machines use the AVX2 set: these loops are not where time goes).
const VecOps& vec_ops_for(Isa isa);

}  // namespace ryz
