// Batched text generation from a recurrent language model, the whole token loop in one call:
//   Embedding(V, E) -> recurrent stack (cell, E -> H, L layers) -> Linear(H -> V) -> sampler.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "layers.h"
#include "recurrent.h"
#include "sampling.h"
#include "token_loop.h"

namespace rnnkit {

// What a language model is, apart from its weights: its cell, sizes and the type its products run
// in (int8: LmWeights's matrices hold q * scale, with one scale per weight row).
struct LmShape {
  CellType cell;
  int V, E, H, L;
  bool residual;
  WeightType weights = WeightType::F32;
};

struct LmWeights : LmShape {
  const float* embedding;       // [V, E]
  const float* stack;           // stack_param_count(cell, E, H, L), the layout of recurrent.h
  const float* decoder_weight;  // [V, H]
  const float* decoder_bias;    // [V], or null for none
  // int8's scales: stack_scales [L, 2, G*H] (each layer's w_ih rows, then w_hh's),
  // decoder_scales [V].
  const float* stack_scales = nullptr;
  const float* decoder_scales = nullptr;
};

// A language model's weights packed for running it a step at a time: what lm_generate runs at
// every step, and what a TokenLoop driven from JS (the serving engine's) runs its rounds on for
// the life of a model. Copies all it needs from the weights, so one can serve every generation of
// a model whose weights no longer change (a quantized one), any number at the same time.
class PackedLm {
 public:
  explicit PackedLm(const LmWeights& w);
  const LmShape shape;
  // Floats of workspace that step needs for B rows.
  size_t workspace_size(int B) const { return stack_.workspace_size(B); }
  // Feeds row b the token tokens[b] (in [0, V)), advancing the state h (and, for LSTM, c), layer
  // l's rows at l * layer_stride, in place; y [B, H] is the stack's output. A row's result does
  // not depend on B or on the other rows. (PackedStack::step.)
  void step(int B, const int32_t* tokens, float* h, float* c, size_t layer_stride, float* y,
            float* ws) const {
    stack_.step(B, tokens, h, c, layer_stride, y, ws);
  }
  // The decoder on n rows of outputs: logits [n, V] from y [n, H].
  void decode(int n, const float* y, float* logits) const { decoder_.forward(n, y, logits); }
  // Bytes of the packed weights (the embedding's table and biases with them).
  size_t bytes() const { return stack_.bytes() + decoder_.bytes(); }

 private:
  PackedStack stack_;
  PackedLinear decoder_;
};

struct GenerateConfig {
  int max_tokens;  // >= 1
  SamplerConfig sampler;
  // Row b samples with sampler_rng(seed, row_offset + b): give each slice of a split batch its
  // first row's index and every prompt gets the tokens it would get in the whole batch.
  uint64_t seed;
  uint64_t row_offset;
};

// Called after each step with the token each row sampled that step, for the n rows still active
// at its start (rows[i] is a prompt index in [0, B)); a row that ended with kFinishError has
// token -1 there. It sees every sampled token, including those of a stop sequence, which the final
// output then drops: a streaming consumer holds back as many trailing tokens as the longest stop
// sequence has, less one. An exception it throws propagates out of lm_generate, which is how a
// caller aborts from inside the loop.
using GenerateProgress =
    std::function<void(int step, const int32_t* rows, const int32_t* tokens, int n)>;

// Working memory of run_feed, grown to the largest round it has run and reused.
struct FeedScratch {
  std::vector<float> h, c, y, last, picked, ws;
  std::vector<int32_t> order, rows, step;
};

// Runs one round of a TokenLoop through the model: each row of `feed` (loop.plan's) reads its
// tokens from its state, which advances in place, and logits [feed.want.size(), V] get the
// decoder's output after the last token of the rows that want it. Rows are stepped together a
// token at a time, the longest feeds first; when the feed is every row of the loop in order,
// longest first (a batch priming together, or every row reading its sampled token), the loop's
// state is stepped where it lies, with no copy.
void run_feed(const PackedLm& model, TokenLoop& loop, const Feed& feed, FeedScratch& s,
              float* logits);

// The negative log-likelihood (nats) summed over every next-token prediction of tokens [n] (ids in
// [0, V), n >= 2), read as `rows` streams of consecutive predictions (1 <= rows <= n - 1; the first
// (n - 1) % rows streams one prediction longer), each from a zero state carried through it: the
// loss of a model as the packed steps compute it (int8 and bf16 weights included).
double lm_score(const PackedLm& model, const int32_t* tokens, int n, int rows);

// Generates up to max_tokens tokens after each prompt (every prompt holds >= 1 token, all token
// ids in [0, V)) on the packed weights; a TokenLoop keeps the rows: the prompts are primed
// together a token at a time (run_feed), each step feeding the rows whose prompts are that long;
// then each step runs the decoder, the sampler and a stack step for the rows still active only. A
// row ends when it has max_tokens tokens, when its generated tokens end with one of the stop
// sequences (non-empty, matched within the generated tokens only), or when *cancel (read once per
// step, may be null) becomes non-zero. Outputs: tokens [B, max_tokens], row b's first lengths[b]
// entries are its tokens (a matched stop sequence is not counted and not kept) and the rest are
// -1; finish [B] holds FinishReason values. Allocates its memory in the first step; nothing after.
void lm_generate(const PackedLm& model, const TokenSpans& prompts, const GenerateConfig& cfg,
                 const TokenSpans& stops, const volatile int32_t* cancel,
                 const GenerateProgress& progress, int32_t* tokens, int32_t* lengths,
                 int32_t* finish);

}  // namespace rnnkit
