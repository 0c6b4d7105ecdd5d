// Embedding, linear layer and fused softmax cross-entropy on raw buffers.
#include "layers.h"

#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gemm.h"

namespace rnnkit {
namespace {

// exp(x) for x <= 0 (every caller passes a logit minus the row's max or log-sum-exp) to about
// 2 ulp, as straight-line float arithmetic so that loops calling it vectorise; std::exp is an
// opaque library call that keeps the softmax passes scalar. Cephes expf: x = n ln2 + r with
// |r| <= ln2 / 2, a degree-7 polynomial for e^r, and 2^n assembled in the exponent bits.
// Below -87, where 2^n would leave the normal range, the result is 0; NaN stays NaN.
inline float exp_nonpositive(float x) {
  constexpr float kLo = -87.0f;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 = hi + lo, hi exact
  // Adding 1.5 * 2^23 rounds to an integer that then sits in the low mantissa bits.
  constexpr float kRound = 12582912.0f;
  constexpr uint32_t kRoundBits = 0x4B400000u;
  const float xc = x < kLo ? kLo : x;
  const float t = xc * kLog2e + kRound;
  const float n = t - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // Unsigned arithmetic on the bits: well defined whatever they hold (NaN reaches the result
  // through p, not through the exponent).
  uint32_t tbits;
  std::memcpy(&tbits, &t, sizeof tbits);
  const uint32_t ebits = (tbits - kRoundBits + 127u) << 23;
  float scale;
  std::memcpy(&scale, &ebits, sizeof scale);
  return x < kLo ? 0.0f : p * scale;
}

// Reduces map(x[j]) over a row with combine, keeping kLanes independent partial results: a single
// running max or sum is a serial dependency chain that IEEE rules forbid the compiler to reorder
// (no -ffast-math here), so it would stay scalar; independent lanes vectorise and also sum more
// accurately.
constexpr int kLanes = 16;

template <typename Map, typename Combine>
float reduce_row(const float* x, int n, float init, Map map, Combine combine) {
  float lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = init;
  int j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] = combine(lane[l], map(x[j + l]));
  for (; j < n; ++j) lane[0] = combine(lane[0], map(x[j]));
  float r = lane[0];
  for (int l = 1; l < kLanes; ++l) r = combine(r, lane[l]);
  return r;
}

float identity(float v) { return v; }
float plus(float a, float b) { return a + b; }

float row_max(const float* x, int n) {
  return reduce_row(x, n, -INFINITY, identity, [](float a, float b) { return b > a ? b : a; });
}

float row_sum(const float* x, int n) { return reduce_row(x, n, 0.0f, identity, plus); }

float row_sum_exp(const float* x, int n, float shift) {
  return reduce_row(
      x, n, 0.0f, [shift](float v) { return exp_nonpositive(v - shift); }, plus);
}

// dst[0, n) += src[0, n). Restrict on parameters (GCC ignores it on locals) lets this vectorise
// without a runtime overlap check.
void add_into(float* __restrict dst, const float* __restrict src, int n) {
  for (int i = 0; i < n; ++i) dst[i] += src[i];
}

// Every row of y [N, O] set to the bias b [O], which the product is then added onto; nothing
// without one.
void fill_bias(int N, int O, const float* b, float* y) {
  if (b)
    for (int n = 0; n < N; ++n)
      std::memcpy(y + static_cast<ptrdiff_t>(n) * O, b, sizeof(float) * O);
}

}  // namespace

void embedding_forward(const float* table, int V, int E, const int32_t* ids, int N, float* out) {
  for (int n = 0; n < N; ++n) {
    assert(ids[n] >= 0 && ids[n] < V);
    std::memcpy(out + static_cast<ptrdiff_t>(n) * E, table + static_cast<ptrdiff_t>(ids[n]) * E,
                sizeof(float) * E);
  }
}

void embedding_backward(const int32_t* ids, int N, int E, const float* dout, float* dtable) {
  for (int n = 0; n < N; ++n)
    add_into(dtable + static_cast<ptrdiff_t>(ids[n]) * E, dout + static_cast<ptrdiff_t>(n) * E, E);
}

void linear_forward(int N, int I, int O, const float* x, const float* W, const float* b, float* y,
                    Precision p) {
  fill_bias(N, O, b, y);
  gemm_at(p, false, true, N, O, I, 1.0f, x, I, W, I, b ? 1.0f : 0.0f, y, O);
}

PackedLinear::PackedLinear(int I, int O, const float* W, const float* b, WeightType type,
                           const float* scales)
    : I_(I), O_(O), w_(type, I, O, W, I, scales) {
  if (b) b_.assign(b, b + O);
}

void PackedLinear::forward(int N, const float* x, float* y) const {
  fill_bias(N, O_, b_.empty() ? nullptr : b_.data(), y);
  w_.product(N, x, I_, b_.empty() ? 0.0f : 1.0f, y, O_);
}

void log_softmax_rows(int N, int V, float* x) {
  for (int n = 0; n < N; ++n) {
    float* row = x + static_cast<ptrdiff_t>(n) * V;
    const float m = row_max(row, V);
    const float lse = m + std::log(row_sum_exp(row, V, m));
    for (int v = 0; v < V; ++v) row[v] -= lse;
  }
}

void linear_backward(int N, int I, int O, const float* x, const float* W, const float* dy,
                     float* dx, float* dW, float* db, Precision p) {
  if (dx) gemm_at(p, false, false, N, I, O, 1.0f, dy, O, W, I, 0.0f, dx, I);
  gemm_at(p, true, false, O, I, N, 1.0f, dy, O, x, I, 1.0f, dW, I);
  if (db)
    for (int n = 0; n < N; ++n) add_into(db, dy + static_cast<ptrdiff_t>(n) * O, O);
}

// Per counted row, with q = (1 - e) onehot(t) + e / V and log p_j = x_j - lse:
//   loss = -sum_j q_j log p_j = lse - (1 - e) x_t - (e / V) sum_j x_j.
double softmax_xent_forward(int N, int V, const float* logits, const int32_t* targets,
                            int ignore_index, float label_smoothing, float* lse, int64_t* count) {
  assert(label_smoothing >= 0.0f && label_smoothing <= 1.0f);
  const double e = label_smoothing;
  double total = 0.0;
  int64_t counted = 0;
  for (int n = 0; n < N; ++n) {
    const float* x = logits + static_cast<ptrdiff_t>(n) * V;
    const float m = row_max(x, V);
    const double row_lse = m + std::log(static_cast<double>(row_sum_exp(x, V, m)));
    lse[n] = static_cast<float>(row_lse);
    const int t = targets[n];
    if (t == ignore_index) continue;
    assert(t >= 0 && t < V);
    double loss = row_lse - (1.0 - e) * x[t];
    if (e != 0.0) loss -= e / V * row_sum(x, V);
    total += loss;
    ++counted;
  }
  *count = counted;
  return total;
}

void softmax_xent_backward(int N, int V, const float* logits, const int32_t* targets,
                           int ignore_index, float label_smoothing, const float* lse, float scale,
                           float* dlogits) {
  const float off = scale * label_smoothing / V;
  const float hit = scale * (1.0f - label_smoothing);
  for (int n = 0; n < N; ++n) {
    // No restrict: dlogits may be logits itself. Each element is read before it is written.
    const float* x = logits + static_cast<ptrdiff_t>(n) * V;
    float* d = dlogits + static_cast<ptrdiff_t>(n) * V;
    const int t = targets[n];
    if (t == ignore_index) {
      std::memset(d, 0, sizeof(float) * V);
      continue;
    }
    const float s = lse[n];
    for (int j = 0; j < V; ++j) d[j] = scale * exp_nonpositive(x[j] - s) - off;
    d[t] -= hit;
  }
}

}  // namespace rnnkit
