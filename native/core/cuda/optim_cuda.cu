// Global-norm clipping and the Adam/SGD steps on the device (optim.cpp's twins): one fused
// elementwise kernel per tensor, the update formulas of torch.optim operation by operation.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.cuh"

namespace rnnkit {
namespace cuda {
namespace {

// Each tensor's sum of squares goes to at most kNormBlocks partial sums, which one block then
// adds in a fixed order: reproducible to the bit, unlike atomics.
constexpr int kNormBlocks = 256;

__global__ void sum_squares(const float* __restrict__ x, size_t n, double* __restrict__ partial) {
  double s = 0.0;
  for (size_t i = blockIdx.x * size_t(kThreads) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * kThreads) {
    const double v = x[i];
    s += v * v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_partials(int n, const double* __restrict__ partial, double* __restrict__ out) {
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += kThreads) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) *out = s;
}

__global__ void scale_in_place(float* x, size_t n, float s) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) x[i] *= s;
}

// The constants of one Adam step as optim.cpp computes them (in double, like PyTorch's Python
// scalars).
struct AdamStep {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, l2, decay, step_size, bc2_sqrt;
};

__global__ void adam_tensor(float* __restrict__ p, const float* __restrict__ g,
                            float* __restrict__ m, float* __restrict__ v, size_t n, AdamStep k) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float pi = p[i] * k.decay;
  const float gi = g[i] + k.l2 * p[i];
  const float mi = k.beta1 * m[i] + k.one_minus_beta1 * gi;
  const float vi = k.beta2 * v[i] + k.one_minus_beta2 * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = pi - k.step_size * (mi / (sqrtf(vi) / k.bc2_sqrt + k.eps));
}

__global__ void sgd_tensor(float* __restrict__ p, const float* __restrict__ g,
                           float* __restrict__ b, size_t n, float lr, float mu, float wd,
                           bool nesterov) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float gi = g[i] + wd * p[i];
  const float bi = mu * b[i] + gi;
  b[i] = bi;
  p[i] -= lr * (nesterov ? gi + mu * bi : bi);
}

}  // namespace

double global_norm(const TensorList& t) {
  std::vector<unsigned> grid(t.count);
  size_t slots = 0;
  for (int k = 0; k < t.count; ++k) {
    grid[k] = std::min<unsigned>(kNormBlocks, std::max<unsigned>(1, blocks_for(t.sizes[k])));
    slots += grid[k];
  }
  double* tmp = static_cast<double*>(scratch(sizeof(double) * (slots + 1)));
  size_t at = 1;
  for (int k = 0; k < t.count; ++k) {
    sum_squares<<<grid[k], kThreads, 0, stream()>>>(t.ptrs[k], t.sizes[k], tmp + at);
    check_launch("global_norm sum_squares");
    at += grid[k];
  }
  sum_partials<<<1, kThreads, 0, stream()>>>(int(slots), tmp + 1, tmp);
  check_launch("global_norm sum_partials");
  double s = 0.0;
  copy_to_host(&s, tmp, sizeof s);
  return std::sqrt(s);
}

double clip_global_norm(const TensorList& grads, double max_norm) {
  const double norm = cuda::global_norm(grads);
  if (norm > max_norm) {
    const float s = static_cast<float>(max_norm / norm);
    for (int k = 0; k < grads.count; ++k) {
      if (grads.sizes[k] == 0) continue;
      scale_in_place<<<blocks_for(grads.sizes[k]), kThreads, 0, stream()>>>(grads.ptrs[k],
                                                                            grads.sizes[k], s);
      check_launch("clip_global_norm scale_in_place");
    }
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
  for (int t = 0; t < params.count; ++t) {
    const size_t n = params.sizes[t];
    if (n == 0) continue;
    adam_tensor<<<blocks_for(n), kThreads, 0, stream()>>>(params.ptrs[t], grads.ptrs[t], m.ptrs[t],
                                                          v.ptrs[t], n, k);
    check_launch("adam_update");
  }
}

void sgd_update(const TensorList& params, const TensorList& grads, const TensorList& velocity,
                const SgdConfig& cfg) {
  for (int t = 0; t < params.count; ++t) {
    const size_t n = params.sizes[t];
    if (n == 0) continue;
    sgd_tensor<<<blocks_for(n), kThreads, 0, stream()>>>(params.ptrs[t], grads.ptrs[t],
                                                         velocity.ptrs[t], n, cfg.lr, cfg.momentum,
                                                         cfg.weight_decay, cfg.nesterov);
    check_launch("sgd_update");
  }
}

}  // namespace cuda
}  // namespace rnnkit
