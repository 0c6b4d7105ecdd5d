// N-API glue for generation: lmGenerateAsync (a Promise, with per-step token progress streamed to
// JS), lmGenerate (its blocking twin), lmScore (a text's loss on the packed steps), and the
// TokenLoop class, lmGenerate's token loop for a loop
// driven from JS (logits from onnxruntime, or the serving engine's rounds over packed weights), so
// that every backend samples, stops and finishes exactly as lmGenerate does.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "args.h"
#include "generate.h"
#include "ops.h"
#include "packed.h"
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

// The weights object {cell, V, E, H, L, residual, embedding, stack, decoderWeight, decoderBias?,
// weights?, stackScales?, decoderScales?} at argument 0.
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
  // Optional: the type the products run in ('float32' when absent), and int8's scales.
  w.weights = parse_weight_type(p, o.Get("weights"), "weights.weights");
  w.stack_scales = parse_scales(p, w.weights, o.Get("stackScales"), "weights.stackScales",
                                size_t(2) * w.L * rnnkit::gate_count(w.cell) * w.H, "L*2*G*H");
  w.decoder_scales =
      parse_scales(p, w.weights, o.Get("decoderScales"), "weights.decoderScales", w.V, "V");
  return w;
}

struct PackedLmTraits {
  static constexpr const char* name = "PackedLm";
  using Packed = rnnkit::PackedLm;
  static constexpr napi_type_tag tag = {0x6c6d5f7061636b65ULL, 0x72726e6e6b69745fULL};
  static rnnkit::LmWeights parse(Parser& p) { return parse_weights(p); }
};

// Argument 0: a PackedLm, or the weights object.
using LmArg = ModelArg<PackedLmTraits, rnnkit::LmWeights>;
LmArg parse_model(Parser& p) {
  return LmArg(PackedObject<PackedLmTraits>::of(p, p.arg(0), "weights"),
               [&] { return parse_weights(p); });
}

// lmGenerate's arguments, checked on the main thread, and its outputs.
//   (weights | PackedLm, prompts, options, stops | null, cancel: Int32Array(1) | null)
struct Generation {
  LmArg model;
  rnnkit::TokenSpans prompts, stops{nullptr, nullptr, 0};
  rnnkit::GenerateConfig cfg;
  const int32_t* cancel;
  std::vector<int32_t> tokens, lengths, finish;

  explicit Generation(Parser& p) : model(parse_model(p)) {
    const int V = model.shape().V;
    prompts = parse_spans(p, p.arg(1), "prompts", V, -1, true);

    Napi::Object opt = p.object(2, "options");
    cfg.max_tokens =
        static_cast<int>(p.integer(opt.Get("maxTokens"), "options.maxTokens", 1, 1000000));
    cfg.sampler = parse_sampler(p, opt, "options", V);
    cfg.seed = parse_seed(p, opt.Get("seed"), "options.seed");
    cfg.row_offset = parse_seed(p, opt.Get("rowOffset"), "options.rowOffset");

    Napi::Value s = p.arg(3);
    if (!s.IsNull() && !s.IsUndefined()) stops = parse_spans(p, s, "stops", V, -1, true);
    cancel = p.i32(4, "cancel", 1, "", true);
  }

  void run(const rnnkit::GenerateProgress& progress) {
    const size_t B = prompts.count;
    tokens.resize(B * cfg.max_tokens);
    lengths.resize(B);
    finish.resize(B);
    rnnkit::lm_generate(model.get(), prompts, cfg, stops, cancel, progress, tokens.data(),
                        lengths.data(), finish.data());
  }

  Napi::Value result(Napi::Env env) const {
    Napi::Object r = Napi::Object::New(env);
    r.Set("tokens", int32_array(env, tokens));
    r.Set("lengths", int32_array(env, lengths));
    r.Set("finish", int32_array(env, finish));
    return r;
  }
};

struct LmGenerate {
  static constexpr const char* name = "lmGenerate";
  Generation g;
  explicit LmGenerate(Parser& p) : g(p) {}
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
      : Napi::AsyncProgressQueueWorker<int32_t>(env, "lmGenerateAsync"),
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
      deferred_.Reject(native_error(env, "lmGenerateAsync", range_, error_).Value());
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

// lmGenerateAsync(weights, prompts, options, stops, cancel, onTokens?) -> Promise<{tokens, lengths,
// finish}>. Argument errors reject the promise, as every async op does.
Napi::Value LmGenerateAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return queue_promise(env, [&] {
    Parser p(info, "lmGenerateAsync");
    Generation g(p);
    Napi::Value on_tokens = p.callback(5, "onTokens");
    return new GenerateWorker(env, std::move(g), p.take_refs(), on_tokens);
  });
}

// new TokenLoop(model): the token loop of lmGenerate (native/core/token_loop.h) for a loop driven
// from JS. model is {V, L, H, lstm}, for a loop whose logits come from elsewhere (an
// onnxruntime session), or lmGenerate's weights, packed once (copied) for run().
//   size                                 rows in the loop
//   weightBytes                          bytes of the packed weights (0 for a loop driven from JS)
//   ids() -> Int32Array                  each row's id, in row order
//   add(ids [B], prompts {tokens, offsets [B+1]}, options, stops | null, group)
//                                        appends B rows: options as lmGenerate's (row b samples
//                                        with its stream for row options.rowOffset + b); rows of
//                                        one group share plan's prompt budget
//   cancel(ids)                          ends those rows as cancelled (unknown ids: no effect)
//   plan(chunk, sharedChunk, budget) -> {rows, tokens, offsets, want}
//                                        the next round (TokenLoop::plan): rows[k] reads
//                                        tokens[offsets[k] .. offsets[k+1]), the logits after
//                                        rows[want[i]] are wanted
//   readState(rows [k], h [L*k*H], c | null), writeState(rows, h, c)
//                                        copies state rows out and back in (c for LSTM only)
//   sample(logits [want*V]) -> {rows, tokens, done, lengths, finish}
//                                        samples the wanted rows of the last plan (ids in rows),
//                                        then retires the ended ones (ids in done; lengths kept,
//                                        finish reasons)
//   run(chunk, sharedChunk, budget) -> as sample
//                                        plan, the packed model's round and sample in one call
class TokenLoopObject : public Napi::ObjectWrap<TokenLoopObject> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(
        env, "TokenLoop",
        {InstanceAccessor<&TokenLoopObject::size>("size"),
         InstanceAccessor<&TokenLoopObject::weight_bytes>("weightBytes"),
         InstanceMethod<&TokenLoopObject::ids>("ids"), InstanceMethod<&TokenLoopObject::add>("add"),
         InstanceMethod<&TokenLoopObject::cancel>("cancel"),
         InstanceMethod<&TokenLoopObject::plan>("plan"),
         InstanceMethod<&TokenLoopObject::read_state>("readState"),
         InstanceMethod<&TokenLoopObject::write_state>("writeState"),
         InstanceMethod<&TokenLoopObject::sample>("sample"),
         InstanceMethod<&TokenLoopObject::run>("run")});
  }

  explicit TokenLoopObject(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<TokenLoopObject>(info) {
    guarded(info.Env(), "TokenLoop", [&] {
      Parser p(info, "TokenLoop");
      Napi::Object o = p.object(0, "model");
      const bool weights = !o.Get("embedding").IsUndefined();
      if (weights) {
        const rnnkit::LmWeights w = parse_weights(p);
        model_ = std::make_unique<rnnkit::PackedLm>(w);
        loop_ = std::make_unique<rnnkit::TokenLoop>(w.V, w.L, w.H, w.cell == CellType::Lstm);
      } else {
        loop_ = std::make_unique<rnnkit::TokenLoop>(
            p.size(o, "model", "V"), p.size(o, "model", "L"), p.size(o, "model", "H"),
            p.boolean(o.Get("lstm"), "model.lstm"));
      }
    });
  }

 private:
  Napi::Value size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), loop_->rows());
  }

  Napi::Value weight_bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->bytes()) : 0.0);
  }

  Napi::Value ids(const Napi::CallbackInfo& info) {
    return int32_array(info.Env(), {loop_->ids(), loop_->ids() + loop_->rows()});
  }

  Napi::Value add(const Napi::CallbackInfo& info) {
    Parser p(info, "TokenLoop.add");
    const int V = loop_->vocab_size();
    size_t B = 0;
    const int32_t* ids = p.i32(p.arg(0), "ids", Parser::kAnyLength, "", false, &B);
    const rnnkit::TokenSpans prompts = parse_spans(p, p.arg(1), "prompts", V, int(B), true);
    Napi::Object opt = p.object(2, "options");
    rnnkit::LoopRowConfig cfg{
        static_cast<int>(p.integer(opt.Get("maxTokens"), "options.maxTokens", 1, 1000000)),
        parse_sampler(p, opt, "options", V), rnnkit::Rng(0), nullptr, 0};
    const uint64_t seed = parse_seed(p, opt.Get("seed"), "options.seed");
    const uint64_t offset = parse_seed(p, opt.Get("rowOffset"), "options.rowOffset");
    Napi::Value s = p.arg(3);
    if (!s.IsNull() && !s.IsUndefined()) {
      const rnnkit::TokenSpans stops = parse_spans(p, s, "stops", V, -1, true);
      if (stops.count > 0) cfg.stops = std::make_shared<const rnnkit::StopSequences>(stops);
    }
    cfg.group = static_cast<int>(p.integer(4, "group", 0, 2147483647));
    std::unordered_set<int32_t> seen(loop_->ids(), loop_->ids() + loop_->rows());
    for (size_t b = 0; b < B; ++b)
      if (!seen.insert(ids[b]).second)
        p.range_error("'ids[" + std::to_string(b) + "]' = " + std::to_string(ids[b]) +
                      " is already a row of the loop");
    guarded(info.Env(), "TokenLoop.add", [&] {
      for (size_t b = 0; b < B; ++b) {
        cfg.rng = rnnkit::sampler_rng(seed, offset + b);
        loop_->add(ids[b], prompts.tokens + prompts.offsets[b],
                   prompts.offsets[b + 1] - prompts.offsets[b], cfg);
      }
    });
    return info.Env().Undefined();
  }

  Napi::Value cancel(const Napi::CallbackInfo& info) {
    Parser p(info, "TokenLoop.cancel");
    size_t k = 0;
    const int32_t* ids = p.i32(p.arg(0), "ids", Parser::kAnyLength, "", false, &k);
    const std::unordered_set<int32_t> gone(ids, ids + k);
    for (int i = 0; i < loop_->rows(); ++i)
      if (gone.count(loop_->ids()[i])) loop_->cancel(i);
    return info.Env().Undefined();
  }

  // (chunk, sharedChunk, budget) for plan and run.
  struct Schedule {
    int chunk, shared_chunk, budget;
  };
  Schedule schedule(Parser& p) {
    return {static_cast<int>(p.integer(0, "chunk", 1, 2147483647)),
            static_cast<int>(p.integer(1, "sharedChunk", 1, 2147483647)),
            static_cast<int>(p.integer(2, "budget", 1, 2147483647))};
  }

  Napi::Value plan(const Napi::CallbackInfo& info) {
    Parser p(info, "TokenLoop.plan");
    const Schedule s = schedule(p);
    loop_->plan(s.chunk, s.shared_chunk, s.budget, feed_);
    Napi::Env env = info.Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("rows", int32_array(env, feed_.rows));
    r.Set("tokens", int32_array(env, feed_.tokens));
    r.Set("offsets", int32_array(env, feed_.offsets));
    r.Set("want", int32_array(env, feed_.want));
    return r;
  }

  // The state arguments of readState and writeState: (rows [k], h [L*k*H], c [L*k*H] | null).
  struct StateArgs {
    const int32_t* rows;
    int k;
    float *h, *c;
  };
  StateArgs state_args(Parser& p) {
    size_t k = 0;
    const int32_t* rows = p.i32(p.arg(0), "rows", Parser::kAnyLength, "", false, &k);
    for (size_t i = 0; i < k; ++i)
      if (rows[i] < 0 || rows[i] >= loop_->rows())
        p.range_error("'rows[" + std::to_string(i) + "]' must be a row in [0, " +
                      std::to_string(loop_->rows()) + "), got " + std::to_string(rows[i]));
    const std::string shape =
        dims({{"L", loop_->layers()}, {"rows.length", (long long)k}, {"H", loop_->hidden_size()}});
    const size_t n = size_t(loop_->layers()) * k * loop_->hidden_size();
    float* h = p.f32(1, "h", n, shape);
    float* c = nullptr;
    if (loop_->lstm())
      c = p.f32(2, "c", n, shape);
    else if (!p.arg(2).IsUndefined() && !p.arg(2).IsNull())
      p.type_error("'c' is only for LSTM and must be null for this cell, got " +
                   Parser::describe(p.arg(2)));
    return {rows, static_cast<int>(k), h, c};
  }

  Napi::Value read_state(const Napi::CallbackInfo& info) {
    Parser p(info, "TokenLoop.readState");
    const StateArgs a = state_args(p);
    guarded(info.Env(), "TokenLoop.readState", [&] { loop_->read_state(a.rows, a.k, a.h, a.c); });
    return info.Env().Undefined();
  }

  Napi::Value write_state(const Napi::CallbackInfo& info) {
    Parser p(info, "TokenLoop.writeState");
    const StateArgs a = state_args(p);
    guarded(info.Env(), "TokenLoop.writeState", [&] { loop_->write_state(a.rows, a.k, a.h, a.c); });
    return info.Env().Undefined();
  }

  Napi::Value sample(const Napi::CallbackInfo& info) {
    Parser p(info, "TokenLoop.sample");
    const int w = static_cast<int>(feed_.want.size()), V = loop_->vocab_size();
    float* logits = p.f32(0, "logits", size_t(w) * V, dims({{"plan().want.length", w}, {"V", V}}));
    // The caller's logits are left as they were: the sampler works on a copy.
    logits_.assign(logits, logits + size_t(w) * V);
    return guarded(info.Env(), "TokenLoop.sample", [&] { return finish_round(info.Env()); });
  }

  Napi::Value run(const Napi::CallbackInfo& info) {
    Parser p(info, "TokenLoop.run");
    if (!model_) p.type_error("the loop has no weights to run; create it with the model's weights");
    const Schedule s = schedule(p);
    return guarded(info.Env(), "TokenLoop.run", [&] {
      loop_->plan(s.chunk, s.shared_chunk, s.budget, feed_);
      logits_.resize(feed_.want.size() * size_t(loop_->vocab_size()));
      rnnkit::run_feed(*model_, *loop_, feed_, scratch_, logits_.data());
      return finish_round(info.Env());
    });
  }

  // Samples the wanted rows of feed_ from logits_, retires the ended rows, and says what happened.
  Napi::Value finish_round(Napi::Env env) {
    const size_t w = feed_.want.size();
    std::vector<int32_t> ids(w), tokens(w), done, lengths, finish;
    const int n = loop_->sample(feed_, logits_.data(), ids.data(), tokens.data());
    ids.resize(n), tokens.resize(n);
    feed_.want.clear();
    loop_->retire([&](const rnnkit::RetiredRow& r) {
      done.push_back(r.id), lengths.push_back(r.length), finish.push_back(r.finish);
    });
    Napi::Object r = Napi::Object::New(env);
    r.Set("rows", int32_array(env, ids));
    r.Set("tokens", int32_array(env, tokens));
    r.Set("done", int32_array(env, done));
    r.Set("lengths", int32_array(env, lengths));
    r.Set("finish", int32_array(env, finish));
    return r;
  }

  std::unique_ptr<rnnkit::PackedLm> model_;  // null for a loop driven from JS
  std::unique_ptr<rnnkit::TokenLoop> loop_;
  rnnkit::Feed feed_;
  rnnkit::FeedScratch scratch_;
  std::vector<float> logits_;
};

// lmScore(weights | PackedLm, tokens, rows) -> the summed negative log-likelihood (nats) of tokens'
// next-token predictions in `rows` streams (lm_score), on the packed steps of the weights' type.
struct LmScore {
  static constexpr const char* name = "lmScore";
  LmArg model;
  const int32_t* tokens;
  int n, rows;
  double sum = 0;
  explicit LmScore(Parser& p) : model(parse_model(p)) {
    const int V = model.shape().V;
    size_t count = 0;
    tokens = p.i32(p.arg(1), "tokens", Parser::kAnyLength, "", false, &count);
    if (count < 2 || count > (1u << 30))
      p.range_error("'tokens' must hold from 2 to 2^30 token ids, got " + std::to_string(count));
    for (size_t k = 0; k < count; ++k)
      if (tokens[k] < 0 || tokens[k] >= V)
        p.range_error("'tokens[" + std::to_string(k) + "]' must be a token id in [0, " +
                      std::to_string(V) + "), got " + std::to_string(tokens[k]));
    n = static_cast<int>(count);
    rows = static_cast<int>(p.integer(p.arg(2), "rows", 1, n - 1));
  }
  void run() { sum = rnnkit::lm_score(model.get(), tokens, n, rows); }
  Napi::Value result(Napi::Env env) const { return Napi::Number::New(env, sum); }
};

}  // namespace

void init_generate(Napi::Env env, Napi::Object exports) {
  exports.Set("TokenLoop", TokenLoopObject::define(env));
  exports.Set(PackedLmTraits::name, PackedObject<PackedLmTraits>::define(env));
  exports.Set("lmGenerateAsync", Napi::Function::New(env, LmGenerateAsync, "lmGenerateAsync"));
  exports.Set(LmGenerate::name, Napi::Function::New(env, Sync<LmGenerate>, LmGenerate::name));
  add<LmScore>(env, exports, true);
}

}  // namespace rnnkit_addon
