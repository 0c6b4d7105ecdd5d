// Optimizer and clipping tests: several steps of Adam, AdamW and SGD (momentum, Nesterov, weight
// decay) over tensors of different sizes against a float64 transcription of the torch.optim
// update rules, and global-norm clipping below, at and above the threshold.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "check.h"
#include "optim.h"

using namespace rnnkit;

namespace {

// Sizes cover a single element, vector-width tails, one tensor long enough to matter and one
// that the passes split over the threads (an odd length: uneven slices).
const size_t kSizes[] = {1, 7, 33, 130, 1000, 300001};

// A set of float tensors plus the TensorList view the kernels take.
struct Tensors {
  std::vector<std::vector<float>> data;
  std::vector<float*> ptrs;
  std::vector<size_t> sizes;

  // ptrs point into data, so a copy would alias the original.
  Tensors(const Tensors&) = delete;
  Tensors(uint64_t seed, float lo, float hi) {
    for (size_t n : kSizes) {
      data.emplace_back(n);
      check::fill_uniform(data.back(), seed++, lo, hi);
    }
    for (auto& d : data) ptrs.push_back(d.data()), sizes.push_back(d.size());
  }
  TensorList list() { return {ptrs.data(), sizes.data(), static_cast<int>(ptrs.size())}; }
  std::vector<std::vector<double>> as_double() const {
    std::vector<std::vector<double>> out;
    for (const auto& d : data) out.emplace_back(d.begin(), d.end());
    return out;
  }
};

Tensors zeros() { return Tensors(0, 0, 0); }

using Doubles = std::vector<std::vector<double>>;

void expect_tensors(const Tensors& got, const Doubles& want, double rtol, double atol,
                    const std::string& what) {
  for (size_t t = 0; t < want.size(); ++t)
    check::close(got.data[t].data(), want[t].data(), want[t].size(), rtol, atol,
                 what + " tensor " + std::to_string(t));
}

double reference_norm(const Tensors& t) {
  double s = 0;
  for (const auto& d : t.data)
    for (float x : d) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// torch.optim.Adam / AdamW, one step, in double.
void reference_adam(Doubles& p, const Doubles& g, Doubles& m, Doubles& v, int64_t step,
                    const AdamConfig& c) {
  const double bc1 = 1 - std::pow(static_cast<double>(c.beta1), static_cast<double>(step));
  const double bc2 = 1 - std::pow(static_cast<double>(c.beta2), static_cast<double>(step));
  for (size_t t = 0; t < p.size(); ++t)
    for (size_t i = 0; i < p[t].size(); ++i) {
      double grad = g[t][i];
      if (c.decoupled)
        p[t][i] *= 1 - static_cast<double>(c.lr) * c.weight_decay;
      else
        grad += static_cast<double>(c.weight_decay) * p[t][i];
      m[t][i] = c.beta1 * m[t][i] + (1 - static_cast<double>(c.beta1)) * grad;
      v[t][i] = c.beta2 * v[t][i] + (1 - static_cast<double>(c.beta2)) * grad * grad;
      double denom = std::sqrt(v[t][i]) / std::sqrt(bc2) + c.eps;
      p[t][i] -= c.lr / bc1 * m[t][i] / denom;
    }
}

// torch.optim.SGD (dampening 0), one step, in double; `first` is PyTorch's buf = clone(grad).
void reference_sgd(Doubles& p, const Doubles& g, Doubles& b, bool first, const SgdConfig& c) {
  for (size_t t = 0; t < p.size(); ++t)
    for (size_t i = 0; i < p[t].size(); ++i) {
      double grad = g[t][i] + static_cast<double>(c.weight_decay) * p[t][i];
      if (c.momentum != 0) {
        b[t][i] = first ? grad : c.momentum * b[t][i] + grad;
        grad = c.nesterov ? grad + c.momentum * b[t][i] : b[t][i];
      }
      p[t][i] -= c.lr * grad;
    }
}

}  // namespace

TEST(global_norm_matches_reference) {
  Tensors t(1, -2, 2);
  double norm = global_norm(t.list());
  double want = reference_norm(t);
  check::close(&norm, &want, 1, 1e-12, 0, "global_norm");
  TensorList empty{nullptr, nullptr, 0};
  CHECK(global_norm(empty) == 0.0);
}

TEST(clip_below_at_and_above_threshold) {
  for (double factor : {2.0, 1.0, 0.25}) {
    Tensors g(10, -1, 1);
    const Doubles before = g.as_double();
    const double norm = reference_norm(g);
    // factor 1: max_norm equals the norm, which is not above it, so nothing is scaled.
    const double max_norm = factor == 1.0 ? global_norm(g.list()) : norm * factor;
    double returned = clip_global_norm(g.list(), max_norm);
    const std::string what = "clip max_norm = " + std::to_string(factor) + " * norm";
    check::close(&returned, &norm, 1, 1e-12, 0, what + " returned norm");
    const double s = factor < 1.0 ? max_norm / norm : 1.0;
    Doubles want = before;
    for (auto& d : want)
      for (double& x : d) x *= s;
    expect_tensors(g, want, factor < 1.0 ? 1e-6 : 0, 0, what);
    if (factor < 1.0) {
      double after = global_norm(g.list());
      check::close(&after, &max_norm, 1, 1e-6, 0, what + " norm after");
    }
  }
}

TEST(adam_matches_pytorch_formulas) {
  const AdamConfig configs[] = {
      {1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f, false},  // Adam
      {1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, false},  // Adam with L2 weight decay
      {1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, true},  // AdamW
      {3e-3f, 0.8f, 0.99f, 1e-6f, 0.01f, true},   // AdamW, other betas
  };
  uint64_t seed = 100;
  for (const AdamConfig& c : configs) {
    Tensors p(seed, -1, 1), m = zeros(), v = zeros();
    Doubles rp = p.as_double(), rm = m.as_double(), rv = v.as_double();
    for (int64_t step = 1; step <= 6; ++step) {
      Tensors g(seed + 10 * step, -1, 1);
      adam_update(p.list(), g.list(), m.list(), v.list(), step, c);
      reference_adam(rp, g.as_double(), rm, rv, step, c);
    }
    std::string what = std::string(c.decoupled ? "AdamW" : "Adam") +
                       " wd=" + std::to_string(c.weight_decay) +
                       " beta1=" + std::to_string(c.beta1);
    expect_tensors(p, rp, 1e-5, 1e-6, what + " params");
    expect_tensors(m, rm, 1e-5, 1e-7, what + " m");
    expect_tensors(v, rv, 1e-5, 1e-8, what + " v");
    seed += 1000;
  }
}

TEST(sgd_matches_pytorch_formulas) {
  const SgdConfig configs[] = {
      {0.1f, 0.0f, 0.0f, false},   // plain SGD
      {0.1f, 0.0f, 0.01f, false},  // weight decay only
      {0.05f, 0.9f, 0.0f, false},  // momentum
      {0.05f, 0.9f, 0.01f, true},  // Nesterov with weight decay
      {0.2f, 0.5f, 0.1f, false},   // momentum with weight decay
  };
  uint64_t seed = 200;
  for (const SgdConfig& c : configs) {
    Tensors p(seed, -1, 1), b = zeros();
    Doubles rp = p.as_double(), rb = b.as_double();
    for (int step = 1; step <= 6; ++step) {
      Tensors g(seed + 10 * step, -1, 1);
      sgd_update(p.list(), g.list(), b.list(), c);
      reference_sgd(rp, g.as_double(), rb, step == 1, c);
    }
    std::string what = "SGD momentum=" + std::to_string(c.momentum) +
                       " wd=" + std::to_string(c.weight_decay) + (c.nesterov ? " nesterov" : "");
    expect_tensors(p, rp, 1e-5, 1e-6, what + " params");
    seed += 1000;
  }
}

TEST_MAIN()
