// Beam search: rows r = b * beam + k hold hypothesis k of source b, so one stack step, one
// attention step and one output GEMM serve every hypothesis of a group of sources; the
// hypotheses of a source share its encoder states and keys. After each step the surviving
// hypotheses' states are gathered into place. All buffers are allocated up front.
#include "seq2seq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "layers.h"

namespace rnnkit {
namespace {

// Where step t's tensors live in the feeding decoder's workspace: per step the stack input, the
// stack output (the query), the state after the step, the stack's own workspace, the additive
// query projection and the context; then, shared, the keys and backward's scratch.
struct FeedingWorkspace {
  StackShape step;
  AttentionShape as;
  size_t xin, y, h, c, sws, qproj, ctx, per_step;
  float *keys, *dxin, *dy, *dh, *dc, *dh2, *dc2, *dctx, *dalign, *dkeys, *dqproj;
  size_t total;
  float* base;

  FeedingWorkspace(const FeedingShape& f, float* ws) : base(ws) {
    const bool lstm = f.cell == CellType::Lstm;
    step = {f.cell, 1, f.B, f.E + f.H, f.H, f.L, f.dropout, false, true, f.seed};
    as = {f.kind, 1, f.S, f.B, f.H, f.He, f.A};
    const size_t B = f.B, state = static_cast<size_t>(f.L) * B * f.H;
    const size_t A = f.kind == AttentionKind::Additive ? B * f.A : 0;
    size_t at = 0;
    auto take = [&at](size_t n) { return (at += n) - n; };
    xin = take(B * (f.E + f.H));
    y = take(B * f.H);
    h = take(state);
    c = take(lstm ? state : 0);
    sws = take(stack_workspace_size(step));
    qproj = take(A);
    ctx = take(B * f.He);
    per_step = at;
    at = per_step * f.T;
    const size_t K = static_cast<size_t>(attention_key_size(as)) * f.S * B;
    float** shared[] = {&keys, &dxin, &dy, &dh, &dc, &dh2, &dc2, &dctx, &dalign, &dkeys, &dqproj};
    const size_t sizes[] = {K,     B * (f.E + f.H),  B * f.H,  state,   lstm ? state : 0,
                            state, lstm ? state : 0, B * f.He, B * f.S, K,
                            A};
    for (int i = 0; i < 11; ++i) {
      const size_t off = take(sizes[i]);
      *shared[i] = ws ? ws + off : nullptr;
    }
    total = at;
  }
  float* at(int t, size_t offset) const { return base + per_step * t + offset; }
};

// dst [B, E + H] = [x; feed] row by row (feed null: zeros).
void feed_input(const float* x, const float* feed, int B, int E, int H, float* dst) {
  for (int b = 0; b < B; ++b) {
    float* row = dst + static_cast<size_t>(b) * (E + H);
    std::memcpy(row, x + static_cast<size_t>(b) * E, sizeof(float) * E);
    if (feed)
      std::memcpy(row + E, feed + static_cast<size_t>(b) * H, sizeof(float) * H);
    else
      std::memset(row + E, 0, sizeof(float) * H);
  }
}

}  // namespace

size_t feeding_workspace_size(const FeedingShape& f) { return FeedingWorkspace(f, nullptr).total; }

void feeding_decoder_forward(const FeedingShape& f, const float* stack, const float* attention,
                             const float* x, const float* enc, const int32_t* lengths,
                             const float* h0, const float* c0, float* ws, float* out,
                             float* align) {
  FeedingWorkspace w(f, ws);
  const bool lstm = f.cell == CellType::Lstm;
  const size_t B = f.B;
  const float* Wc = attention + attention_combine_offset(w.as);
  attention_keys_forward(w.as, attention, enc, w.keys);
  for (int t = 0; t < f.T; ++t) {
    float* o = out + t * B * f.H;
    float* a = align + t * B * f.S;
    float* y = w.at(t, w.y);
    StackShape step = w.step;
    step.training = f.training;
    step.seed = f.seed + static_cast<uint64_t>(t);
    feed_input(x + t * B * f.E, t > 0 ? o - B * f.H : nullptr, f.B, f.E, f.H, w.at(t, w.xin));
    stack_forward(step, stack, w.at(t, w.xin), nullptr, t > 0 ? w.at(t - 1, w.h) : h0,
                  lstm ? (t > 0 ? w.at(t - 1, w.c) : c0) : nullptr, y, w.at(t, w.h),
                  lstm ? w.at(t, w.c) : nullptr, w.at(t, w.sws));
    attention_scores_forward(w.as, attention, y, w.keys, lengths, w.at(t, w.qproj), a);
    masked_softmax_forward(1, f.B, f.S, lengths, a);
    attention_context_forward(1, f.B, f.S, f.He, a, enc, w.at(t, w.ctx));
    attention_combine_forward(f.B, f.He, f.H, Wc, w.at(t, w.ctx), y, o);
  }
}

void feeding_decoder_backward(const FeedingShape& f, const float* stack, const float* attention,
                              const float* x, const float* enc, const int32_t* lengths,
                              const float* h0, const float* c0, float* ws, const float* out,
                              const float* align, float* dout, float* dx, float* denc, float* dh0,
                              float* dc0, float* dstack, float* dattention) {
  FeedingWorkspace w(f, ws);
  const bool lstm = f.cell == CellType::Lstm;
  const size_t B = f.B, state = static_cast<size_t>(f.L) * B * f.H;
  const size_t wc = attention_combine_offset(w.as);
  std::memset(denc, 0, sizeof(float) * f.S * B * f.He);
  std::memset(w.dkeys, 0, sizeof(float) * f.S * B * attention_key_size(w.as));
  // dh/dc: the gradient reaching the state after step t, carried backwards through the steps.
  std::memset(w.dh, 0, sizeof(float) * state);
  if (lstm) std::memset(w.dc, 0, sizeof(float) * state);
  for (int t = f.T - 1; t >= 0; --t) {
    float* d = dout + t * B * f.H;
    const float* a = align + t * B * f.S;
    const float* y = w.at(t, w.y);
    // The next step read this step's output as input: its gradient joins the loss's.
    if (t + 1 < f.T)
      for (size_t b = 0; b < B; ++b)
        for (int j = 0; j < f.H; ++j) d[b * f.H + j] += w.dxin[b * (f.E + f.H) + f.E + j];
    std::memset(w.dy, 0, sizeof(float) * B * f.H);
    attention_combine_backward(f.B, f.He, f.H, attention + wc, w.at(t, w.ctx), y, out + t * B * f.H,
                               d, w.dctx, w.dy, dattention + wc);
    attention_context_backward(1, f.B, f.S, f.He, a, enc, w.dctx, w.dalign, denc);
    masked_softmax_backward(1, f.B, f.S, lengths, a, w.dalign);
    attention_scores_backward(w.as, attention, y, w.keys, lengths, w.at(t, w.qproj), w.dalign, w.dy,
                              w.dkeys, dattention, w.dqproj);
    StackShape step = w.step;
    step.seed = f.seed + static_cast<uint64_t>(t);
    stack_backward(step, stack, w.at(t, w.xin), nullptr, t > 0 ? w.at(t - 1, w.h) : h0,
                   lstm ? (t > 0 ? w.at(t - 1, w.c) : c0) : nullptr, w.at(t, w.sws), w.dy, w.dh,
                   lstm ? w.dc : nullptr, w.dxin, w.dh2, lstm ? w.dc2 : nullptr, dstack);
    std::swap(w.dh, w.dh2);
    std::swap(w.dc, w.dc2);
    if (dx)
      for (size_t b = 0; b < B; ++b)
        std::memcpy(dx + (t * B + b) * f.E, w.dxin + b * (f.E + f.H), sizeof(float) * f.E);
  }
  if (dh0) std::memcpy(dh0, w.dh, sizeof(float) * state);
  if (dc0 && lstm) std::memcpy(dc0, w.dc, sizeof(float) * state);
  attention_keys_backward(w.as, attention, enc, w.dkeys, denc, dattention);
}

PackedSeq2SeqDecoder::PackedSeq2SeqDecoder(const Seq2SeqDecoderWeights& w)
    : shape(w),
      stack(w.cell, w.V, w.E + (w.input_feeding ? w.H : 0), w.H, w.L, false, w.embedding, w.stack,
            w.weights, w.stack_scales, w.input_feeding ? w.H : 0),
      attention(AttentionShape{w.kind, 1, 1, 1, w.H, w.He, w.A}, w.attention, w.weights,
                w.attention_scales),
      output(w.H, w.V, w.out_weight, w.out_bias, w.weights, w.out_scales) {}

namespace {

// The decoder as a search runs it: packed (PackedSeq2SeqDecoder), or a single float32 row's
// unpacked weights (seq2seq_beam_search in seq2seq.h says why).
struct Decoder {
  const Seq2SeqDecoderShape& w;
  const PackedSeq2SeqDecoder* packed;  // null: unpacked
  const Seq2SeqDecoderWeights* raw;    // the unpacked weights, or null
  const AttentionShape as;
  const int I;  // the stack's input: the embedding (and the attentional state fed beside it)

  Decoder(const PackedSeq2SeqDecoder& d, int S, int B)
      : w(d.shape), packed(&d), raw(nullptr), as(shape(d.shape, S, B)), I(input(d.shape)) {}
  Decoder(const Seq2SeqDecoderWeights& weights, int S, int B)
      : w(weights), packed(nullptr), raw(&weights), as(shape(weights, S, B)), I(input(weights)) {}

  static AttentionShape shape(const Seq2SeqDecoderShape& w, int S, int B) {
    return {w.kind, 1, S, B, w.H, w.He, w.A};
  }
  static int input(const Seq2SeqDecoderShape& w) { return w.E + (w.input_feeding ? w.H : 0); }

  StackShape row_step() const { return {w.cell, 1, 1, I, w.H, w.L, 0.0f, false, false, 0}; }

  // Floats of workspace that step and attend need for R rows.
  size_t stack_workspace_size(int R) const {
    return packed ? packed->stack.workspace_size(R) : I + rnnkit::stack_workspace_size(row_step());
  }
  size_t attention_workspace_size(int R) const {
    return packed ? packed->attention.workspace_size(R) : size_t(qproj()) + as.He;
  }
  // Additive attention's query projection of the single row: A floats, none for the other kinds.
  int qproj() const { return as.kind == AttentionKind::Additive ? as.A : 0; }

  // keys [S, B, attention_key_size] of enc.
  void keys(const float* enc, float* keys) const {
    if (packed)
      packed->attention.keys(as.S * as.B, enc, keys);
    else
      attention_keys_forward(as, raw->attention, enc, keys);
  }

  // One step of the stack over R rows, as PackedStack::step takes it (layer_stride R * H).
  void step(int R, const int32_t* tokens, float* h, float* c, float* y, float* ws,
            const float* feed) const {
    if (packed) {
      packed->stack.step(R, tokens, h, c, size_t(R) * w.H, y, ws, feed);
      return;
    }
    // The single row's input [embedding; feed], then the stack's step in place on its state.
    std::copy_n(raw->embedding + size_t(tokens[0]) * w.E, w.E, ws);
    if (feed) std::copy_n(feed, w.H, ws + w.E);
    stack_forward(row_step(), raw->stack, ws, nullptr, h, c, y, h, c, ws + I);
  }

  // The attention of R rows, as PackedAttention::step takes it.
  void attend(const AttentionSources& src, int b0, int n, int K, const float* q, float* ws,
              float* align, float* out) const {
    if (packed) {
      packed->attention.step(src, b0, n, K, q, ws, align, out);
      return;
    }
    // The single row of a one-source batch: ws holds Additive's query projection, then the
    // context, which like the scores reads the source's own positions alone.
    float* ctx = ws + qproj();
    attention_scores_forward(as, raw->attention, q, src.keys, src.lengths, ws, align);
    masked_softmax_forward(1, 1, as.S, src.lengths, align);
    attention_context_forward(1, 1, src.lengths[0], as.He, align, src.enc, ctx);
    attention_combine_forward(1, as.He, as.Hd, raw->attention + attention_combine_offset(as), ctx,
                              q, out);
  }

  // logits [R, V] from the attentional states out [R, H].
  void logits(int R, const float* out, float* logp) const {
    if (packed)
      packed->output.forward(R, out, logp);
    else
      linear_forward(R, w.H, w.V, out, raw->out_weight, raw->out_bias, logp);
  }
};

// Sources [b0, b0 + n) of a batch with a BeamSearch of their own and every buffer their token loop
// needs, so that run() can run on a helper thread. Rows r = i * beam + k hold hypothesis k of
// source b0 + i; a state is [L, rows, H].
class SourceGroup {
 public:
  SourceGroup(const Decoder& d, const BeamConfig& cfg, int S, int B, const float* h0,
              const float* c0, int b0, int n)
      : d_(d),
        b0_(b0),
        n_(n),
        K_(cfg.beam),
        R_(n * cfg.beam),
        search_(sliced(cfg, b0), n, S, d.w.V),
        h_(size_t(d.w.L) * R_ * d.w.H),
        h2_(h_.size()),
        c_(d.w.cell == CellType::Lstm ? h_.size() : 0),
        c2_(c_.size()),
        y_(size_t(R_) * d.w.H),
        out_(y_.size()),
        feed_(d.w.input_feeding ? y_.size() : 0),
        align_(size_t(R_) * S),
        logp_(size_t(R_) * d.w.V),
        ws_(d.stack_workspace_size(R_)),
        aws_(d.attention_workspace_size(R_)) {
    // Each hypothesis of a source starts from the source's initial state.
    const int H = d.w.H;
    for (int l = 0; l < d.w.L; ++l)
      for (int r = 0; r < R_; ++r) {
        const size_t from = (size_t(l) * B + b0 + r / K_) * H, to = (size_t(l) * R_ + r) * H;
        if (h0) std::copy_n(h0 + from, H, &h_[to]);
        if (c0 && !c_.empty()) std::copy_n(c0 + from, H, &c_[to]);
      }
  }

  // The whole search over the sources' encoder side.
  void run(const AttentionSources& src) {
    const int H = d_.w.H, L = d_.w.L;
    const bool lstm = !c_.empty();
    while (!search_.done()) {
      // feed_ starts at zeros: the first step has no previous attentional state.
      d_.step(R_, search_.tokens(), h_.data(), lstm ? c_.data() : nullptr, y_.data(), ws_.data(),
              feed_.empty() ? nullptr : feed_.data());
      d_.attend(src, b0_, n_, K_, y_.data(), aws_.data(), align_.data(), out_.data());
      d_.logits(R_, out_.data(), logp_.data());
      search_.step(logp_.data(), align_.data());

      // Each row takes its parent's state and attentional state, which feeds the next step. Every
      // row continuing itself (greedy search always) leaves them where they are.
      const int* from = search_.parents();
      bool moved = false;
      for (int r = 0; r < R_ && !moved; ++r) moved = from[r] != r;
      if (!moved) {
        if (!feed_.empty()) std::swap(feed_, out_);
        continue;
      }
      for (int r = 0; r < R_; ++r) {
        const size_t p = from[r];
        if (!feed_.empty()) std::copy_n(&out_[p * H], H, &feed_[size_t(r) * H]);
        for (int l = 0; l < L; ++l) {
          const size_t to = (size_t(l) * R_ + r) * H, fr = (size_t(l) * R_ + p) * H;
          std::copy_n(&h_[fr], H, &h2_[to]);
          if (lstm) std::copy_n(&c_[fr], H, &c2_[to]);
        }
      }
      std::swap(h_, h2_);
      std::swap(c_, c2_);
    }
  }

  // This group's slice of BeamSearch::results's outputs for the whole batch.
  void results(const BeamConfig& cfg, int S, int32_t* tokens, int32_t* lengths, float* scores,
               float* align) const {
    const size_t o = size_t(b0_) * cfg.n_best, T = cfg.max_len;
    search_.results(tokens + o * T, lengths + o, scores + o, align + o * T * S);
  }

 private:
  static BeamConfig sliced(BeamConfig cfg, int b0) {
    cfg.source_offset += b0;
    return cfg;
  }

  const Decoder& d_;
  const int b0_, n_, K_, R_;
  BeamSearch search_;
  std::vector<float> h_, h2_, c_, c2_, y_, out_, feed_, align_, logp_, ws_, aws_;
};

void search(const Decoder& decoder, int S, int B, const float* enc, const int32_t* lengths,
            const float* h0, const float* c0, const BeamConfig& cfg, int32_t* tokens,
            int32_t* out_lengths, float* scores, float* align) {
  // The part of the scores that depends on the sources alone, once for all their hypotheses.
  std::vector<float> keys(size_t(S) * B * attention_key_size(decoder.as));
  decoder.keys(enc, keys.data());
  const AttentionSources src{S, B, enc, keys.data(), lengths};
  // Sources are independent, so with helper threads the batch splits into one group of sources
  // per thread, each running its whole search on its own (its products then on one thread), as
  // language-model generation does. A source's results do not depend on the split.
  const int groups = std::min(B, row_groups(B * cfg.beam));
  std::vector<SourceGroup> group;
  group.reserve(groups);
  for (int g = 0; g < groups; ++g) {
    const int b0 = int(int64_t(g) * B / groups), b1 = int(int64_t(g + 1) * B / groups);
    group.emplace_back(decoder, cfg, S, B, h0, c0, b0, b1 - b0);
  }
  parallel_for(groups, [&](int g) { group[g].run(src); });
  for (const SourceGroup& g : group) g.results(cfg, S, tokens, out_lengths, scores, align);
}

}  // namespace

void seq2seq_beam_search(const Seq2SeqDecoderWeights& w, int S, int B, const float* enc,
                         const int32_t* lengths, const float* h0, const float* c0,
                         const BeamConfig& cfg, int32_t* tokens, int32_t* out_lengths,
                         float* scores, float* align) {
  if (B * cfg.beam > 1 || w.weights != WeightType::F32) {
    const PackedSeq2SeqDecoder packed(w);
    search(Decoder(packed, S, B), S, B, enc, lengths, h0, c0, cfg, tokens, out_lengths, scores,
           align);
  } else {
    search(Decoder(w, S, B), S, B, enc, lengths, h0, c0, cfg, tokens, out_lengths, scores, align);
  }
}

void seq2seq_beam_search(const PackedSeq2SeqDecoder& d, int S, int B, const float* enc,
                         const int32_t* lengths, const float* h0, const float* c0,
                         const BeamConfig& cfg, int32_t* tokens, int32_t* out_lengths,
                         float* scores, float* align) {
  search(Decoder(d, S, B), S, B, enc, lengths, h0, c0, cfg, tokens, out_lengths, scores, align);
}

}  // namespace rnnkit
