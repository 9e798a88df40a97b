// AVX-VNNI kernels: the AVX2 kernels with vpdpbusd (VEX, 256-bit) into int32 lanes. Compiled with -mavx2 -mfma
// -mf16c -mavxvnni.
#include <immintrin.h>
#include <stdlib.h>

#include "kernel_api.h"

namespace ryz {
namespace {

#include "simd_helpers.inl"

#define RYZ_AVXVNNI 1
#include "kernels_avx2_traits.inl"

#include "kernels_simd.inl"

const KernelSet kSet{gemv, gemm, gemv_multi};

}  // namespace

const KernelSet& avxvnni_kernels() { return kSet; }

}  // namespace ryz
