// Attention on the device (attention.cpp's twins). The CPU runs one GEMM per batch row over
// strided views of the time-major tensors; here the B row GEMMs are one strided-batched GEMM.
// Batched GEMMs have one shape for all rows, so scores and context run over all S source
// positions: positions past a row's length get no weight from the masked softmax, and the
// gradients of the scores are masked before they flow back, so the results are those of the
// per-length CPU GEMMs.
#include <cstring>

#include "common.cuh"

namespace rnnkit {
namespace cuda {
namespace {

struct ScoreWeights {
  const float *Wa, *Wq, *Wk, *v;
};

ScoreWeights score_weights(const AttentionShape& s, const float* p) {
  switch (s.kind) {
    case AttentionKind::General:
      return {p, nullptr, nullptr, nullptr};
    case AttentionKind::Additive: {
      const float* Wq = p;
      const float* Wk = Wq + size_t(s.A) * s.Hd;
      return {nullptr, Wq, Wk, Wk + size_t(s.A) * s.He};
    }
    default:
      return {nullptr, nullptr, nullptr, nullptr};
  }
}

float* grad_at(const float* params, const float* w, float* dparams) {
  return dparams + (w - params);
}

template <typename T>
__device__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__global__ void add_into(size_t n, const float* __restrict__ src, float* __restrict__ dst) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] += src[i];
}

// One warp per score (t, b, s < lengths[b]): v . tanh(qproj[t, b] + keys[s, b]).
__global__ void additive_scores(int T, int B, int S, int A, const float* __restrict__ v,
                                const float* __restrict__ qproj, const float* __restrict__ keys,
                                const int32_t* __restrict__ lengths, float* __restrict__ scores) {
  const size_t w = (blockIdx.x * size_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= size_t(T) * B * S) return;
  const int s = int(w % S), b = int(w / S % B);
  if (s >= lengths[b]) return;  // a whole warp leaves together
  const size_t tb = w / S, sb = size_t(s) * B + b;
  float acc = 0.0f;
  for (int a = lane; a < A; a += 32) acc += v[a] * tanhf(qproj[tb * A + a] + keys[sb * A + a]);
  acc = warp_sum(acc);
  if (lane == 0) scores[w] = acc;
}

// Per (t, b, a): d(W_q q)[t, b, a] = sum_s g v[a] (1 - th^2), and that row's share of dv,
// sum_s g th (summed over rows afterwards), with g = dscores[t, b, s] and
// th = tanh(qproj[t, b, a] + keys[s, b, a]).
__global__ void additive_query_grad(int T, int B, int S, int A, const float* __restrict__ v,
                                    const float* __restrict__ qproj, const float* __restrict__ keys,
                                    const int32_t* __restrict__ lengths,
                                    const float* __restrict__ dscores, float* __restrict__ dqproj,
                                    float* __restrict__ dvrow) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(T) * B * A) return;
  const size_t tb = i / A;
  const int a = int(i % A), b = int(tb % B);
  const float x = qproj[i];
  float dq = 0.0f, dv = 0.0f;
  for (int s = 0; s < lengths[b]; ++s) {
    const float g = dscores[tb * S + s];
    const float th = tanhf(x + keys[(size_t(s) * B + b) * A + a]);
    dv += g * th;
    dq += g * v[a] * (1.0f - th * th);
  }
  dqproj[i] = dq;
  dvrow[i] = dv;
}

// Per (s, b, a) with s < lengths[b]: dkeys[s, b, a] += sum_t g v[a] (1 - th^2).
__global__ void additive_key_grad(int T, int B, int S, int A, const float* __restrict__ v,
                                  const float* __restrict__ qproj, const float* __restrict__ keys,
                                  const int32_t* __restrict__ lengths,
                                  const float* __restrict__ dscores, float* __restrict__ dkeys) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(S) * B * A) return;
  const size_t sb = i / A;
  const int a = int(i % A), b = int(sb % B), s = int(sb / B);
  if (s >= lengths[b]) return;
  const float y = keys[i];
  float dk = 0.0f;
  for (int t = 0; t < T; ++t) {
    const size_t tb = size_t(t) * B + b;
    const float th = tanhf(qproj[tb * A + a] + y);
    dk += dscores[tb * S + s] * v[a] * (1.0f - th * th);
  }
  dkeys[i] += dk;
}

// dst = src with the entries s >= lengths[b] of every row (t, b) set to zero.
__global__ void mask_rows(int T, int B, int S, const int32_t* __restrict__ lengths,
                          const float* __restrict__ src, float* __restrict__ dst) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(T) * B * S) return;
  const int s = int(i % S), b = int(i / S % B);
  dst[i] = s < lengths[b] ? src[i] : 0.0f;
}

// One warp per row (t, b); the sum of exponentials in double, as attention.cpp does.
__global__ void softmax_rows(int rows, int B, int S, const int32_t* __restrict__ lengths,
                             float* x) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= rows) return;
  float* row = x + size_t(r) * S;
  const int n = lengths[r % B];
  float m = -INFINITY;
  for (int j = lane; j < n; j += 32) m = fmaxf(m, row[j]);
  m = warp_max(m);
  double sum = 0.0;
  for (int j = lane; j < n; j += 32) {
    const float e = expf(row[j] - m);
    row[j] = e;
    sum += e;
  }
  const float inv = float(1.0 / warp_sum(sum));
  for (int j = lane; j < S; j += 32) row[j] = j < n ? row[j] * inv : 0.0f;
}

__global__ void softmax_rows_backward(int rows, int B, int S, const int32_t* __restrict__ lengths,
                                      const float* __restrict__ y, float* dy) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float* yr = y + size_t(r) * S;
  float* d = dy + size_t(r) * S;
  const int n = lengths[r % B];
  double dot = 0.0;
  for (int j = lane; j < n; j += 32) dot += double(yr[j]) * d[j];
  const float fdot = float(warp_sum(dot));
  for (int j = lane; j < S; j += 32) d[j] = j < n ? yr[j] * (d[j] - fdot) : 0.0f;
}

__global__ void tanh_in_place(size_t n, float* x) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = tanhf(x[i]);
}

__global__ void tanh_grad(size_t n, const float* __restrict__ out, float* __restrict__ dout) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) dout[i] *= 1.0f - out[i] * out[i];
}

unsigned warp_blocks(size_t warps) { return blocks_for(warps * 32); }

// attention.cpp's workspace: keys, qproj and ctx are kept from forward for backward; the rest is
// backward's.
struct LuongWorkspace {
  float *keys, *qproj, *ctx, *dctx, *dalign, *dkeys, *dqproj;
  size_t total;
  LuongWorkspace(const AttentionShape& s, float* ws) {
    const size_t TB = size_t(s.T) * s.B, SB = size_t(s.S) * s.B;
    const size_t additive = s.kind == AttentionKind::Additive ? TB * s.A : 0;
    const size_t K = attention_key_size(s);
    const size_t sizes[] = {SB * K, additive, TB * s.He, TB * s.He, TB * s.S, SB * K, additive};
    float** slots[] = {&keys, &qproj, &ctx, &dctx, &dalign, &dkeys, &dqproj};
    total = 0;
    for (int i = 0; i < 7; ++i) {
      *slots[i] = ws ? ws + total : nullptr;
      total += sizes[i];
    }
  }
};

}  // namespace

void attention_keys_forward(const AttentionShape& s, const float* params, const float* enc,
                            float* keys) {
  const int rows = s.S * s.B;
  const ScoreWeights w = score_weights(s, params);
  switch (s.kind) {
    case AttentionKind::General:
      gemm(false, true, rows, s.Hd, s.He, 1.0f, enc, s.He, w.Wa, s.He, 0.0f, keys, s.Hd);
      break;
    case AttentionKind::Additive:
      gemm(false, true, rows, s.A, s.He, 1.0f, enc, s.He, w.Wk, s.He, 0.0f, keys, s.A);
      break;
    default:
      copy_on_device(keys, enc, sizeof(float) * rows * s.He);
  }
}

void attention_keys_backward(const AttentionShape& s, const float* params, const float* enc,
                             const float* dkeys, float* denc, float* dparams) {
  const int rows = s.S * s.B;
  if (s.kind == AttentionKind::Dot) {
    const size_t n = size_t(rows) * s.He;
    add_into<<<blocks_for(n), kThreads, 0, stream()>>>(n, dkeys, denc);
    check_launch("attention_keys_backward add_into");
    return;
  }
  const ScoreWeights w = score_weights(s, params);
  const float* W = s.kind == AttentionKind::General ? w.Wa : w.Wk;
  const int K = attention_key_size(s);
  gemm(false, false, rows, s.He, K, 1.0f, dkeys, K, W, s.He, 1.0f, denc, s.He);
  gemm(true, false, K, s.He, rows, 1.0f, dkeys, K, enc, s.He, 1.0f, grad_at(params, W, dparams),
       s.He);
}

void attention_scores_forward(const AttentionShape& s, const float* params, const float* q,
                              const float* keys, const int32_t* lengths, float* qproj,
                              float* scores) {
  const int K = attention_key_size(s), B = s.B;
  if (s.kind != AttentionKind::Additive) {
    gemm_batched(false, true, s.T, s.S, K, 1.0f, q, B * s.Hd, s.Hd, keys, B * K, K, 0.0f, scores,
                 B * s.S, s.S, B);
    return;
  }
  const ScoreWeights w = score_weights(s, params);
  gemm(false, true, s.T * B, s.A, s.Hd, 1.0f, q, s.Hd, w.Wq, s.Hd, 0.0f, qproj, s.A);
  const size_t warps = size_t(s.T) * B * s.S;
  additive_scores<<<warp_blocks(warps), kThreads, 0, stream()>>>(s.T, B, s.S, s.A, w.v, qproj, keys,
                                                                 lengths, scores);
  check_launch("additive_scores");
}

void attention_scores_backward(const AttentionShape& s, const float* params, const float* q,
                               const float* keys, const int32_t* lengths, const float* qproj,
                               const float* dscores, float* dq, float* dkeys, float* dparams,
                               float* dqproj) {
  const int K = attention_key_size(s), B = s.B;
  const size_t TB = size_t(s.T) * B;
  if (s.kind != AttentionKind::Additive) {
    float* ds = static_cast<float*>(scratch(sizeof(float) * TB * s.S));
    mask_rows<<<blocks_for(TB * s.S), kThreads, 0, stream()>>>(s.T, B, s.S, lengths, dscores, ds);
    check_launch("attention_scores_backward mask_rows");
    gemm_batched(false, false, s.T, K, s.S, 1.0f, ds, B * s.S, s.S, keys, B * K, K, 1.0f, dq,
                 B * s.Hd, s.Hd, B);
    gemm_batched(true, false, s.S, K, s.T, 1.0f, ds, B * s.S, s.S, q, B * s.Hd, s.Hd, 1.0f, dkeys,
                 B * K, K, B);
    return;
  }
  const ScoreWeights w = score_weights(s, params);
  float* dvrow = static_cast<float*>(scratch(sizeof(float) * TB * s.A));
  additive_query_grad<<<blocks_for(TB * s.A), kThreads, 0, stream()>>>(
      s.T, B, s.S, s.A, w.v, qproj, keys, lengths, dscores, dqproj, dvrow);
  check_launch("additive_query_grad");
  const size_t SBA = size_t(s.S) * B * s.A;
  additive_key_grad<<<blocks_for(SBA), kThreads, 0, stream()>>>(s.T, B, s.S, s.A, w.v, qproj, keys,
                                                                lengths, dscores, dkeys);
  check_launch("additive_key_grad");
  add_column_sums(TB, s.A, dvrow, s.A, grad_at(params, w.v, dparams));
  gemm(false, false, int(TB), s.Hd, s.A, 1.0f, dqproj, s.A, w.Wq, s.Hd, 1.0f, dq, s.Hd);
  gemm(true, false, s.A, s.Hd, int(TB), 1.0f, dqproj, s.A, q, s.Hd, 1.0f,
       grad_at(params, w.Wq, dparams), s.Hd);
}

void masked_softmax_forward(int T, int B, int S, const int32_t* lengths, float* x) {
  const int rows = T * B;
  if (rows == 0) return;
  softmax_rows<<<warp_blocks(rows), kThreads, 0, stream()>>>(rows, B, S, lengths, x);
  check_launch("masked_softmax_forward");
}

void masked_softmax_backward(int T, int B, int S, const int32_t* lengths, const float* y,
                             float* dy) {
  const int rows = T * B;
  if (rows == 0) return;
  softmax_rows_backward<<<warp_blocks(rows), kThreads, 0, stream()>>>(rows, B, S, lengths, y, dy);
  check_launch("masked_softmax_backward");
}

void attention_context_forward(int T, int B, int S, int He, const float* align, const float* enc,
                               float* ctx) {
  gemm_batched(false, false, T, He, S, 1.0f, align, B * S, S, enc, B * He, He, 0.0f, ctx, B * He,
               He, B);
}

void attention_context_backward(int T, int B, int S, int He, const float* align, const float* enc,
                                const float* dctx, float* dalign, float* denc) {
  gemm_batched(false, true, T, S, He, 1.0f, dctx, B * He, He, enc, B * He, He, 0.0f, dalign, B * S,
               S, B);
  gemm_batched(true, false, S, He, T, 1.0f, align, B * S, S, dctx, B * He, He, 1.0f, denc, B * He,
               He, B);
}

void attention_combine_forward(int N, int He, int Hd, const float* Wc, const float* ctx,
                               const float* q, float* out) {
  const int ld = He + Hd;
  gemm(false, true, N, Hd, He, 1.0f, ctx, He, Wc, ld, 0.0f, out, Hd);
  gemm(false, true, N, Hd, Hd, 1.0f, q, Hd, Wc + He, ld, 1.0f, out, Hd);
  const size_t n = size_t(N) * Hd;
  if (n == 0) return;
  tanh_in_place<<<blocks_for(n), kThreads, 0, stream()>>>(n, out);
  check_launch("attention_combine tanh");
}

void attention_combine_backward(int N, int He, int Hd, const float* Wc, const float* ctx,
                                const float* q, const float* out, float* dout, float* dctx,
                                float* dq, float* dWc) {
  const int ld = He + Hd;
  const size_t n = size_t(N) * Hd;
  if (n > 0) {
    tanh_grad<<<blocks_for(n), kThreads, 0, stream()>>>(n, out, dout);
    check_launch("attention_combine tanh_grad");
  }
  gemm(false, false, N, He, Hd, 1.0f, dout, Hd, Wc, ld, 0.0f, dctx, He);
  gemm(false, false, N, Hd, Hd, 1.0f, dout, Hd, Wc + He, ld, 1.0f, dq, Hd);
  gemm(true, false, Hd, He, N, 1.0f, dout, Hd, ctx, He, 1.0f, dWc, ld);
  gemm(true, false, Hd, Hd, N, 1.0f, dout, Hd, q, Hd, 1.0f, dWc + He, ld);
}

size_t luong_attention_workspace_size(const AttentionShape& s) {
  return LuongWorkspace(s, nullptr).total;
}

// The calls below name cuda:: because argument-dependent lookup on AttentionShape would also
// find the CPU functions of namespace rnnkit.
void luong_attention_forward(const AttentionShape& s, const float* params, const float* q,
                             const float* enc, const int32_t* lengths, float* ws, float* align,
                             float* out) {
  LuongWorkspace w(s, ws);
  cuda::attention_keys_forward(s, params, enc, w.keys);
  cuda::attention_scores_forward(s, params, q, w.keys, lengths, w.qproj, align);
  cuda::masked_softmax_forward(s.T, s.B, s.S, lengths, align);
  cuda::attention_context_forward(s.T, s.B, s.S, s.He, align, enc, w.ctx);
  cuda::attention_combine_forward(s.T * s.B, s.He, s.Hd, params + attention_combine_offset(s),
                                  w.ctx, q, out);
}

void luong_attention_backward(const AttentionShape& s, const float* params, const float* q,
                              const float* enc, const int32_t* lengths, float* ws,
                              const float* align, const float* out, float* dout, float* dq,
                              float* denc, float* dparams) {
  LuongWorkspace w(s, ws);
  const size_t TB = size_t(s.T) * s.B, SB = size_t(s.S) * s.B;
  fill_zero(dq, sizeof(float) * TB * s.Hd);
  fill_zero(denc, sizeof(float) * SB * s.He);
  fill_zero(w.dkeys, sizeof(float) * SB * attention_key_size(s));
  const size_t wc = attention_combine_offset(s);
  cuda::attention_combine_backward(s.T * s.B, s.He, s.Hd, params + wc, w.ctx, q, out, dout, w.dctx,
                                   dq, dparams + wc);
  cuda::attention_context_backward(s.T, s.B, s.S, s.He, align, enc, w.dctx, w.dalign, denc);
  cuda::masked_softmax_backward(s.T, s.B, s.S, lengths, align, w.dalign);
  cuda::attention_scores_backward(s, params, q, w.keys, lengths, w.qproj, w.dalign, dq, w.dkeys,
                                  dparams, w.dqproj);
  cuda::attention_keys_backward(s, params, enc, w.dkeys, denc, dparams);
}

}  // namespace cuda
}  // namespace rnnkit
