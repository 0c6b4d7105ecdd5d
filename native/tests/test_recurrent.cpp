// Recurrent stacks: forward against a deliberately plain float64 reference, backward against
// central differences of that reference and of the kernel itself, padded batches against their
// rows run alone, step-by-step generation against one call, and argument errors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "recurrent.h"
#include "recurrent_cells.h"

namespace {

using rnnkit::CellType;
using rnnkit::StackShape;
using Vec = std::vector<double>;
using FVec = std::vector<float>;

const CellType kCells[] = {CellType::RnnTanh, CellType::RnnRelu, CellType::Lstm, CellType::Gru};
const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Config {
  int T, B, I, H, L;
  std::vector<int32_t> lengths;  // empty: every row runs all T steps
  bool residual;
  float dropout;
  bool zero_state;  // null h0 (and c0)
};

// Everything one stack call takes, in float64; the kernel gets float32 copies. The loss whose
// gradients backward computes is sum(dy * y) + sum(dhT * hT) + sum(dcT * cT).
struct Problem {
  StackShape s;
  std::vector<int32_t> lengths;
  bool zero_state;
  Vec params, x, h0, c0;  // h0, c0 [L, B, H]: zeros when zero_state; c0 empty unless LSTM
  Vec dy, dhT, dcT;
  std::string name;

  bool lstm() const { return s.cell == CellType::Lstm; }
  const int32_t* len() const { return lengths.empty() ? nullptr : lengths.data(); }
  int length(int b) const { return lengths.empty() ? s.T : lengths[b]; }
};

Vec uniform(size_t n, uint64_t seed, double lo, double hi) {
  Vec v(n);
  check::fill_uniform(v, seed, lo, hi);
  return v;
}

Problem make_problem(CellType cell, const Config& c, bool training = true, uint64_t seed = 1) {
  Problem p;
  p.s = {cell, c.T, c.B, c.I, c.H, c.L, c.dropout, c.residual, training, 977 + seed};
  p.lengths = c.lengths;
  p.zero_state = c.zero_state;
  const size_t state = size_t(c.L) * c.B * c.H, out = size_t(c.T) * c.B * c.H;
  // Weights at PyTorch's init scale keep the gates away from saturation, where every gradient
  // would be tiny.
  const double w = 1.0 / std::sqrt(double(c.H));
  p.params = uniform(rnnkit::stack_param_count(cell, c.I, c.H, c.L), seed * 16 + 1, -w, w);
  p.x = uniform(size_t(c.T) * c.B * c.I, seed * 16 + 2, -1, 1);
  p.h0 = c.zero_state ? Vec(state) : uniform(state, seed * 16 + 3, -0.8, 0.8);
  if (p.lstm()) p.c0 = c.zero_state ? Vec(state) : uniform(state, seed * 16 + 4, -1, 1);
  p.dy = uniform(out, seed * 16 + 5, -1, 1);
  p.dhT = uniform(state, seed * 16 + 6, -1, 1);
  if (p.lstm()) p.dcT = uniform(state, seed * 16 + 7, -1, 1);
  p.name = std::string(cell_name(cell)) + " T=" + std::to_string(c.T) +
           " B=" + std::to_string(c.B) + " I=" + std::to_string(c.I) + " H=" + std::to_string(c.H) +
           " L=" + std::to_string(c.L) + (c.lengths.empty() ? "" : " padded") +
           (c.residual ? " residual" : "") + (c.dropout > 0 ? " dropout" : "") +
           (c.zero_state ? " zero-state" : "") + (training ? "" : " inference");
  return p;
}

struct Outputs {
  Vec y, hT, cT;
};

double sigmoid(double a) { return 1 / (1 + std::exp(-a)); }

// One step at a time, one row at a time, with every sum written out.
Outputs reference(const Problem& p) {
  const StackShape& s = p.s;
  const int T = s.T, B = s.B, H = s.H, G = rnnkit::gate_count(s.cell);
  Outputs o{Vec(), Vec(size_t(s.L) * B * H), Vec(p.lstm() ? size_t(s.L) * B * H : 0)};
  Vec in = p.x;
  int I = s.I;
  for (int l = 0; l < s.L; ++l) {
    const double* w_ih = p.params.data() + rnnkit::stack_layer_offset(s.cell, s.I, H, l);
    const double* w_hh = w_ih + G * H * I;
    const double* b_ih = w_hh + G * H * H;
    const double* b_hh = b_ih + G * H;
    Vec h(p.h0.begin() + l * B * H, p.h0.begin() + (l + 1) * B * H);
    Vec c = p.lstm() ? Vec(p.c0.begin() + l * B * H, p.c0.begin() + (l + 1) * B * H) : Vec(B * H);
    Vec out(size_t(T) * B * H, 0.0);
    for (int t = 0; t < T; ++t) {
      for (int b = 0; b < B; ++b) {
        if (t >= p.length(b)) continue;  // state kept, output zero
        Vec gi(G * H), gh(G * H);
        for (int k = 0; k < G * H; ++k) {
          gi[k] = b_ih[k];
          for (int i = 0; i < I; ++i) gi[k] += w_ih[k * I + i] * in[(t * B + b) * I + i];
          gh[k] = b_hh[k];
          for (int j = 0; j < H; ++j) gh[k] += w_hh[k * H + j] * h[b * H + j];
        }
        for (int j = 0; j < H; ++j) {
          double hn = 0;
          switch (s.cell) {
            case CellType::RnnTanh:
              hn = std::tanh(gi[j] + gh[j]);
              break;
            case CellType::RnnRelu:
              hn = std::max(0.0, gi[j] + gh[j]);
              break;
            case CellType::Lstm: {
              double i = sigmoid(gi[j] + gh[j]), f = sigmoid(gi[H + j] + gh[H + j]);
              double g = std::tanh(gi[2 * H + j] + gh[2 * H + j]);
              double og = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
              c[b * H + j] = f * c[b * H + j] + i * g;
              hn = og * std::tanh(c[b * H + j]);
              break;
            }
            case CellType::Gru: {
              double r = sigmoid(gi[j] + gh[j]), z = sigmoid(gi[H + j] + gh[H + j]);
              double n = std::tanh(gi[2 * H + j] + r * gh[2 * H + j]);
              hn = (1 - z) * n + z * h[b * H + j];
              break;
            }
          }
          out[(t * B + b) * H + j] = hn;
        }
        for (int j = 0; j < H; ++j) h[b * H + j] = out[(t * B + b) * H + j];
      }
    }
    if (s.residual && l > 0)
      for (size_t e = 0; e < out.size(); ++e) out[e] += in[e];
    if (s.training && l < s.L - 1 && s.dropout > 0) {
      const rnnkit::cells::Dropout drop(s.seed, l, s.dropout);
      for (size_t e = 0; e < out.size(); ++e)
        out[e] *= drop.factor(e) != 0 ? 1 / (1 - double(s.dropout)) : 0.0;
    }
    std::copy(h.begin(), h.end(), o.hT.begin() + l * B * H);
    if (p.lstm()) std::copy(c.begin(), c.end(), o.cT.begin() + l * B * H);
    in = out;
    I = H;
  }
  o.y = in;
  return o;
}

double dot(const Vec& a, const Vec& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

double loss_of(const Problem& p, const Outputs& o) {
  return dot(p.dy, o.y) + dot(p.dhT, o.hT) + dot(p.dcT, o.cT);
}

FVec to_float(const Vec& v) { return FVec(v.begin(), v.end()); }
Vec to_double(const FVec& v) { return Vec(v.begin(), v.end()); }

void expect_close(const Vec& a, const Vec& b, double rtol, double atol, const std::string& what) {
  if (a.size() != b.size())
    check::fail(what + ": sizes " + std::to_string(a.size()) + " vs " + std::to_string(b.size()));
  else
    check::close(a.data(), b.data(), a.size(), rtol, atol, what);
}

struct Grads {
  Vec params, x, h0, c0;
};

// The kernel on float32 copies of a problem's inputs. The workspace starts as NaN, so reading
// anything forward did not write shows in the results, and a NaN guard follows its end.
struct Kernel {
  static constexpr size_t kGuard = 64;
  const Problem& p;
  FVec params, x, h0, c0, y, hT, cT;
  size_t ws_size;
  FVec ws;

  explicit Kernel(const Problem& pr)
      : p(pr),
        params(to_float(pr.params)),
        x(to_float(pr.x)),
        h0(to_float(pr.h0)),
        c0(to_float(pr.c0)),
        y(size_t(pr.s.T) * pr.s.B * pr.s.H),
        hT(pr.h0.size()),
        cT(pr.c0.size()),
        ws_size(rnnkit::stack_workspace_size(pr.s)),
        ws(ws_size + kGuard, kNaN) {}

  float* opt(FVec& v) const { return v.empty() ? nullptr : v.data(); }
  const float* initial(const FVec& v) const {
    return p.zero_state || v.empty() ? nullptr : v.data();
  }

  void check_guard(const char* after) {
    for (size_t i = ws_size; i < ws.size(); ++i)
      if (!std::isnan(ws[i])) {
        check::fail(p.name + ": " + after + " wrote past the workspace");
        return;
      }
  }

  void forward() {
    rnnkit::stack_forward(p.s, params.data(), x.data(), p.len(), initial(h0), initial(c0), y.data(),
                          hT.data(), opt(cT), ws.data());
    check_guard("forward");
  }

  Outputs outputs() const { return {to_double(y), to_double(hT), to_double(cT)}; }

  // The loss's gradients by backward, after forward. dparams starts nonzero: backward adds to it.
  Grads backward(bool inputs = true) {
    FVec dy = to_float(p.dy), dhT = to_float(p.dhT), dcT = to_float(p.dcT);
    FVec dx(x.size(), kNaN), dh0(h0.size(), kNaN), dc0(c0.size(), kNaN);
    FVec start(params.size());
    check::fill_uniform(start, 4242);
    FVec dparams = start;
    rnnkit::stack_backward(p.s, params.data(), x.data(), p.len(), initial(h0), initial(c0),
                           ws.data(), dy.data(), dhT.data(), opt(dcT), inputs ? dx.data() : nullptr,
                           inputs ? dh0.data() : nullptr, inputs ? opt(dc0) : nullptr,
                           dparams.data());
    check_guard("backward");
    Grads g{Vec(params.size()), to_double(dx), to_double(dh0), to_double(dc0)};
    for (size_t i = 0; i < params.size(); ++i) g.params[i] = double(dparams[i]) - start[i];
    return g;
  }
};

std::vector<Config> forward_configs() {
  return {
      {1, 1, 1, 1, 1, {}, false, 0, false},
      {4, 2, 3, 5, 1, {}, false, 0, true},
      {5, 3, 4, 6, 3, {5, 2, 4}, true, 0.3f, false},
      {7, 5, 19, 37, 2, {7, 3, 1, 6, 7}, true, 0.3f, false},
      {3, 9, 16, 64, 2, {}, false, 0.5f, false},
  };
}

std::vector<Config> gradient_configs() {
  return {
      {4, 2, 3, 5, 1, {}, false, 0, false},           // nothing a multiple of 8
      {1, 1, 1, 1, 1, {}, false, 0, false},           // one of everything
      {3, 1, 2, 1, 2, {}, false, 0, false},           // H = 1, two layers
      {5, 3, 4, 6, 3, {5, 2, 4}, true, 0.3f, false},  // padded, residual, dropout
      {4, 3, 3, 5, 2, {4, 1, 2}, false, 0.3f, true},  // padded, dropout, zero initial state
      {6, 2, 7, 9, 2, {}, true, 0, false},            // H past one vector
  };
}

TEST(activations_are_accurate) {
  using namespace rnnkit::cells;
  double exp_err = 0, sigmoid_err = 0, tanh_err = 0;
  for (double v = -90; v <= 90; v += 1.0 / 1024) {
    const float f = float(v);
    const double e = std::exp(double(f)), s = 1 / (1 + std::exp(-double(f)));
    const double t = std::tanh(double(f));
    if (f > -87 && f < 88) exp_err = std::max(exp_err, std::fabs(exp_approx(f) - e) / e);
    if (s > 1e-30) sigmoid_err = std::max(sigmoid_err, std::fabs(sigmoid(f) - s) / s);
    if (t != 0) tanh_err = std::max(tanh_err, std::fabs(tanh_approx(f) - t) / std::fabs(t));
  }
  for (float f = 1e-30f; f < 1; f *= 1.01f)
    tanh_err = std::max(tanh_err, std::fabs(tanh_approx(f) - std::tanh(double(f))) / f);
  // A few float32 ulps (one ulp is 6e-8 relative).
  CHECK(exp_err < 3e-7);
  CHECK(sigmoid_err < 3e-7);
  CHECK(tanh_err < 3e-7);
  CHECK(tanh_approx(100.0f) == 1.0f && tanh_approx(-100.0f) == -1.0f);
  CHECK(sigmoid(-200.0f) >= 0.0f && sigmoid(-200.0f) < 1e-30f && sigmoid(200.0f) == 1.0f);
}

TEST(parameter_layout) {
  for (CellType cell : kCells) {
    const int G = rnnkit::gate_count(cell), I = 7, H = 5, L = 3;
    const size_t layer0 = size_t(G) * H * (I + H + 2), layer = size_t(G) * H * (H + H + 2);
    CHECK(rnnkit::stack_layer_offset(cell, I, H, 0) == 0);
    CHECK(rnnkit::stack_layer_offset(cell, I, H, 1) == layer0);
    CHECK(rnnkit::stack_layer_offset(cell, I, H, 2) == layer0 + layer);
    CHECK(rnnkit::stack_param_count(cell, I, H, L) == layer0 + 2 * layer);
  }
}

void check_forward(CellType cell, const Config& c, bool training) {
  const Problem p = make_problem(cell, c, training);
  Kernel k(p);
  k.forward();
  const Outputs r = reference(p), o = k.outputs();
  expect_close(o.y, r.y, 1e-5, 2e-6, p.name + ": y");
  expect_close(o.hT, r.hT, 1e-5, 2e-6, p.name + ": hT");
  expect_close(o.cT, r.cT, 1e-5, 2e-6, p.name + ": cT");
}

TEST(forward_matches_reference) {
  for (CellType cell : kCells)
    for (const Config& c : forward_configs())
      for (bool training : {true, false}) check_forward(cell, c, training);
}

void check_gradients(CellType cell, const Config& c) {
  const Problem p = make_problem(cell, c);
  Kernel k(p);
  k.forward();
  const Grads g = k.backward();

  // Central differences of the float64 reference are exact to ~1e-9, so the kernel's float32
  // rounding alone sets the tolerance.
  Problem q = p;
  auto ref_loss = [&q] { return loss_of(q, reference(q)); };
  auto ref_grad = [&](Vec& v) {
    return check::numeric_gradient<double>(ref_loss, v.data(), v.size(), 1e-6);
  };
  const double rtol = 1e-4, atol = 2e-5;
  expect_close(g.params, ref_grad(q.params), rtol, atol, p.name + ": dparams vs float64 FD");
  expect_close(g.x, ref_grad(q.x), rtol, atol, p.name + ": dx vs float64 FD");
  expect_close(g.h0, ref_grad(q.h0), rtol, atol, p.name + ": dh0 vs float64 FD");
  expect_close(g.c0, ref_grad(q.c0), rtol, atol, p.name + ": dc0 vs float64 FD");

  // Leaving out dx, dh0 and dc0 changes nothing else.
  Kernel lean(p);
  lean.forward();
  expect_close(lean.backward(false).params, g.params, 0, 0, p.name + ": dparams without dx/dh0");

  // Central differences of the kernel itself in float32: rounding makes them rough, but they do
  // not depend on the reference being right. Not for relu: steps large enough to rise above
  // float32 rounding cross its kink somewhere in a stack (the float64 check covers relu).
  if (cell == CellType::RnnRelu) return;
  Kernel kk(p);
  auto kernel_loss = [&kk] {
    kk.forward();
    return loss_of(kk.p, kk.outputs());
  };
  auto kernel_grad = [&](FVec& v) {
    return check::numeric_gradient<float>(kernel_loss, v.data(), v.size(), 1e-2);
  };
  const double rtol32 = 1e-2, atol32 = 2e-3;
  expect_close(g.params, kernel_grad(kk.params), rtol32, atol32,
               p.name + ": dparams vs float32 FD");
  expect_close(g.x, kernel_grad(kk.x), rtol32, atol32, p.name + ": dx vs float32 FD");
  if (!p.zero_state) {
    expect_close(g.h0, kernel_grad(kk.h0), rtol32, atol32, p.name + ": dh0 vs float32 FD");
    if (p.lstm())
      expect_close(g.c0, kernel_grad(kk.c0), rtol32, atol32, p.name + ": dc0 vs float32 FD");
  }
}

TEST(gradients_match_finite_differences) {
  for (CellType cell : kCells)
    for (const Config& c : gradient_configs()) check_gradients(cell, c);
}

// With helper threads the step loops run the batch rows in groups, one per thread: the outputs
// and every gradient still match the references, padded rows, residual and dropout included.
TEST(row_groups_match_reference) {
  const int before = rnnkit::gemm_threads();
  rnnkit::set_gemm_threads(3);
  std::vector<int32_t> lengths(40);
  for (int b = 0; b < 40; ++b) lengths[b] = 1 + (b * 7) % 6;
  for (CellType cell : kCells) {
    check_forward(cell, {6, 40, 5, 11, 2, lengths, true, 0.3f, false}, true);
    check_gradients(
        cell, {6, 17, 3, 4, 2, std::vector<int32_t>(lengths.begin(), lengths.begin() + 17), true,
               0.3f, false});
  }
  rnnkit::set_gemm_threads(before);
}

// Row b of a padded batch, alone: its own length, no padding.
Problem row_alone(const Problem& p, int b) {
  const StackShape& s = p.s;
  const int T = p.length(b), B = s.B, H = s.H, I = s.I;
  Problem r = p;
  r.s.T = T;
  r.s.B = 1;
  r.lengths.clear();
  auto rows = [&](const Vec& v, int n, int width) {
    Vec out;
    for (int i = 0; i < n; ++i)
      out.insert(out.end(), v.begin() + (size_t(i) * B + b) * width,
                 v.begin() + (size_t(i) * B + b + 1) * width);
    return out;
  };
  r.x = rows(p.x, T, I);
  r.dy = rows(p.dy, T, H);
  r.h0 = rows(p.h0, s.L, H);
  r.dhT = rows(p.dhT, s.L, H);
  if (p.lstm()) {
    r.c0 = rows(p.c0, s.L, H);
    r.dcT = rows(p.dcT, s.L, H);
  }
  return r;
}

// Compares row b of a [N, B, width] tensor of the batch with the [N', 1, width] one of the row
// alone; steps the row does not reach must be zero.
void expect_row(const Vec& batch, const Vec& alone, int B, int b, int width,
                const std::string& what) {
  const size_t n = batch.size() / (size_t(B) * width), n_alone = alone.size() / width;
  Vec got, want;
  for (size_t i = 0; i < n; ++i)
    for (int j = 0; j < width; ++j) {
      got.push_back(batch[(i * B + b) * width + j]);
      want.push_back(i < n_alone ? alone[i * width + j] : 0.0);
    }
  expect_close(got, want, 1e-5, 1e-6, what);
}

TEST(padded_batch_equals_rows_alone) {
  for (CellType cell : kCells) {
    const int T = 5;
    const Problem p = make_problem(cell, {T, 3, 4, 6, 2, {T, 1, T - 2}, true, 0, false});
    Kernel k(p);
    k.forward();
    const Outputs o = k.outputs();
    const Grads g = k.backward();
    Vec dparams_sum(p.params.size());
    for (int b = 0; b < p.s.B; ++b) {
      const Problem r = row_alone(p, b);
      Kernel kr(r);
      kr.forward();
      const Outputs ro = kr.outputs();
      const Grads rg = kr.backward();
      const std::string row = p.name + " row " + std::to_string(b);
      expect_row(o.y, ro.y, p.s.B, b, p.s.H, row + ": y");
      expect_row(o.hT, ro.hT, p.s.B, b, p.s.H, row + ": hT");
      expect_row(o.cT, ro.cT, p.s.B, b, p.s.H, row + ": cT");
      expect_row(g.x, rg.x, p.s.B, b, p.s.I, row + ": dx");
      expect_row(g.h0, rg.h0, p.s.B, b, p.s.H, row + ": dh0");
      expect_row(g.c0, rg.c0, p.s.B, b, p.s.H, row + ": dc0");
      for (size_t i = 0; i < dparams_sum.size(); ++i) dparams_sum[i] += rg.params[i];
    }
    expect_close(g.params, dparams_sum, 1e-4, 1e-5, p.name + ": dparams = sum over rows alone");
  }
}

// Generation feeds one step at a time, passing the same buffers as the initial and final state.
TEST(steps_one_at_a_time_equal_one_call) {
  for (CellType cell : kCells) {
    const int T = 5, B = 3, H = 8, L = 2;
    const Problem p = make_problem(cell, {T, B, 6, H, L, {}, true, 0.2f, false}, false);
    Kernel whole(p);
    whole.forward();

    Problem step = p;
    step.s.T = 1;
    FVec params = to_float(p.params), h = to_float(p.h0), c = to_float(p.c0);
    FVec y(size_t(B) * H), ws(rnnkit::stack_workspace_size(step.s));
    Vec ys;
    for (int t = 0; t < T; ++t) {
      rnnkit::stack_forward(step.s, params.data(), whole.x.data() + size_t(t) * B * p.s.I, nullptr,
                            h.data(), c.empty() ? nullptr : c.data(), y.data(), h.data(),
                            c.empty() ? nullptr : c.data(), ws.data());
      ys.insert(ys.end(), y.begin(), y.end());
    }
    expect_close(ys, to_double(whole.y), 1e-6, 1e-7, p.name + ": y step by step");
    expect_close(to_double(h), to_double(whole.hT), 1e-6, 1e-7, p.name + ": hT step by step");
    expect_close(to_double(c), to_double(whole.cT), 1e-6, 1e-7, p.name + ": cT step by step");
  }
}

// PackedStack's steps against the float64 reference over a few steps, fed the embedding rows of
// random tokens: with a vocabulary small enough to fold the embedding into layer 0 and one too
// large, on sizes where [x, h] spans several of the packed GEMM's K blocks (I + H = 333 and 600)
// and the gate columns end mid-sliver; and a batch against its rows stepped alone, which must
// agree to the bit.
TEST(packed_steps_match_reference) {
  const Config configs[] = {
      {3, 1, 1, 1, 1, {}, false, 0, true},
      {3, 3, 5, 7, 3, {}, true, 0, false},
      {2, 2, 19, 37, 2, {}, false, 0, false},
      {2, 13, 33, 300, 2, {}, true, 0, false},
  };
  for (CellType cell : kCells)
    for (const Config& c : configs)
      for (bool folded : {true, false}) {
        Problem p = make_problem(cell, c, false, 5);
        const StackShape& s = p.s;
        const int V = folded ? 2 * s.I : 2 * s.I + 1;
        p.name += folded ? " V=2I" : " V=2I+1";
        const Vec embedding = uniform(size_t(V) * s.I, 77, -1, 1);
        std::vector<int32_t> tokens(size_t(s.T) * s.B);
        for (size_t i = 0; i < tokens.size(); ++i) {
          tokens[i] = int32_t(rnnkit::uniform01(78, i) * V);
          std::copy_n(embedding.begin() + size_t(tokens[i]) * s.I, s.I, p.x.begin() + i * s.I);
        }
        const Outputs r = reference(p);
        const FVec params = to_float(p.params), emb = to_float(embedding);
        const rnnkit::PackedStack stack(cell, V, s.I, s.H, s.L, s.residual, emb.data(),
                                        params.data());
        // Rows [b0, b0 + B) of the problem stepped T times, in a batch of their own.
        auto run = [&](int b0, int B, FVec& y) {
          const size_t ws_size = stack.workspace_size(B);
          FVec h(size_t(s.L) * B * s.H), cs(p.lstm() ? h.size() : 0), ws(ws_size + 64, kNaN);
          for (int l = 0; l < s.L; ++l)
            for (int b = 0; b < B; ++b)
              for (int j = 0; j < s.H; ++j) {
                const size_t at = (size_t(l) * B + b) * s.H + j,
                             from = (size_t(l) * s.B + b0 + b) * s.H + j;
                h[at] = float(p.h0[from]);
                if (p.lstm()) cs[at] = float(p.c0[from]);
              }
          FVec yt(size_t(B) * s.H);
          for (int t = 0; t < s.T; ++t) {
            stack.step(B, tokens.data() + size_t(t) * s.B + b0, h.data(),
                       cs.empty() ? nullptr : cs.data(), size_t(B) * s.H, yt.data(), ws.data());
            y.insert(y.end(), yt.begin(), yt.end());
          }
          for (size_t i = ws_size; i < ws.size(); ++i)
            if (!std::isnan(ws[i])) {
              check::fail(p.name + ": packed step wrote past its workspace");
              break;
            }
          return std::make_pair(h, cs);
        };
        FVec y;
        const auto [h, cs] = run(0, s.B, y);
        expect_close(to_double(y), r.y, 1e-5, 2e-6, p.name + ": packed y");
        expect_close(to_double(h), r.hT, 1e-5, 2e-6, p.name + ": packed hT");
        expect_close(to_double(cs), r.cT, 1e-5, 2e-6, p.name + ": packed cT");
        for (int b = 0; b < s.B; ++b) {
          FVec yb;
          run(b, 1, yb);
          for (int t = 0; t < s.T; ++t)
            if (!std::equal(yb.begin() + size_t(t) * s.H, yb.begin() + size_t(t + 1) * s.H,
                            y.begin() + (size_t(t) * s.B + b) * s.H)) {
              check::fail(p.name + ": row " + std::to_string(b) + " alone differs from the batch");
              break;
            }
        }
      }
}

TEST(inference_workspace_is_scratch_only) {
  for (CellType cell : kCells) {
    StackShape s{cell, 100, 64, 512, 512, 3, 0.1f, true, true, 1};
    const size_t training = rnnkit::stack_workspace_size(s);
    s.training = false;
    const size_t inference = rnnkit::stack_workspace_size(s);
    // Inference: the input projection of one layer [T*B, G*H], one buffer between layers
    // [T*B, H] and a little per-step scratch.
    CHECK(inference <= size_t(100) * 64 * 512 * 5 + 1024 * 1024);
    CHECK(inference * 2 < training);
  }
}

template <typename F>
void expect_invalid(const char* what, F&& f) {
  try {
    f();
  } catch (const std::invalid_argument&) {
    return;
  }
  check::fail(std::string("no std::invalid_argument for ") + what);
}

TEST(impossible_arguments_throw) {
  const StackShape good{CellType::Lstm, 3, 2, 4, 5, 2, 0.2f, false, true, 7};
  const size_t nws = rnnkit::stack_workspace_size(good);
  FVec params(rnnkit::stack_param_count(good.cell, good.I, good.H, good.L)), x(3 * 2 * 4),
      y(3 * 2 * 5), state(2 * 2 * 5), ws(nws), dparams(params.size());
  auto forward = [&](const StackShape& s, const int32_t* lengths) {
    rnnkit::stack_forward(s, params.data(), x.data(), lengths, nullptr, nullptr, y.data(),
                          state.data(), state.data(), ws.data());
  };
  auto with = [&](auto change) {
    StackShape s = good;
    change(s);
    return s;
  };
  expect_invalid("T = 0", [&] { rnnkit::stack_workspace_size(with([](auto& s) { s.T = 0; })); });
  expect_invalid("B = -1", [&] { forward(with([](auto& s) { s.B = -1; }), nullptr); });
  expect_invalid("I = 0", [&] { forward(with([](auto& s) { s.I = 0; }), nullptr); });
  expect_invalid("H = 0", [&] { rnnkit::stack_workspace_size(with([](auto& s) { s.H = 0; })); });
  expect_invalid("T*B past int", [&] {
    rnnkit::stack_workspace_size(with([](auto& s) { s.T = 1 << 30, s.B = 4; }));
  });
  expect_invalid("L = 0", [&] { rnnkit::stack_param_count(CellType::Gru, 3, 4, 0); });
  expect_invalid("dropout = 1", [&] { forward(with([](auto& s) { s.dropout = 1; }), nullptr); });
  expect_invalid("dropout < 0",
                 [&] { forward(with([](auto& s) { s.dropout = -0.1f; }), nullptr); });
  expect_invalid("dropout NaN", [&] { forward(with([](auto& s) { s.dropout = kNaN; }), nullptr); });
  expect_invalid("unknown cell",
                 [&] { forward(with([](auto& s) { s.cell = CellType(9); }), nullptr); });
  const int32_t zero[] = {3, 0}, past[] = {4, 1}, negative[] = {-1, 2};
  expect_invalid("lengths 0", [&] { forward(good, zero); });
  expect_invalid("lengths > T", [&] { forward(good, past); });
  expect_invalid("lengths < 0", [&] { forward(good, negative); });
  expect_invalid("null cT", [&] {
    rnnkit::stack_forward(good, params.data(), x.data(), nullptr, nullptr, nullptr, y.data(),
                          state.data(), nullptr, ws.data());
  });
  expect_invalid("backward after inference", [&] {
    rnnkit::stack_backward(with([](auto& s) { s.training = false; }), params.data(), x.data(),
                           nullptr, nullptr, nullptr, ws.data(), y.data(), nullptr, nullptr,
                           nullptr, nullptr, nullptr, dparams.data());
  });
}

}  // namespace

TEST_MAIN()
