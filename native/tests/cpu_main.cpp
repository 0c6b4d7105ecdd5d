// Prints the instruction-set variants this CPU and its OS run, best first, one per line, for
// scripts/native-tests.js to pick the kernel tests it can run (ctest -L <isa>).
#include <cstdio>

#include "cpu.h"

int main() {
  for (const std::string& isa : rnnkit::isa_variants())
    if (rnnkit::isa_supported(isa)) std::printf("%s\n", isa.c_str());
  return 0;
}
