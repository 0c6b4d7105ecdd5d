#include "dropout.h"

namespace rnnkit {

void dropout_apply(const Dropout& d, const float* x, size_t n, float* y) {
  if (!d.on) {
    if (y != x)
      for (size_t i = 0; i < n; ++i) y[i] = x[i];
    return;
  }
  for (size_t i = 0; i < n; ++i) y[i] = x[i] * d.factor(i);
}

}  // namespace rnnkit
