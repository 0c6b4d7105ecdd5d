// Decoders of attentional sequence-to-sequence models whose step loop must run natively: the
// input-feeding decoder (training, forward and backward) and batched beam search (the whole token
// loop in one call; per step, for all hypotheses of a group of sources at once: Embedding(V, E) ->
// recurrent stack (L layers of H) -> Luong attention over the encoder states (attention.h) ->
// Linear(H -> V) -> log-softmax -> top candidates per source). The encoder runs before: its
// states and the decoder's initial state are inputs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "attention.h"
#include "beam.h"
#include "layers.h"
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

// What a decoder is, apart from its weights: its cell, attention, sizes and the type its products
// run in.
struct Seq2SeqDecoderShape {
  CellType cell;
  AttentionKind kind;
  bool input_feeding;  // the stack reads [embedding; previous attentional state], E + H wide
  int V, E, H, L;
  int He;  // encoder state size
  int A;   // additive attention size (ignored by the other kinds)
  // int8: the matrices hold q * scale, with one scale per weight row (Seq2SeqDecoderWeights).
  WeightType weights = WeightType::F32;
};

struct Seq2SeqDecoderWeights : Seq2SeqDecoderShape {
  const float* embedding;   // [V, E]
  const float* stack;       // stack_param_count(cell, E (+ H), H, L), the layout of recurrent.h
  const float* attention;   // attention_param_count, the layout of attention.h (Hd = H)
  const float* out_weight;  // [V, H]
  const float* out_bias;    // [V]
  // int8's scales: stack_scales [L, 2, G*H] (each layer's w_ih rows, then w_hh's),
  // attention_scales [attention_scale_count] (attention.h), out_scales [V].
  const float* stack_scales = nullptr;
  const float* attention_scales = nullptr;
  const float* out_scales = nullptr;
};

// A decoder's weights packed for search: the embedding and recurrent stack (the previous
// attentional state fed beside the embedding with input feeding), the attention (PackedAttention)
// and the output layer. It copies all it needs, so one can serve every search of a model whose
// weights no longer change (a quantized one) for the model's life, any number at the same time.
class PackedSeq2SeqDecoder {
 public:
  explicit PackedSeq2SeqDecoder(const Seq2SeqDecoderWeights& w);
  // Bytes of the packed weights, the embedding's table and the biases.
  size_t bytes() const { return stack.bytes() + attention.bytes() + output.bytes(); }

  const Seq2SeqDecoderShape shape;
  const PackedStack stack;
  const PackedAttention attention;
  const PackedLinear output;
};

// Decodes B sources: enc [S, B, He] and lengths [B] (1..S) as in attention.h; h0, c0 [L, B, H]
// the decoder's initial state (c0 for LSTM only, else null). The search and its outputs are
// BeamSearch's (beam.h). With helper threads the sources split into one group per thread
// (row_groups over their hypotheses), each searching on its own. A source's results do not depend
// on the other sources of the batch, nor on the split.
//
// From weights, a search packs them for itself (PackedSeq2SeqDecoder), except one of a single row
// (greedy search over one source) on float32 weights, whose products run unpacked on OpenBLAS
// (matrix-vector products over its threads): one row streams the weights once a step either way,
// packing would cost more than it saves, and packed products would split over rnnkit's threads
// while OpenBLAS's, between its calls, spin on the same cores. Its results equal the packed
// search's up to float rounding. int8 and bfloat16 products exist only packed (qgemm.h).
void seq2seq_beam_search(const Seq2SeqDecoderWeights& w, int S, int B, const float* enc,
                         const int32_t* lengths, const float* h0, const float* c0,
                         const BeamConfig& cfg, int32_t* tokens, int32_t* out_lengths,
                         float* scores, float* align);
// The same search on weights packed before; its results equal those of the weights' own search.
void seq2seq_beam_search(const PackedSeq2SeqDecoder& d, int S, int B, const float* enc,
                         const int32_t* lengths, const float* h0, const float* c0,
                         const BeamConfig& cfg, int32_t* tokens, int32_t* out_lengths,
                         float* scores, float* align);

}  // namespace rnnkit
