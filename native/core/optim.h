// Gradient clipping and optimizers as fused in-place passes over many parameter tensors at once.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rnnkit {

// A list of tensors, each `sizes[k]` floats at `ptrs[k]`.
struct TensorList {
  float* const* ptrs;
  const size_t* sizes;
  int count;
};

// sqrt of the sum of squares of every element of every tensor (accumulated in double).
double global_norm(const TensorList& t);
// Scales every gradient by max_norm / norm when norm > max_norm. Returns the norm before clipping.
double clip_global_norm(const TensorList& grads, double max_norm);

struct AdamConfig {
  float lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // true: AdamW (p -= lr * wd * p); false: L2 added to the gradient
};
// One Adam step over all tensors; step is 1-based (bias correction). m, v: same shapes as params.
void adam_update(const TensorList& params, const TensorList& grads, const TensorList& m,
                 const TensorList& v, int64_t step, const AdamConfig& cfg);

struct SgdConfig {
  float lr, momentum, weight_decay;
  bool nesterov;
};
// One SGD step (PyTorch's formulation of momentum and Nesterov). velocity: same shapes as params,
// zero before the first step.
void sgd_update(const TensorList& params, const TensorList& grads, const TensorList& velocity,
                const SgdConfig& cfg);

}  // namespace rnnkit
