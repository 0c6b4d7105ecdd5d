// Layer kernel tests: forwards against float64 references, backwards against the analytic
// gradient in float64 and against central finite differences of the forward, over awkward shapes
// (N = 1, V = 1, sizes that are not multiples of the vector width).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "check.h"
#include "layers.h"

using namespace rnnkit;

namespace {

std::string shape(const char* what, int a, int b, int c = -1) {
  std::string s = std::string(what) + " [" + std::to_string(a) + "," + std::to_string(b);
  if (c >= 0) s += "," + std::to_string(c);
  return s + "]";
}

// sum_i y[i] * r[i] in double: a scalar loss whose gradient with respect to y is r.
double dot(const std::vector<float>& y, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * r[i];
  return s;
}

// Finite differences of `loss` with respect to every element of `x` against `analytic`.
// Step 1e-2 suits float inputs of order 1: the truncation error of the central difference is
// O(eps^2) and the float rounding of the loss divided by 2 eps stays near 1e-5.
void expect_gradient(const std::function<double()>& loss, std::vector<float>& x,
                     const std::vector<float>& analytic, const std::string& what) {
  std::vector<double> numeric = check::numeric_gradient(loss, x.data(), x.size(), 1e-2);
  check::close(analytic.data(), numeric.data(), x.size(), 1e-3, 1e-3, what);
}

std::vector<int32_t> make_ids(int N, int V, uint64_t seed) {
  std::vector<int32_t> ids(N);
  for (int n = 0; n < N; ++n) ids[n] = static_cast<int32_t>(uniform01(seed, n) * V);
  return ids;
}

}  // namespace

TEST(embedding_forward_gathers_rows) {
  const int shapes[][3] = {{1, 1, 1}, {5, 3, 7}, {17, 33, 4}, {2, 130, 65}};
  for (const auto& s : shapes) {
    int V = s[0], E = s[1], N = s[2];
    std::vector<float> table(static_cast<size_t>(V) * E), out(static_cast<size_t>(N) * E);
    check::fill_uniform(table, V + E);
    std::vector<int32_t> ids = make_ids(N, V, N);
    embedding_forward(table.data(), V, E, ids.data(), N, out.data());
    for (int n = 0; n < N; ++n)
      check::close(&out[static_cast<size_t>(n) * E], &table[static_cast<size_t>(ids[n]) * E], E, 0,
                   0, shape("embedding_forward row", V, E, N));
  }
}

TEST(embedding_backward_gradient) {
  // N > V forces repeated ids, which must accumulate rather than overwrite.
  const int shapes[][3] = {{1, 1, 3}, {5, 3, 7}, {4, 17, 9}};
  for (const auto& s : shapes) {
    int V = s[0], E = s[1], N = s[2];
    std::vector<float> table(static_cast<size_t>(V) * E), out(static_cast<size_t>(N) * E);
    std::vector<float> r(out.size()), dtable(table.size());
    check::fill_uniform(table, 10 + V);
    check::fill_uniform(r, 20 + V);
    check::fill_uniform(dtable, 30 + V);
    std::vector<int32_t> ids = make_ids(N, V, 40 + V);
    // dtable starts non-zero: backward adds to it.
    std::vector<float> start = dtable;
    embedding_backward(ids.data(), N, E, r.data(), dtable.data());
    for (size_t i = 0; i < dtable.size(); ++i) dtable[i] -= start[i];
    auto loss = [&] {
      embedding_forward(table.data(), V, E, ids.data(), N, out.data());
      return dot(out, r);
    };
    expect_gradient(loss, table, dtable, shape("embedding dtable", V, E, N));
  }
}

// linear_forward, and PackedLinear on the same weights.
TEST(linear_forward_matches_reference) {
  const int shapes[][3] = {{1, 1, 1},   {1, 7, 3},    {5, 17, 33},
                           {33, 65, 7}, {3, 130, 17}, {20, 300, 290}};
  for (const auto& s : shapes)
    for (bool bias : {true, false}) {
      int N = s[0], I = s[1], O = s[2];
      std::vector<float> x(static_cast<size_t>(N) * I), W(static_cast<size_t>(O) * I), b(O);
      std::vector<float> y(static_cast<size_t>(N) * O, NAN);
      check::fill_uniform(x, N);
      check::fill_uniform(W, I);
      check::fill_uniform(b, O);
      linear_forward(N, I, O, x.data(), W.data(), bias ? b.data() : nullptr, y.data());
      std::vector<double> want(y.size());
      for (int n = 0; n < N; ++n)
        for (int o = 0; o < O; ++o) {
          double acc = bias ? b[o] : 0.0;
          for (int i = 0; i < I; ++i)
            acc += static_cast<double>(x[static_cast<size_t>(n) * I + i]) *
                   W[static_cast<size_t>(o) * I + i];
          want[static_cast<size_t>(n) * O + o] = acc;
        }
      check::close(y.data(), want.data(), y.size(), 1e-5, 1e-5,
                   shape(bias ? "linear_forward bias" : "linear_forward", N, I, O));
      const PackedLinear packed(I, O, W.data(), bias ? b.data() : nullptr);
      std::fill(y.begin(), y.end(), NAN);
      packed.forward(N, x.data(), y.data());
      check::close(y.data(), want.data(), y.size(), 1e-5, 1e-5,
                   shape(bias ? "PackedLinear bias" : "PackedLinear", N, I, O));
    }
}

// Against float64, on rows with a wide range (a logit held at -1e4, as an end token barred by
// its bias) and long ones.
TEST(log_softmax_rows_matches_reference) {
  const int shapes[][2] = {{1, 1}, {3, 7}, {4, 65}, {2, 8000}};
  for (const auto& s : shapes) {
    const int N = s[0], V = s[1];
    std::vector<float> x(static_cast<size_t>(N) * V);
    check::fill_uniform(x, V, -20, 20);
    if (V > 2) x[1] = -1e4f;
    std::vector<double> want(x.size());
    for (int n = 0; n < N; ++n) {
      const float* row = &x[static_cast<size_t>(n) * V];
      double m = row[0], sum = 0;
      for (int v = 1; v < V; ++v) m = std::max(m, double(row[v]));
      for (int v = 0; v < V; ++v) sum += std::exp(row[v] - m);
      for (int v = 0; v < V; ++v) want[static_cast<size_t>(n) * V + v] = row[v] - m - std::log(sum);
    }
    log_softmax_rows(N, V, x.data());
    check::close(x.data(), want.data(), x.size(), 1e-6, 2e-5, shape("log_softmax_rows", N, V));
  }
}

TEST(linear_backward_gradient) {
  const int shapes[][3] = {{1, 1, 1}, {1, 3, 2}, {4, 7, 5}, {9, 17, 3}};
  for (const auto& s : shapes) {
    int N = s[0], I = s[1], O = s[2];
    std::vector<float> x(static_cast<size_t>(N) * I), W(static_cast<size_t>(O) * I), b(O);
    std::vector<float> y(static_cast<size_t>(N) * O), r(y.size());
    check::fill_uniform(x, 50 + N);
    check::fill_uniform(W, 60 + I);
    check::fill_uniform(b, 70 + O);
    check::fill_uniform(r, 80 + N);
    // dx is overwritten (NaN must not survive); dW and db accumulate onto what they hold.
    std::vector<float> dx(x.size(), NAN), dW(W.size()), db(b.size());
    check::fill_uniform(dW, 90);
    check::fill_uniform(db, 91);
    std::vector<float> dW0 = dW, db0 = db;
    linear_backward(N, I, O, x.data(), W.data(), r.data(), dx.data(), dW.data(), db.data());
    for (size_t i = 0; i < dW.size(); ++i) dW[i] -= dW0[i];
    for (size_t i = 0; i < db.size(); ++i) db[i] -= db0[i];
    auto loss = [&] {
      linear_forward(N, I, O, x.data(), W.data(), b.data(), y.data());
      return dot(y, r);
    };
    expect_gradient(loss, x, dx, shape("linear dx", N, I, O));
    expect_gradient(loss, W, dW, shape("linear dW", N, I, O));
    expect_gradient(loss, b, db, shape("linear db", N, I, O));
  }
}

TEST(linear_backward_optional_outputs) {
  const int N = 6, I = 5, O = 4;
  std::vector<float> x(N * I), W(O * I), dy(N * O), dW_all(O * I), dW_only(O * I), dx(N * I);
  std::vector<float> db(O);
  check::fill_uniform(x, 1);
  check::fill_uniform(W, 2);
  check::fill_uniform(dy, 3);
  linear_backward(N, I, O, x.data(), W.data(), dy.data(), dx.data(), dW_all.data(), db.data());
  linear_backward(N, I, O, x.data(), W.data(), dy.data(), nullptr, dW_only.data(), nullptr);
  check::close(dW_only.data(), dW_all.data(), dW_all.size(), 0, 0, "dW without dx and db");
}

namespace {

// A softmax cross-entropy case: logits [N, V] and targets, some rows ignored.
struct Xent {
  int N, V;
  float smoothing;
  int ignore_index = -100;
  std::vector<float> logits;
  std::vector<int32_t> targets;

  Xent(int n, int v, float e, uint64_t seed) : N(n), V(v), smoothing(e) {
    logits.resize(static_cast<size_t>(N) * V);
    check::fill_uniform(logits, seed, -3, 3);
    targets = make_ids(N, V, seed + 1);
    // Every third row is padding.
    for (int i = 1; i < N; i += 3) targets[i] = ignore_index;
  }
  std::string name(const char* what) const {
    return shape(what, N, V) + " smoothing " + std::to_string(smoothing);
  }
  double forward(std::vector<float>& lse, int64_t& count) const {
    lse.assign(N, NAN);
    return softmax_xent_forward(N, V, logits.data(), targets.data(), ignore_index, smoothing,
                                lse.data(), &count);
  }
};

// Per-row log-sum-exp, total loss and gradient (scale 1) in double.
struct XentReference {
  std::vector<double> lse, grad;
  double loss = 0;
  int64_t count = 0;

  explicit XentReference(const Xent& c) : lse(c.N), grad(c.logits.size(), 0.0) {
    for (int n = 0; n < c.N; ++n) {
      const float* x = &c.logits[static_cast<size_t>(n) * c.V];
      double m = -INFINITY, s = 0;
      for (int j = 0; j < c.V; ++j) m = std::max(m, double(x[j]));
      for (int j = 0; j < c.V; ++j) s += std::exp(x[j] - m);
      lse[n] = m + std::log(s);
      if (c.targets[n] == c.ignore_index) continue;
      ++count;
      for (int j = 0; j < c.V; ++j) {
        double q =
            c.smoothing / static_cast<double>(c.V) + (j == c.targets[n] ? 1.0 - c.smoothing : 0.0);
        if (q != 0) loss -= q * (x[j] - lse[n]);  // q = 0 where a -inf logit would give NaN
        grad[static_cast<size_t>(n) * c.V + j] = std::exp(x[j] - lse[n]) - q;
      }
    }
  }
};

const int kXentShapes[][2] = {{1, 1}, {3, 1}, {1, 7}, {5, 17}, {7, 16}, {9, 130}, {4, 1000}};
const float kSmoothing[] = {0.0f, 0.1f, 1.0f};

}  // namespace

TEST(softmax_xent_forward_matches_reference) {
  uint64_t seed = 1;
  for (const auto& s : kXentShapes)
    for (float e : kSmoothing) {
      Xent c(s[0], s[1], e, seed += 2);
      XentReference want(c);
      std::vector<float> lse;
      int64_t count = -1;
      double loss = c.forward(lse, count);
      CHECK(count == want.count);
      check::close(lse.data(), want.lse.data(), lse.size(), 2e-7, 2e-7, c.name("lse"));
      check::close(&loss, &want.loss, 1, 1e-6, 1e-5, c.name("loss"));
    }
}

TEST(softmax_xent_backward_matches_reference) {
  uint64_t seed = 100;
  for (const auto& s : kXentShapes)
    for (float e : kSmoothing) {
      Xent c(s[0], s[1], e, seed += 2);
      XentReference want(c);
      std::vector<float> lse, d(c.logits.size(), NAN);
      int64_t count = 0;
      c.forward(lse, count);
      const float scale = 0.25f;
      softmax_xent_backward(c.N, c.V, c.logits.data(), c.targets.data(), c.ignore_index, e,
                            lse.data(), scale, d.data());
      for (double& g : want.grad) g *= scale;
      check::close(d.data(), want.grad.data(), d.size(), 1e-6, 1e-8, c.name("dlogits"));
      // Ignored rows get an exact zero gradient.
      for (int n = 0; n < c.N; ++n)
        if (c.targets[n] == c.ignore_index)
          for (int j = 0; j < c.V; ++j) CHECK(d[static_cast<size_t>(n) * c.V + j] == 0.0f);
    }
}

TEST(softmax_xent_gradient_finite_differences) {
  const int shapes[][2] = {{1, 1}, {1, 7}, {5, 17}, {4, 33}};
  uint64_t seed = 200;
  for (const auto& s : shapes)
    for (float e : {0.0f, 0.2f}) {
      Xent c(s[0], s[1], e, seed += 2);
      std::vector<float> lse, d(c.logits.size());
      int64_t count = 0;
      c.forward(lse, count);
      // scale = 1 / count: the gradient of the mean loss, as the trainer uses it.
      const float scale = count > 0 ? 1.0f / count : 0.0f;
      softmax_xent_backward(c.N, c.V, c.logits.data(), c.targets.data(), c.ignore_index, e,
                            lse.data(), scale, d.data());
      auto mean_loss = [&] {
        std::vector<float> scratch;
        int64_t k = 0;
        return c.forward(scratch, k) * scale;
      };
      expect_gradient(mean_loss, c.logits, d, c.name("dlogits finite differences"));
    }
}

TEST(softmax_xent_backward_in_place) {
  Xent c(6, 37, 0.1f, 300);
  std::vector<float> lse, separate(c.logits.size());
  int64_t count = 0;
  c.forward(lse, count);
  softmax_xent_backward(c.N, c.V, c.logits.data(), c.targets.data(), c.ignore_index, 0.1f,
                        lse.data(), 0.5f, separate.data());
  std::vector<float> in_place = c.logits;
  softmax_xent_backward(c.N, c.V, in_place.data(), c.targets.data(), c.ignore_index, 0.1f,
                        lse.data(), 0.5f, in_place.data());
  check::close(in_place.data(), separate.data(), separate.size(), 0, 0, "in-place dlogits");
}

// Log-sum-exp must be shift-invariant (no overflow for large logits), and -inf logits (masked
// vocabulary entries) must contribute nothing and get zero gradient.
TEST(softmax_xent_large_and_masked_logits) {
  Xent c(4, 29, 0.0f, 400);
  std::vector<float> lse, lse_shift, d(c.logits.size());
  int64_t count = 0;
  double base = c.forward(lse, count);
  Xent shifted = c;
  for (float& v : shifted.logits) v += 1000.0f;
  double loss_shift = shifted.forward(lse_shift, count);
  // float spacing at 1000 is 6e-5, so the shifted logits are only that accurate.
  check::close(&loss_shift, &base, 1, 0, 4e-4 * count, "loss of logits + 1000");

  Xent masked = c;
  for (int n = 0; n < c.N; ++n)
    for (int j = 0; j < c.V; j += 4)
      if (j != c.targets[n]) masked.logits[static_cast<size_t>(n) * c.V + j] = -INFINITY;
  XentReference want(masked);
  double loss = masked.forward(lse, count);
  CHECK(std::isfinite(loss));
  check::close(&loss, &want.loss, 1, 1e-6, 1e-5, "loss with -inf logits");
  softmax_xent_backward(c.N, c.V, masked.logits.data(), c.targets.data(), c.ignore_index, 0.0f,
                        lse.data(), 1.0f, d.data());
  check::close(d.data(), want.grad.data(), d.size(), 1e-5, 1e-7, "dlogits with -inf logits");
}

TEST(softmax_xent_all_ignored) {
  Xent c(3, 5, 0.1f, 500);
  for (int32_t& t : c.targets) t = c.ignore_index;
  std::vector<float> lse, d(c.logits.size(), NAN);
  int64_t count = -1;
  double loss = c.forward(lse, count);
  CHECK(count == 0);
  CHECK(loss == 0.0);
  softmax_xent_backward(c.N, c.V, c.logits.data(), c.targets.data(), c.ignore_index, 0.1f,
                        lse.data(), 1.0f, d.data());
  for (float g : d) CHECK(g == 0.0f);
}

TEST(softmax_xent_nan_logits_propagate) {
  Xent c(2, 9, 0.0f, 600);
  c.targets = {3, 4};
  c.logits[5] = NAN;
  std::vector<float> lse;
  int64_t count = 0;
  CHECK(std::isnan(c.forward(lse, count)));
  CHECK(std::isnan(lse[0]));
  CHECK(std::isfinite(lse[1]));
}

TEST_MAIN()
