#include "cpu.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifndef RNNKIT_ISA_NAME
#define RNNKIT_ISA_NAME "baseline"
#endif

namespace rnnkit {

const char* compiled_isa() { return RNNKIT_ISA_NAME; }

#if defined(__x86_64__) || defined(__i386__)

namespace {

struct Regs {
  uint32_t a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(uint32_t leaf, uint32_t sub = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) r = Regs{};
  return r;
}

bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }

// XCR0, the register state the OS saves on a context switch; 0 where XGETBV is not enabled.
uint64_t xcr0() {
  if (!bit(cpuid(1).c, 27)) return 0;  // OSXSAVE
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

bool has_avx2_level() {
  const Regs l1 = cpuid(1), l7 = cpuid(7), ext = cpuid(0x80000001);
  const bool cpu = bit(l1.c, 12) && bit(l1.c, 22) && bit(l1.c, 27) && bit(l1.c, 28) &&
                   bit(l1.c, 29) &&                                 // FMA MOVBE OSXSAVE AVX F16C
                   bit(l7.b, 3) && bit(l7.b, 5) && bit(l7.b, 8) &&  // BMI1 AVX2 BMI2
                   bit(ext.c, 5);                                   // LZCNT
  return cpu && (xcr0() & 0x6) == 0x6;                              // XMM and YMM state
}

bool has_avx512_level() {
  const Regs l7 = cpuid(7);
  const bool cpu = bit(l7.b, 16) && bit(l7.b, 17) && bit(l7.b, 28) && bit(l7.b, 30) &&
                   bit(l7.b, 31);                             // AVX512 F DQ CD BW VL
  return cpu && has_avx2_level() && (xcr0() & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
}

}  // namespace

std::vector<std::string> isa_variants() { return {"avx512", "avx2", "baseline"}; }

bool isa_supported(const std::string& isa) {
  if (isa == "baseline" || isa == "native") return true;
  if (isa == "avx2") return has_avx2_level();
  if (isa == "avx512") return has_avx512_level();
  return false;
}

Bf16Instructions cpu_bf16() {
  Bf16Instructions r;
  const Regs l7 = cpuid(7);
  r.amx_bf16 = bit(l7.d, 22);
  // Subleaf 1 exists where subleaf 0 reports it (EAX, the highest subleaf).
  r.avx512_bf16 = l7.a >= 1 && bit(cpuid(7, 1).a, 5) && has_avx512_level();
  return r;
}

bool cpu_avx_vnni() { return cpuid(7).a >= 1 && bit(cpuid(7, 1).a, 4) && has_avx2_level(); }

std::string cpu_name() {
  if (cpuid(0x80000000).a < 0x80000004) return "";
  char name[49] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    const Regs r = cpuid(0x80000002 + i);
    std::memcpy(name + 16 * i, &r, 16);
  }
  std::string s(name);
  const size_t first = s.find_first_not_of(' '), last = s.find_last_not_of(' ');
  return first == std::string::npos ? "" : s.substr(first, last - first + 1);
}

#else

std::vector<std::string> isa_variants() { return {"baseline"}; }

bool isa_supported(const std::string& isa) { return isa == "baseline" || isa == "native"; }

Bf16Instructions cpu_bf16() { return {}; }

bool cpu_avx_vnni() { return false; }

std::string cpu_name() { return ""; }

#endif

}  // namespace rnnkit
