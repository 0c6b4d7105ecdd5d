// Shared by the CPU-vs-CUDA tests (test_cuda_*.cpp): device copies of host vectors, the parity
// tolerance, and a main that reports "skipped" to ctest (exit code 77, the tests' SKIP_RETURN_CODE)
// where no device can run kernels, so a GPU-less run never passes for one that checked something.
#pragma once
#include <cstdio>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "check.h"
#include "cuda/cuda.h"

namespace cudatest {

template <typename T>
using Buf = rnnkit::cuda::DeviceBuffer<T>;

// The CUDA kernels use the device's expf/tanhf and another summation order than the CPU, so
// results agree to float rounding, not bit for bit: 1e-4 relative, with an absolute floor for
// values that are sums cancelling to near zero.
constexpr double kRtol = 1e-4, kAtol = 1e-5;

template <typename T>
Buf<T> on_device(const std::vector<T>& v) {
  return Buf<T>(v);
}

// A device buffer filled with NaN, so that reading anything a kernel did not write shows.
inline Buf<float> nan_buffer(size_t n) {
  return Buf<float>(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
}

template <typename T>
T* ptr_or_null(const Buf<T>& b) {
  return b.size() ? b.get() : nullptr;
}

inline void expect_close(const std::vector<float>& gpu, const std::vector<float>& cpu,
                         const std::string& what, double rtol = kRtol, double atol = kAtol) {
  if (gpu.size() != cpu.size())
    check::fail(what + ": sizes " + std::to_string(gpu.size()) + " vs " +
                std::to_string(cpu.size()));
  else
    check::close(gpu.data(), cpu.data(), gpu.size(), rtol, atol, what);
}

inline int run_on_device() {
  const rnnkit::cuda::DeviceInfo info = rnnkit::cuda::device_info();
  if (info.count == 0) {
    std::printf("SKIPPED: no CUDA device (%s)\n", info.status.c_str());
    return 77;
  }
  std::printf("device: %s (compute %d.%d), GEMM %s\n", info.name.c_str(), info.major, info.minor,
              rnnkit::cuda::gemm_backend());
  try {
    return check::run_all();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL: %s\n", e.what());
    return 1;
  }
}

}  // namespace cudatest

#define CUDA_TEST_MAIN() \
  int main() { return cudatest::run_on_device(); }
