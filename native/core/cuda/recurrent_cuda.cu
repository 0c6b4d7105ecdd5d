// Recurrent stacks on the device, step for step the algorithm of recurrent.cpp: per layer one GEMM
// for the input projection of all steps, then per step one GEMM for the recurrent projection and
// one fused kernel over all batch rows and units that applies the gates and writes what backward
// needs. Backward walks the steps in reverse with one fused kernel and one GEMM per step and
// leaves the weight gradients to a few GEMMs over all steps. Everything stays on the device: the
// host only queues launches, it never waits inside the time loop.
#include <stdexcept>
#include <string>

#include "common.cuh"
#include "recurrent_cells.h"

namespace rnnkit {
namespace cuda {
namespace {

using cells::Dropout;

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// The inter-layer dropout factor of cells::Dropout::factor, on the device: the same uniform01 of
// the same (seed, index), so CPU and GPU keep the same elements.
__device__ inline float dropout_factor(const Dropout& d, uint64_t index) {
  return uniform01(d.seed, index) >= d.p ? d.scale : 0.0f;
}

// Gate k's bias as recurrent.cpp sums it: b_ih + b_hh over the first kSummedBias gates, b_ih
// alone beyond (GRU's b_hn sits inside r * (W_hn h + b_hn)).
struct Bias {
  const float *ih, *hh;
  int summed;  // kSummedBias * H
  __device__ float operator()(int k) const { return ih[k] + (k < summed ? hh[k] : 0.0f); }
};

// A run of gate columns of the stored gate buffer and the rows of w_ih (and b_ih) it belongs to.
struct Segment {
  int col, row, n;
};

// The cells of recurrent.cpp, one unit j of one batch row per call, with the same stored values
// and the same gradient layout (see recurrent.cpp for what each buffer holds).
template <int G>
struct SharedGradient {
  static constexpr int kGates = G;
  static constexpr int kStored = G;
  static constexpr int kSummedBias = G;
  static int input_segments(int H, Segment* seg) {
    seg[0] = {0, 0, G * H};
    return 1;
  }
};

template <bool Relu>
struct RnnCell : SharedGradient<1> {
  static constexpr bool kCellState = false;

  template <bool Train>
  __device__ static void forward(int H, int j, float* g, const float* q, Bias bias, float* h,
                                 float*, float*) {
    const float a = g[j] + q[j] + bias(j);
    h[j] = Relu ? (a > 0 ? a : 0.0f) : tanhf(a);
  }

  __device__ static void backward(int H, int j, float* g, const float*, const float* hcur,
                                  const float*, const float*, const float* dout, float* dh,
                                  float*) {
    const float d = dh[j] + dout[j], h = hcur[j];
    g[j] = Relu ? (h > 0 ? d : 0.0f) : d * (1.0f - h * h);
    dh[j] = 0.0f;
  }
};

struct LstmCell : SharedGradient<4> {
  static constexpr bool kCellState = true;

  template <bool Train>
  __device__ static void forward(int H, int j, float* g, const float* q, Bias bias, float* h,
                                 float* c, float* cseq) {
    const float i = sigmoid(g[j] + q[j] + bias(j));
    const float f = sigmoid(g[H + j] + q[H + j] + bias(H + j));
    const float u = tanhf(g[2 * H + j] + q[2 * H + j] + bias(2 * H + j));
    const float o = sigmoid(g[3 * H + j] + q[3 * H + j] + bias(3 * H + j));
    const float cn = f * c[j] + i * u;
    c[j] = cn;
    h[j] = o * tanhf(cn);
    if (Train) {
      g[j] = i;
      g[H + j] = f;
      g[2 * H + j] = u;
      g[3 * H + j] = o;
      cseq[j] = cn;
    }
  }

  __device__ static void backward(int H, int j, float* g, const float*, const float*,
                                  const float* cprev, const float* ccur, const float* dout,
                                  float* dh, float* dc) {
    const float i = g[j], f = g[H + j], u = g[2 * H + j], o = g[3 * H + j];
    const float d = dh[j] + dout[j];
    const float tc = tanhf(ccur[j]);
    const float dcn = dc[j] + d * o * (1.0f - tc * tc);
    g[j] = dcn * u * i * (1.0f - i);
    g[H + j] = dcn * cprev[j] * f * (1.0f - f);
    g[2 * H + j] = dcn * i * (1.0f - u * u);
    g[3 * H + j] = d * tc * o * (1.0f - o);
    dc[j] = dcn * f;
    dh[j] = 0.0f;
  }
};

struct GruCell {
  static constexpr int kGates = 3;
  static constexpr int kStored = 4;
  static constexpr int kSummedBias = 2;
  static constexpr bool kCellState = false;
  static int input_segments(int H, Segment* seg) {
    seg[0] = {0, 0, 2 * H};
    seg[1] = {3 * H, 2 * H, H};
    return 2;
  }

  template <bool Train>
  __device__ static void forward(int H, int j, float* g, const float* q, Bias bias, float* h,
                                 float*, float*) {
    const float r = sigmoid(g[j] + q[j] + bias(j));
    const float z = sigmoid(g[H + j] + q[H + j] + bias(H + j));
    const float hn = q[2 * H + j] + bias.hh[2 * H + j];
    const float n = tanhf(g[2 * H + j] + bias(2 * H + j) + r * hn);
    h[j] = n + z * (h[j] - n);
    if (Train) {
      g[j] = r;
      g[H + j] = z;
      g[2 * H + j] = n;
      g[3 * H + j] = hn;
    }
  }

  __device__ static void backward(int H, int j, float* g, const float* hprev, const float*,
                                  const float*, const float*, const float* dout, float* dh,
                                  float*) {
    const float r = g[j], z = g[H + j], n = g[2 * H + j], hn = g[3 * H + j];
    const float d = dh[j] + dout[j];
    const float dn = d * (1.0f - z) * (1.0f - n * n);
    g[j] = dn * hn * r * (1.0f - r);
    g[H + j] = d * (hprev[j] - n) * z * (1.0f - z);
    g[2 * H + j] = dn * r;
    g[3 * H + j] = dn;
    dh[j] = d * z;
  }
};

// One step of one layer over all B x H (row, unit) pairs. Pointers are at step t: g and q the
// row's gates and recurrent projection, h/c the running state, hs/cs the stored state of step t+1
// (training), res the residual input, out the layer output. Rows past their length keep their
// state and output zeros (stored hs too), as emit_row does on the CPU.
template <class Cell, bool Train>
__global__ void forward_step(int t, int B, int H, const int32_t* __restrict__ lengths, float* g,
                             int ldg, const float* __restrict__ q, Bias bias, float* h, float* c,
                             float* hs, float* cs, const float* res, float* out, Dropout drop,
                             uint64_t index0) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(B) * H) return;
  const int b = int(i / H), j = int(i % H);
  const bool valid = !lengths || t < lengths[b];
  float v = 0.0f;
  if (valid) {
    const size_t row = size_t(b) * H;
    Cell::template forward<Train>(H, j, g + size_t(b) * ldg, q + size_t(b) * Cell::kGates * H, bias,
                                  h + row, c ? c + row : nullptr, cs ? cs + row : nullptr);
    v = h[i];
  }
  if (hs) hs[i] = v;
  // res and out may be one buffer (inference writes a layer's output over its input): this
  // thread reads its element before writing it.
  if (valid && res) v += res[i];
  if (valid && drop.on) v *= dropout_factor(drop, index0 + i);
  out[i] = v;
}

// One step of backward over all (row, unit) pairs; pointers at step t. Rows past their length
// pass their state gradient through and get zero gate gradients, which the weight-gradient GEMMs
// then add as nothing.
template <class Cell>
__global__ void backward_step(int t, int B, int H, const int32_t* __restrict__ lengths, float* g,
                              int GS, const float* hprev, const float* hcur, const float* cprev,
                              const float* ccur, const float* dout, float* dh, float* dc) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(B) * H) return;
  const int b = int(i / H), j = int(i % H);
  float* gb = g + size_t(b) * GS;
  if (lengths && t >= lengths[b]) {
    for (int k = 0; k < Cell::kStored; ++k) gb[k * H + j] = 0.0f;
    return;
  }
  const size_t row = size_t(b) * H;
  Cell::backward(H, j, gb, hprev + row, hcur + row, cprev ? cprev + row : nullptr,
                 ccur ? ccur + row : nullptr, dout + row, dh + row, dc ? dc + row : nullptr);
}

__global__ void apply_dropout(size_t n, Dropout drop, float* x) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) x[i] *= dropout_factor(drop, i);
}

constexpr size_t kAlign = 64;  // floats: every buffer starts on a 256-byte boundary of ws
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Where everything lives in the workspace. Training: per layer the stored gates [T*B, kStored*H],
// hidden states hs [T+1, B, H] (h0 first) and, for LSTM, cell states cs [T+1, B, H]; the inputs
// of layers 1..L-1 [T, B, H]; then scratch: forward's recurrent projection, or backward's state
// gradients and inter-layer output gradient. Inference: the input projection [T*B, G*H], one
// buffer for the intermediate layers' outputs and the recurrent projection.
struct Layout {
  size_t block = 0, gates = 0, hs = 0, cs = 0;
  size_t inputs = 0, input_stride = 0;
  size_t pre = 0, buf = 0, hh = 0;
  size_t dh = 0, dc = 0, dout = 0;
  size_t total = 0;

  Layout(const StackShape& s, int stored, bool cell_state) {
    const size_t T = s.T, B = s.B, H = s.H, L = s.L, G = gate_count(s.cell);
    const size_t TB = T * B, BH = B * H;
    size_t at = 0;
    auto take = [&at](size_t n) {
      const size_t o = at;
      at += aligned(n);
      return o;
    };
    if (s.training) {
      gates = take(TB * stored * H);
      hs = take((T + 1) * BH);
      if (cell_state) cs = take((T + 1) * BH);
      block = at;
      at = L * block;
      input_stride = aligned(TB * H);
      inputs = at;
      at += (L - 1) * input_stride;
    } else {
      pre = take(TB * G * H);
      if (L > 1) buf = take(TB * H);
    }
    const size_t scratch_at = at;
    hh = take(B * G * H);
    const size_t forward_end = at;
    if (s.training) {
      at = scratch_at;
      dh = take(BH);
      if (cell_state) dc = take(BH);
      if (L > 1) dout = take(TB * H);
    }
    total = at > forward_end ? at : forward_end;
  }
  size_t layer_gates(int l) const { return l * block + gates; }
  size_t layer_hs(int l) const { return l * block + hs; }
  size_t layer_cs(int l) const { return l * block + cs; }
  size_t input(int l) const { return inputs + (l - 1) * input_stride; }
};

template <typename F>
struct LayerParams {
  F *w_ih, *w_hh, *b_ih, *b_hh;
};

template <typename F>
LayerParams<F> layer_params(F* base, const StackShape& s, int l) {
  const size_t GH = size_t(gate_count(s.cell)) * s.H, I = l == 0 ? s.I : s.H;
  F* w = base + stack_layer_offset(s.cell, s.I, s.H, l);
  return {w, w + GH * I, w + GH * (I + s.H), w + GH * (I + s.H + 1)};
}

// dst = src, or zeros when src is null; src may be dst.
void init_state(float* dst, const float* src, size_t n) {
  if (!src)
    fill_zero(dst, n * sizeof(float));
  else if (src != dst)
    copy_on_device(dst, src, n * sizeof(float));
}

void require(const void* p, const char* what) {
  if (!p)
    throw std::invalid_argument(std::string("rnnkit cuda recurrent stack: ") + what + " is null");
}

template <class Cell>
struct Stack {
  const StackShape& s;
  const int32_t* lengths;
  Layout lay;
  int H, B, GH, GS;
  size_t TB, BH;

  Stack(const StackShape& shape, const int32_t* len)
      : s(shape),
        lengths(len),
        lay(shape, Cell::kStored, Cell::kCellState),
        H(shape.H),
        B(shape.B),
        GH(Cell::kGates * shape.H),
        GS(Cell::kStored * shape.H),
        TB(size_t(shape.T) * shape.B),
        BH(size_t(shape.B) * shape.H) {}

  int input_size(int l) const { return l == 0 ? s.I : H; }
  Dropout dropout(int l) const { return s.training ? Dropout(s.seed, l, s.dropout) : Dropout(); }
};

template <class Cell, bool Train>
void forward_stack(const Stack<Cell>& k, const float* params, const float* x, const float* h0,
                   const float* c0, float* y, float* hT, float* cT, float* ws) {
  const StackShape& s = k.s;
  const int H = k.H, B = k.B, GH = k.GH;
  const int ldg = Train ? k.GS : GH;
  float* hh = ws + k.lay.hh;
  for (int l = 0; l < s.L; ++l) {
    const LayerParams<const float> w = layer_params(params, s, l);
    const int I = k.input_size(l);
    const float* in = l == 0 ? x : ws + (Train ? k.lay.input(l) : k.lay.buf);
    float* out = l == s.L - 1 ? y : ws + (Train ? k.lay.input(l + 1) : k.lay.buf);
    const float* res = s.residual && l > 0 ? in : nullptr;
    const Dropout drop = l < s.L - 1 ? k.dropout(l) : Dropout();
    float* gates = ws + (Train ? k.lay.layer_gates(l) : k.lay.pre);
    float* hs = Train ? ws + k.lay.layer_hs(l) : nullptr;
    float* cs = Train && Cell::kCellState ? ws + k.lay.layer_cs(l) : nullptr;

    float* h = hT + l * k.BH;
    float* c = Cell::kCellState ? cT + l * k.BH : nullptr;
    init_state(h, h0 ? h0 + l * k.BH : nullptr, k.BH);
    if (c) init_state(c, c0 ? c0 + l * k.BH : nullptr, k.BH);
    // Backward takes the initial state from here: h0 may be hT and overwritten by then.
    if (hs) copy_on_device(hs, h, k.BH * sizeof(float));
    if (cs) copy_on_device(cs, c, k.BH * sizeof(float));
    const Bias bias{w.b_ih, w.b_hh, Cell::kSummedBias * H};

    gemm(false, true, int(k.TB), GH, I, 1.0f, in, I, w.w_ih, I, 0.0f, gates, ldg);
    for (int t = 0; t < s.T; ++t) {
      const size_t step = size_t(t) * k.BH;
      gemm(false, true, B, GH, H, 1.0f, h, H, w.w_hh, H, 0.0f, hh, GH);
      forward_step<Cell, Train><<<blocks_for(k.BH), kThreads, 0, stream()>>>(
          t, B, H, k.lengths, gates + size_t(t) * B * ldg, ldg, hh, bias, h, c,
          hs ? hs + step + k.BH : nullptr, cs ? cs + step + k.BH : nullptr,
          res ? res + step : nullptr, out + step, drop, step);
      check_launch("recurrent forward_step");
    }
  }
}

template <class Cell>
void backward_stack(const Stack<Cell>& k, const float* params, const float* x, float* ws,
                    const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0,
                    float* dc0, float* dparams) {
  const StackShape& s = k.s;
  const int H = k.H, B = k.B, GH = k.GH, GS = k.GS, TB = int(k.TB);
  Segment seg[2];
  const int nseg = Cell::input_segments(H, seg);
  float* dbuf = ws + k.lay.dout;
  const float* dout = dy;
  for (int l = s.L - 1; l >= 0; --l) {
    const LayerParams<const float> w = layer_params(params, s, l);
    const LayerParams<float> dw = layer_params(dparams, s, l);
    const int I = k.input_size(l);
    const float* in = l == 0 ? x : ws + k.lay.input(l);
    float* gates = ws + k.lay.layer_gates(l);
    const float* hs = ws + k.lay.layer_hs(l);
    const float* cs = Cell::kCellState ? ws + k.lay.layer_cs(l) : nullptr;

    float* dh = dh0 ? dh0 + l * k.BH : ws + k.lay.dh;
    float* dc = Cell::kCellState ? (dc0 ? dc0 + l * k.BH : ws + k.lay.dc) : nullptr;
    init_state(dh, dhT ? dhT + l * k.BH : nullptr, k.BH);
    if (dc) init_state(dc, dcT ? dcT + l * k.BH : nullptr, k.BH);

    for (int t = s.T - 1; t >= 0; --t) {
      const size_t step = size_t(t) * k.BH;
      float* g = gates + size_t(t) * B * GS;
      backward_step<Cell><<<blocks_for(k.BH), kThreads, 0, stream()>>>(
          t, B, H, k.lengths, g, GS, hs + step, hs + step + k.BH, cs ? cs + step : nullptr,
          cs ? cs + step + k.BH : nullptr, dout + step, dh, dc);
      check_launch("recurrent backward_step");
      if (t > 0 || dh0) gemm(false, false, B, H, GH, 1.0f, g, GS, w.w_hh, H, 1.0f, dh, H);
    }

    // Weight gradients over all steps at once (padded rows carry zero gate gradients).
    for (int i = 0; i < nseg; ++i)
      gemm(true, false, seg[i].n, I, TB, 1.0f, gates + seg[i].col, GS, in, I, 1.0f,
           dw.w_ih + size_t(seg[i].row) * I, I);
    gemm(true, false, GH, H, TB, 1.0f, gates, GS, hs, H, 1.0f, dw.w_hh, H);
    for (int i = 0; i < nseg; ++i)
      add_column_sums(k.TB, seg[i].n, gates + seg[i].col, GS, dw.b_ih + seg[i].row);
    add_column_sums(k.TB, GH, gates, GS, dw.b_hh);

    // Gradient of the layer's input: through w_ih, plus the residual path, then back through the
    // dropout of the layer below. It overwrites dout, which this layer no longer needs.
    float* din = l > 0 ? dbuf : dx;
    if (!din) continue;
    float beta = 0.0f;
    if (l > 0 && s.residual) {
      if (dout != dbuf) copy_on_device(dbuf, dout, k.TB * H * sizeof(float));
      beta = 1.0f;
    }
    for (int i = 0; i < nseg; ++i)
      gemm(false, false, TB, I, seg[i].n, 1.0f, gates + seg[i].col, GS,
           w.w_ih + size_t(seg[i].row) * I, I, i == 0 ? beta : 1.0f, din, I);
    if (l > 0) {
      const Dropout drop = k.dropout(l - 1);
      if (drop.on) {
        apply_dropout<<<blocks_for(k.TB * H), kThreads, 0, stream()>>>(k.TB * H, drop, dbuf);
        check_launch("recurrent apply_dropout");
      }
      dout = dbuf;
    }
  }
}

template <class F>
void with_cell(CellType cell, F&& f) {
  switch (cell) {
    case CellType::RnnTanh:
      return f(RnnCell<false>());
    case CellType::RnnRelu:
      return f(RnnCell<true>());
    case CellType::Lstm:
      return f(LstmCell());
    case CellType::Gru:
      return f(GruCell());
  }
  gate_count(cell);  // throws for the unknown value
}

}  // namespace

size_t stack_workspace_size(const StackShape& s) {
  // The CPU's size query validates the shape with the CPU's messages; its result is not ours.
  rnnkit::stack_workspace_size(s);
  size_t total = 0;
  with_cell(s.cell, [&](auto cell) {
    using Cell = decltype(cell);
    total = Layout(s, Cell::kStored, Cell::kCellState).total;
  });
  return total;
}

void stack_forward(const StackShape& s, const float* params, const float* x, const int32_t* lengths,
                   const float* h0, const float* c0, float* y, float* hT, float* cT, float* ws) {
  rnnkit::stack_workspace_size(s);  // validates the shape
  require(params, "params");
  require(x, "x");
  require(y, "y");
  require(hT, "hT");
  if (s.cell == CellType::Lstm) require(cT, "cT");
  require(ws, "ws");
  with_cell(s.cell, [&](auto cell) {
    using Cell = decltype(cell);
    const Stack<Cell> k(s, lengths);
    if (s.training)
      forward_stack<Cell, true>(k, params, x, h0, c0, y, hT, cT, ws);
    else
      forward_stack<Cell, false>(k, params, x, h0, c0, y, hT, cT, ws);
  });
}

void stack_backward(const StackShape& s, const float* params, const float* x,
                    const int32_t* lengths, const float*, const float*, float* ws, const float* dy,
                    const float* dhT, const float* dcT, float* dx, float* dh0, float* dc0,
                    float* dparams) {
  rnnkit::stack_workspace_size(s);  // validates the shape
  if (!s.training)
    throw std::invalid_argument(
        "rnnkit cuda recurrent stack: backward needs the workspace of a training forward");
  require(params, "params");
  require(x, "x");
  require(ws, "ws");
  require(dy, "dy");
  require(dparams, "dparams");
  // The initial state h0/c0 is not read: forward kept a copy in ws.
  with_cell(s.cell, [&](auto cell) {
    using Cell = decltype(cell);
    backward_stack(Stack<Cell>(s, lengths), params, x, ws, dy, dhT, dcT, dx, dh0, dc0, dparams);
  });
}

}  // namespace cuda
}  // namespace rnnkit
