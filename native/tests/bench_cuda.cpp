// BENCH.md's character-LM workloads on the CUDA kernels, for scripts/gpu-check.sh:
//   train/M/{lstm,gru}: one optimizer step (embedding, stack, decoder, softmax cross-entropy,
//     backward, clipping at global norm 5, Adam) on B=64 x T=100 tokens;
//   generate/M/lstm/b{1,64,256}: a 200-step sampling loop at temperature 1 with the state carried,
//     every step on the device (embedding, one-step stack, decoder, batched sampler).
// Prints one line per workload: id, tokens/s and ms per iteration, tab-separated, median of the
// timed repetitions after warm-up.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/cuda.h"

namespace {

using rnnkit::CellType;
using rnnkit::StackShape;
namespace gpu = rnnkit::cuda;
template <typename T>
using Buf = gpu::DeviceBuffer<T>;

constexpr int V = 65, E = 128, H = 512, L = 2, B = 64, T = 100, kSteps = 200;

Buf<float> random_buffer(size_t n, uint64_t seed, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (2 * rnnkit::uniform01(seed, i) - 1);
  return Buf<float>(v);
}

Buf<int32_t> random_tokens(size_t n, uint64_t seed) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = int32_t(rnnkit::uniform01(seed, i) * V);
  return Buf<int32_t>(v);
}

// Median milliseconds of `fn` over reps timed repetitions, after warm-up; each repetition runs fn
// `inner` times and waits for the device.
template <typename F>
double time_ms(F fn, int warmup, int reps, int inner) {
  for (int i = 0; i < warmup; ++i) fn();
  gpu::synchronize();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) fn();
    gpu::synchronize();
    const std::chrono::duration<double, std::milli> d = std::chrono::steady_clock::now() - t0;
    ms.push_back(d.count() / inner);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void report(const std::string& id, double tokens, double ms) {
  std::printf("%s\t%.1f\t%.3f\n", id.c_str(), tokens / (ms / 1e3), ms);
  std::fflush(stdout);
}

// The model's parameters (and, for training, gradients and Adam state) in four tensors:
// embedding [V, E], stack, decoder weight [V, H] and bias [V].
struct Tensors {
  std::vector<Buf<float>> t;
  std::vector<float*> ptrs;
  std::vector<size_t> sizes;
  Tensors(CellType cell, uint64_t seed, float scale) {
    const size_t n[] = {size_t(V) * E, rnnkit::stack_param_count(cell, E, H, L), size_t(V) * H,
                        size_t(V)};
    for (size_t k = 0; k < 4; ++k) {
      t.push_back(random_buffer(n[k], seed + k, scale));
      ptrs.push_back(t.back().get());
      sizes.push_back(n[k]);
    }
  }
  rnnkit::TensorList list() { return {ptrs.data(), sizes.data(), 4}; }
  float* operator[](int k) { return ptrs[k]; }
  void zero() {
    for (size_t k = 0; k < 4; ++k) gpu::fill_zero(ptrs[k], sizes[k] * sizeof(float));
  }
};

void train(CellType cell, const char* name) {
  const StackShape s{cell, T, B, E, H, L, 0.0f, false, true, 1};
  Tensors p(cell, 1, 0.04f), g(cell, 0, 0), m(cell, 0, 0), v(cell, 0, 0);
  const size_t TB = size_t(T) * B;
  Buf<int32_t> ids = random_tokens(TB, 11), targets = random_tokens(TB, 12);
  Buf<float> x(TB * E), y(TB * H), dy(TB * H), dx(TB * E), hT(size_t(L) * B * H),
      cT(size_t(L) * B * H), logits(TB * V), lse(TB), ws(gpu::stack_workspace_size(s));
  const rnnkit::AdamConfig adam{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, false};
  int64_t step = 0;
  auto iteration = [&] {
    g.zero();
    gpu::embedding_forward(p[0], V, E, ids.get(), int(TB), x.get());
    gpu::stack_forward(s, p[1], x.get(), nullptr, nullptr, nullptr, y.get(), hT.get(),
                       cell == CellType::Lstm ? cT.get() : nullptr, ws.get());
    gpu::linear_forward(int(TB), H, V, y.get(), p[2], p[3], logits.get());
    int64_t count = 0;
    gpu::softmax_xent_forward(int(TB), V, logits.get(), targets.get(), -1, 0.0f, lse.get(), &count);
    gpu::softmax_xent_backward(int(TB), V, logits.get(), targets.get(), -1, 0.0f, lse.get(),
                               1.0f / float(count), logits.get());
    gpu::linear_backward(int(TB), H, V, y.get(), p[2], logits.get(), dy.get(), g[2], g[3]);
    gpu::stack_backward(s, p[1], x.get(), nullptr, nullptr, nullptr, ws.get(), dy.get(), nullptr,
                        nullptr, dx.get(), nullptr, nullptr, g[1]);
    gpu::embedding_backward(ids.get(), int(TB), E, dx.get(), g[0]);
    gpu::clip_global_norm(g.list(), 5.0);
    gpu::adam_update(p.list(), g.list(), m.list(), v.list(), ++step, adam);
  };
  report(std::string("train/M/") + name, double(TB), time_ms(iteration, 3, 5, 10));
}

void generate(int batch) {
  const CellType cell = CellType::Lstm;
  const StackShape s{cell, 1, batch, E, H, L, 0.0f, false, false, 0};
  Tensors p(cell, 1, 0.04f);
  const size_t state = size_t(L) * batch * H;
  Buf<float> x(size_t(batch) * E), y(size_t(batch) * H), h(state), c(state),
      logits(size_t(batch) * V), ws(gpu::stack_workspace_size(s));
  Buf<int32_t> tokens = random_tokens(batch, 21);
  std::vector<uint64_t> states(batch);
  for (int b = 0; b < batch; ++b) states[b] = rnnkit::sampler_rng(7, b).state;
  Buf<uint64_t> rng(states);
  rnnkit::SamplerConfig cfg;  // multinomial at temperature 1
  auto loop = [&] {
    gpu::fill_zero(h.get(), state * sizeof(float));
    gpu::fill_zero(c.get(), state * sizeof(float));
    for (int step = 0; step < kSteps; ++step) {
      gpu::embedding_forward(p[0], V, E, tokens.get(), batch, x.get());
      gpu::stack_forward(s, p[1], x.get(), nullptr, h.get(), c.get(), y.get(), h.get(), c.get(),
                         ws.get());
      gpu::linear_forward(batch, H, V, y.get(), p[2], p[3], logits.get());
      gpu::sample_tokens(cfg, logits.get(), batch, V, nullptr, 0, nullptr, rng.get(), tokens.get());
    }
  };
  report("generate/M/lstm/b" + std::to_string(batch), double(batch) * kSteps,
         time_ms(loop, 1, 3, 1));
}

}  // namespace

int main() {
  const gpu::DeviceInfo info = gpu::device_info();
  if (info.count == 0) {
    std::fprintf(stderr, "bench_cuda: no CUDA device (%s)\n", info.status.c_str());
    return 1;
  }
  std::fprintf(stderr, "bench_cuda: %s, GEMM %s\n", info.name.c_str(), gpu::gemm_backend());
  try {
    train(CellType::Lstm, "lstm");
    train(CellType::Gru, "gru");
    for (int batch : {1, 64, 256}) generate(batch);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
