// Gradient clipping and optimizer steps: one fused, vectorisable pass per tensor (large ones
// split over the threads) that reads each parameter, gradient and state element once and writes
// it once. The update formulas follow
// torch.optim.Adam / AdamW / SGD operation by operation, so a model trained here and one trained
// in PyTorch from the same start track each other to float rounding.
#include "optim.h"

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "gemm.h"

namespace rnnkit {
namespace {

// Sum of squares in double with independent lanes: a single running sum is a serial chain the
// compiler may not reorder without -ffast-math, so it would stay scalar.
double sum_squares(const float* __restrict x, size_t n) {
  constexpr size_t kLanes = 8;
  double lane[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (size_t l = 0; l < kLanes; ++l) {
      const double v = x[i + l];
      lane[l] += v * v;
    }
  for (; i < n; ++i) {
    const double v = x[i];
    lane[0] += v * v;
  }
  double s = 0.0;
  for (size_t l = 0; l < kLanes; ++l) s += lane[l];
  return s;
}

// Calls f(begin, end) over slices of [0, n): one per thread for a tensor of a quarter million
// elements or more (some 100 us of a memory-bound pass, parallel_for), else the whole at once.
// The passes are elementwise, so no result depends on the split.
template <class F>
void elementwise(size_t n, F&& f) {
  const int parts = n >= (size_t(1) << 18) ? gemm_threads() : 1;
  parallel_for(parts, [&](int i) { f(n * i / parts, n * (i + 1) / parts); });
}

void scale_in_place(float* __restrict x, size_t n, float s) {
  for (size_t i = 0; i < n; ++i) x[i] *= s;
}

// Constants of one Adam step, computed once in double like PyTorch's Python-side scalars.
struct AdamStep {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  float l2;         // coupled (Adam) weight decay: g += l2 * p; 0 for AdamW
  float decay;      // decoupled (AdamW) weight decay: p *= decay; 1 for Adam
  float step_size;  // lr / (1 - beta1^step)
  float bc2_sqrt;   // sqrt(1 - beta2^step)
};

// torch.optim.Adam/AdamW (amsgrad off) for one tensor:
//   AdamW: p *= 1 - lr * wd            Adam: g += wd * p
//   m = beta1 m + (1 - beta1) g        v = beta2 v + (1 - beta2) g^2
//   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
// With l2 = 0 and decay = 1 the unused weight decay is an exact no-op, so one loop serves both.
void adam_tensor(float* __restrict p, const float* __restrict g, float* __restrict m,
                 float* __restrict v, size_t n, const AdamStep& k) {
  for (size_t i = 0; i < n; ++i) {
    const float pi = p[i] * k.decay;
    const float gi = g[i] + k.l2 * p[i];
    const float mi = k.beta1 * m[i] + k.one_minus_beta1 * gi;
    const float vi = k.beta2 * v[i] + k.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - k.step_size * (mi / (std::sqrt(vi) / k.bc2_sqrt + k.eps));
  }
}

// torch.optim.SGD (dampening 0) for one tensor:
//   g += wd * p;  b = mu * b + g;  d = nesterov ? g + mu * b : b;  p -= lr * d.
// PyTorch sets b = g on the first step; with b zero beforehand (the contract), mu * 0 + g is
// exactly g, so no first-step branch is needed.
void sgd_tensor(float* __restrict p, const float* __restrict g, float* __restrict b, size_t n,
                float lr, float mu, float wd, bool nesterov) {
  for (size_t i = 0; i < n; ++i) {
    const float gi = g[i] + wd * p[i];
    const float bi = mu * b[i] + gi;
    b[i] = bi;
    p[i] -= lr * (nesterov ? gi + mu * bi : bi);
  }
}

}  // namespace

double global_norm(const TensorList& t) {
  double s = 0.0;
  for (int k = 0; k < t.count; ++k) s += sum_squares(t.ptrs[k], t.sizes[k]);
  return std::sqrt(s);
}

double clip_global_norm(const TensorList& grads, double max_norm) {
  const double norm = global_norm(grads);
  if (norm > max_norm) {
    const float s = static_cast<float>(max_norm / norm);
    for (int k = 0; k < grads.count; ++k)
      elementwise(grads.sizes[k],
                  [&](size_t a, size_t b) { scale_in_place(grads.ptrs[k] + a, b - a, s); });
  }
  return norm;
}

void adam_update(const TensorList& params, const TensorList& grads, const TensorList& m,
                 const TensorList& v, int64_t step, const AdamConfig& cfg) {
  const double lr = cfg.lr, wd = cfg.weight_decay;
  const double bc1 = 1.0 - std::pow(static_cast<double>(cfg.beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(cfg.beta2), static_cast<double>(step));
  AdamStep k;
  k.beta1 = cfg.beta1;
  k.beta2 = cfg.beta2;
  k.one_minus_beta1 = static_cast<float>(1.0 - cfg.beta1);
  k.one_minus_beta2 = static_cast<float>(1.0 - cfg.beta2);
  k.eps = cfg.eps;
  k.l2 = cfg.decoupled ? 0.0f : cfg.weight_decay;
  k.decay = cfg.decoupled ? static_cast<float>(1.0 - lr * wd) : 1.0f;
  k.step_size = static_cast<float>(lr / bc1);
  k.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  for (int t = 0; t < params.count; ++t)
    elementwise(params.sizes[t], [&](size_t a, size_t b) {
      adam_tensor(params.ptrs[t] + a, grads.ptrs[t] + a, m.ptrs[t] + a, v.ptrs[t] + a, b - a, k);
    });
}

void sgd_update(const TensorList& params, const TensorList& grads, const TensorList& velocity,
                const SgdConfig& cfg) {
  for (int t = 0; t < params.count; ++t)
    elementwise(params.sizes[t], [&](size_t a, size_t b) {
      sgd_tensor(params.ptrs[t] + a, grads.ptrs[t] + a, velocity.ptrs[t] + a, b - a, cfg.lr,
                 cfg.momentum, cfg.weight_decay, cfg.nesterov);
    });
}

}  // namespace rnnkit
