// CPU feature detection and the run-time dispatch level.
#pragma once
#include <string>

namespace ryz {

// Ordered by what the kernels gain. A level does not always imply the ones below it: AVX-VNNI (VEX vpdpbusd on
// AVX2 vectors: Intel's client cores since 2021, AMD's since Zen 5) is missing on Zen 4, which has AVX-512 VNNI,
// so dispatch asks isa_supported for each level.
enum class Isa : int { Scalar = 0, Avx2 = 1, AvxVnni = 2, Avx512 = 3 };
constexpr int kIsaLevels = 4;

const char* isa_name(Isa isa);
// Parses "scalar" / "avx2" / "avxvnni" / "avx512"; throws std::invalid_argument otherwise.
Isa isa_from_name(const std::string& name);

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
    bool avx_vnni = false;  // the VEX-encoded vpdpbusd (CPUID 7.1 EAX bit 4)
    bool os_ymm = false, os_zmm = false;  // the OS saves the wider register state (XCR0)
};

const CpuFeatures& cpu_features();
bool isa_supported(Isa isa);
// The best level this CPU supports, before any cap.
Isa detected_isa();
// The level kernels run at: the best supported level at or below the cap. The cap starts from the
// RYZ_MAX_ISA environment variable and can be changed with set_isa_cap.
Isa active_isa();
// Caps dispatch; asking for a level the CPU lacks throws std::runtime_error.
void set_isa_cap(Isa cap);

}  // namespace ryz
