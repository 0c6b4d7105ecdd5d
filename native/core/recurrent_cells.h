// Private to recurrent.cpp and its tests: the activation functions of the cells and the
// inter-layer dropout mask, shared so that the tests' reference draws exactly the kernel's mask.
#pragma once
#include <cstdint>
#include <cstring>

#include "random.h"

namespace rnnkit {
namespace cells {

// exp(x) in a few ulp (Cephes expf). Branch-free and call-free, so the loops of the cells that use
// it vectorise; std::exp would make them scalar library calls without -ffast-math.
inline float exp_approx(float x) {
  // Keep 2^n a normal float: n in [-126, 127].
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // x = n ln2 + r with |r| <= ln2 / 2; adding and removing 1.5 * 2^23 rounds to the nearest n.
  const float shifter = 12582912.0f;
  float n = (x * 1.44269504088896341f + shifter) - shifter;
  // ln2 split so that n * ln2_hi is exact.
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // NaN passes the clamps above and leaves p NaN; converting it to an integer would be undefined,
  // so n = 0 stands in and the result stays NaN.
  int32_t bits = (static_cast<int32_t>(n == n ? n : 0.0f) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

inline float tanh_approx(float x) {
  float a = x < 0 ? -x : x;
  // Near 0, 1 - 2 / (e^2x + 1) cancels; an odd polynomial (Cephes tanhf) is exact to an ulp there.
  float z = x * x;
  float poly = -5.70498872745e-3f;
  poly = poly * z + 2.06390887954e-2f;
  poly = poly * z - 5.37397155531e-2f;
  poly = poly * z + 1.33314422036e-1f;
  poly = poly * z - 3.33332819422e-1f;
  poly = poly * z * x + x;
  float big = 1.0f - 2.0f / (exp_approx(2.0f * a) + 1.0f);
  big = x < 0 ? -big : big;
  return a < 0.625f ? poly : big;
}

// Inter-layer dropout on the output of layer `layer`, indexed by element of that output [T, B, H]:
// kept with probability 1 - p and scaled by 1 / (1 - p). A pure function of (seed, layer, index),
// so backward regenerates the mask instead of storing it.
struct Dropout {
  uint64_t seed = 0;
  float p = 0, scale = 1;
  bool on = false;

  Dropout() = default;
  Dropout(uint64_t stack_seed, int layer, float prob)
      : seed(stack_seed ^ mix64(0x726e6e64726f7000ull + static_cast<uint64_t>(layer))),
        p(prob),
        scale(1.0f / (1.0f - prob)),
        on(prob > 0) {}

  float factor(uint64_t index) const { return uniform01(seed, index) >= p ? scale : 0.0f; }
};

}  // namespace cells
}  // namespace rnnkit
