// Counter-based random numbers: the value at (seed, counter) is fixed, so dropout masks can be
// regenerated in backward instead of stored, and CPU and CUDA kernels draw the same numbers.
#pragma once
#include <cstdint>

// The CUDA kernels call these on the device (nvcc defines __CUDACC__); elsewhere this is empty.
#ifdef __CUDACC__
#define RNNKIT_HOST_DEVICE __host__ __device__
#else
#define RNNKIT_HOST_DEVICE
#endif

namespace rnnkit {

// SplitMix64 finaliser: a bijective 64-bit mix.
RNNKIT_HOST_DEVICE inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 24 random bits, a pure function of (seed, counter).
RNNKIT_HOST_DEVICE inline float uniform01(uint64_t seed, uint64_t counter) {
  return static_cast<float>(mix64(seed ^ mix64(counter)) >> 40) * (1.0f / 16777216.0f);
}

// A small sequential generator for sampling loops: the SplitMix64 stream.
struct Rng {
  uint64_t state;
  RNNKIT_HOST_DEVICE explicit Rng(uint64_t seed) : state(mix64(seed)) {}
  // Resumes a stream from a saved `state` (a generator's state is all of it), so a sampling loop
  // driven from JS can hand each row's generator back and forth between calls.
  RNNKIT_HOST_DEVICE static Rng from_state(uint64_t state) {
    Rng r(0);
    r.state = state;
    return r;
  }
  RNNKIT_HOST_DEVICE uint64_t next() { return mix64(state++); }
  // Uniform in [0, 1) with 53 random bits.
  RNNKIT_HOST_DEVICE double uniform() {
    return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
  }
};

}  // namespace rnnkit
