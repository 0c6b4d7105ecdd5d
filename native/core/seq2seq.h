// Decoders of attentional sequence-to-sequence models whose step loop must run natively: the
// input-feeding decoder (training, forward and backward) and batched beam search (the whole token
// loop in one call; per step, for all hypotheses of a group of sources at once: Embedding(V, E) ->
// recurrent stack (L layers of H) -> Luong attention over the encoder states (attention.h) ->
// Linear(H -> V) -> log-softmax -> top candidates per source). The encoder runs before: its
// states and the decoder's initial state are inputs.
#pragma once
#include <cstdint>

#include "attention.h"
#include "beam.h"
#include "recurrent.h"

namespace rnnkit {

// The input-feeding decoder (Luong et al. 2015, section 3.3): step t's recurrent input is the
// target embedding beside the previous step's attentional state, [x_t; out_{t-1}] with
// out_{-1} = 0, so the attention sits inside the step loop, which runs here forward and backward
// over all T steps in one call. Layout as attention.h: x [T, B, E], enc [S, B, He], out [T, B, H],
// align [T, B, S]; the stack's input size is E + H.
struct FeedingShape {
  CellType cell;
  AttentionKind kind;
  int T, S, B, E, H, L, He, A;
  float dropout;  // between stacked layers, when training
  bool training;  // apply dropout (the workspace always keeps what backward needs)
  uint64_t seed;
};

size_t feeding_workspace_size(const FeedingShape& f);
// h0, c0 [L, B, H] (c0 for LSTM only; null: zeros). Rows past their own target length run on
// like the rest; their outputs are for the caller's loss to ignore.
void feeding_decoder_forward(const FeedingShape& f, const float* stack, const float* attention,
                             const float* x, const float* enc, const int32_t* lengths,
                             const float* h0, const float* c0, float* ws, float* out, float* align);
// Takes what forward took and gave; dout [T, B, H] is modified. WRITES dx, denc and dh0/dc0 (each
// may be null when not needed but denc), ADDS into dstack and dattention.
void feeding_decoder_backward(const FeedingShape& f, const float* stack, const float* attention,
                              const float* x, const float* enc, const int32_t* lengths,
                              const float* h0, const float* c0, float* ws, const float* out,
                              const float* align, float* dout, float* dx, float* denc, float* dh0,
                              float* dc0, float* dstack, float* dattention);

struct Seq2SeqDecoderWeights {
  CellType cell;
  AttentionKind kind;
  bool input_feeding;  // the stack reads [embedding; previous attentional state], E + H wide
  int V, E, H, L;
  int He;                   // encoder state size
  int A;                    // additive attention size (ignored by the other kinds)
  const float* embedding;   // [V, E]
  const float* stack;       // stack_param_count(cell, E (+ H), H, L), the layout of recurrent.h
  const float* attention;   // attention_param_count, the layout of attention.h (Hd = H)
  const float* out_weight;  // [V, H]
  const float* out_bias;    // [V]
  // The type the search's products run in. int8: the matrices above hold q * scale, with one
  // scale per weight row: stack_scales [L, 2, G*H] (each layer's w_ih rows, then w_hh's),
  // attention_scales [attention_scale_count] (attention.h), out_scales [V]. Quantized weights
  // are packed for every search, a single row's too.
  WeightType weights = WeightType::F32;
  const float* stack_scales = nullptr;
  const float* attention_scales = nullptr;
  const float* out_scales = nullptr;
};

// Decodes B sources: enc [S, B, He] and lengths [B] (1..S) as in attention.h; h0, c0 [L, B, H]
// the decoder's initial state (c0 for LSTM only, else null). The search and its outputs are
// BeamSearch's (beam.h). The weights are packed once per call; with helper threads the sources
// split into one group per thread (row_groups over their hypotheses), each searching on its own.
// A source's results do not depend on the other sources of the batch, nor on the split.
void seq2seq_beam_search(const Seq2SeqDecoderWeights& w, int S, int B, const float* enc,
                         const int32_t* lengths, const float* h0, const float* c0,
                         const BeamConfig& cfg, int32_t* tokens, int32_t* out_lengths,
                         float* scores, float* align);

}  // namespace rnnkit
