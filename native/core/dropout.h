// Dropout whose keep mask is a pure function of (seed, element index): forward and backward apply
// the same factor, regenerated rather than stored, and CPU and CUDA draw identical masks.
#pragma once
#include <cstddef>
#include <cstdint>

#include "random.h"

namespace rnnkit {

struct Dropout {
  uint64_t seed = 0;
  float p = 0, scale = 1;
  bool on = false;

  Dropout() = default;
  Dropout(uint64_t seed_, float prob)
      : seed(seed_), p(prob), scale(1.0f / (1.0f - prob)), on(prob > 0) {}

  // Element `index` is kept with probability 1 - p and then scaled by 1 / (1 - p).
  float factor(uint64_t index) const { return uniform01(seed, index) >= p ? scale : 0.0f; }
};

// y[i] = x[i] * mask(i). Backward is the same call on the gradients. y may alias x.
void dropout_apply(const Dropout& d, const float* x, size_t n, float* y);

}  // namespace rnnkit
