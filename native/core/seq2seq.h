// Batched beam search for an attentional sequence-to-sequence decoder, the whole token loop in one
// call. Per step, for all hypotheses of all sources at once:
//   Embedding(V, E) -> recurrent stack (cell, E -> H, L layers) -> Luong attention over the
//   encoder states (attention.h) -> Linear(H -> V) -> log-softmax -> top candidates per source.
// The encoder runs before (its states and the decoder's initial state are inputs).
#pragma once
#include <cstdint>

#include "attention.h"
#include "recurrent.h"

namespace rnnkit {

struct Seq2SeqDecoderWeights {
  CellType cell;
  AttentionKind kind;
  int V, E, H, L;
  int He;                   // encoder state size
  int A;                    // additive attention size (ignored by the other kinds)
  const float* embedding;   // [V, E]
  const float* stack;       // stack_param_count(cell, E, H, L), the layout of recurrent.h
  const float* attention;   // attention_param_count, the layout of attention.h (Hd = H)
  const float* out_weight;  // [V, H]
  const float* out_bias;    // [V]
};

struct BeamConfig {
  int beam;              // hypotheses kept per source, 1..V; 1 is greedy decoding
  int n_best;            // hypotheses returned per source, 1..beam
  int max_len;           // tokens generated per hypothesis at most, the end token included
  float length_penalty;  // GNMT's alpha >= 0: scores are log P / ((5 + length) / 6)^alpha
  int32_t bos, eos;      // start and end tokens, in [0, V)
};

// Decodes B sources: enc [S, B, He] and lengths [B] (1..S) as in attention.h; h0, c0 [L, B, H]
// the decoder's initial state (c0 for LSTM only, else null). A source stops when `beam`
// hypotheses have ended with eos (a candidate eos counts when it ranks among the top `beam`), or
// at max_len, where its unfinished hypotheses join the finished ones.
// Outputs, per source the n_best best hypotheses by normalised score:
//   tokens [B, n_best, max_len]   the tokens without eos, -1 after the end
//   lengths [B, n_best]           tokens kept
//   scores [B, n_best]            normalised log-probability (eos included)
//   align [B, n_best, max_len, S] the attention weights that produced each kept token, 0 after
void seq2seq_beam_search(const Seq2SeqDecoderWeights& w, int S, int B, const float* enc,
                         const int32_t* lengths, const float* h0, const float* c0,
                         const BeamConfig& cfg, int32_t* tokens, int32_t* out_lengths,
                         float* scores, float* align);

}  // namespace rnnkit
