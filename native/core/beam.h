// Batched beam search apart from the model that scores the tokens: which hypotheses are alive,
// their scores, tokens and attention rows, and the finished ones. seq2seq_beam_search (seq2seq.h)
// drives it with the native decoder; the addon hands it to JS, where the ONNX decoder drives it
// one step at a time, so both backends search exactly alike.
#pragma once
#include <cstdint>
#include <vector>

#include "sampling.h"

namespace rnnkit {

struct BeamConfig {
  int beam;              // hypotheses kept per source, 1..V; 1 is greedy decoding
  int n_best;            // hypotheses returned per source, 1..beam
  int max_len;           // tokens generated per hypothesis at most, the end token included
  float length_penalty;  // GNMT's alpha >= 0: scores are log P / ((5 + length) / 6)^alpha
  int32_t bos, eos;      // start and end tokens, in [0, V)
  // With beam 1, temperature > 0 samples each token instead of taking the argmax, with the
  // language model's sampler (sampling.h); source b draws from sampler_rng(seed, source_offset +
  // b). The history the sampler's penalties read is the hypothesis's own output. A search over a
  // slice of a batch gives its first source's index as source_offset, and each source draws what
  // it would in the whole batch.
  SamplerConfig sampler = {0.0f};
  uint64_t seed = 0;
  uint64_t source_offset = 0;
};

struct BeamHypothesis {
  double score;  // normalised
  std::vector<int32_t> tokens;
  std::vector<float> align;  // [tokens, S]
};

struct BeamCandidate {
  double total;  // unnormalised log-probability of the extended hypothesis
  int beam;      // k
  int32_t token;
};

// B sources over S source positions and a target vocabulary of V tokens. Rows r = b * beam + k
// hold hypothesis k of source b; at first only k = 0 is alive and every row's token is bos. A
// decoding loop feeds tokens() to the decoder, passes the resulting logits and attention to
// step(), and moves each row's decoder state to where parents() says, until done(). A source stops
// when `beam` hypotheses have ended with eos (a candidate eos counts when it ranks among the top
// `beam`), or at max_len, where its unfinished hypotheses join the finished ones.
class BeamSearch {
 public:
  BeamSearch(const BeamConfig& cfg, int B, int S, int V);

  int rows() const { return static_cast<int>(ids_.size()); }
  // Every source has stopped or max_len steps have run.
  bool done() const;
  // The token each row reads next.
  const int32_t* tokens() const { return ids_.data(); }
  // After a step: row r continues the hypothesis that row parents()[r] held before it.
  const int* parents() const { return from_.data(); }

  // logits [rows, V] of every row's next token (turned into log-probabilities in place) and
  // align [rows, S], the attention that produced them: chooses each source's next hypotheses.
  void step(float* logits, const float* align);

  // Per source the n_best best hypotheses by normalised score:
  //   tokens [B, n_best, max_len]   the tokens without eos, -1 after the end
  //   lengths [B, n_best]           tokens kept
  //   scores [B, n_best]            normalised log-probability (eos included)
  //   align [B, n_best, max_len, S] the attention weights that produced each kept token, 0 after
  void results(int32_t* tokens, int32_t* lengths, float* scores, float* align) const;

 private:
  BeamHypothesis hypothesis(int r, int n, double normalised) const;

  BeamConfig cfg_;
  int B_, S_, V_, K_, T_;
  int step_ = 0;
  bool sampling_;
  std::vector<int32_t> ids_, hist_, hist2_;
  std::vector<float> ahist_, ahist2_;
  std::vector<double> score_, score2_;
  std::vector<int> from_;
  std::vector<std::vector<BeamHypothesis>> finished_;
  std::vector<char> done_;
  std::vector<BeamCandidate> cand_;
  std::vector<Rng> rngs_;
  SamplerScratch scratch_;
  std::vector<float> row_;
};

}  // namespace rnnkit
