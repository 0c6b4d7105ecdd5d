// Which instruction set this copy of the kernels was compiled for, and which instruction sets the
// running CPU and its operating system can execute. The addon is built once per instruction set
// (see CMakeLists.txt); the loader asks the baseline build which of the others may run here.
#pragma once
#include <string>
#include <vector>

namespace rnnkit {

// The instruction set of this build: "baseline" (x86-64-v2 on x86-64, Armv8-A with NEON on arm64),
// "avx2" (x86-64-v3: AVX2, FMA, F16C, BMI1/2), "avx512" (x86-64-v4: AVX-512 F/CD/BW/DQ/VL) or
// "native" (-march=native: the building machine's CPU).
const char* compiled_isa();

// The instruction sets this architecture's builds may target, best first, "baseline" last.
std::vector<std::string> isa_variants();

// Whether code compiled for `isa` runs here: the CPU reports every extension the variant may use
// (CPUID) and the operating system saves the register state they need (XGETBV: YMM for AVX2,
// opmask and ZMM for AVX-512). "baseline" and "native" are taken to run; an unknown name does not.
bool isa_supported(const std::string& isa);

// The CPU's bfloat16 instructions, whatever the build: AVX512-BF16 (vdpbf16ps, CPUID leaf 7
// subleaf 1 EAX bit 5), counted only where the AVX-512 level it extends (F, DQ, CD, BW, VL) and the
// operating system's ZMM state are there too; and AMX-BF16 (tile products, leaf 7 EDX bit 22),
// reported as the CPU says. Both false off x86-64.
struct Bf16Instructions {
  bool avx512_bf16 = false;
  bool amx_bf16 = false;
};
Bf16Instructions cpu_bf16();

// Whether the CPU has AVX-VNNI (the VEX form of vpdpbusd, CPUID leaf 7 subleaf 1 EAX bit 4) with
// the AVX2 level it extends; false off x86-64.
bool cpu_avx_vnni();

// The CPU's name as it reports it ("AMD EPYC 9R14 ..."), or "" where it does not say.
std::string cpu_name();

}  // namespace rnnkit
