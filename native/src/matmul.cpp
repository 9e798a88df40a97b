#include "matmul.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>
#include <vector>

#include "thread_pool.h"

namespace ryz {

TernaryMatrix::TernaryMatrix(Format fmt, const uint8_t* data, int64_t nbytes, int64_t rows, int64_t cols) {
    check_shape(fmt, rows, cols);
    const int64_t need = packed_bytes(fmt, rows, cols);
    if (nbytes < need)
        throw std::invalid_argument(std::string(format_name(fmt)) + " tensor " + std::to_string(rows) + "x" +
                                    std::to_string(cols) + " needs " + std::to_string(need) +
                                    " bytes, buffer has " + std::to_string(nbytes) + " (truncated?)");
    view_ = MatView{fmt, data, rows, cols, row_bytes(fmt, cols), 1.0f, false};
    if (is_i2(fmt)) {
        std::memcpy(&view_.tensor_scale, data + need - kI2Tail + offsetof(I2STail, scale), sizeof view_.tensor_scale);
    } else {
        // Real BitNet checkpoints give every block the tensor's scale; then the kernels can
        // accumulate in integers across blocks. A zero scale never qualifies (its codes must not count).
        const uint16_t first = tq_scale_bits(fmt, data, 0);
        bool uniform = f16_to_f32(first) != 0.0f;
        for (int64_t b = 0; uniform && b < rows * (cols / kTQBlock); ++b)
            uniform = tq_scale_bits(fmt, data, b) == first;
        view_.uniform_scale = uniform;
        if (uniform) view_.tensor_scale = f16_to_f32(first);
    }
}

// ---- kernel sets and the self-check --------------------------------------------

static const KernelSet& raw_kernels(Isa isa) {
#if defined(RYZ_X86)
    if (isa == Isa::Avx512) return avx512_kernels();
    if (isa == Isa::Avx2) return avx2_kernels();
#endif
    (void)isa;
    return scalar_kernels();
}

const KernelSet& kernels_for(Isa isa) {
    if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
        throw std::runtime_error(std::string("the ") + isa_name(isa) + " kernels cannot run on this CPU (best: " +
                                 isa_name(detected_isa()) + ")");
    return raw_kernels(isa);
}

namespace {

struct CheckState {
    std::once_flag once;
    std::string status = "not run";
};
CheckState g_check[3];

// Runs every packing through the ISA's GEMV and GEMM on small random data with
// unit and random scales, and compares with the scalar kernels. Shapes cover
// row counts that leave remainders and an odd number of I2_S groups.
std::string run_self_check(Isa isa) {
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int> wdist(-1, 1), xdist(-128, 127);
    for (Format f : {Format::TQ1_0, Format::TQ2_0, Format::I2_S, Format::I2_S4}) {
        // Variant 0: unit scales (the integer paths). Variant 1 (TQ): powers of two per block on
        // one row (the per-block paths). Every result is exact whatever the summation order.
        for (int variant = 0; variant < (is_i2(f) ? 1 : 2); ++variant) {
            const int64_t rows = 11, cols = is_i2(f) ? 384 : 512, n = 5;
            std::vector<int8_t> w(rows * cols), x(n * cols);
            for (auto& v : w) v = static_cast<int8_t>(wdist(rng));
            for (auto& v : x) v = static_cast<int8_t>(xdist(rng));
            std::vector<float> scales(scale_count(f, rows, cols), 1.0f);
            if (variant == 1)
                for (int64_t b = 0; b < cols / kTQBlock; ++b) scales[4 * (cols / kTQBlock) + b] = b % 2 ? 0.5f : 2.0f;
            std::vector<uint8_t> packed(packed_bytes(f, rows, cols));
            pack(f, w.data(), scales.data(), rows, cols, packed.data());
            TernaryMatrix m(f, packed.data(), static_cast<int64_t>(packed.size()), rows, cols);
            std::vector<float> ref(n * rows), got(n * rows);
            m.gemm(x.data(), n, ref.data(), Isa::Scalar);
            m.gemm(x.data(), n, got.data(), isa);
            if (ref != got) return std::string("failed: ") + format_name(f) + " gemm differs from scalar";
            for (int64_t t = 0; t < n; ++t) {
                m.gemv(x.data() + t * cols, got.data(), isa);
                if (!std::equal(got.begin(), got.begin() + rows, ref.begin() + t * rows))
                    return std::string("failed: ") + format_name(f) + " gemv differs from scalar";
            }
        }
    }
    return "passed";
}

}  // namespace

static bool self_check(Isa isa) {
    CheckState& st = g_check[static_cast<int>(isa)];
    std::call_once(st.once, [&] {
        try {
            st.status = isa == Isa::Scalar ? std::string("passed") : run_self_check(isa);
        } catch (const std::exception& e) {
            st.status = std::string("failed: ") + e.what();
        }
    });
    return st.status == "passed";
}

Isa resolve_auto_isa() {
    for (int i = static_cast<int>(active_isa()); i > 0; --i)
        if (self_check(static_cast<Isa>(i))) return static_cast<Isa>(i);
    return Isa::Scalar;
}

std::string self_check_status(Isa isa) {
    if (static_cast<int>(isa) > static_cast<int>(detected_isa())) return "unsupported by this CPU";
    self_check(isa);
    return g_check[static_cast<int>(isa)].status;
}

// ---- activation preparation and threading ----------------------------------------

// Sums of q over each 128-group, folded into 256-block sums (TQ) and the total.
static void block_sums(Format f, const int8_t* q, int64_t cols, int32_t* bsum, int32_t* total) {
    int32_t tot = 0;
    for (int64_t g = 0; g < cols / kI2Group; ++g) {
        int32_t s = 0;
        for (int k = 0; k < kI2Group; ++k) s += q[g * kI2Group + k];
        tot += s;
        if (!is_i2(f)) {
            if (g % 2 == 0) bsum[g / 2] = s;
            else bsum[g / 2] += s;
        }
    }
    *total = tot;
}

// Activations in the packing's kernel order (formats.h), zeros in unused slots.
static const int8_t* to_kernel_order(Format f, const int8_t* q, int64_t cols, std::vector<int8_t>& buf) {
    const KernelOrder& ko = kernel_order(f);
    if (ko.identity) return q;
    const int64_t periods = cols / ko.block, plen = static_cast<int64_t>(ko.slots.size());
    buf.assign(static_cast<size_t>(periods * plen), 0);
    for (int64_t p = 0; p < periods; ++p)
        for (const KernelOrder::Run& r : ko.runs)
            std::memcpy(buf.data() + p * plen + r.dst, q + p * ko.block + r.src, static_cast<size_t>(r.len));
    return buf.data();
}

void TernaryMatrix::gemv(const int8_t* q, float* y, Isa isa) const {
    const KernelSet& ks = kernels_for(isa);
    const int64_t cols = view_.cols;
    thread_local std::vector<int32_t> bsum;
    thread_local std::vector<int8_t> qk;
    bsum.resize(static_cast<size_t>(cols / kTQBlock + 1));
    ActRow a{q, nullptr, bsum.data(), 0};
    block_sums(view_.fmt, q, cols, bsum.data(), &a.total);
    if (isa != Isa::Scalar) a.qk = to_kernel_order(view_.fmt, q, cols, qk);
    parallel_rows(view_.rows, 64, [&](int64_t r0, int64_t r1) { ks.gemv(view_, a, y, r0, r1); });
}

void gemv_many(const TernaryMatrix* const* ms, float* const* ys, int count, const int8_t* q, Isa isa) {
    const KernelSet& ks = kernels_for(isa);
    // Activations prepared once per distinct (packing, width).
    struct Prep {
        Format f;
        int64_t cols;
        std::vector<int32_t> bsum;
        std::vector<int8_t> qk;
        ActRow a;
    };
    std::vector<Prep> preps;
    preps.reserve(static_cast<size_t>(count));
    std::vector<int> which(static_cast<size_t>(count));
    int64_t total_rows = 0;
    for (int i = 0; i < count; ++i) {
        const MatView& v = ms[i]->view();
        total_rows += v.rows;
        int found = -1;
        for (size_t j = 0; j < preps.size(); ++j)
            if (preps[j].f == v.fmt && preps[j].cols == v.cols) found = static_cast<int>(j);
        if (found < 0) {
            preps.push_back(Prep{v.fmt, v.cols, {}, {}, ActRow{q, nullptr, nullptr, 0}});
            Prep& p = preps.back();
            p.bsum.resize(static_cast<size_t>(v.cols / kTQBlock + 1));
            p.a.bsum = p.bsum.data();
            block_sums(v.fmt, q, v.cols, p.bsum.data(), &p.a.total);
            if (isa != Isa::Scalar) p.a.qk = to_kernel_order(v.fmt, q, v.cols, p.qk);
            found = static_cast<int>(preps.size() - 1);
        }
        which[i] = found;
    }
    // One contiguous range of the concatenated rows per thread.
    parallel_rows(total_rows, 64, [&](int64_t r0, int64_t r1) {
        int64_t off = 0;
        for (int i = 0; i < count && off < r1; ++i) {
            const MatView& v = ms[i]->view();
            const int64_t lo = std::max(r0, off), hi = std::min(r1, off + v.rows);
            if (lo < hi) ks.gemv(v, preps[which[i]].a, ys[i], lo - off, hi - off);
            off += v.rows;
        }
    });
}

void TernaryMatrix::gemm(const int8_t* X, int64_t n, float* Y, Isa isa) const {
    if (n <= 0) return;
    const KernelSet& ks = kernels_for(isa);
    const int64_t cols = view_.cols, nb = cols / kTQBlock;
    if (n <= kMultiTokenMax && isa != Isa::Scalar && multi_token_ok(view_)) {
        // A few tokens: one pass over the packed weights per 4 tokens (see gemv_multi).
        thread_local std::vector<std::vector<int8_t>> qk;
        thread_local std::vector<std::vector<int32_t>> bs;
        qk.resize(static_cast<size_t>(n));
        bs.resize(static_cast<size_t>(n));
        ActRow a[kMultiTokenMax];
        float* ys[kMultiTokenMax];
        for (int64_t t = 0; t < n; ++t) {
            const int8_t* q = X + t * cols;
            bs[t].resize(static_cast<size_t>(nb + 1));
            a[t] = ActRow{q, nullptr, bs[t].data(), 0};
            block_sums(view_.fmt, q, cols, bs[t].data(), &a[t].total);
            a[t].qk = to_kernel_order(view_.fmt, q, cols, qk[t]);
            ys[t] = Y + t * view_.rows;
        }
        parallel_rows(view_.rows, 64, [&](int64_t r0, int64_t r1) {
            ks.gemv_multi(view_, a, static_cast<int>(n), ys, r0, r1);
        });
        return;
    }
    std::vector<int32_t> bsum(static_cast<size_t>(n * (nb + 1))), total(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) block_sums(view_.fmt, X + t * cols, cols, bsum.data() + t * nb, &total[t]);
    ActBatch a{X, n, bsum.data(), total.data()};
    parallel_rows(view_.rows, 16, [&](int64_t r0, int64_t r1) { ks.gemm(view_, a, Y, view_.rows, r0, r1); });
}

}  // namespace ryz
