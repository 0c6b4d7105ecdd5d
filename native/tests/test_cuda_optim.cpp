// CUDA global norm, clipping, Adam/AdamW and SGD (plain, momentum, Nesterov) against the CPU
// kernels on the same tensors, over several steps so that the optimizer state is compared too.
#include <string>
#include <vector>

#include "cuda_test.h"
#include "optim.h"

namespace {

using cudatest::Buf;
using FVec = std::vector<float>;
namespace gpu = rnnkit::cuda;

const size_t kSizes[] = {1, 1000, 70001};  // one element, and past one block's and one grid's span

// The same tensors on host and device, with TensorLists over each.
struct Tensors {
  std::vector<FVec> host;
  std::vector<Buf<float>> dev;
  std::vector<float*> hptr, dptr;
  std::vector<size_t> sizes;

  Tensors(uint64_t seed, double lo, double hi) {
    for (size_t n : kSizes) {
      FVec v(n);
      check::fill_uniform(v, seed++, lo, hi);
      host.push_back(v);
      dev.emplace_back(v);
      sizes.push_back(n);
    }
    for (size_t k = 0; k < host.size(); ++k)
      hptr.push_back(host[k].data()), dptr.push_back(dev[k].get());
  }
  rnnkit::TensorList cpu() { return {hptr.data(), sizes.data(), int(sizes.size())}; }
  rnnkit::TensorList gpu() { return {dptr.data(), sizes.data(), int(sizes.size())}; }
  void expect_match(const std::string& what) {
    for (size_t k = 0; k < host.size(); ++k)
      cudatest::expect_close(dev[k].download(), host[k], what + " tensor " + std::to_string(k));
  }
};

void expect_near(double got, double want, const std::string& what) {
  const FVec g{float(got)}, w{float(want)};
  cudatest::expect_close(g, w, what);
}

TEST(global_norm_and_clipping_match_cpu) {
  Tensors g(1, -1, 1);
  expect_near(gpu::global_norm(g.gpu()), rnnkit::global_norm(g.cpu()), "global_norm");
  // Above the norm: unchanged; below: scaled.
  for (double max_norm : {1e6, 5.0}) {
    const double want = rnnkit::clip_global_norm(g.cpu(), max_norm);
    const double got = gpu::clip_global_norm(g.gpu(), max_norm);
    expect_near(got, want, "clip_global_norm returns the norm");
    g.expect_match("clip_global_norm max=" + std::to_string(max_norm));
  }
}

TEST(adam_matches_cpu) {
  for (bool decoupled : {false, true}) {
    const std::string name = decoupled ? "adamw" : "adam";
    Tensors p(10, -1, 1), m(20, 0, 0), v(30, 0, 0);
    const rnnkit::AdamConfig cfg{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, decoupled};
    for (int64_t step = 1; step <= 3; ++step) {
      Tensors g(40 + step, -1, 1);
      rnnkit::adam_update(p.cpu(), g.cpu(), m.cpu(), v.cpu(), step, cfg);
      gpu::adam_update(p.gpu(), g.gpu(), m.gpu(), v.gpu(), step, cfg);
    }
    p.expect_match(name + " params");
    m.expect_match(name + " m");
    v.expect_match(name + " v");
  }
}

TEST(sgd_matches_cpu) {
  const rnnkit::SgdConfig configs[] = {
      {0.1f, 0.0f, 0.0f, false}, {0.1f, 0.9f, 1e-4f, false}, {0.1f, 0.9f, 1e-4f, true}};
  for (const rnnkit::SgdConfig& cfg : configs) {
    const std::string name =
        "sgd momentum=" + std::to_string(cfg.momentum) + (cfg.nesterov ? " nesterov" : "");
    Tensors p(50, -1, 1), b(60, 0, 0);
    for (int step = 0; step < 3; ++step) {
      Tensors g(70 + step, -1, 1);
      rnnkit::sgd_update(p.cpu(), g.cpu(), b.cpu(), cfg);
      gpu::sgd_update(p.gpu(), g.gpu(), b.gpu(), cfg);
    }
    p.expect_match(name + " params");
    b.expect_match(name + " velocity");
  }
}

}  // namespace

CUDA_TEST_MAIN()
