// Attention kernels: plain loops around per-row GEMMs. A batch row's matrices are strided views
// of the time-major tensors (row b of enc [S, B, He] is enc + b * He with leading dimension
// B * He), so no tensor is ever transposed or copied into a batch-major layout. The GEMMs of row b
// stop at its own source length, so padded positions cost nothing and receive nothing.
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "gemm.h"
#include "recurrent_cells.h"

namespace rnnkit {
namespace {

using cells::tanh_approx;

// Offsets of the score weights in the flat parameter buffer.
struct ScoreWeights {
  const float *Wa, *Wq, *Wk, *v;  // null where the kind has none
};

ScoreWeights score_weights(const AttentionShape& s, const float* p) {
  switch (s.kind) {
    case AttentionKind::General:
      return {p, nullptr, nullptr, nullptr};
    case AttentionKind::Additive: {
      const float* Wq = p;
      const float* Wk = Wq + static_cast<size_t>(s.A) * s.Hd;
      return {nullptr, Wq, Wk, Wk + static_cast<size_t>(s.A) * s.He};
    }
    default:
      return {nullptr, nullptr, nullptr, nullptr};
  }
}

// The same offsets into a gradient buffer.
float* grad_at(const float* params, const float* w, float* dparams) {
  return dparams + (w - params);
}

// sum_i term(i) over i < n with independent partial sums, so that the loop vectorises.
template <class Term>
float lane_sum(int n, Term term) {
  constexpr int kLanes = 8;
  float lane[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += term(i + l);
  float r = 0;
  for (; i < n; ++i) r += term(i);
  for (int l = 0; l < kLanes; ++l) r += lane[l];
  return r;
}

// sum_a v[a] tanh(x[a] + y[a]).
float additive_score(const float* v, const float* x, const float* y, int A) {
  return lane_sum(A, [&](int a) { return v[a] * tanh_approx(x[a] + y[a]); });
}

float dot(const float* x, const float* y, int n) {
  return lane_sum(n, [&](int i) { return x[i] * y[i]; });
}

// One (t, b, s) term of the additive backward: g = dscore.
void additive_score_backward(float g, const float* __restrict v, const float* __restrict x,
                             const float* __restrict y, int A, float* __restrict dv,
                             float* __restrict dx, float* __restrict dy) {
  for (int a = 0; a < A; ++a) {
    const float th = tanh_approx(x[a] + y[a]);
    dv[a] += g * th;
    const float dz = g * v[a] * (1.0f - th * th);
    dx[a] += dz;
    dy[a] += dz;
  }
}

}  // namespace

int attention_key_size(const AttentionShape& s) {
  switch (s.kind) {
    case AttentionKind::General:
      return s.Hd;
    case AttentionKind::Additive:
      return s.A;
    default:
      return s.He;
  }
}

size_t attention_scale_count(const AttentionShape& s) {
  const int score = s.kind == AttentionKind::General    ? s.Hd
                    : s.kind == AttentionKind::Additive ? 2 * s.A
                                                        : 0;
  return size_t(score) + s.Hd;
}

size_t attention_combine_offset(const AttentionShape& s) {
  switch (s.kind) {
    case AttentionKind::General:
      return static_cast<size_t>(s.Hd) * s.He;
    case AttentionKind::Additive:
      return static_cast<size_t>(s.A) * (s.Hd + s.He + 1);
    default:
      return 0;
  }
}

size_t attention_param_count(const AttentionShape& s) {
  return attention_combine_offset(s) + static_cast<size_t>(s.Hd) * (s.He + s.Hd);
}

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
      std::memcpy(keys, enc, sizeof(float) * rows * s.He);
  }
}

void attention_keys_backward(const AttentionShape& s, const float* params, const float* enc,
                             const float* dkeys, float* denc, float* dparams) {
  const int rows = s.S * s.B;
  const ScoreWeights w = score_weights(s, params);
  const float* W = s.kind == AttentionKind::General ? w.Wa : w.Wk;
  const int K = attention_key_size(s);
  if (s.kind == AttentionKind::Dot) {
    for (size_t i = 0; i < static_cast<size_t>(rows) * s.He; ++i) denc[i] += dkeys[i];
    return;
  }
  gemm(false, false, rows, s.He, K, 1.0f, dkeys, K, W, s.He, 1.0f, denc, s.He);
  gemm(true, false, K, s.He, rows, 1.0f, dkeys, K, enc, s.He, 1.0f, grad_at(params, W, dparams),
       s.He);
}

void attention_scores_forward(const AttentionShape& s, const float* params, const float* q,
                              const float* keys, const int32_t* lengths, float* qproj,
                              float* scores) {
  const int K = attention_key_size(s), B = s.B;
  if (s.kind != AttentionKind::Additive) {
    for (int b = 0; b < B; ++b)
      gemm(false, true, s.T, lengths[b], K, 1.0f, q + b * s.Hd, B * s.Hd, keys + b * K, B * K, 0.0f,
           scores + b * s.S, B * s.S);
    return;
  }
  const ScoreWeights w = score_weights(s, params);
  gemm(false, true, s.T * B, s.A, s.Hd, 1.0f, q, s.Hd, w.Wq, s.Hd, 0.0f, qproj, s.A);
  for (int t = 0; t < s.T; ++t)
    for (int b = 0; b < B; ++b) {
      const float* x = qproj + (static_cast<size_t>(t) * B + b) * s.A;
      float* row = scores + (static_cast<size_t>(t) * B + b) * s.S;
      for (int j = 0; j < lengths[b]; ++j)
        row[j] = additive_score(w.v, x, keys + (static_cast<size_t>(j) * B + b) * s.A, s.A);
    }
}

void attention_scores_backward(const AttentionShape& s, const float* params, const float* q,
                               const float* keys, const int32_t* lengths, const float* qproj,
                               const float* dscores, float* dq, float* dkeys, float* dparams,
                               float* dqproj) {
  const int K = attention_key_size(s), B = s.B;
  if (s.kind != AttentionKind::Additive) {
    for (int b = 0; b < B; ++b) {
      const float* ds = dscores + b * s.S;
      gemm(false, false, s.T, K, lengths[b], 1.0f, ds, B * s.S, keys + b * K, B * K, 1.0f,
           dq + b * s.Hd, B * s.Hd);
      gemm(true, false, lengths[b], K, s.T, 1.0f, ds, B * s.S, q + b * s.Hd, B * s.Hd, 1.0f,
           dkeys + b * K, B * K);
    }
    return;
  }
  const ScoreWeights w = score_weights(s, params);
  float* dv = grad_at(params, w.v, dparams);
  // d(score) / d(W_q q) for every (t, b), then one GEMM each for dq and dW_q.
  std::memset(dqproj, 0, sizeof(float) * s.T * B * s.A);
  for (int t = 0; t < s.T; ++t)
    for (int b = 0; b < B; ++b) {
      const size_t tb = static_cast<size_t>(t) * B + b;
      const float* ds = dscores + tb * s.S;
      for (int j = 0; j < lengths[b]; ++j) {
        const size_t jb = static_cast<size_t>(j) * B + b;
        additive_score_backward(ds[j], w.v, qproj + tb * s.A, keys + jb * s.A, s.A, dv,
                                dqproj + tb * s.A, dkeys + jb * s.A);
      }
    }
  gemm(false, false, s.T * B, s.Hd, s.A, 1.0f, dqproj, s.A, w.Wq, s.Hd, 1.0f, dq, s.Hd);
  gemm(true, false, s.A, s.Hd, s.T * B, 1.0f, dqproj, s.A, q, s.Hd, 1.0f,
       grad_at(params, w.Wq, dparams), s.Hd);
}

void masked_softmax_forward(int T, int B, int S, const int32_t* lengths, float* x) {
  for (int t = 0; t < T; ++t)
    for (int b = 0; b < B; ++b) {
      float* row = x + (static_cast<size_t>(t) * B + b) * S;
      const int n = lengths[b];
      float m = row[0];
      for (int j = 1; j < n; ++j) m = std::fmax(m, row[j]);
      double sum = 0;
      for (int j = 0; j < n; ++j) sum += row[j] = std::exp(row[j] - m);
      const float inv = static_cast<float>(1.0 / sum);
      for (int j = 0; j < n; ++j) row[j] *= inv;
      for (int j = n; j < S; ++j) row[j] = 0.0f;
    }
}

void masked_softmax_backward(int T, int B, int S, const int32_t* lengths, const float* y,
                             float* dy) {
  for (int t = 0; t < T; ++t)
    for (int b = 0; b < B; ++b) {
      const size_t at = (static_cast<size_t>(t) * B + b) * S;
      const float* yr = y + at;
      float* d = dy + at;
      const int n = lengths[b];
      double dot = 0;
      for (int j = 0; j < n; ++j) dot += static_cast<double>(yr[j]) * d[j];
      for (int j = 0; j < n; ++j) d[j] = yr[j] * (d[j] - static_cast<float>(dot));
      for (int j = n; j < S; ++j) d[j] = 0.0f;
    }
}

// Row b's align entries beyond its length are zero, so its GEMMs stop at lengths[b]; the context
// kernels take no lengths and find it instead as the S of a dense row, which is always safe.
void attention_context_forward(int T, int B, int S, int He, const float* align, const float* enc,
                               float* ctx) {
  for (int b = 0; b < B; ++b)
    gemm(false, false, T, He, S, 1.0f, align + b * S, B * S, enc + b * He, B * He, 0.0f,
         ctx + b * He, B * He);
}

void attention_context_backward(int T, int B, int S, int He, const float* align, const float* enc,
                                const float* dctx, float* dalign, float* denc) {
  for (int b = 0; b < B; ++b) {
    gemm(false, true, T, S, He, 1.0f, dctx + b * He, B * He, enc + b * He, B * He, 0.0f,
         dalign + b * S, B * S);
    gemm(true, false, S, He, T, 1.0f, align + b * S, B * S, dctx + b * He, B * He, 1.0f,
         denc + b * He, B * He);
  }
}

void attention_combine_forward(int N, int He, int Hd, const float* Wc, const float* ctx,
                               const float* q, float* out) {
  const int ld = He + Hd;
  gemm(false, true, N, Hd, He, 1.0f, ctx, He, Wc, ld, 0.0f, out, Hd);
  gemm(false, true, N, Hd, Hd, 1.0f, q, Hd, Wc + He, ld, 1.0f, out, Hd);
  const size_t n = static_cast<size_t>(N) * Hd;
  for (size_t i = 0; i < n; ++i) out[i] = tanh_approx(out[i]);
}

void attention_combine_backward(int N, int He, int Hd, const float* Wc, const float* ctx,
                                const float* q, const float* out, float* dout, float* dctx,
                                float* dq, float* dWc) {
  const int ld = He + Hd;
  const size_t n = static_cast<size_t>(N) * Hd;
  for (size_t i = 0; i < n; ++i) dout[i] *= 1.0f - out[i] * out[i];
  gemm(false, false, N, He, Hd, 1.0f, dout, Hd, Wc, ld, 0.0f, dctx, He);
  gemm(false, false, N, Hd, Hd, 1.0f, dout, Hd, Wc + He, ld, 1.0f, dq, Hd);
  gemm(true, false, Hd, He, N, 1.0f, dout, Hd, ctx, He, 1.0f, dWc, ld);
  gemm(true, false, Hd, Hd, N, 1.0f, dout, Hd, q, Hd, 1.0f, dWc + He, ld);
}

namespace {

// The workspace: keys, qproj and ctx are kept from forward for backward; the rest is backward's.
struct LuongWorkspace {
  float *keys, *qproj, *ctx, *dctx, *dalign, *dkeys, *dqproj;
  size_t total;
  LuongWorkspace(const AttentionShape& s, float* ws) {
    const size_t TB = static_cast<size_t>(s.T) * s.B, SB = static_cast<size_t>(s.S) * s.B;
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

size_t luong_attention_workspace_size(const AttentionShape& s) {
  return LuongWorkspace(s, nullptr).total;
}

void luong_attention_forward(const AttentionShape& s, const float* params, const float* q,
                             const float* enc, const int32_t* lengths, float* ws, float* align,
                             float* out) {
  LuongWorkspace w(s, ws);
  attention_keys_forward(s, params, enc, w.keys);
  attention_scores_forward(s, params, q, w.keys, lengths, w.qproj, align);
  masked_softmax_forward(s.T, s.B, s.S, lengths, align);
  attention_context_forward(s.T, s.B, s.S, s.He, align, enc, w.ctx);
  attention_combine_forward(s.T * s.B, s.He, s.Hd, params + attention_combine_offset(s), w.ctx, q,
                            out);
}

void luong_attention_backward(const AttentionShape& s, const float* params, const float* q,
                              const float* enc, const int32_t* lengths, float* ws,
                              const float* align, const float* out, float* dout, float* dq,
                              float* denc, float* dparams) {
  LuongWorkspace w(s, ws);
  const size_t TB = static_cast<size_t>(s.T) * s.B, SB = static_cast<size_t>(s.S) * s.B;
  std::memset(dq, 0, sizeof(float) * TB * s.Hd);
  std::memset(denc, 0, sizeof(float) * SB * s.He);
  std::memset(w.dkeys, 0, sizeof(float) * SB * attention_key_size(s));
  const size_t wc = attention_combine_offset(s);
  attention_combine_backward(s.T * s.B, s.He, s.Hd, params + wc, w.ctx, q, out, dout, w.dctx, dq,
                             dparams + wc);
  attention_context_backward(s.T, s.B, s.S, s.He, align, enc, w.dctx, w.dalign, denc);
  masked_softmax_backward(s.T, s.B, s.S, lengths, align, w.dalign);
  attention_scores_backward(s, params, q, w.keys, lengths, w.qproj, w.dalign, dq, w.dkeys, dparams,
                            w.dqproj);
  attention_keys_backward(s, params, enc, w.dkeys, denc, dparams);
}

PackedAttention::PackedAttention(const AttentionShape& s, const float* params, WeightType type,
                                 const float* scales)
    : s_(s),
      combine_(type, s.He + s.Hd, s.Hd, params + attention_combine_offset(s), s.He + s.Hd,
               scales ? scales + attention_scale_count(s) - s.Hd : nullptr) {
  const ScoreWeights w = score_weights(s, params);
  if (s.kind == AttentionKind::Additive) {
    v_.assign(w.v, w.v + s.A);
    query_.emplace(type, s.Hd, s.A, w.Wq, s.Hd, scales);
  }
  if (s.kind != AttentionKind::Dot) {
    const bool general = s.kind == AttentionKind::General;
    key_.emplace(type, s.He, attention_key_size(s), general ? w.Wa : w.Wk, s.He,
                 scales && !general ? scales + s.A : scales);
  }
}

void PackedAttention::keys(int rows, const float* enc, float* keys) const {
  if (key_)
    key_->product(rows, enc, s_.He, 0.0f, keys, key_->cols());
  else
    std::memcpy(keys, enc, sizeof(float) * rows * s_.He);
}

size_t PackedAttention::workspace_size(int rows) const {
  const size_t additive = s_.kind == AttentionKind::Additive ? size_t(s_.A) : 0;
  return size_t(rows) * (s_.He + s_.Hd + additive);
}

size_t PackedAttention::bytes() const {
  return combine_.bytes() + (query_ ? query_->bytes() : 0) + (key_ ? key_->bytes() : 0) +
         sizeof(float) * v_.size();
}

void PackedAttention::step(const AttentionSources& src, int b0, int n, int K, const float* q,
                           float* ws, float* align, float* out) const {
  const int S = src.S, B = src.B, Hd = s_.Hd, He = s_.He, A = s_.A, Kk = attention_key_size(s_);
  const int R = n * K, ld = He + Hd;
  // Each row's [context; q], the combine layer's input.
  float* cq = ws;
  float* qproj = ws + size_t(R) * ld;
  if (query_) query_->product(R, q, Hd, 0.0f, qproj, A);
  for (int i = 0; i < n; ++i) {
    const int b = b0 + i, len = src.lengths[b];
    const size_t r0 = size_t(i) * K;
    float* a = align + r0 * S;
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < len; ++j) {
        const float* key = src.keys + (size_t(j) * B + b) * Kk;
        a[size_t(k) * S + j] = query_ ? additive_score(v_.data(), qproj + (r0 + k) * A, key, A)
                                      : dot(q + (r0 + k) * Hd, key, Kk);
      }
    masked_softmax_forward(K, 1, S, &len, a);
    // Each row's context, sum_j a[j] enc[j], one source position after another.
    for (int k = 0; k < K; ++k) {
      const float* ak = a + size_t(k) * S;
      float* ctx = cq + (r0 + k) * ld;
      std::fill(ctx, ctx + He, 0.0f);
      for (int j = 0; j < len; ++j) {
        const float* e = src.enc + (size_t(j) * B + b) * He;
        for (int i = 0; i < He; ++i) ctx[i] += ak[j] * e[i];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    std::memcpy(cq + size_t(r) * ld + He, q + size_t(r) * Hd, sizeof(float) * Hd);
  combine_.product(R, cq, ld, 0.0f, out, Hd);
  const size_t outs = size_t(R) * Hd;
  for (size_t i = 0; i < outs; ++i) out[i] = tanh_approx(out[i]);
}

}  // namespace rnnkit
