// Recurrent stacks on the CPU. Per layer, forward is one GEMM for the input projection of all
// steps, then per step one GEMM for the recurrent projection and one fused pass over the batch rows
// that applies the gates and writes what backward needs. Backward walks the steps in reverse with
// one fused pass and one GEMM per step, and leaves the weight gradients to a few GEMMs over all
// steps. The step loops split the batch rows into groups, one per thread (row_groups). PackedStack
// runs inference a step at a time over weights packed once, for generation.
#include "recurrent.h"

#include <algorithm>
#include <climits>
#include <optional>
#include <stdexcept>
#include <string>

#include "gemm.h"
#include "recurrent_cells.h"

namespace rnnkit {

using cells::Dropout;
using cells::sigmoid;
using cells::tanh_approx;

namespace {

// A run of gate columns of the stored gate buffer and the rows of w_ih (and b_ih) it belongs to.
struct Segment {
  int col, row, n;
};

// Each cell works on one batch row at a time, over its H units:
//   forward<Train>: g holds the row's input projection x W_ih^T (no bias) and q its recurrent
//     projection h W_hh^T (no bias); updates the state h (and c) in place. In training it
//     overwrites g with what backward needs (kStored * H floats) and stores c_t in cseq.
//   backward: given stored gates g, h_{t-1}/h_t (hprev/hcur), c_{t-1}/c_t (cprev/ccur), the
//     output gradient dout and the state gradients dh/dc of h_t/c_t, overwrites g with the gate
//     pre-activation gradients and dh/dc with the gradients of h_{t-1}/c_{t-1} other than through
//     W_hh (the caller adds that with one GEMM for all rows).
// Bias: `bias` is b_ih + b_hh over the first kSummedBias gates; GRU's n gate gets b_in alone, its
// b_hn (passed as b_hn) sitting inside r * (W_hn h + b_hn).

// The gradient of all gates' pre-activations is both the input and the recurrent gradient.
template <int G>
struct SharedGradient {
  static constexpr int kGates = G;
  static constexpr int kStored = G;
  static constexpr int kSummedBias = G;
  static int input_segments(int H, Segment* seg) {
    seg[0] = {0, 0, G * H};
    return 1;
  }
  // PackedStack's products: in float32 every gate from [x, h] at once; else x and h apart (I = 0:
  // from h alone).
  static void products(const PackedStack::LayerWeights& w, std::vector<PackedStack::Product>& out) {
    const int I = w.I, H = w.H;
    if (w.type == WeightType::F32) {
      PackedMatrix m(I + H, G * H);
      m.set(0, 0, I, G * H, true, w.w_ih, I);
      m.set(I, 0, H, G * H, true, w.w_hh, H);
      out.push_back({0, 0, false, PackedWeights(std::move(m))});
      return;
    }
    if (I > 0) out.push_back({0, 0, false, PackedWeights(w.type, I, G * H, w.w_ih, I, w.s_ih)});
    out.push_back({I, 0, I > 0, PackedWeights(w.type, H, G * H, w.w_hh, H, w.s_hh)});
  }
};

template <bool Relu>
struct RnnCell : SharedGradient<1> {
  static constexpr bool kCellState = false;

  static float unit(float a) { return Relu ? (a > 0 ? a : 0.0f) : tanh_approx(a); }

  template <bool Train>
  static void forward(int H, float* __restrict g, const float* __restrict q,
                      const float* __restrict bias, const float*, float* __restrict h, float*,
                      float*) {
    for (int j = 0; j < H; ++j) h[j] = unit(g[j] + q[j] + bias[j]);
  }

  static void step(int H, const float* __restrict pre, const float* __restrict bias, const float*,
                   float* __restrict h, float*) {
    for (int j = 0; j < H; ++j) h[j] = unit(pre[j] + bias[j]);
  }

  // The derivative comes from the output alone: relu' = [h > 0], tanh' = 1 - h^2.
  static void backward(int H, float* __restrict g, const float*, const float* __restrict hcur,
                       const float*, const float*, const float* __restrict dout,
                       float* __restrict dh, float*) {
    for (int j = 0; j < H; ++j) {
      float d = dh[j] + dout[j];
      float h = hcur[j];
      g[j] = Relu ? (h > 0 ? d : 0.0f) : d * (1.0f - h * h);
      dh[j] = 0.0f;
    }
  }
};

// Stores the activated gates i, f, g, o; tanh(c_t) is recomputed in backward rather than stored.
struct LstmCell : SharedGradient<4> {
  static constexpr bool kCellState = true;

  // One unit from its gates' pre-activations and its cell state: the activated gates, c' and h'.
  struct Unit {
    float i, f, u, o, c, h;
  };
  static Unit unit(float ai, float af, float au, float ao, float c) {
    Unit k{sigmoid(ai), sigmoid(af), tanh_approx(au), sigmoid(ao), 0.0f, 0.0f};
    k.c = k.f * c + k.i * k.u;
    k.h = k.o * tanh_approx(k.c);
    return k;
  }

  template <bool Train>
  static void forward(int H, float* __restrict g, const float* __restrict q,
                      const float* __restrict bias, const float*, float* __restrict h,
                      float* __restrict c, float* __restrict cseq) {
    for (int j = 0; j < H; ++j) {
      const Unit k = unit(g[j] + q[j] + bias[j], g[H + j] + q[H + j] + bias[H + j],
                          g[2 * H + j] + q[2 * H + j] + bias[2 * H + j],
                          g[3 * H + j] + q[3 * H + j] + bias[3 * H + j], c[j]);
      c[j] = k.c;
      h[j] = k.h;
      if (Train) {
        g[j] = k.i;
        g[H + j] = k.f;
        g[2 * H + j] = k.u;
        g[3 * H + j] = k.o;
        cseq[j] = k.c;
      }
    }
  }

  static void step(int H, const float* __restrict pre, const float* __restrict bias, const float*,
                   float* __restrict h, float* __restrict c) {
    for (int j = 0; j < H; ++j) {
      const Unit k = unit(pre[j] + bias[j], pre[H + j] + bias[H + j],
                          pre[2 * H + j] + bias[2 * H + j], pre[3 * H + j] + bias[3 * H + j], c[j]);
      c[j] = k.c;
      h[j] = k.h;
    }
  }

  static void backward(int H, float* __restrict g, const float*, const float*,
                       const float* __restrict cprev, const float* __restrict ccur,
                       const float* __restrict dout, float* __restrict dh, float* __restrict dc) {
    for (int j = 0; j < H; ++j) {
      float i = g[j], f = g[H + j], u = g[2 * H + j], o = g[3 * H + j];
      float d = dh[j] + dout[j];
      float tc = tanh_approx(ccur[j]);
      float dcn = dc[j] + d * o * (1.0f - tc * tc);
      g[j] = dcn * u * i * (1.0f - i);
      g[H + j] = dcn * cprev[j] * f * (1.0f - f);
      g[2 * H + j] = dcn * i * (1.0f - u * u);
      g[3 * H + j] = d * tc * o * (1.0f - o);
      dc[j] = dcn * f;
      dh[j] = 0.0f;
    }
  }
};

// Stores r, z, n and W_hn h + b_hn. Its gradient row is [dr, dz, dn * r, dn]: blocks 0-2 are the
// gradient of W_hh h + b_hh, blocks 0, 1 and 3 that of W_ih x + b_ih (the n gate's two differ by
// r), hence 4H floats stored for 3 gates.
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
  // PackedStack's products, giving the pre-activations [r, z, W_in x, W_hn h] that step reads: in
  // float32 r and z from [x, h] at once, then W_in x and W_hn h apart; else x W_ih^T (r, z and
  // W_in x) and h W_hh^T (r and z added, W_hn h) apart. I = 0: from h alone.
  static void products(const PackedStack::LayerWeights& w, std::vector<PackedStack::Product>& out) {
    const int I = w.I, H = w.H;
    const float* w_hn = w.w_hh + size_t(2) * H * H;
    if (w.type != WeightType::F32) {
      if (I > 0) out.push_back({0, 0, false, PackedWeights(w.type, I, 3 * H, w.w_ih, I, w.s_ih)});
      out.push_back({I, 0, I > 0, PackedWeights(w.type, H, 2 * H, w.w_hh, H, w.s_hh)});
      out.push_back({I, 3 * H, false,
                     PackedWeights(w.type, H, H, w_hn, H, w.s_hh ? w.s_hh + 2 * H : nullptr)});
      return;
    }
    PackedMatrix rz(I + H, 2 * H), nh(H, H);
    rz.set(0, 0, I, 2 * H, true, w.w_ih, I);
    rz.set(I, 0, H, 2 * H, true, w.w_hh, H);
    nh.set(0, 0, H, H, true, w_hn, H);
    out.push_back({0, 0, false, PackedWeights(std::move(rz))});
    if (I > 0) {
      PackedMatrix nx(I, H);
      nx.set(0, 0, I, H, true, w.w_ih + size_t(2) * H * I, I);
      out.push_back({0, 2 * H, false, PackedWeights(std::move(nx))});
    }
    out.push_back({I, 3 * H, false, PackedWeights(std::move(nh))});
  }

  // One unit from the pre-activations of r and z, W_in x + b_in, W_hn h + b_hn and h.
  struct Unit {
    float r, z, n, h;
  };
  static Unit unit(float ar, float az, float an, float hn, float h) {
    Unit k{sigmoid(ar), sigmoid(az), 0.0f, 0.0f};
    k.n = tanh_approx(an + k.r * hn);
    k.h = k.n + k.z * (h - k.n);
    return k;
  }

  template <bool Train>
  static void forward(int H, float* __restrict g, const float* __restrict q,
                      const float* __restrict bias, const float* __restrict b_hn,
                      float* __restrict h, float*, float*) {
    for (int j = 0; j < H; ++j) {
      const float hn = q[2 * H + j] + b_hn[j];
      const Unit k = unit(g[j] + q[j] + bias[j], g[H + j] + q[H + j] + bias[H + j],
                          g[2 * H + j] + bias[2 * H + j], hn, h[j]);
      h[j] = k.h;
      if (Train) {
        g[j] = k.r;
        g[H + j] = k.z;
        g[2 * H + j] = k.n;
        g[3 * H + j] = hn;
      }
    }
  }

  // pre holds [r, z, W_in x, W_hn h] (4H), as products lays them out.
  static void step(int H, const float* __restrict pre, const float* __restrict bias,
                   const float* __restrict b_hn, float* __restrict h, float*) {
    for (int j = 0; j < H; ++j)
      h[j] = unit(pre[j] + bias[j], pre[H + j] + bias[H + j], pre[2 * H + j] + bias[2 * H + j],
                  pre[3 * H + j] + b_hn[j], h[j])
                 .h;
  }

  static void backward(int H, float* __restrict g, const float* __restrict hprev, const float*,
                       const float*, const float*, const float* __restrict dout,
                       float* __restrict dh, float*) {
    for (int j = 0; j < H; ++j) {
      float r = g[j], z = g[H + j], n = g[2 * H + j], hn = g[3 * H + j];
      float d = dh[j] + dout[j];
      float dn = d * (1.0f - z) * (1.0f - n * n);
      g[j] = dn * hn * r * (1.0f - r);
      g[H + j] = d * (hprev[j] - n) * z * (1.0f - z);
      g[2 * H + j] = dn * r;
      g[3 * H + j] = dn;
      dh[j] = d * z;
    }
  }
};

// Writes one batch row of one step of the layer's outputs: in training the raw hidden state for
// backward (hs), and the layer output (plus the residual input, through dropout). Rows past their
// length (h null) get zeros.
void emit_row(int H, const float* __restrict h, float* __restrict hs, const float* res, float* out,
              const Dropout& drop, uint64_t index) {
  if (!h) {
    if (hs) std::fill(hs, hs + H, 0.0f);
    std::fill(out, out + H, 0.0f);
    return;
  }
  if (hs) std::copy(h, h + H, hs);
  // res and out may be the same buffer (inference writes a layer's output over its input).
  if (!res && !drop.on) {
    std::copy(h, h + H, out);
  } else if (!drop.on) {
    for (int j = 0; j < H; ++j) out[j] = h[j] + res[j];
  } else {
    for (int j = 0; j < H; ++j) out[j] = (h[j] + (res ? res[j] : 0.0f)) * drop.factor(index + j);
  }
}

constexpr size_t kAlign = 16;  // floats: every buffer starts on a 64-byte boundary of ws
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Where everything lives in the workspace. Training: per layer a block with the stored gates
// [T*B, kStored*H], the hidden states hs [T+1, B, H] (h0 first, then each step's output) and, for
// LSTM, the cell states cs [T+1, B, H]; then the inputs in_l of layers 1..L-1 [T, B, H]; then
// scratch shared by forward and backward. Inference: the input projection [T*B, G*H], one buffer
// for the intermediate layers' outputs (each layer overwrites its input) and forward's scratch.
struct Layout {
  size_t block = 0, gates = 0, hs = 0, cs = 0;
  size_t inputs = 0, input_stride = 0;
  size_t pre = 0, buf = 0;
  size_t hh = 0, bias = 0;                      // forward scratch
  size_t dh = 0, dc = 0, dout = 0, colsum = 0;  // backward scratch, over forward's
  size_t total = 0;

  Layout(const StackShape& s, int stored, bool cell_state) {
    const size_t T = s.T, B = s.B, H = s.H, L = s.L, G = gate_count(s.cell);
    const size_t TB = T * B, BH = B * H;
    size_t at = 0;
    auto take = [&at](size_t n) {
      size_t o = at;
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
    const size_t scratch = at;
    hh = take(B * G * H);
    bias = take(G * H);
    const size_t forward_end = at;
    if (s.training) {
      at = scratch;
      dh = take(BH);
      if (cell_state) dc = take(BH);
      if (L > 1) dout = take(TB * H);
      colsum = take(stored * H);
    }
    total = std::max(at, forward_end);
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

// The bias the cells add, bias [kGates * H]: b_ih + b_hh over the first kSummedBias gates, b_ih
// alone after them (GRU's b_hn sits inside r * (W_hn h + b_hn)).
template <class Cell>
void cell_bias(const LayerParams<const float>& w, int H, float* bias) {
  for (int j = 0; j < Cell::kGates * H; ++j)
    bias[j] = w.b_ih[j] + (j < Cell::kSummedBias * H ? w.b_hh[j] : 0);
}

// dst = src, or zeros when src is null. src may be dst (a caller passing one buffer as h0 and hT).
void init_state(float* dst, const float* src, size_t n) {
  if (!src)
    std::fill(dst, dst + n, 0.0f);
  else if (src != dst)
    std::copy(src, src + n, dst);
}

void require(const void* p, const char* what) {
  if (!p) throw std::invalid_argument(std::string("rnnkit recurrent stack: ") + what + " is null");
}

void check_shape(const StackShape& s) {
  gate_count(s.cell);  // throws for an unknown cell
  if (s.T < 1 || s.B < 1 || s.I < 1 || s.H < 1 || s.L < 1)
    throw std::invalid_argument(
        "rnnkit recurrent stack: T, B, I, H and L must be >= 1, got T=" + std::to_string(s.T) +
        " B=" + std::to_string(s.B) + " I=" + std::to_string(s.I) + " H=" + std::to_string(s.H) +
        " L=" + std::to_string(s.L));
  // GEMM dimensions and leading dimensions are ints, and the workspace size (bounded by
  // (T+1) * B * (8H + I) per layer) must not wrap around.
  if (size_t(s.T) * s.B > INT_MAX || size_t(s.H) * 4 > INT_MAX ||
      double(s.T + 1) * s.B * (8.0 * s.H + s.I) * s.L > 1e18)
    throw std::invalid_argument(
        "rnnkit recurrent stack: shape too large (T*B and 4*H must fit "
        "in an int, and the workspace in memory)");
  if (!(s.dropout >= 0.0f && s.dropout < 1.0f))
    throw std::invalid_argument("rnnkit recurrent stack: dropout must be in [0, 1), got " +
                                std::to_string(s.dropout));
}

void check_lengths(const StackShape& s, const int32_t* lengths) {
  if (!lengths) return;
  for (int b = 0; b < s.B; ++b)
    if (lengths[b] < 1 || lengths[b] > s.T)
      throw std::invalid_argument("rnnkit recurrent stack: lengths[" + std::to_string(b) +
                                  "] must be in [1, T=" + std::to_string(s.T) + "], got " +
                                  std::to_string(lengths[b]));
}

// A layer's per-step recurrent product, h W_hh^T forward and dgates W_hh backward: the same
// weights at every step, so over more than one step op(W_hh) is packed once per layer and
// gemm_packed reads it as it is, where gemm would pack it again at each step. A single step
// (a decoder fed one token at a time) packs as much as that one gemm would, and keeps it.
class StepProduct {
 public:
  // op(W_hh) is [K, N]: stored [N, K] (ld >= K) when trans, else [K, N] (ld >= N).
  StepProduct(Precision p, int T, int K, int N, bool trans, const float* w, int ld)
      : p_(p), K_(K), N_(N), trans_(trans), w_(w), ld_(ld) {
    if (T >= 2) packed_.emplace(p, K, N, trans, w, ld);
  }
  // C[B, N] = A op(W_hh) + beta * C.
  void operator()(int B, const float* A, int lda, float beta, float* C, int ldc) const {
    if (packed_)
      (*packed_)(B, A, lda, beta, C, ldc);
    else
      gemm_at(p_, false, trans_, B, N_, K_, 1.0f, A, lda, w_, ld_, beta, C, ldc);
  }

 private:
  Precision p_;
  int K_, N_;
  bool trans_;
  const float* w_;
  int ld_;
  std::optional<PackedProduct> packed_;
};

// What both directions of one stack call share.
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

  bool valid(int t, int b) const { return t < (lengths ? lengths[b] : s.T); }
  int input_size(int l) const { return l == 0 ? s.I : H; }
  Dropout dropout(int l) const { return s.training ? Dropout(s.seed, l, s.dropout) : Dropout(); }
};

template <class Cell, bool Train>
void forward_stack(const Stack<Cell>& k, const float* params, const float* x, const float* h0,
                   const float* c0, float* y, float* hT, float* cT, float* ws) {
  const StackShape& s = k.s;
  const int H = k.H, B = k.B, GH = k.GH;
  // Training keeps the gates in the stored layout; inference only needs the projections.
  const int ldg = Train ? k.GS : GH;
  float* hh = ws + k.lay.hh;
  float* bias = ws + k.lay.bias;
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

    // The final state buffers double as the running state, updated in place step by step, so
    // rows past their length simply keep theirs.
    float* h = hT + l * k.BH;
    float* c = Cell::kCellState ? cT + l * k.BH : nullptr;
    init_state(h, h0 ? h0 + l * k.BH : nullptr, k.BH);
    if (c) init_state(c, c0 ? c0 + l * k.BH : nullptr, k.BH);
    // Backward takes the initial state from here: h0 may be hT and overwritten by then.
    if (hs) std::copy(h, h + k.BH, hs);
    if (cs) std::copy(c, c + k.BH, cs);

    cell_bias<Cell>(w, H, bias);
    const float* b_hn = w.b_hh + Cell::kSummedBias * H;

    gemm_at(s.precision, false, true, int(k.TB), GH, I, 1.0f, in, I, w.w_ih, I, 0.0f, gates, ldg);
    const StepProduct recurrent(s.precision, s.T, H, GH, true, w.w_hh, H);
    // The batch rows are independent through the steps: each group of them runs all the steps
    // on a thread of its own.
    const int groups = row_groups(B);
    parallel_for(groups, [&](int g) {
      const int b0 = g * B / groups, b1 = (g + 1) * B / groups;
      for (int t = 0; t < s.T; ++t) {
        recurrent(b1 - b0, h + size_t(b0) * H, H, 0.0f, hh + size_t(b0) * GH, GH);
        for (int b = b0; b < b1; ++b) {
          const size_t row = size_t(t) * B + b;
          const bool valid = k.valid(t, b);
          float* hb = h + size_t(b) * H;
          if (valid)
            Cell::template forward<Train>(H, gates + row * ldg, hh + size_t(b) * GH, bias, b_hn, hb,
                                          c ? c + size_t(b) * H : nullptr,
                                          cs ? cs + (row + B) * H : nullptr);
          emit_row(H, valid ? hb : nullptr, hs ? hs + (row + B) * H : nullptr,
                   res ? res + row * H : nullptr, out + row * H, drop, row * H);
        }
      }
    });
  }
}

void column_sums(size_t rows, int cols, const float* __restrict a, float* __restrict sum) {
  std::fill(sum, sum + cols, 0.0f);
  for (size_t r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) sum[j] += a[r * cols + j];
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
  float* colsum = ws + k.lay.colsum;
  const float* dout = dy;  // gradient of the current layer's output
  for (int l = s.L - 1; l >= 0; --l) {
    const LayerParams<const float> w = layer_params(params, s, l);
    const LayerParams<float> dw = layer_params(dparams, s, l);
    const int I = k.input_size(l);
    const float* in = l == 0 ? x : ws + k.lay.input(l);
    float* gates = ws + k.lay.layer_gates(l);
    const float* hs = ws + k.lay.layer_hs(l);
    const float* cs = Cell::kCellState ? ws + k.lay.layer_cs(l) : nullptr;

    // Gradients of the running state, updated in place step by step into those of the initial one.
    float* dh = dh0 ? dh0 + l * k.BH : ws + k.lay.dh;
    float* dc = Cell::kCellState ? (dc0 ? dc0 + l * k.BH : ws + k.lay.dc) : nullptr;
    init_state(dh, dhT ? dhT + l * k.BH : nullptr, k.BH);
    if (dc) init_state(dc, dcT ? dcT + l * k.BH : nullptr, k.BH);

    const StepProduct recurrent(s.precision, s.T, GH, H, false, w.w_hh, H);
    // As forward: each group of batch rows walks all the steps on a thread of its own.
    const int groups = row_groups(B);
    parallel_for(groups, [&](int gr) {
      const int b0 = gr * B / groups, b1 = (gr + 1) * B / groups;
      for (int t = s.T - 1; t >= 0; --t) {
        for (int b = b0; b < b1; ++b) {
          const size_t row = size_t(t) * B + b;
          float* g = gates + row * GS;
          // Past its length a row's state passes through unchanged and its output is constant.
          if (!k.valid(t, b)) {
            std::fill(g, g + GS, 0.0f);
            continue;
          }
          Cell::backward(H, g, hs + row * H, hs + (row + B) * H, cs ? cs + row * H : nullptr,
                         cs ? cs + (row + B) * H : nullptr, dout + row * H, dh + size_t(b) * H,
                         dc ? dc + size_t(b) * H : nullptr);
        }
        if (t > 0 || dh0)
          recurrent(b1 - b0, gates + (size_t(t) * B + b0) * GS, GS, 1.0f, dh + size_t(b0) * H, H);
      }
    });

    // Weight gradients over all steps at once. Padded rows carry zero gate gradients, so they add
    // nothing (as long as the caller's padding in x is finite: 0 * NaN is NaN).
    for (int i = 0; i < nseg; ++i)
      gemm_at(s.precision, true, false, seg[i].n, I, TB, 1.0f, gates + seg[i].col, GS, in, I, 1.0f,
              dw.w_ih + size_t(seg[i].row) * I, I);
    gemm_at(s.precision, true, false, GH, H, TB, 1.0f, gates, GS, hs, H, 1.0f, dw.w_hh, H);
    column_sums(k.TB, GS, gates, colsum);
    for (int i = 0; i < nseg; ++i)
      for (int j = 0; j < seg[i].n; ++j) dw.b_ih[seg[i].row + j] += colsum[seg[i].col + j];
    for (int j = 0; j < GH; ++j) dw.b_hh[j] += colsum[j];

    // Gradient of the layer's input: through w_ih, plus the residual path, then back through the
    // dropout of the layer below. It overwrites dout, which this layer no longer needs.
    float* din = l > 0 ? dbuf : dx;
    if (!din) continue;
    float beta = 0.0f;
    if (l > 0 && s.residual) {
      if (dout != dbuf) std::copy(dout, dout + k.TB * H, dbuf);
      beta = 1.0f;
    }
    for (int i = 0; i < nseg; ++i)
      gemm_at(s.precision, false, false, TB, I, seg[i].n, 1.0f, gates + seg[i].col, GS,
              w.w_ih + size_t(seg[i].row) * I, I, i == 0 ? beta : 1.0f, din, I);
    if (l > 0) {
      const Dropout drop = k.dropout(l - 1);
      if (drop.on)
        for (size_t e = 0; e < k.TB * H; ++e) dbuf[e] *= drop.factor(e);
      dout = dbuf;
    }
  }
}

// Calls f with a value of the cell's type.
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

void check_sizes(int I, int H) {
  if (I < 1 || H < 1)
    throw std::invalid_argument("rnnkit recurrent stack: I and H must be >= 1, got I=" +
                                std::to_string(I) + " H=" + std::to_string(H));
}

}  // namespace

int gate_count(CellType cell) {
  switch (cell) {
    case CellType::RnnTanh:
    case CellType::RnnRelu:
      return 1;
    case CellType::Lstm:
      return 4;
    case CellType::Gru:
      return 3;
  }
  throw std::invalid_argument("rnnkit recurrent stack: unknown cell type " +
                              std::to_string(int(cell)));
}

size_t stack_layer_offset(CellType cell, int I, int H, int l) {
  check_sizes(I, H);
  if (l < 0) throw std::invalid_argument("rnnkit recurrent stack: negative layer index");
  const size_t GH = size_t(gate_count(cell)) * H;
  if (l == 0) return 0;
  return GH * (size_t(I) + H + 2) + (l - 1) * GH * (2 * size_t(H) + 2);
}

size_t stack_param_count(CellType cell, int I, int H, int L) {
  if (L < 1)
    throw std::invalid_argument("rnnkit recurrent stack: L must be >= 1, got " + std::to_string(L));
  return stack_layer_offset(cell, I, H, L);
}

size_t stack_workspace_size(const StackShape& s) {
  check_shape(s);
  size_t total = 0;
  with_cell(s.cell, [&](auto cell) {
    using Cell = decltype(cell);
    total = Layout(s, Cell::kStored, Cell::kCellState).total;
  });
  return total;
}

void stack_forward(const StackShape& s, const float* params, const float* x, const int32_t* lengths,
                   const float* h0, const float* c0, float* y, float* hT, float* cT, float* ws) {
  check_shape(s);
  check_lengths(s, lengths);
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
                    const int32_t* lengths, const float* h0, const float* c0, float* ws,
                    const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0,
                    float* dc0, float* dparams) {
  check_shape(s);
  if (!s.training)
    throw std::invalid_argument(
        "rnnkit recurrent stack: backward needs the workspace of a training forward");
  check_lengths(s, lengths);
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

PackedStack::PackedStack(CellType cell, int V, int I, int H, int L, bool residual,
                         const float* embedding, const float* params, WeightType type,
                         const float* scales, int feed)
    : cell_(cell),
      I_(I),
      H_(H),
      feed_(feed),
      residual_(residual),
      folded_(feed == 0 && V <= 2 * I) {
  const StackShape s{cell, 1, 1, I, H, L, 0.0f, residual, false, 0};
  check_shape(s);
  if (V < 1)
    throw std::invalid_argument("rnnkit recurrent stack: V must be >= 1, got " + std::to_string(V));
  if (feed < 0 || feed >= I)
    throw std::invalid_argument("rnnkit recurrent stack: feed must be in [0, I), got " +
                                std::to_string(feed));
  require(embedding, "embedding");
  require(params, "params");
  if (type == WeightType::Int8) require(scales, "scales");
  with_cell(cell, [&](auto c) {
    using Cell = decltype(c);
    const int GH = Cell::kGates * H, summed = Cell::kSummedBias * H;
    for (int l = 0; l < L; ++l) {
      const LayerParams<const float> w = layer_params(params, s, l);
      const float* s_ih = scales ? scales + size_t(2 * l) * GH : nullptr;
      Layer layer;
      Cell::products({type, input_width(l), H, w.w_ih, w.w_hh, s_ih, s_ih ? s_ih + GH : nullptr},
                     layer.products);
      layer.width = 0;
      for (const Product& p : layer.products)
        layer.width = std::max(layer.width, p.c_col + p.m.cols());
      layer.bias.resize(2 * GH - summed);
      cell_bias<Cell>(w, H, layer.bias.data());
      std::copy(w.b_hh + summed, w.b_hh + GH, layer.bias.begin() + GH);
      layers_.push_back(std::move(layer));
    }
    if (folded_) {
      // The input gates come first in every cell's pre-activations: [V, I] [I, G*H] fills them,
      // and GRU's W_hn h columns after them start at zero.
      const int width = layers_[0].width;
      table_.assign(size_t(V) * width, 0.0f);
      // The built-in GEMM, as the steps use: with OpenBLAS threads would be woken that then spin
      // on the cores the steps' helpers need.
      gemm_builtin(false, true, V, GH, I, 1.0f, embedding, I, layer_params(params, s, 0).w_ih, I,
                   0.0f, table_.data(), width);
    } else {
      table_.assign(embedding, embedding + size_t(V) * (I - feed));
    }
  });
}

size_t PackedStack::bytes() const {
  size_t n = sizeof(float) * table_.size();
  for (const Layer& layer : layers_) {
    n += sizeof(float) * layer.bias.size();
    for (const Product& p : layer.products) n += p.m.bytes();
  }
  return n;
}

size_t PackedStack::workspace_size(int B) const {
  int width = 0;
  for (const Layer& layer : layers_) width = std::max(width, layer.width);
  return aligned(size_t(B) * (std::max(I_, H_) + H_)) + size_t(B) * width;
}

void PackedStack::step(int B, const int32_t* tokens, float* h, float* c, size_t layer_stride,
                       float* y, float* ws, const float* feed) const {
  if (B < 1) return;
  require(tokens, "tokens");
  if (feed_ > 0) require(feed, "feed");
  require(h, "h");
  if (cell_ == CellType::Lstm) require(c, "c");
  require(y, "y");
  require(ws, "ws");
  with_cell(cell_, [&](auto cell) {
    using Cell = decltype(cell);
    const int H = H_, L = int(layers_.size());
    // Each row's layer input and state side by side, [B, I + H]; from layer 1 on [B, 2H].
    float* a = ws;
    float* pre = ws + aligned(size_t(B) * (std::max(I_, H) + H));
    for (int l = 0; l < L; ++l) {
      const Layer& layer = layers_[l];
      const int I = input_width(l), lda = I + H;
      const bool lookup = l == 0 && folded_;
      float* hl = h + l * layer_stride;
      float* cl = Cell::kCellState ? c + l * layer_stride : nullptr;
      for (int b = 0; b < B; ++b) {
        float* row = a + size_t(b) * lda;
        if (l == 0) {
          const int n = lookup ? layer.width : I - feed_;
          const float* t = table_.data() + size_t(tokens[b]) * n;
          std::copy(t, t + n, lookup ? pre + size_t(b) * layer.width : row);
          if (feed_ > 0) std::copy_n(feed + size_t(b) * feed_, feed_, row + n);
        }
        std::copy(hl + size_t(b) * H, hl + size_t(b + 1) * H, row + I);
      }
      // A folded layer's products add h's part onto the looked-up pre-activations.
      for (const Product& p : layer.products)
        p.m.product(B, a + p.a_col, lda, lookup || p.accumulate ? 1.0f : 0.0f, pre + p.c_col,
                    layer.width);
      const float* bias = layer.bias.data();
      for (int b = 0; b < B; ++b)
        Cell::step(H, pre + size_t(b) * layer.width, bias, bias + Cell::kGates * H,
                   hl + size_t(b) * H, cl ? cl + size_t(b) * H : nullptr);
      // The output, plus the input from layer 1 on when residual, goes to y or, in place, to the
      // next layer's input: from layer 1 on the rows of a keep their width 2H.
      const bool last = l == L - 1;
      float* out = last ? y : a;
      const int ldo = last ? H : 2 * H;
      const bool res = residual_ && l > 0;
      for (int b = 0; b < B; ++b) {
        const float* hb = hl + size_t(b) * H;
        const float* in = a + size_t(b) * lda;
        float* ob = out + size_t(b) * ldo;
        for (int j = 0; j < H; ++j) ob[j] = res ? hb[j] + in[j] : hb[j];
      }
    }
  });
}

}  // namespace rnnkit
