// N-API glue for generation: lmGenerate (a Promise, with per-step token progress streamed to JS),
// lmGenerateSync, and sampleTokens / rngInit, which give a generation loop whose logits come from
// elsewhere (onnxruntime) the very sampler and per-row random streams of lmGenerate; and the
// PackedLm class, lmGenerate's packed weights and step for a loop driven from JS.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "generate.h"
#include "ops.h"
#include "sampling.h"

namespace rnnkit_addon {
namespace {

using rnnkit::CellType;

constexpr int64_t kMaxSafeInteger = 9007199254740991LL;
// {tokens, offsets}: `count` sequences (any number when count < 0) of ids in [0, V), each
// non-empty when `nonempty`.
rnnkit::TokenSpans parse_spans(Parser& p, Napi::Value v, const std::string& name, int V, int count,
                               bool nonempty) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray())
    p.type_error(Parser::quote(name) +
                 " must be an object {tokens: Int32Array, offsets: Int32Array}, got " +
                 Parser::describe(v));
  Napi::Object o = v.As<Napi::Object>();
  const std::string tname = name + ".tokens", oname = name + ".offsets";
  size_t n_tok = 0, n_off = 0;
  const int32_t* ids = p.i32(o.Get("tokens"), tname, Parser::kAnyLength, "", false, &n_tok);
  const int32_t* off = p.i32(o.Get("offsets"), oname, Parser::kAnyLength, "", false, &n_off);
  if (count >= 0 && n_off != size_t(count) + 1)
    p.range_error(Parser::quote(oname) + " must have length B+1 = " + std::to_string(count + 1) +
                  ", got " + std::to_string(n_off));
  if (n_off == 0 || n_off > (1u << 30))
    p.range_error(Parser::quote(oname) +
                  " must have length in [1, 2^30] (one more than the number of " +
                  "sequences), got " + std::to_string(n_off));
  if (off[0] != 0)
    p.range_error(Parser::quote(oname + "[0]") + " must be 0, got " + std::to_string(off[0]));
  for (size_t k = 1; k < n_off; ++k)
    if (off[k] < off[k - 1] || (nonempty && off[k] == off[k - 1]))
      p.range_error(Parser::quote(oname) + " must be " +
                    (nonempty ? "strictly increasing" : "non-decreasing") +
                    (nonempty ? " (every sequence holds at least one token)" : "") + ", got [" +
                    std::to_string(k - 1) + "] = " + std::to_string(off[k - 1]) + " and [" +
                    std::to_string(k) + "] = " + std::to_string(off[k]));
  if (size_t(off[n_off - 1]) != n_tok)
    p.range_error(Parser::quote(oname) + " must end at the length of " + Parser::quote(tname) +
                  " (" + std::to_string(n_tok) + "), got " + std::to_string(off[n_off - 1]));
  for (size_t k = 0; k < n_tok; ++k)
    if (ids[k] < 0 || ids[k] >= V)
      p.range_error(Parser::quote(tname + "[" + std::to_string(k) + "]") +
                    " must be a token id in [0, " + std::to_string(V) + "), got " +
                    std::to_string(ids[k]));
  return {ids, off, static_cast<int>(n_off - 1)};
}

// A finite number in (0, hi]: Parser's [0, hi] check, then zero ruled out.
double positive(Parser& p, Napi::Value v, const std::string& name, double hi) {
  double x = p.number(v, name, 0, hi);
  if (x == 0) p.range_error(Parser::quote(name) + " must be greater than 0, got 0");
  return x;
}

}  // namespace

// The sampler options of an options object; seq2seq_ops.cpp parses its sampling options with it
// too.
rnnkit::SamplerConfig parse_sampler(Parser& p, Napi::Object o, const std::string& obj, int V) {
  rnnkit::SamplerConfig c;
  c.temperature = static_cast<float>(p.number(o.Get("temperature"), obj + ".temperature", 0, 3e38));
  c.top_k = static_cast<int>(p.integer(o.Get("topK"), obj + ".topK", 0, V));
  c.top_p = static_cast<float>(positive(p, o.Get("topP"), obj + ".topP", 1));
  c.repetition_penalty =
      static_cast<float>(positive(p, o.Get("repetitionPenalty"), obj + ".repetitionPenalty", 3e38));
  c.no_repeat_ngram = static_cast<int>(
      p.integer(o.Get("noRepeatNgramSize"), obj + ".noRepeatNgramSize", 0, 1 << 30));
  return c;
}

namespace {

uint64_t parse_seed(Parser& p, Napi::Value v, const std::string& name) {
  return static_cast<uint64_t>(p.integer(v, name, 0, kMaxSafeInteger));
}

Napi::Int32Array int32_array(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

// The weights object {cell, V, E, H, L, residual, embedding, stack, decoderWeight, decoderBias?}
// at argument 0.
rnnkit::LmWeights parse_weights(Parser& p) {
  rnnkit::LmWeights w;
  Napi::Object o = p.object(0, "weights");
  w.cell = parse_cell(p, o.Get("cell"), "weights.cell");
  w.V = p.size(o, "weights", "V");
  w.E = p.size(o, "weights", "E");
  w.H = p.size(o, "weights", "H");
  w.L = p.size(o, "weights", "L");
  w.residual = p.boolean(o.Get("residual"), "weights.residual");
  w.embedding = p.f32(o.Get("embedding"), "weights.embedding", size_t(w.V) * w.E,
                      dims({{"V", w.V}, {"E", w.E}}));
  w.stack = p.f32(o.Get("stack"), "weights.stack", rnnkit::stack_param_count(w.cell, w.E, w.H, w.L),
                  "stackParamCount(cell, E, H, L)");
  w.decoder_weight = p.f32(o.Get("decoderWeight"), "weights.decoderWeight", size_t(w.V) * w.H,
                           dims({{"V", w.V}, {"H", w.H}}));
  w.decoder_bias = p.f32(o.Get("decoderBias"), "weights.decoderBias", w.V, "V", true);
  return w;
}

// lmGenerate's arguments, checked on the main thread, and its outputs.
//   (weights, prompts, options, stops | null, cancel: Int32Array(1) | null)
struct Generation {
  rnnkit::LmWeights w;
  rnnkit::TokenSpans prompts, stops{nullptr, nullptr, 0};
  rnnkit::GenerateConfig cfg;
  const int32_t* cancel;
  std::vector<int32_t> tokens, lengths, finish;

  explicit Generation(Parser& p) : w(parse_weights(p)) {
    prompts = parse_spans(p, p.arg(1), "prompts", w.V, -1, true);

    Napi::Object opt = p.object(2, "options");
    cfg.max_tokens =
        static_cast<int>(p.integer(opt.Get("maxTokens"), "options.maxTokens", 1, 1000000));
    cfg.sampler = parse_sampler(p, opt, "options", w.V);
    cfg.seed = parse_seed(p, opt.Get("seed"), "options.seed");
    cfg.row_offset = parse_seed(p, opt.Get("rowOffset"), "options.rowOffset");

    Napi::Value s = p.arg(3);
    if (!s.IsNull() && !s.IsUndefined()) stops = parse_spans(p, s, "stops", w.V, -1, true);
    cancel = p.i32(4, "cancel", 1, "", true);
  }

  void run(const rnnkit::GenerateProgress& progress) {
    const size_t B = prompts.count;
    tokens.resize(B * cfg.max_tokens);
    lengths.resize(B);
    finish.resize(B);
    rnnkit::lm_generate(w, prompts, cfg, stops, cancel, progress, tokens.data(), lengths.data(),
                        finish.data());
  }

  Napi::Value result(Napi::Env env) const {
    Napi::Object r = Napi::Object::New(env);
    r.Set("tokens", int32_array(env, tokens));
    r.Set("lengths", int32_array(env, lengths));
    r.Set("finish", int32_array(env, finish));
    return r;
  }
};

struct LmGenerateSync {
  static constexpr const char* name = "lmGenerateSync";
  Generation g;
  explicit LmGenerateSync(Parser& p) : g(p) {}
  void run() { g.run(nullptr); }
  Napi::Value result(Napi::Env env) { return g.result(env); }
};

// Runs a generation on the libuv pool. With onTokens, every step's tokens are queued to the main
// thread (the loop never waits for JS); if onTokens throws, generation stops at the next step and
// the promise rejects with what it threw.
class GenerateWorker : public Napi::AsyncProgressQueueWorker<int32_t> {
 public:
  GenerateWorker(Napi::Env env, Generation&& g, std::vector<Napi::ObjectReference>&& refs,
                 Napi::Value on_tokens)
      : Napi::AsyncProgressQueueWorker<int32_t>(env, "lmGenerate"),
        g_(std::move(g)),
        refs_(std::move(refs)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    if (on_tokens.IsFunction()) on_tokens_ = Napi::Persistent(on_tokens.As<Napi::Function>());
  }
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  // Thrown through lm_generate to leave the loop once onTokens has failed.
  struct Stopped {};

  void Execute(const ExecutionProgress& progress) override {
    rnnkit::GenerateProgress report;
    if (!on_tokens_.IsEmpty())
      // One message per step: [step, n, rows[n], tokens[n]], copied by Send into the queue.
      report = [this, &progress](int step, const int32_t* rows, const int32_t* tokens, int n) {
        if (js_failed_.load(std::memory_order_relaxed)) throw Stopped{};
        message_.assign({step, n});
        message_.insert(message_.end(), rows, rows + n);
        message_.insert(message_.end(), tokens, tokens + n);
        progress.Send(message_.data(), message_.size());
      };
    try {
      g_.run(report);
    } catch (const Stopped&) {
    } catch (const std::invalid_argument& e) {
      failed_ = true, range_ = true, error_ = e.what();
    } catch (const std::exception& e) {
      failed_ = true, error_ = e.what();
    }
  }

  void OnProgress(const int32_t* data, size_t count) override {
    if (js_failed_.load(std::memory_order_relaxed) || count < 2) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    const int step = data[0], n = data[1];
    Napi::Int32Array rows = Napi::Int32Array::New(env, n), tokens = Napi::Int32Array::New(env, n);
    std::memcpy(rows.Data(), data + 2, n * sizeof(int32_t));
    std::memcpy(tokens.Data(), data + 2 + n, n * sizeof(int32_t));
    try {
      on_tokens_.Call({Napi::Number::New(env, step), rows, tokens});
    } catch (const Napi::Error& e) {
      js_error_ = e;
      js_failed_.store(true, std::memory_order_relaxed);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (js_failed_.load(std::memory_order_relaxed))
      deferred_.Reject(js_error_.Value());
    else if (failed_)
      deferred_.Reject(native_error(env, "lmGenerate", range_, error_).Value());
    else
      deferred_.Resolve(g_.result(env));
  }

 private:
  Generation g_;
  std::vector<Napi::ObjectReference> refs_;
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_tokens_;
  std::vector<int32_t> message_;
  std::atomic<bool> js_failed_{false};
  Napi::Error js_error_;
  bool failed_ = false, range_ = false;
  std::string error_;
};

// lmGenerate(weights, prompts, options, stops, cancel, onTokens?) -> Promise<{tokens, lengths,
// finish}>. Argument errors reject the promise, as every async op does.
Napi::Value LmGenerate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return queue_promise(env, [&] {
    Parser p(info, "lmGenerate");
    Generation g(p);
    Napi::Value on_tokens = p.callback(5, "onTokens");
    return new GenerateWorker(env, std::move(g), p.take_refs(), on_tokens);
  });
}

// sampleTokens(logits [B*V], {B, V}, history {tokens, offsets [B+1]}, options, rngStates [B])
// -> Int32Array [B]. Each row samples from a copy of its logits (the caller's array is left as
// it was) with the generator resumed from rngStates[b], whose new state is written back.
struct SampleTokens {
  static constexpr const char* name = "sampleTokens";
  int B, V;
  const float* logits;
  rnnkit::TokenSpans history;
  rnnkit::SamplerConfig cfg;
  uint64_t* states;
  std::vector<int32_t> out;

  explicit SampleTokens(Parser& p) {
    Napi::Object shape = p.object(1, "shape");
    B = p.size(shape, "shape", "B");
    V = p.size(shape, "shape", "V");
    logits = p.f32(0, "logits", size_t(B) * V, dims({{"B", B}, {"V", V}}));
    history = parse_spans(p, p.arg(2), "history", V, B, false);
    cfg = parse_sampler(p, p.object(3, "options"), "options", V);
    states = p.u64(p.arg(4), "rngStates", B, "B");
  }
  void run() {
    rnnkit::SamplerScratch scratch(V);
    std::vector<float> row(V);
    out.resize(B);
    for (int b = 0; b < B; ++b) {
      std::memcpy(row.data(), logits + size_t(b) * V, sizeof(float) * V);
      rnnkit::Rng rng = rnnkit::Rng::from_state(states[b]);
      const int32_t* h = history.tokens + history.offsets[b];
      out[b] = rnnkit::sample_token(cfg, row.data(), V, h,
                                    history.offsets[b + 1] - history.offsets[b], rng, scratch);
      states[b] = rng.state;
    }
  }
  Napi::Value result(Napi::Env env) { return int32_array(env, out); }
};

// rngInit(seed, rowOffset, B) -> BigUint64Array [B]: the generator states lmGenerate starts rows
// rowOffset .. rowOffset + B - 1 with.
Napi::Value RngInit(const Napi::CallbackInfo& info) {
  Parser p(info, "rngInit");
  uint64_t seed = parse_seed(p, p.arg(0), "seed");
  uint64_t offset = parse_seed(p, p.arg(1), "rowOffset");
  size_t B = static_cast<size_t>(p.integer(2, "B", 0, 1 << 30));
  Napi::TypedArrayOf<uint64_t> states = Napi::TypedArrayOf<uint64_t>::New(info.Env(), B);
  for (size_t b = 0; b < B; ++b) states[b] = rnnkit::sampler_rng(seed, offset + b).state;
  return states;
}

// new PackedLm(weights): a language model's weights packed once (copied: later changes to the
// arrays do not reach it) for running it a step at a time, as lmGenerate does at every step; the
// serving engine holds one for the life of its model.
//   step(tokens [B], h [L*B*H], c [L*B*H] | null (LSTM only), want [k], logits [k*V]): feeds row b
//   the token tokens[b], advancing h and c in place, and writes the logits of the rows want[i].
class PackedLmObject : public Napi::ObjectWrap<PackedLmObject> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "PackedLm", {InstanceMethod<&PackedLmObject::step>("step")});
  }

  explicit PackedLmObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PackedLmObject>(info) {
    guarded(info.Env(), "PackedLm", [&] {
      Parser p(info, "PackedLm");
      const rnnkit::LmWeights w = parse_weights(p);
      lstm_ = w.cell == rnnkit::CellType::Lstm;
      V_ = w.V, H_ = w.H, L_ = w.L;
      model_ = std::make_unique<rnnkit::PackedLm>(w);
    });
  }

 private:
  Napi::Value step(const Napi::CallbackInfo& info) {
    Parser p(info, "PackedLm.step");
    size_t B = 0, k = 0;
    const int32_t* tokens = p.i32(p.arg(0), "tokens", Parser::kAnyLength, "", false, &B);
    if (B == 0 || B > (1u << 30)) p.range_error("'tokens' must hold 1 to 2^30 token ids");
    for (size_t b = 0; b < B; ++b)
      if (tokens[b] < 0 || tokens[b] >= V_)
        p.range_error("'tokens[" + std::to_string(b) + "]' must be in [0, " + std::to_string(V_) +
                      "), got " + std::to_string(tokens[b]));
    const int n = static_cast<int>(B);
    const std::string state = dims({{"L", L_}, {"B", n}, {"H", H_}});
    float* h = p.f32(1, "h", size_t(L_) * B * H_, state);
    float* c = nullptr;
    if (lstm_) {
      c = p.f32(2, "c", size_t(L_) * B * H_, state);
    } else if (!p.arg(2).IsUndefined() && !p.arg(2).IsNull()) {
      p.type_error("'c' is only for LSTM and must be null for this cell, got " +
                   Parser::describe(p.arg(2)));
    }
    const int32_t* want = p.i32(p.arg(3), "want", Parser::kAnyLength, "", false, &k);
    for (size_t i = 0; i < k; ++i)
      if (want[i] < 0 || want[i] >= n)
        p.range_error("'want[" + std::to_string(i) + "]' must be a row in [0, " +
                      std::to_string(n) + "), got " + std::to_string(want[i]));
    float* logits = p.f32(4, "logits", k * V_, dims({{"want.length", (long long)k}, {"V", V_}}));
    guarded(info.Env(), "PackedLm.step", [&] {
      y_.resize(B * H_);
      ws_.resize(model_->workspace_size(n));
      picked_.resize(k * H_);
      model_->step(n, tokens, h, c, size_t(n) * H_, y_.data(), ws_.data());
      for (size_t i = 0; i < k; ++i)
        std::copy_n(y_.data() + size_t(want[i]) * H_, H_, picked_.data() + i * H_);
      model_->decode(static_cast<int>(k), picked_.data(), logits);
    });
    return info.Env().Undefined();
  }

  bool lstm_ = false;
  int V_ = 0, H_ = 0, L_ = 0;
  std::unique_ptr<rnnkit::PackedLm> model_;
  std::vector<float> y_, ws_, picked_;  // scratch, grown to the largest batch
};

}  // namespace

void init_generate(Napi::Env env, Napi::Object exports) {
  exports.Set("PackedLm", PackedLmObject::define(env));
  exports.Set("lmGenerate", Napi::Function::New(env, LmGenerate, "lmGenerate"));
  exports.Set(LmGenerateSync::name,
              Napi::Function::New(env, Sync<LmGenerateSync>, LmGenerateSync::name));
  exports.Set(SampleTokens::name, Napi::Function::New(env, Sync<SampleTokens>, SampleTokens::name));
  exports.Set("rngInit", Napi::Function::New(env, RngInit, "rngInit"));
}

}  // namespace rnnkit_addon
