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
    view_.group = scale_group(fmt);
    if (is_i2(fmt)) {
        std::memcpy(&view_.tensor_scale, data + need - kI2Tail + offsetof(I2STail, scale), sizeof view_.tensor_scale);
    } else if (is_r16(fmt)) {
        // Read with unaligned loads only (memcpy, loadu): the buffer may sit at any address.
        view_.gscales = reinterpret_cast<const uint16_t*>(data + need - scale_bytes(fmt, rows, cols));
    } else {
        // Real BitNet checkpoints give every block the tensor's scale; then the kernels can
        // accumulate in integers across blocks. A zero scale never qualifies (its codes must not count).
        const uint16_t first = tq_scale_bits(fmt, data, 0);
        bool uniform = f16_to_f32(first) != 0.0f;
        for (int64_t b = 0; uniform && b < rows * (cols / view_.group); ++b)
            uniform = tq_scale_bits(fmt, data, b) == first;
        view_.uniform_scale = uniform;
        if (uniform) view_.tensor_scale = f16_to_f32(first);
    }
}

// ---- kernel sets and the self-check --------------------------------------------

static const KernelSet& raw_kernels(Isa isa) {
#if defined(RYZ_X86)
    if (isa == Isa::Avx512) return avx512_kernels();
    if (isa == Isa::AvxVnni) return avxvnni_kernels();
    if (isa == Isa::Avx2) return avx2_kernels();
#endif
    (void)isa;
    return scalar_kernels();
}

const KernelSet& kernels_for(Isa isa) {
    if (!isa_supported(isa))
        throw std::runtime_error(std::string("the ") + isa_name(isa) + " kernels cannot run on this CPU (best: " +
                                 isa_name(detected_isa()) + ")");
    return raw_kernels(isa);
}

namespace {

struct CheckState {
    std::once_flag once;
    std::string status = "not run";
};
CheckState g_check[kIsaLevels];

// Runs every packing through the ISA's GEMV, small-batch GEMV and GEMM on small random data with unit and
// power-of-two scales (weights per block or group, activations per token or per block), and compares with the
// scalar kernels. Shapes cover row counts that leave remainders (panels, I2_R16 row groups, token groups).
// Every result is exact whatever the summation order: integers times powers of two, far from float's precision.
std::string run_self_check(Isa isa) {
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int> wdist(-1, 1), xdist(-128, 127);
    for (int fi = 0; fi < kFormats; ++fi) {
        const Format f = static_cast<Format>(fi);
        const int64_t rows = 37, cols = 512;
        // Variant 0: unit scales (the integer paths). Variant 1: powers of two per block or group on a few rows.
        for (int variant = 0; variant < (is_i2(f) ? 1 : 2); ++variant) {
            std::vector<int8_t> w(rows * cols);
            for (auto& v : w) v = static_cast<int8_t>(wdist(rng));
            std::vector<float> scales(scale_count(f, rows, cols), 1.0f);
            if (variant == 1)
                for (size_t i = 0; i < scales.size(); ++i) scales[i] = (i * 7) % 5 == 0 ? 0.5f : (i % 3 ? 1.0f : 2.0f);
            std::vector<uint8_t> packed(packed_bytes(f, rows, cols) + 64);
            uint8_t* data = packed.data() + (64 - reinterpret_cast<uintptr_t>(packed.data()) % 64) % 64;
            pack(f, w.data(), scales.data(), rows, cols, data);
            TernaryMatrix m(f, data, packed_bytes(f, rows, cols), rows, cols);
            for (int64_t block : {int64_t(0), int64_t(64), int64_t(128)}) {
                for (int64_t n : {int64_t(5), int64_t(13)}) {
                    std::vector<int8_t> x(n * cols);
                    for (auto& v : x) v = static_cast<int8_t>(xdist(rng));
                    std::vector<float> bs(block > 0 ? n * (cols / block) : 0);
                    for (size_t i = 0; i < bs.size(); ++i) bs[i] = i % 3 == 0 ? 0.25f : (i % 3 == 1 ? 1.0f : 4.0f);
                    const Acts acts{x.data(), n, block > 0 ? bs.data() : nullptr, block};
                    std::vector<float> ref(n * rows), got(n * rows);
                    m.gemm(acts, ref.data(), Isa::Scalar);
                    m.gemm(acts, got.data(), isa);
                    const std::string what = std::string(format_name(f)) + (block ? " with activation blocks" : "");
                    if (ref != got) return "failed: " + what + " gemm (" + std::to_string(n) + " tokens) differs from scalar";
                    for (int64_t t = 0; t < n; ++t) {
                        const Acts one{x.data() + t * cols, 1, block > 0 ? bs.data() + t * (cols / block) : nullptr, block};
                        m.gemv(one, got.data(), isa);
                        if (!std::equal(got.begin(), got.begin() + rows, ref.begin() + t * rows))
                            return "failed: " + what + " gemv differs from scalar";
                    }
                }
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
        if (isa_supported(static_cast<Isa>(i)) && self_check(static_cast<Isa>(i))) return static_cast<Isa>(i);
    return Isa::Scalar;
}

std::string self_check_status(Isa isa) {
    if (!isa_supported(isa)) return "unsupported by this CPU";
    self_check(isa);
    return g_check[static_cast<int>(isa)].status;
}

// ---- activation preparation and threading ----------------------------------------

// The period at which a matrix's products need scaling (see ActRow): its scale group where scales vary inside a
// row, the activation block, the finer of the two when both (one must divide the other), or none.
static int64_t period_for(const MatView& v, int64_t block) {
    const int64_t g = (v.group > 0 && !v.uniform_scale) ? v.group : 0;
    if (block > 0 && v.cols % block != 0)
        throw std::invalid_argument("activation block " + std::to_string(block) + " does not divide the row length " +
                                    std::to_string(v.cols));
    if (g == 0 || block == 0) return g + block;
    if (g % block != 0 && block % g != 0)
        throw std::invalid_argument("activation block " + std::to_string(block) + " and weight group " +
                                    std::to_string(g) + " do not nest");
    return std::min(g, block);
}

// One token's period sums, period scales and total (see ActRow).
struct Prepared {
    std::vector<int32_t> psum;
    std::vector<float> pscale;
    int32_t total = 0;
};

// The TQ file kernels (gemv_file) read 256-block sums whatever the period (TQ1_0 always scales per block), so
// per-token TQ activations get them as their period sums.
static void prepare(Format f, const int8_t* q, int64_t cols, int64_t period, const float* bscale, int64_t block,
                    Prepared& p) {
    if (period == 0 && is_tq(f)) period = kTQBlock;
    int32_t tot = 0;
    const int64_t np = period > 0 ? cols / period : 0;
    p.psum.assign(static_cast<size_t>(np), 0);
    p.pscale.resize(bscale != nullptr ? static_cast<size_t>(np) : 0);
    for (int64_t f = 0; f < np; ++f) {
        int32_t s = 0;
        for (int64_t k = f * period; k < (f + 1) * period; ++k) s += q[k];
        p.psum[f] = s;
        tot += s;
        if (bscale != nullptr) p.pscale[f] = bscale[f * period / block];
    }
    if (np == 0)
        for (int64_t k = 0; k < cols; ++k) tot += q[k];
    p.total = tot;
}

static ActRow act_row(const int8_t* q, const Prepared& p, int64_t period) {
    ActRow a{q, nullptr, p.psum.data(), p.total};
    a.pscale = p.pscale.empty() ? nullptr : p.pscale.data();
    a.period = period;
    return a;
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

// The SIMD GEMVs of the file packings (gemv_file) take per-token activations only, with TQ's block sums; I2_R16
// takes everything; Q2_0 files have none. Anything else runs the scalar reference.
static bool simd_gemv_ok(const MatView& v, int64_t block) {
    if (is_r16(v.fmt)) return true;
    if (v.fmt == Format::Q2_0 || v.fmt == Format::Q2_0_128) return false;
    return block == 0;
}

// Rows split over the threads: I2_R16 by whole row groups; the GEMM by whole panels.
constexpr int64_t kGemmAlign = 32;
static_assert(kGemmAlign % kR16Rows == 0, "panels hold whole row groups");

void TernaryMatrix::gemv(const Acts& x, float* y, Isa isa) const {
    const KernelSet& ks = kernels_for(simd_gemv_ok(view_, x.block) ? isa : Isa::Scalar);
    const int64_t cols = view_.cols, period = period_for(view_, x.block);
    thread_local Prepared prep;
    thread_local std::vector<int8_t> qk;
    prepare(view_.fmt, x.q, cols, period, x.bscale, x.block, prep);
    ActRow a = act_row(x.q, prep, period);
    if (isa != Isa::Scalar) a.qk = to_kernel_order(view_.fmt, x.q, cols, qk);
    parallel_rows(view_.rows, 64, [&](int64_t r0, int64_t r1) { ks.gemv(view_, a, y, r0, r1); },
                  is_r16(view_.fmt) ? kR16Rows : 8);
}

void gemv_many(const TernaryMatrix* const* ms, float* const* ys, int count, const Acts& x, Isa isa) {
    // Activations prepared once per distinct (packing, width, period).
    struct Prep {
        Format f;
        int64_t cols, period;
        Prepared p;
        std::vector<int8_t> qk;
        ActRow a;
        const KernelSet* ks;
    };
    std::vector<Prep> preps;
    preps.reserve(static_cast<size_t>(count));
    std::vector<int> which(static_cast<size_t>(count));
    int64_t total_rows = 0;
    bool r16 = false;
    for (int i = 0; i < count; ++i) {
        const MatView& v = ms[i]->view();
        total_rows += v.rows;
        r16 = r16 || is_r16(v.fmt);
        const int64_t period = period_for(v, x.block);
        int found = -1;
        for (size_t j = 0; j < preps.size(); ++j)
            if (preps[j].f == v.fmt && preps[j].cols == v.cols && preps[j].period == period) found = static_cast<int>(j);
        if (found < 0) {
            preps.push_back(Prep{v.fmt, v.cols, period, {}, {}, {}, nullptr});
            Prep& p = preps.back();
            prepare(v.fmt, x.q, v.cols, period, x.bscale, x.block, p.p);
            p.a = act_row(x.q, p.p, period);
            p.ks = &kernels_for(simd_gemv_ok(v, x.block) ? isa : Isa::Scalar);
            if (isa != Isa::Scalar) p.a.qk = to_kernel_order(v.fmt, x.q, v.cols, p.qk);
            found = static_cast<int>(preps.size() - 1);
        }
        which[i] = found;
    }
    // One contiguous range of the concatenated rows per thread (whole row groups, when any matrix has them, so
    // every matrix's split falls on its groups: the matrices' row counts are multiples of 16 then).
    const int64_t align = r16 ? kR16Rows : 8;
    parallel_rows(total_rows, 64, [&](int64_t r0, int64_t r1) {
        int64_t off = 0;
        for (int i = 0; i < count && off < r1; ++i) {
            const MatView& v = ms[i]->view();
            const int64_t lo = std::max(r0, off), hi = std::min(r1, off + v.rows);
            if (lo < hi) preps[which[i]].ks->gemv(v, preps[which[i]].a, ys[i], lo - off, hi - off);
            off += v.rows;
        }
    }, align);
}

void TernaryMatrix::gemm(const Acts& x, float* Y, Isa isa) const {
    const int64_t n = x.n;
    if (n <= 0) return;
    const KernelSet& ks = kernels_for(isa);
    const int64_t cols = view_.cols, period = period_for(view_, x.block);
    const int64_t nblk = x.block > 0 ? cols / x.block : 0;
    const bool r16 = is_r16(view_.fmt);
    if (n <= kMultiTokenMax && isa != Isa::Scalar && (r16 || (x.block == 0 && multi_token_ok(view_)))) {
        // A few tokens: one pass over the packed weights per group of tokens (see gemv_multi).
        thread_local std::vector<std::vector<int8_t>> qk;
        thread_local std::vector<Prepared> preps;
        qk.resize(static_cast<size_t>(n));
        preps.resize(static_cast<size_t>(n));
        ActRow a[kMultiTokenMax];
        float* ys[kMultiTokenMax];
        for (int64_t t = 0; t < n; ++t) {
            const int8_t* q = x.q + t * cols;
            prepare(view_.fmt, q, cols, period, x.bscale != nullptr ? x.bscale + t * nblk : nullptr, x.block, preps[t]);
            a[t] = act_row(q, preps[t], period);
            a[t].qk = to_kernel_order(view_.fmt, q, cols, qk[t]);
            ys[t] = Y + t * view_.rows;
        }
        parallel_rows(view_.rows, 64, [&](int64_t r0, int64_t r1) {
            ks.gemv_multi(view_, a, static_cast<int>(n), ys, r0, r1);
        }, r16 ? kR16Rows : 8);
        return;
    }
    const int64_t np = period > 0 ? cols / period : 0;
    std::vector<int32_t> psum(static_cast<size_t>(n * np)), total(static_cast<size_t>(n));
    std::vector<float> pscale(x.bscale != nullptr ? static_cast<size_t>(n * np) : 0);
    Prepared p;
    for (int64_t t = 0; t < n; ++t) {
        // The GEMM reads the sums of its own period only (no TQ block sums).
        prepare(Format::I2_S, x.q + t * cols, cols, period, x.bscale != nullptr ? x.bscale + t * nblk : nullptr, x.block, p);
        std::copy(p.psum.begin(), p.psum.end(), psum.begin() + t * np);
        std::copy(p.pscale.begin(), p.pscale.end(), pscale.begin() + t * np);
        total[t] = p.total;
    }
    ActBatch a{x.q, n, psum.data(), total.data()};
    a.pscale = pscale.empty() ? nullptr : pscale.data();
    a.period = period;
    parallel_rows(view_.rows, kGemmAlign, [&](int64_t r0, int64_t r1) { ks.gemm(view_, a, Y, view_.rows, r0, r1); },
                  kGemmAlign);
}

}  // namespace ryz
