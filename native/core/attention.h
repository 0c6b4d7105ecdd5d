// Attention of a decoder over encoder states (Luong et al. 2015; Bahdanau et al. 2014), as
// forward/backward pairs over all decoder steps of a batch at once.
//
// Layout (time-major like the recurrent stacks, row-major, float32):
//   q     [T, B, Hd]   queries: the decoder's top-layer outputs, one per step
//   enc   [S, B, He]   encoder states
//   keys  [S, B, K]    the encoder states as the scores read them (K = attention_key_size)
//   align [T, B, S]    attention weights; row (t, b) sums to 1 over s < lengths[b], 0 beyond
//   ctx   [T, B, He]   context vectors: sum_s align[t, b, s] enc[s, b]
//   out   [T, B, Hd]   attentional hidden state tanh(W_c [ctx; q])
//   lengths [B]        valid source positions of each row (1..S): padded positions get no weight
//
// Scores (the three of Luong et al. 2015, section 3.1):
//   Dot       score(q, s) = q . s                        (He == Hd)
//   General   score(q, s) = q . (W_a s)                  W_a [Hd, He]
//   Additive  score(q, s) = v . tanh(W_q q + W_k s)      W_q [A, Hd], W_k [A, He], v [A]
// The part of a score that depends on the source alone (W_a s, W_k s) is the `keys` tensor,
// computed once per source batch and reused by every decoder step (and every beam hypothesis).
//
// Parameters: one flat buffer, the score's weights first (Dot: none; General: W_a; Additive: W_q,
// W_k, v), then W_c [Hd, He + Hd] (PyTorch nn.Linear layout, no bias, its columns [ctx | q]).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "gemm.h"
#include "qgemm.h"

namespace rnnkit {

enum class AttentionKind : int { Dot = 0, General = 1, Additive = 2 };

struct AttentionShape {
  AttentionKind kind;
  int T, S, B;
  int Hd;  // query and output size (the decoder's hidden size)
  int He;  // encoder state size
  int A;   // Additive: attention size; ignored otherwise
};

// Floats in the flat parameter buffer, and where W_c starts in it.
size_t attention_param_count(const AttentionShape& s);
size_t attention_combine_offset(const AttentionShape& s);
// K: He (Dot), Hd (General), A (Additive).
int attention_key_size(const AttentionShape& s);
// Rows of the weight matrices, in the buffer's order (General: W_a's Hd; Additive: W_q's A, W_k's
// A; then W_c's Hd): the scales int8 weights hold, one per row.
size_t attention_scale_count(const AttentionShape& s);

// keys [S, B, K] from enc [S, B, He].
void attention_keys_forward(const AttentionShape& s, const float* params, const float* enc,
                            float* keys);
// ADDS the gradient of enc into denc and of the score weights into dparams.
void attention_keys_backward(const AttentionShape& s, const float* params, const float* enc,
                             const float* dkeys, float* denc, float* dparams);

// Raw scores [T, B, S] of q against keys; entries s >= lengths[b] are left unspecified.
// qproj [T, B, A]: Additive writes W_q q there for backward; null for the other kinds.
void attention_scores_forward(const AttentionShape& s, const float* params, const float* q,
                              const float* keys, const int32_t* lengths, float* qproj,
                              float* scores);
// From dscores [T, B, S] (entries s >= lengths[b] ignored): ADDS into dq, dkeys and dparams.
// qproj as forward wrote it; dqproj [T, B, A]: Additive's scratch, null for the other kinds.
void attention_scores_backward(const AttentionShape& s, const float* params, const float* q,
                               const float* keys, const int32_t* lengths, const float* qproj,
                               const float* dscores, float* dq, float* dkeys, float* dparams,
                               float* dqproj);

// In place over x [T, B, S]: softmax of each row over s < lengths[b], exact zeros beyond.
void masked_softmax_forward(int T, int B, int S, const int32_t* lengths, float* x);
// In place: dy [T, B, S] becomes d(input) given the forward's output y; zeros beyond lengths[b].
void masked_softmax_backward(int T, int B, int S, const int32_t* lengths, const float* y,
                             float* dy);

// ctx [T, B, He] = align . enc per row.
void attention_context_forward(int T, int B, int S, int He, const float* align, const float* enc,
                               float* ctx);
// WRITES dalign [T, B, S]; ADDS into denc.
void attention_context_backward(int T, int B, int S, int He, const float* align, const float* enc,
                                const float* dctx, float* dalign, float* denc);

// out [N, Hd] = tanh(ctx W_c[:, :He]^T + q W_c[:, He:]^T) over N = T * B rows.
void attention_combine_forward(int N, int He, int Hd, const float* Wc, const float* ctx,
                               const float* q, float* out);
// From dout (overwritten with the pre-activation gradient): WRITES dctx, ADDS into dq and dWc.
void attention_combine_backward(int N, int He, int Hd, const float* Wc, const float* ctx,
                                const float* q, const float* out, float* dout, float* dctx,
                                float* dq, float* dWc);

// The whole Luong attention layer: keys, scores, masked softmax, context and combine, for all T
// decoder steps in one call. ws holds what backward needs (keys, qproj, ctx) followed by backward's
// scratch, so a training step allocates nothing.
size_t luong_attention_workspace_size(const AttentionShape& s);
void luong_attention_forward(const AttentionShape& s, const float* params, const float* q,
                             const float* enc, const int32_t* lengths, float* ws, float* align,
                             float* out);
// Takes what forward took and gave. dout is modified. WRITES dq and denc, ADDS into dparams.
void luong_attention_backward(const AttentionShape& s, const float* params, const float* q,
                              const float* enc, const int32_t* lengths, float* ws,
                              const float* align, const float* out, float* dout, float* dq,
                              float* denc, float* dparams);

// The encoder side that a decoding loop's rows attend to: enc [S, B, He], the keys
// [S, B, attention_key_size] of those states and lengths [B].
struct AttentionSources {
  int S, B;
  const float* enc;
  const float* keys;
  const int32_t* lengths;
};

// The layer for a decoding loop, one decoder step at a time: the weights every step multiplies
// (Additive's W_q, and W_c) and the key projection (General's W_a, Additive's W_k) packed once
// in the weight type given (qgemm.h: for int8, params hold q * scale and scales holds
// attention_scale_count(s) of them, one per matrix row in the buffer's order), the keys computed
// once for all sources and shared by all the rows that attend over the same source, as the
// hypotheses of a beam do. A row's scores and context are plain loops over its own source on the
// calling thread: products of a few rows over a source's 30-odd positions are too small to split,
// and handing them to OpenBLAS would wake its threads, which then spin on the cores the search's
// threads need. Of shape s only kind, Hd, He and A are read: one packed layer serves sources of
// any length and number. Copies the weights it needs. A row's result does not depend on the
// other rows, on how many rows share its source, or on how many sources there are.
class PackedAttention {
 public:
  PackedAttention(const AttentionShape& s, const float* params, WeightType type = WeightType::F32,
                  const float* scales = nullptr);
  // keys [rows, attention_key_size] of enc [rows, He] (rows = S * B for a batch's states), as
  // attention_keys_forward computes them up to float rounding; products split over the threads.
  void keys(int rows, const float* enc, float* keys) const;
  // Floats of workspace that step needs for `rows` rows.
  size_t workspace_size(int rows) const;
  // Rows r in [0, n * K) query source b0 + r / K of src, with q [n * K, Hd]: align [n * K, S]
  // (zeros at and beyond the source's length) and out [n * K, Hd].
  void step(const AttentionSources& src, int b0, int n, int K, const float* q, float* ws,
            float* align, float* out) const;
  // Bytes of the packed weights (and Additive's v).
  size_t bytes() const;

 private:
  AttentionShape s_;
  std::vector<float> v_;                // Additive's v [A]
  std::optional<PackedWeights> query_;  // Additive's W_q^T [Hd, A]
  std::optional<PackedWeights> key_;    // General's W_a^T [He, Hd], Additive's W_k^T [He, A]
  PackedWeights combine_;               // W_c^T [He + Hd, Hd]
};

}  // namespace rnnkit
