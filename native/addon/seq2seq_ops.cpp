// N-API glue for sequence-to-sequence models: the Luong attention layer (forward/backward over all
// decoder steps), the input-feeding decoder (forward/backward), batched beam search (a Promise,
// or the sync twin) and the BeamSearch class, the same search driven by a decoder outside the
// addon (onnxruntime).
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "attention.h"
#include "ops.h"
#include "packed.h"
#include "recurrent.h"
#include "seq2seq.h"

namespace rnnkit_addon {

rnnkit::SamplerConfig parse_sampler(Parser& p, Napi::Object o, const std::string& obj,
                                    int V);  // generate_ops.cpp

namespace {

using rnnkit::AttentionKind;
using rnnkit::AttentionShape;

std::string shape_str(const char* names, std::initializer_list<long long> sizes) {
  std::string s = std::string(names) + " =";
  for (long long n : sizes) s += (s.back() == '=' ? " " : "*") + std::to_string(n);
  return s;
}

AttentionKind parse_kind(Parser& p, Napi::Value v, const std::string& name) {
  return static_cast<AttentionKind>(p.choice(v, name, {"dot", "general", "additive"}));
}

// Dot scores compare decoder and encoder states directly, so their sizes must agree.
void check_dot_sizes(Parser& p, AttentionKind kind, int Hd, int He, const char* obj) {
  if (kind == AttentionKind::Dot && Hd != He)
    p.range_error(std::string("dot attention needs '") + obj + ".He' (" + std::to_string(He) +
                  ") equal to the decoder's hidden size (" + std::to_string(Hd) + ")");
}

AttentionShape parse_attention_shape(Parser& p, Napi::Object o) {
  AttentionShape s;
  s.kind = parse_kind(p, o.Get("kind"), "shape.kind");
  s.T = p.size(o, "shape", "T");
  s.S = p.size(o, "shape", "S");
  s.B = p.size(o, "shape", "B");
  s.Hd = p.size(o, "shape", "Hd");
  s.He = p.size(o, "shape", "He");
  s.A = p.size(o, "shape", "A");
  check_dot_sizes(p, s.kind, s.Hd, s.He, "shape");
  return s;
}

// The fields forward and backward share: {shape, params, q, enc, lengths, ws, align, out} of the
// call's one options object.
struct LuongArgs {
  AttentionShape s;
  const float *params, *q, *enc;
  const int32_t* lengths;
  float *ws, *align, *out;
  explicit LuongArgs(Parser& p) {
    p.options();
    s = parse_attention_shape(p, p.object("shape"));
    params = p.f32("params", rnnkit::attention_param_count(s), "attentionParamCount(shape)");
    q = p.f32("q", size_t(s.T) * s.B * s.Hd, shape_str("T*B*Hd", {s.T, s.B, s.Hd}));
    enc = p.f32("enc", size_t(s.S) * s.B * s.He, shape_str("S*B*He", {s.S, s.B, s.He}));
    lengths = p.lengths("lengths", s.B, s.S, "S", false);
    ws = p.f32("ws", rnnkit::luong_attention_workspace_size(s), "attentionWorkspaceSize(shape)");
    align = p.f32("align", size_t(s.T) * s.B * s.S, shape_str("T*B*S", {s.T, s.B, s.S}));
    out = p.f32("out", size_t(s.T) * s.B * s.Hd, shape_str("T*B*Hd", {s.T, s.B, s.Hd}));
  }
};

// luongAttentionForward({shape, params, q, enc, lengths, ws, align, out})
struct LuongAttentionForward {
  static constexpr const char* name = "luongAttentionForward";
  LuongArgs a;
  explicit LuongAttentionForward(Parser& p) : a(p) {}
  void run() {
    rnnkit::luong_attention_forward(a.s, a.params, a.q, a.enc, a.lengths, a.ws, a.align, a.out);
  }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// luongAttentionBackward({shape, params, q, enc, lengths, ws, align, out, dout, dq, denc, dparams})
struct LuongAttentionBackward {
  static constexpr const char* name = "luongAttentionBackward";
  LuongArgs a;
  float *dout, *dq, *denc, *dparams;
  explicit LuongAttentionBackward(Parser& p) : a(p) {
    const AttentionShape& s = a.s;
    dout = p.f32("dout", size_t(s.T) * s.B * s.Hd, shape_str("T*B*Hd", {s.T, s.B, s.Hd}));
    dq = p.f32("dq", size_t(s.T) * s.B * s.Hd, shape_str("T*B*Hd", {s.T, s.B, s.Hd}));
    denc = p.f32("denc", size_t(s.S) * s.B * s.He, shape_str("S*B*He", {s.S, s.B, s.He}));
    dparams = p.f32("dparams", rnnkit::attention_param_count(s), "attentionParamCount(shape)");
  }
  void run() {
    rnnkit::luong_attention_backward(a.s, a.params, a.q, a.enc, a.lengths, a.ws, a.align, a.out,
                                     dout, dq, denc, dparams);
  }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

rnnkit::FeedingShape parse_feeding_shape(Parser& p, Napi::Object o) {
  rnnkit::FeedingShape f;
  f.cell = static_cast<rnnkit::CellType>(
      p.choice(o.Get("cell"), "shape.cell", {"rnn_tanh", "rnn_relu", "lstm", "gru"}));
  f.kind = parse_kind(p, o.Get("kind"), "shape.kind");
  f.T = p.size(o, "shape", "T");
  f.S = p.size(o, "shape", "S");
  f.B = p.size(o, "shape", "B");
  f.E = p.size(o, "shape", "E");
  f.H = p.size(o, "shape", "H");
  f.L = p.size(o, "shape", "L");
  f.He = p.size(o, "shape", "He");
  f.A = p.size(o, "shape", "A");
  check_dot_sizes(p, f.kind, f.H, f.He, "shape");
  f.dropout = static_cast<float>(p.number(o.Get("dropout"), "shape.dropout", 0, 0.99));
  f.training = p.boolean(o.Get("training"), "shape.training");
  f.seed = static_cast<uint64_t>(p.integer(o.Get("seed"), "shape.seed", 0, 9007199254740991LL));
  return f;
}

// The fields the feeding decoder's forward and backward share: {shape, stack, attention, x, enc,
// lengths, h0, c0, ws, out, align} of the call's one options object.
struct FeedingArgs {
  rnnkit::FeedingShape f;
  bool lstm;
  const float *stack, *attention, *x, *enc, *h0, *c0;
  const int32_t* lengths;
  float *ws, *out, *align;
  size_t state;
  explicit FeedingArgs(Parser& p) {
    p.options();
    f = parse_feeding_shape(p, p.object("shape"));
    lstm = f.cell == rnnkit::CellType::Lstm;
    const AttentionShape as{f.kind, 1, 1, 1, f.H, f.He, f.A};
    state = size_t(f.L) * f.B * f.H;
    stack = p.f32("stack", rnnkit::stack_param_count(f.cell, f.E + f.H, f.H, f.L),
                  "stackParamCount(cell, E + H, H, L)");
    attention = p.f32("attention", rnnkit::attention_param_count(as), "attentionParamCount(shape)");
    x = p.f32("x", size_t(f.T) * f.B * f.E, shape_str("T*B*E", {f.T, f.B, f.E}));
    enc = p.f32("enc", size_t(f.S) * f.B * f.He, shape_str("S*B*He", {f.S, f.B, f.He}));
    lengths = p.lengths("lengths", f.B, f.S, "S", false);
    h0 = p.f32("h0", state, shape_str("L*B*H", {f.L, f.B, f.H}), true);
    c0 = p.lstm_state(lstm, "c0", state, shape_str("L*B*H", {f.L, f.B, f.H}), true);
    ws = p.f32("ws", rnnkit::feeding_workspace_size(f), "feedingWorkspaceSize(shape)");
    out = p.f32("out", size_t(f.T) * f.B * f.H, shape_str("T*B*H", {f.T, f.B, f.H}));
    align = p.f32("align", size_t(f.T) * f.B * f.S, shape_str("T*B*S", {f.T, f.B, f.S}));
  }
};

// feedingDecoderForward({shape, stack, attention, x, enc, lengths, h0, c0, ws, out, align})
struct FeedingDecoderForward {
  static constexpr const char* name = "feedingDecoderForward";
  FeedingArgs a;
  explicit FeedingDecoderForward(Parser& p) : a(p) {}
  void run() {
    rnnkit::feeding_decoder_forward(a.f, a.stack, a.attention, a.x, a.enc, a.lengths, a.h0, a.c0,
                                    a.ws, a.out, a.align);
  }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// feedingDecoderBackward({shape, stack, attention, x, enc, lengths, h0, c0, ws, out, align,
//   dout, dx, denc, dh0, dc0, dstack, dattention})
struct FeedingDecoderBackward {
  static constexpr const char* name = "feedingDecoderBackward";
  FeedingArgs a;
  float *dout, *dx, *denc, *dh0, *dc0, *dstack, *dattention;
  explicit FeedingDecoderBackward(Parser& p) : a(p) {
    const rnnkit::FeedingShape& f = a.f;
    if (!f.training)
      p.range_error("'shape.training' must be true: backward needs a training forward");
    const std::string state = shape_str("L*B*H", {f.L, f.B, f.H});
    dout = p.f32("dout", size_t(f.T) * f.B * f.H, shape_str("T*B*H", {f.T, f.B, f.H}));
    dx = p.f32("dx", size_t(f.T) * f.B * f.E, shape_str("T*B*E", {f.T, f.B, f.E}), true);
    denc = p.f32("denc", size_t(f.S) * f.B * f.He, shape_str("S*B*He", {f.S, f.B, f.He}));
    dh0 = p.f32("dh0", a.state, state, true);
    dc0 = p.lstm_state(a.lstm, "dc0", a.state, state, true);
    dstack = p.f32("dstack", rnnkit::stack_param_count(f.cell, f.E + f.H, f.H, f.L),
                   "stackParamCount(cell, E + H, H, L)");
    dattention =
        p.f32("dattention", rnnkit::attention_param_count({f.kind, 1, 1, 1, f.H, f.He, f.A}),
              "attentionParamCount(shape)");
  }
  void run() {
    rnnkit::feeding_decoder_backward(a.f, a.stack, a.attention, a.x, a.enc, a.lengths, a.h0, a.c0,
                                     a.ws, a.out, a.align, dout, dx, denc, dh0, dc0, dstack,
                                     dattention);
  }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

Napi::Value FeedingWorkspaceSize(const Napi::CallbackInfo& info) {
  Parser p(info, "feedingWorkspaceSize");
  rnnkit::FeedingShape f = parse_feeding_shape(p, p.object(0, "shape"));
  return Napi::Number::New(info.Env(), static_cast<double>(rnnkit::feeding_workspace_size(f)));
}

// A beam search's config {S, B, beam, nBest, maxLength, lengthPenalty, bos, eos, temperature,
// topK, topP, repetitionPenalty, noRepeatNgramSize, seed} for a target vocabulary of V tokens.
struct BeamArgs {
  int S, B;
  rnnkit::BeamConfig cfg;
};

BeamArgs parse_beam_config(Parser& p, Napi::Object c, int V) {
  BeamArgs a;
  rnnkit::BeamConfig& cfg = a.cfg;
  a.S = p.size(c, "config", "S");
  a.B = p.size(c, "config", "B");
  cfg.beam = p.size(c, "config", "beam");
  if (cfg.beam > V)
    p.range_error("'config.beam' must be at most the target vocabulary size " + std::to_string(V) +
                  ", got " + std::to_string(cfg.beam));
  cfg.n_best = p.size(c, "config", "nBest");
  if (cfg.n_best > cfg.beam)
    p.range_error("'config.nBest' must be at most config.beam = " + std::to_string(cfg.beam) +
                  ", got " + std::to_string(cfg.n_best));
  cfg.max_len = p.size(c, "config", "maxLength");
  cfg.length_penalty =
      static_cast<float>(p.number(c.Get("lengthPenalty"), "config.lengthPenalty", 0, 100));
  cfg.bos = static_cast<int32_t>(p.integer(c.Get("bos"), "config.bos", 0, V - 1));
  cfg.eos = static_cast<int32_t>(p.integer(c.Get("eos"), "config.eos", 0, V - 1));
  cfg.sampler = parse_sampler(p, c, "config", V);
  if (cfg.sampler.temperature > 0 && cfg.beam != 1)
    p.range_error("sampling ('config.temperature' > 0) needs 'config.beam' = 1, got " +
                  std::to_string(cfg.beam));
  cfg.seed = static_cast<uint64_t>(p.integer(c.Get("seed"), "config.seed", 0, 9007199254740991LL));
  const double out_floats = double(a.B) * cfg.n_best * cfg.max_len * a.S;
  if (out_floats > double(1u << 30))
    p.range_error("the attention output " +
                  shape_str("B*nBest*maxLength*S", {a.B, cfg.n_best, cfg.max_len, a.S}) +
                  " floats is too large; decode fewer sources at a time or lower maxLength");
  return a;
}

// {tokens [B*nBest*maxLength], lengths [B*nBest], scores [B*nBest], align [..*S]}
Napi::Object beam_result_object(Napi::Env env, Napi::Int32Array tokens, Napi::Int32Array lengths,
                                Napi::Float32Array scores, Napi::Float32Array align) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("tokens", tokens);
  r.Set("lengths", lengths);
  r.Set("scores", scores);
  r.Set("align", align);
  return r;
}

// A finished search's n_best hypotheses per source, as beam_result_object.
Napi::Value beam_results(Napi::Env env, const rnnkit::BeamSearch& search, const BeamArgs& a) {
  const size_t n = size_t(a.B) * a.cfg.n_best;
  auto tokens = Napi::Int32Array::New(env, n * a.cfg.max_len);
  auto lengths = Napi::Int32Array::New(env, n);
  auto scores = Napi::Float32Array::New(env, n);
  auto align = Napi::Float32Array::New(env, tokens.ElementLength() * a.S);
  search.results(tokens.Data(), lengths.Data(), scores.Data(), align.Data());
  return beam_result_object(env, tokens, lengths, scores, align);
}

// A decoder's fields of an options object: decoder {cell, kind, inputFeeding, V, E, H, L, He, A},
// embedding, stack, attention, outWeight, outBias, weights? ('float32' | 'int8' | 'bf16'),
// stackScales?, attentionScales?, outScales? (int8's).
rnnkit::Seq2SeqDecoderWeights parse_decoder(Parser& p) {
  rnnkit::Seq2SeqDecoderWeights w;
  Napi::Object d = p.object("decoder");
  w.cell = static_cast<rnnkit::CellType>(
      p.choice(d.Get("cell"), "decoder.cell", {"rnn_tanh", "rnn_relu", "lstm", "gru"}));
  w.kind = parse_kind(p, d.Get("kind"), "decoder.kind");
  w.input_feeding = p.boolean(d.Get("inputFeeding"), "decoder.inputFeeding");
  w.V = p.size(d, "decoder", "V");
  w.E = p.size(d, "decoder", "E");
  w.H = p.size(d, "decoder", "H");
  w.L = p.size(d, "decoder", "L");
  w.He = p.size(d, "decoder", "He");
  w.A = p.size(d, "decoder", "A");
  check_dot_sizes(p, w.kind, w.H, w.He, "decoder");
  const AttentionShape as{w.kind, 1, 1, 1, w.H, w.He, w.A};
  w.embedding = p.f32("embedding", size_t(w.V) * w.E, shape_str("V*E", {w.V, w.E}));
  w.stack = p.f32(
      "stack", rnnkit::stack_param_count(w.cell, w.E + (w.input_feeding ? w.H : 0), w.H, w.L),
      w.input_feeding ? "stackParamCount(cell, E + H, H, L)" : "stackParamCount(cell, E, H, L)");
  w.attention = p.f32("attention", rnnkit::attention_param_count(as), "attentionParamCount(shape)");
  w.out_weight = p.f32("outWeight", size_t(w.V) * w.H, shape_str("V*H", {w.V, w.H}));
  w.out_bias = p.f32("outBias", w.V, "V");
  w.weights = parse_weight_type(p, p.field("weights"), "weights");
  w.stack_scales = parse_scales(p, w.weights, p.field("stackScales"), "stackScales",
                                size_t(2) * w.L * rnnkit::gate_count(w.cell) * w.H,
                                shape_str("L*2*G*H", {w.L, 2, rnnkit::gate_count(w.cell), w.H}));
  w.attention_scales =
      parse_scales(p, w.weights, p.field("attentionScales"), "attentionScales",
                   rnnkit::attention_scale_count(as), "attentionScaleCount(shape)");
  w.out_scales = parse_scales(p, w.weights, p.field("outScales"), "outScales", w.V, "V");
  return w;
}

// new PackedSeq2SeqDecoder({decoder fields as parse_decoder reads them}) (packed.h).
struct PackedDecoderTraits {
  static constexpr const char* name = "PackedSeq2SeqDecoder";
  using Packed = rnnkit::PackedSeq2SeqDecoder;
  static constexpr napi_type_tag tag = {0x7365713273657164ULL, 0x72726e6e6b69745fULL};
  static rnnkit::Seq2SeqDecoderWeights parse(Parser& p) {
    p.options();
    return parse_decoder(p);
  }
};

// An options object's `packed` field, read first: a PackedSeq2SeqDecoder's model, or null where
// the field is absent.
std::shared_ptr<const rnnkit::PackedSeq2SeqDecoder> packed_field(Parser& p) {
  p.options();
  Napi::Value v = p.field("packed");
  if (v.IsUndefined()) return nullptr;
  auto packed = PackedObject<PackedDecoderTraits>::of(p, v, "packed");
  if (!packed) p.type_error("'packed' must be a PackedSeq2SeqDecoder, got " + Parser::describe(v));
  return packed;
}

// seq2seqBeamSearch({packed (a PackedSeq2SeqDecoder) | the decoder's fields (parse_decoder), enc,
//   lengths, h0, c0, config {S, B, beam, nBest, maxLength, lengthPenalty, bos, eos, temperature,
//   topK, topP, repetitionPenalty, noRepeatNgramSize, seed}})
//   -> {tokens [B*nBest*maxLength], lengths [B*nBest], scores [B*nBest], align [..*S]}
struct Seq2SeqBeamSearch {
  static constexpr const char* name = "seq2seqBeamSearch";
  ModelArg<PackedDecoderTraits, rnnkit::Seq2SeqDecoderWeights> model;
  rnnkit::BeamConfig cfg;
  int S, B;
  const float *enc, *h0, *c0;
  const int32_t* lengths;
  std::vector<int32_t> tokens, out_lengths;
  std::vector<float> scores, align;

  explicit Seq2SeqBeamSearch(Parser& p) : model(packed_field(p), [&] { return parse_decoder(p); }) {
    const rnnkit::Seq2SeqDecoderShape& w = model.shape();
    const BeamArgs beam = parse_beam_config(p, p.object("config"), w.V);
    S = beam.S;
    B = beam.B;
    cfg = beam.cfg;

    const size_t state = size_t(w.L) * B * w.H;
    enc = p.f32("enc", size_t(S) * B * w.He, shape_str("S*B*He", {S, B, w.He}));
    lengths = p.lengths("lengths", B, S, "S", false);
    h0 = p.f32("h0", state, shape_str("L*B*H", {w.L, B, w.H}));
    c0 = p.lstm_state(w.cell == rnnkit::CellType::Lstm, "c0", state,
                      shape_str("L*B*H", {w.L, B, w.H}), false);
    tokens.resize(size_t(B) * cfg.n_best * cfg.max_len);
    out_lengths.resize(size_t(B) * cfg.n_best);
    scores.resize(out_lengths.size());
    align.resize(tokens.size() * S);
  }
  void run() {
    auto search = [&](const auto& decoder) {
      rnnkit::seq2seq_beam_search(decoder, S, B, enc, lengths, h0, c0, cfg, tokens.data(),
                                  out_lengths.data(), scores.data(), align.data());
    };
    if (model.packed)
      search(*model.packed);
    else
      search(model.w);
  }
  Napi::Value result(Napi::Env env) {
    auto i32 = [&](const std::vector<int32_t>& v) {
      auto a = Napi::Int32Array::New(env, v.size());
      std::memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
      return a;
    };
    auto f32 = [&](const std::vector<float>& v) {
      auto a = Napi::Float32Array::New(env, v.size());
      std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
      return a;
    };
    return beam_result_object(env, i32(tokens), i32(out_lengths), f32(scores), f32(align));
  }
};

// new BeamSearch(config {V, S, B, beam, nBest, ...}): the search of seq2seqBeamSearch with the
// decoder left to the caller, who runs one step per loop:
//   while (search.next(tokens, parents)) { decode tokens [R] from the states of rows parents [R]
//                                          -> logits [R*V], align [R*S]; search.step(logits, align)
//                                          }
// then search.results() is seq2seqBeamSearch's result. R = B * beam rows (`rows`).
class BeamSearchObject : public Napi::ObjectWrap<BeamSearchObject> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "BeamSearch",
                       {InstanceAccessor<&BeamSearchObject::rows>("rows"),
                        InstanceMethod<&BeamSearchObject::next>("next"),
                        InstanceMethod<&BeamSearchObject::step>("step"),
                        InstanceMethod<&BeamSearchObject::results>("results")});
  }

  explicit BeamSearchObject(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<BeamSearchObject>(info) {
    guarded(info.Env(), "BeamSearch", [&] {
      Parser p(info, "BeamSearch");
      Napi::Object c = p.object(0, "config");
      V_ = p.size(c, "config", "V");
      args_ = parse_beam_config(p, c, V_);
      search_ = std::make_unique<rnnkit::BeamSearch>(args_.cfg, args_.B, args_.S, V_);
    });
  }

 private:
  Napi::Value rows(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), search_->rows());
  }

  // next(tokens: Int32Array [R], parents: Int32Array [R]) -> false once the search is done; else
  // writes the token each row reads next and the row whose state it continues.
  Napi::Value next(const Napi::CallbackInfo& info) {
    Parser p(info, "BeamSearch.next");
    const size_t R = search_->rows();
    int32_t* tokens = p.i32(0, "tokens", R, "B*beam");
    int32_t* parents = p.i32(1, "parents", R, "B*beam");
    if (search_->done()) return Napi::Boolean::New(info.Env(), false);
    std::memcpy(tokens, search_->tokens(), sizeof(int32_t) * R);
    std::copy(search_->parents(), search_->parents() + R, parents);
    return Napi::Boolean::New(info.Env(), true);
  }

  // step(logits: Float32Array [R*V], turned into log-probabilities; align: Float32Array [R*S]).
  Napi::Value step(const Napi::CallbackInfo& info) {
    Parser p(info, "BeamSearch.step");
    const int R = search_->rows();
    float* logits = p.f32(0, "logits", size_t(R) * V_, shape_str("B*beam*V", {R, V_}));
    const float* align =
        p.f32(1, "align", size_t(R) * args_.S, shape_str("B*beam*S", {R, args_.S}));
    if (search_->done()) p.range_error("the search is done; read its results()");
    guarded(info.Env(), "BeamSearch.step", [&] { search_->step(logits, align); });
    return info.Env().Undefined();
  }

  Napi::Value results(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), "BeamSearch.results",
                   [&] { return beam_results(info.Env(), *search_, args_); });
  }

  int V_;
  BeamArgs args_;
  std::unique_ptr<rnnkit::BeamSearch> search_;
};

Napi::Value AttentionParamCount(const Napi::CallbackInfo& info) {
  Parser p(info, "attentionParamCount");
  AttentionShape s = parse_attention_shape(p, p.object(0, "shape"));
  return Napi::Number::New(info.Env(), static_cast<double>(rnnkit::attention_param_count(s)));
}

Napi::Value AttentionWorkspaceSize(const Napi::CallbackInfo& info) {
  Parser p(info, "attentionWorkspaceSize");
  AttentionShape s = parse_attention_shape(p, p.object(0, "shape"));
  return Napi::Number::New(info.Env(),
                           static_cast<double>(rnnkit::luong_attention_workspace_size(s)));
}

}  // namespace

void init_seq2seq(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionParamCount",
              Napi::Function::New(env, AttentionParamCount, "attentionParamCount"));
  exports.Set("attentionWorkspaceSize",
              Napi::Function::New(env, AttentionWorkspaceSize, "attentionWorkspaceSize"));
  add<LuongAttentionForward>(env, exports, false);
  add<LuongAttentionBackward>(env, exports, false);
  exports.Set("feedingWorkspaceSize",
              Napi::Function::New(env, FeedingWorkspaceSize, "feedingWorkspaceSize"));
  add<FeedingDecoderForward>(env, exports, false);
  add<FeedingDecoderBackward>(env, exports, false);
  add<Seq2SeqBeamSearch>(env, exports, true);
  exports.Set(PackedDecoderTraits::name, PackedObject<PackedDecoderTraits>::define(env));
  exports.Set("BeamSearch", BeamSearchObject::define(env));
}

}  // namespace rnnkit_addon
