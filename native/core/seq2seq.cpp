// Beam search: rows r = b * beam + k hold hypothesis k of source b, so one stack step, one
// attention step and one output GEMM serve every hypothesis of every source. Each source's
// encoder states are repeated for its hypotheses once, before the loop; after each step the
// surviving hypotheses' states are gathered into place. All buffers are allocated up front.
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

void seq2seq_beam_search(const Seq2SeqDecoderWeights& w, int S, int B, const float* enc,
                         const int32_t* lengths, const float* h0, const float* c0,
                         const BeamConfig& cfg, int32_t* tokens, int32_t* out_lengths,
                         float* scores, float* align) {
  const int K = cfg.beam, R = B * K, V = w.V, H = w.H, L = w.L, He = w.He;
  const bool lstm = w.cell == CellType::Lstm;
  const AttentionShape as{w.kind, 1, S, R, H, He, w.A};
  const int Kk = attention_key_size(as);
  const int I = w.E + (w.input_feeding ? H : 0);
  const StackShape ss{w.cell, 1, R, I, H, L, 0.0f, false, false, 0};

  // Encoder states, lengths and initial state repeated for each hypothesis of a source.
  std::vector<float> enc_r(static_cast<size_t>(S) * R * He), keys(static_cast<size_t>(S) * R * Kk);
  std::vector<int32_t> len_r(R);
  std::vector<float> h(static_cast<size_t>(L) * R * H), c(lstm ? h.size() : 0);
  for (int r = 0; r < R; ++r) {
    const int b = r / K;
    len_r[r] = lengths[b];
    for (int s = 0; s < S; ++s)
      std::memcpy(&enc_r[(static_cast<size_t>(s) * R + r) * He],
                  enc + (static_cast<size_t>(s) * B + b) * He, sizeof(float) * He);
    for (int l = 0; l < L; ++l) {
      const size_t from = (static_cast<size_t>(l) * B + b) * H,
                   to = (static_cast<size_t>(l) * R + r) * H;
      if (h0) std::memcpy(&h[to], h0 + from, sizeof(float) * H);
      if (lstm && c0) std::memcpy(&c[to], c0 + from, sizeof(float) * H);
    }
  }
  attention_keys_forward(as, w.attention, enc_r.data(), keys.data());
  const float* Wc = w.attention + attention_combine_offset(as);

  std::vector<float> hT(h.size()), cT(c.size()), emb(static_cast<size_t>(R) * w.E);
  std::vector<float> y(static_cast<size_t>(R) * H), out(y.size());
  // Input feeding: the stack reads [embedding; the row's previous attentional state].
  std::vector<float> xin(w.input_feeding ? static_cast<size_t>(R) * I : 0);
  std::vector<float> feed(w.input_feeding ? y.size() : 0);
  std::vector<float> ctx(static_cast<size_t>(R) * He);
  std::vector<float> qproj(w.kind == AttentionKind::Additive ? static_cast<size_t>(R) * w.A : 0);
  std::vector<float> a(static_cast<size_t>(R) * S), logp(static_cast<size_t>(R) * V);
  std::vector<float> ws(stack_workspace_size(ss));
  BeamSearch search(cfg, B, S, V);
  // The output layer, the largest product of a step, packed once for all of them; a single row
  // (greedy search over one source) streams its weights once a step either way, unpacked.
  std::optional<PackedLinear> output;
  if (R > 1) output.emplace(H, V, w.out_weight, w.out_bias);

  for (bool first = true; !search.done(); first = false) {
    embedding_forward(w.embedding, V, w.E, search.tokens(), R, emb.data());
    if (w.input_feeding)
      feed_input(emb.data(), first ? nullptr : feed.data(), R, w.E, H, xin.data());
    stack_forward(ss, w.stack, w.input_feeding ? xin.data() : emb.data(), nullptr, h.data(),
                  lstm ? c.data() : nullptr, y.data(), hT.data(), lstm ? cT.data() : nullptr,
                  ws.data());
    attention_scores_forward(as, w.attention, y.data(), keys.data(), len_r.data(), qproj.data(),
                             a.data());
    masked_softmax_forward(1, R, S, len_r.data(), a.data());
    attention_context_forward(1, R, S, He, a.data(), enc_r.data(), ctx.data());
    attention_combine_forward(R, He, H, Wc, ctx.data(), y.data(), out.data());
    if (output)
      output->forward(R, out.data(), logp.data());
    else
      linear_forward(R, H, V, out.data(), w.out_weight, w.out_bias, logp.data());
    search.step(logp.data(), a.data());

    // Each row takes its parent's state (and attentional state, which feeds the next step).
    const int* from = search.parents();
    for (int r = 0; r < R; ++r) {
      const int p = from[r];
      if (w.input_feeding)
        std::memcpy(&feed[static_cast<size_t>(r) * H], &out[static_cast<size_t>(p) * H],
                    sizeof(float) * H);
      for (int l = 0; l < L; ++l) {
        const size_t to = (static_cast<size_t>(l) * R + r) * H;
        const size_t fr = (static_cast<size_t>(l) * R + p) * H;
        std::memcpy(&h[to], &hT[fr], sizeof(float) * H);
        if (lstm) std::memcpy(&c[to], &cT[fr], sizeof(float) * H);
      }
    }
  }
  search.results(tokens, out_lengths, scores, align);
}

}  // namespace rnnkit
