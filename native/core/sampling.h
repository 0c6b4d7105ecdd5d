// Next-token sampling for generation loops: one row's token from its logits and its history, with
// the usual knobs (temperature, top-k, top-p, repetition penalty, no-repeat n-grams).
#pragma once
#include <cstdint>
#include <vector>

#include "random.h"

namespace rnnkit {

struct SamplerConfig {
  // 0: greedy argmax (ties go to the lowest id), which draws no random number.
  float temperature = 1;
  // Keep only the k highest logits; 0: off.
  int top_k = 0;
  // Nucleus: keep the smallest set of most likely tokens whose probability reaches top_p (at least
  // one token); 1: off.
  float top_p = 1;
  // CTRL-style: the logit of every token present in the row's history is divided by the penalty
  // when positive and multiplied by it when negative; 1: off.
  float repetition_penalty = 1;
  // Bans every token that would complete an n-gram already present in the history; 0: off.
  int no_repeat_ngram = 0;
};

// Whether sample_token reads the history at all (a generation loop need not keep it otherwise).
inline bool sampler_uses_history(const SamplerConfig& c) {
  return c.repetition_penalty != 1 || c.no_repeat_ngram > 0;
}

// Working memory for sample_token, sized once for a vocabulary of V tokens and reused for every
// call, so sampling allocates nothing.
struct SamplerScratch {
  explicit SamplerScratch(int V) : index(V), mark(V, 0) {}
  std::vector<int32_t> index;
  std::vector<uint8_t> mark;  // all zero between calls
};

// The generator of row `row` of a generation seeded with `seed`. A pure function of the two, so a
// prompt's tokens do not depend on how a batch was split (row = row offset + index in the batch).
inline Rng sampler_rng(uint64_t seed, uint64_t row) { return Rng(seed ^ mix64(row)); }

// What sample_token returns when no token has a finite logit: a broken model (NaN or Inf weights,
// or an overflow) left nothing to sample from, and the caller ends the row with an error.
constexpr int32_t kNoFiniteLogit = -1;

// Samples one row's next token from logits [V], which it overwrites. history [n_history] holds the
// row's tokens so far (prompt, then generated), each in [0, V); it may be null when
// sampler_uses_history(cfg) is false. Steps: repetition penalty, no-repeat-n-gram ban (skipped
// when it would ban every token), temperature, top-k, top-p, then one multinomial draw. NaN logits
// count as -inf and +inf as the largest float. A sampled (temperature > 0) token always consumes
// exactly one rng.uniform(), so a row's stream advances one value per token whatever the logits.
// The result is in [0, V), or kNoFiniteLogit when no logit is finite after the penalty and ban.
int32_t sample_token(const SamplerConfig& cfg, float* logits, int V, const int32_t* history,
                     int n_history, Rng& rng, SamplerScratch& scratch);

}  // namespace rnnkit
