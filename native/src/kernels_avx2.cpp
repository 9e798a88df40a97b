// AVX2 kernels: pmaddubsw into int16 lanes (widened before they can
// overflow), one row per vector. Compiled with -mavx2 -mfma -mf16c only.
#include <immintrin.h>
#include <stdlib.h>

#include "kernel_api.h"

namespace ryz {
namespace {

#include "simd_helpers.inl"

#include "kernels_avx2_traits.inl"

#include "kernels_simd.inl"

const KernelSet kSet{gemv, gemm, gemv_multi};

}  // namespace

const KernelSet& avx2_kernels() { return kSet; }

}  // namespace ryz
