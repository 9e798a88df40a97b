#include "cpu.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(RYZ_X86)
#include <cpuid.h>
#endif

namespace ryz {

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::AvxVnni: return "avxvnni";
        case Isa::Avx512: return "avx512";
    }
    return "?";
}

Isa isa_from_name(const std::string& name) {
    if (name == "scalar") return Isa::Scalar;
    if (name == "avx2") return Isa::Avx2;
    if (name == "avxvnni") return Isa::AvxVnni;
    if (name == "avx512") return Isa::Avx512;
    throw std::invalid_argument("unknown ISA level '" + name + "' (expected scalar, avx2, avxvnni or avx512)");
}

#if defined(RYZ_X86)
static unsigned long long read_xcr0() {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

static CpuFeatures detect() {
    CpuFeatures f;
#if defined(RYZ_X86)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & (1u << 27);
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    if (osxsave) {
        const unsigned long long xcr0 = read_xcr0();
        f.os_ymm = (xcr0 & 0x6) == 0x6;             // SSE + AVX state
        f.os_zmm = f.os_ymm && (xcr0 & 0xe0) == 0xe0;  // opmask + ZMM state
    }
    if (__get_cpuid_max(0, nullptr) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = b & (1u << 5);
        f.avx512f = b & (1u << 16);
        f.avx512dq = b & (1u << 17);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.avx512vnni = c & (1u << 11);
        __cpuid_count(7, 1, a, b, c, d);
        f.avx_vnni = a & (1u << 4);
    }
#endif
    return f;
}

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

bool isa_supported(Isa isa) {
    const CpuFeatures& f = cpu_features();
    const bool avx2 = f.os_ymm && f.avx2 && f.fma && f.f16c;
    switch (isa) {
        case Isa::Scalar: return true;
        case Isa::Avx2: return avx2;
        case Isa::AvxVnni: return avx2 && f.avx_vnni;
        case Isa::Avx512:
            return avx2 && f.os_zmm && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
    }
    return false;
}

// The best supported level at or below `cap`.
static Isa best_at_most(int cap) {
    for (int i = cap; i > 0; --i)
        if (isa_supported(static_cast<Isa>(i))) return static_cast<Isa>(i);
    return Isa::Scalar;
}

Isa detected_isa() { return best_at_most(kIsaLevels - 1); }

static Isa initial_cap() {
    const char* env = std::getenv("RYZ_MAX_ISA");
    if (env == nullptr || *env == '\0') return static_cast<Isa>(kIsaLevels - 1);
    try {
        return isa_from_name(env);
    } catch (const std::invalid_argument&) {
        return Isa::Scalar;  // a typo must never enable more than asked for
    }
}

static std::atomic<int> g_cap{static_cast<int>(initial_cap())};

Isa active_isa() { return best_at_most(g_cap.load(std::memory_order_relaxed)); }

void set_isa_cap(Isa cap) {
    if (!isa_supported(cap))
        throw std::runtime_error(std::string("this CPU cannot run the ") + isa_name(cap) +
                                 " path (best available: " + isa_name(detected_isa()) + ")");
    g_cap.store(static_cast<int>(cap), std::memory_order_relaxed);
}

}  // namespace ryz
