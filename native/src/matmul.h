// The driver between Python and the kernels: validates a packed tensor,
// prepares activations (block sums, kernel order), picks the kernel set for
// the requested ISA and splits rows over the thread pool.
#pragma once
#include <cstdint>
#include <string>

#include "cpu.h"
#include "formats.h"

namespace ryz {

// Up to this many tokens, gemm() walks the packed weights directly (gemv_multi) instead of unpacking panels.
#ifndef RYZ_MULTI_MAX
#define RYZ_MULTI_MAX 8
#endif
constexpr int64_t kMultiTokenMax = RYZ_MULTI_MAX;

// int8 activations [n, cols] (row-major) and how they were quantized: per token (bscale null: the caller applies
// each token's scale to the results) or per block of `block` values, x ~ q * bscale[t, k / block].
struct Acts {
    const int8_t* q;
    int64_t n = 1;
    const float* bscale = nullptr;  // [n, cols / block]
    int64_t block = 0;
};

class TernaryMatrix {
public:
    // data must hold packed_bytes(fmt, rows, cols) bytes; it is used in place, never copied.
    TernaryMatrix(Format fmt, const uint8_t* data, int64_t nbytes, int64_t rows, int64_t cols);

    const MatView& view() const { return view_; }
    // y[rows] = W x for one token (x.n == 1), weight scales and block scales applied.
    void gemv(const Acts& x, float* y, Isa isa) const;
    // Y[n, rows] = X W^T.
    void gemm(const Acts& x, float* Y, Isa isa) const;
    // Per-token int8 activations.
    void gemv(const int8_t* q, float* y, Isa isa) const { gemv(Acts{q, 1, nullptr, 0}, y, isa); }
    void gemm(const int8_t* X, int64_t n, float* Y, Isa isa) const { gemm(Acts{X, n, nullptr, 0}, Y, isa); }

private:
    MatView view_;
};

// Several matrices applied to the same activations (one token) in one parallel region (decode: q/k/v, gate/up):
// the threads synchronise once instead of once per matrix. ys[i] receives ms[i]'s rows.
void gemv_many(const TernaryMatrix* const* ms, float* const* ys, int count, const Acts& x, Isa isa);

// Kernel set for an ISA level. An explicit level must be supported by the CPU
// (std::runtime_error otherwise). Isa resolution for "auto" is resolve_auto_isa().
const KernelSet& kernels_for(Isa isa);
// The highest level <= active_isa() whose kernels passed the start-up self-check.
Isa resolve_auto_isa();
// "passed", "failed: ..." or "not run" for a level.
std::string self_check_status(Isa isa);

}  // namespace ryz
