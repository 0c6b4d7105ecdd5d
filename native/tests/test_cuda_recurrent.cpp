// CUDA recurrent stacks against the CPU kernel on the same inputs (forward in training and
// inference, backward with every optional output), including padded batches, residual stacks and
// dropout (whose masks must be the CPU's to match at all); the CUDA backward against central
// differences of the CUDA forward; and step-by-step inference with one buffer as h0 and hT, the
// way generation calls it, against one whole-sequence call.
#include <cmath>
#include <string>
#include <vector>

#include "cuda_test.h"
#include "recurrent.h"

namespace {

using cudatest::Buf;
using rnnkit::CellType;
using rnnkit::StackShape;
using FVec = std::vector<float>;
namespace gpu = rnnkit::cuda;

const CellType kCells[] = {CellType::RnnTanh, CellType::RnnRelu, CellType::Lstm, CellType::Gru};
const char* const kCellNames[] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};

struct Config {
  int T, B, I, H, L;
  std::vector<int32_t> lengths;  // empty: all T steps
  bool residual;
  float dropout;
  bool zero_state;
};

struct Problem {
  StackShape s;
  std::vector<int32_t> lengths;
  bool zero_state;
  FVec params, x, h0, c0, dy, dhT, dcT;
  std::string name;
  bool lstm() const { return s.cell == CellType::Lstm; }
};

FVec uniform(size_t n, uint64_t seed, double lo, double hi) {
  FVec v(n);
  check::fill_uniform(v, seed, lo, hi);
  return v;
}

Problem make_problem(CellType cell, const Config& c, bool training) {
  Problem p;
  p.s = {cell, c.T, c.B, c.I, c.H, c.L, c.dropout, c.residual, training, 4321};
  p.lengths = c.lengths;
  p.zero_state = c.zero_state;
  const size_t state = size_t(c.L) * c.B * c.H, out = size_t(c.T) * c.B * c.H;
  const double w = 1.0 / std::sqrt(double(c.H));
  p.params = uniform(rnnkit::stack_param_count(cell, c.I, c.H, c.L), 1, -w, w);
  p.x = uniform(size_t(c.T) * c.B * c.I, 2, -1, 1);
  p.h0 = uniform(state, 3, -0.8, 0.8);
  if (p.lstm()) p.c0 = uniform(state, 4, -1, 1);
  p.dy = uniform(out, 5, -1, 1);
  p.dhT = uniform(state, 6, -1, 1);
  if (p.lstm()) p.dcT = uniform(state, 7, -1, 1);
  p.name = std::string(kCellNames[int(cell)]) + " T=" + std::to_string(c.T) +
           " B=" + std::to_string(c.B) + " I=" + std::to_string(c.I) + " H=" + std::to_string(c.H) +
           " L=" + std::to_string(c.L) + (c.lengths.empty() ? "" : " padded") +
           (c.residual ? " residual" : "") + (c.dropout > 0 ? " dropout" : "") +
           (c.zero_state ? " zero-state" : "") + (training ? "" : " inference");
  return p;
}

struct Result {
  FVec y, hT, cT, dx, dh0, dc0, dparams;
};

// dparams starts nonzero on both sides: backward adds into it.
FVec initial_dparams(const Problem& p) { return uniform(p.params.size(), 8, -1, 1); }

Result run_cpu(const Problem& p) {
  const StackShape& s = p.s;
  Result r;
  r.y.resize(p.dy.size());
  r.hT.resize(p.h0.size());
  r.cT.resize(p.c0.size());
  FVec ws(rnnkit::stack_workspace_size(s));
  const int32_t* len = p.lengths.empty() ? nullptr : p.lengths.data();
  const float* h0 = p.zero_state ? nullptr : p.h0.data();
  const float* c0 = p.zero_state || !p.lstm() ? nullptr : p.c0.data();
  rnnkit::stack_forward(s, p.params.data(), p.x.data(), len, h0, c0, r.y.data(), r.hT.data(),
                        p.lstm() ? r.cT.data() : nullptr, ws.data());
  if (!s.training) return r;
  r.dx.resize(p.x.size());
  r.dh0.resize(p.h0.size());
  r.dc0.resize(p.c0.size());
  r.dparams = initial_dparams(p);
  rnnkit::stack_backward(s, p.params.data(), p.x.data(), len, h0, c0, ws.data(), p.dy.data(),
                         p.dhT.data(), p.lstm() ? p.dcT.data() : nullptr, r.dx.data(), r.dh0.data(),
                         p.lstm() ? r.dc0.data() : nullptr, r.dparams.data());
  return r;
}

// The device side of one problem: inputs uploaded once, forward and backward callable again.
struct Device {
  const Problem& p;
  Buf<float> params, x, h0, c0, y, hT, cT, ws;
  Buf<int32_t> lengths;

  explicit Device(const Problem& pr)
      : p(pr),
        params(pr.params),
        x(pr.x),
        h0(pr.h0),
        c0(pr.c0),
        y(cudatest::nan_buffer(pr.dy.size())),
        hT(cudatest::nan_buffer(pr.h0.size())),
        cT(cudatest::nan_buffer(pr.c0.size())),
        ws(cudatest::nan_buffer(gpu::stack_workspace_size(pr.s))),
        lengths(pr.lengths) {}

  const float* initial(const Buf<float>& b) const {
    return p.zero_state ? nullptr : cudatest::ptr_or_null(b);
  }

  void forward() {
    gpu::stack_forward(p.s, params.get(), x.get(), cudatest::ptr_or_null(lengths), initial(h0),
                       initial(c0), y.get(), hT.get(), cudatest::ptr_or_null(cT), ws.get());
  }

  double loss() {
    forward();
    const FVec yv = y.download(), hv = hT.download(), cv = cT.download();
    double sum = 0;
    for (size_t i = 0; i < yv.size(); ++i) sum += double(p.dy[i]) * yv[i];
    for (size_t i = 0; i < hv.size(); ++i) sum += double(p.dhT[i]) * hv[i];
    for (size_t i = 0; i < cv.size(); ++i) sum += double(p.dcT[i]) * cv[i];
    return sum;
  }

  Result run() {
    forward();
    Result r;
    r.y = y.download();
    r.hT = hT.download();
    r.cT = cT.download();
    if (!p.s.training) return r;
    Buf<float> dy(p.dy), dhT(p.dhT), dcT(p.dcT), dparams(initial_dparams(p));
    Buf<float> dx = cudatest::nan_buffer(p.x.size()), dh0 = cudatest::nan_buffer(p.h0.size()),
               dc0 = cudatest::nan_buffer(p.c0.size());
    gpu::stack_backward(p.s, params.get(), x.get(), cudatest::ptr_or_null(lengths), initial(h0),
                        initial(c0), ws.get(), dy.get(), dhT.get(), cudatest::ptr_or_null(dcT),
                        dx.get(), dh0.get(), cudatest::ptr_or_null(dc0), dparams.get());
    r.dx = dx.download();
    r.dh0 = dh0.download();
    r.dc0 = dc0.download();
    r.dparams = dparams.download();
    return r;
  }
};

std::vector<Config> configs() {
  return {
      {1, 1, 1, 1, 1, {}, false, 0, false},
      {4, 2, 3, 5, 1, {}, false, 0, true},
      {5, 3, 4, 6, 3, {5, 2, 4}, true, 0.3f, false},
      {7, 5, 19, 37, 2, {7, 3, 1, 6, 7}, true, 0.3f, false},
      {3, 9, 16, 64, 2, {}, false, 0.5f, false},
      {20, 16, 32, 128, 2, {}, false, 0.2f, false},
  };
}

TEST(forward_and_backward_match_cpu) {
  for (CellType cell : kCells)
    for (const Config& c : configs())
      for (bool training : {true, false}) {
        const Problem p = make_problem(cell, c, training);
        const Result want = run_cpu(p);
        Device d(p);
        const Result got = d.run();
        cudatest::expect_close(got.y, want.y, p.name + ": y");
        cudatest::expect_close(got.hT, want.hT, p.name + ": hT");
        cudatest::expect_close(got.cT, want.cT, p.name + ": cT");
        if (!training) continue;
        cudatest::expect_close(got.dx, want.dx, p.name + ": dx");
        cudatest::expect_close(got.dh0, want.dh0, p.name + ": dh0");
        cudatest::expect_close(got.dc0, want.dc0, p.name + ": dc0");
        cudatest::expect_close(got.dparams, want.dparams, p.name + ": dparams");
      }
}

// Central differences of the device forward in float32 are rough, hence recurrent.cpp's float32
// tolerances; relu is left out because steps above float32 rounding cross its kink.
TEST(backward_matches_finite_differences) {
  const std::vector<Config> small = {
      {4, 2, 3, 5, 1, {}, false, 0, false},
      {5, 3, 4, 6, 3, {5, 2, 4}, true, 0.3f, false},
      {4, 3, 3, 5, 2, {4, 1, 2}, false, 0.3f, true},
  };
  for (CellType cell : {CellType::RnnTanh, CellType::Lstm, CellType::Gru})
    for (const Config& c : small) {
      Problem p = make_problem(cell, c, true);
      const Result g = Device(p).run();
      FVec fd_params(p.params.size()), fd_x(p.x.size()), fd_h0(p.h0.size());
      auto numeric = [&](FVec& v, FVec& out) {
        for (size_t i = 0; i < v.size(); ++i) {
          const float saved = v[i];
          v[i] = saved + 1e-2f;
          const double up = Device(p).loss();
          v[i] = saved - 1e-2f;
          const double down = Device(p).loss();
          v[i] = saved;
          out[i] = float((up - down) / 2e-2);
        }
      };
      numeric(p.params, fd_params);
      numeric(p.x, fd_x);
      FVec dparams = g.dparams, start = initial_dparams(p);
      for (size_t i = 0; i < dparams.size(); ++i) dparams[i] -= start[i];
      cudatest::expect_close(dparams, fd_params, p.name + ": dparams vs FD", 1e-2, 2e-3);
      cudatest::expect_close(g.dx, fd_x, p.name + ": dx vs FD", 1e-2, 2e-3);
      if (!p.zero_state) {
        numeric(p.h0, fd_h0);
        cudatest::expect_close(g.dh0, fd_h0, p.name + ": dh0 vs FD", 1e-2, 2e-3);
      }
    }
}

TEST(step_by_step_inference_matches_one_call) {
  for (CellType cell : kCells) {
    const Problem p = make_problem(cell, {6, 4, 5, 8, 2, {}, true, 0, false}, false);
    Device whole(p);
    whole.forward();
    const FVec want_y = whole.y.download(), want_h = whole.hT.download();
    StackShape step = p.s;
    step.T = 1;
    const size_t BI = size_t(p.s.B) * p.s.I, BH = size_t(p.s.B) * p.s.H;
    Buf<float> h(p.h0), c(p.c0), y(BH), ws(gpu::stack_workspace_size(step)), x(p.x);
    Buf<float> params(p.params);
    FVec got_y;
    for (int t = 0; t < p.s.T; ++t) {
      // One buffer as h0 and hT (and c0 and cT), the way a generation loop carries its state.
      gpu::stack_forward(step, params.get(), x.get() + t * BI, nullptr, h.get(),
                         cudatest::ptr_or_null(c), y.get(), h.get(), cudatest::ptr_or_null(c),
                         ws.get());
      const FVec yt = y.download();
      got_y.insert(got_y.end(), yt.begin(), yt.end());
    }
    const std::string name = p.name + " step by step";
    cudatest::expect_close(got_y, want_y, name + ": y");
    cudatest::expect_close(h.download(), want_h, name + ": hT");
  }
}

TEST(bad_shapes_throw) {
  StackShape s{CellType::Lstm, 0, 1, 1, 1, 1, 0, false, true, 0};
  bool threw = false;
  try {
    gpu::stack_workspace_size(s);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

}  // namespace

CUDA_TEST_MAIN()
