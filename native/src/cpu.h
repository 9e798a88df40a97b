// CPU feature detection and the run-time dispatch level.
#pragma once
#include <string>

namespace ryz {

// Ordered: a higher level implies every lower one is usable too.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);
// Parses "scalar" / "avx2" / "avx512"; throws std::invalid_argument otherwise.
Isa isa_from_name(const std::string& name);

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
    bool os_ymm = false, os_zmm = false;  // the OS saves the wider register state (XCR0)
};

const CpuFeatures& cpu_features();
// The best level this CPU supports, before any cap.
Isa detected_isa();
// The level kernels run at: min(detected, cap). The cap starts from the
// RYZ_MAX_ISA environment variable and can be changed with set_isa_cap.
Isa active_isa();
// Caps dispatch; asking for a level the CPU lacks throws std::runtime_error.
void set_isa_cap(Isa cap);

}  // namespace ryz
