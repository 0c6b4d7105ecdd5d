// N-API glue for byte-level BPE: bpeTrain (a Promise: pre-tokenizing, counting and merge learning
// on the libuv pool, with progress and cancellation) and the BpeEncoder class (learned merges
// held natively, encode(text) -> ids).
#include <napi.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "bpe.h"
#include "ops.h"

namespace rnnkit_addon {
namespace {

using Merges = std::vector<std::pair<int32_t, int32_t>>;

std::vector<uint32_t> parse_ranges(Parser& p, Napi::Object o, const char* key) {
  const std::string name = std::string("classes.") + key;
  size_t n = 0;
  const int32_t* r = p.i32(o.Get(key), name, Parser::kAnyLength, "", false, &n);
  std::vector<uint32_t> out(r, r + n);
  return out;
}

rnnkit::CharClasses parse_classes(Parser& p, size_t i) {
  Napi::Object o = p.object(i, "classes");
  rnnkit::CharClasses c;
  c.letter = parse_ranges(p, o, "letter");
  c.number = parse_ranges(p, o, "number");
  c.space = parse_ranges(p, o, "space");
  return c;
}

Merges parse_merges(Parser& p, size_t i) {
  size_t n = 0;
  const int32_t* m = p.i32(p.arg(i), "merges", Parser::kAnyLength, "", false, &n);
  if (n % 2 != 0)
    p.range_error("'merges' must hold [left, right] id pairs (an even length), got length " +
                  std::to_string(n));
  Merges merges(n / 2);
  for (size_t k = 0; k < n / 2; ++k) merges[k] = {m[2 * k], m[2 * k + 1]};
  return merges;
}

std::vector<uint32_t> code_points(Napi::String s) {
  const std::u16string text = s.Utf16Value();
  std::vector<uint32_t> cps;
  rnnkit::utf16_to_code_points(text.data(), text.size(), cps);
  return cps;
}

// bpeTrain's arguments: (corpus: {text: string} | {file: string}, options: {maxMerges,
// minFrequency}, classes, cancel: Int32Array(1) | null).
struct Training {
  std::vector<uint32_t> text;
  std::string file;
  rnnkit::CharClasses classes;
  rnnkit::BpeTrainConfig cfg;
  const int32_t* cancel;
  Merges merges;

  explicit Training(Parser& p) {
    Napi::Object corpus = p.object(0, "corpus");
    Napi::Value t = corpus.Get("text"), f = corpus.Get("file");
    if (t.IsString() == f.IsString())
      p.type_error("'corpus' must be {text: string} or {file: string}, got " +
                   std::string(t.IsString() ? "both" : "neither"));
    if (t.IsString())
      text = code_points(t.As<Napi::String>());
    else
      file = p.string(f, "corpus.file");
    Napi::Object o = p.object(1, "options");
    cfg.max_merges =
        static_cast<int>(p.integer(o.Get("maxMerges"), "options.maxMerges", 0, 1 << 24));
    cfg.min_frequency = p.integer(o.Get("minFrequency"), "options.minFrequency", 1, 1LL << 53);
    classes = parse_classes(p, 2);
    cancel = p.i32(3, "cancel", 1, "", true);
  }

  void read_file() {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the corpus file " + file);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw std::runtime_error("cannot read the corpus file " + file);
    const size_t nul = bytes.find('\0');
    if (nul != std::string::npos)
      throw std::invalid_argument(
          "corpus file " + file + " is not text: NUL byte at offset " + std::to_string(nul) +
          "; it is a binary file or UTF-16/UTF-32 text, and rnnkit reads UTF-8");
    try {
      rnnkit::utf8_to_code_points(bytes.data(), bytes.size(), text);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("corpus file " + file + ": " + e.what());
    }
  }

  void run(const rnnkit::BpeProgress& progress) {
    if (!file.empty()) read_file();
    if (text.empty())
      throw std::invalid_argument(file.empty() ? "the corpus is empty"
                                               : "the corpus file " + file + " is empty");
    rnnkit::PreTokenizer pre(classes);
    rnnkit::WordCounts wc;
    wc.add_text(pre, text.data(), text.size());
    std::vector<uint32_t>().swap(text);
    merges = rnnkit::bpe_train(wc, cfg, progress);
  }

  Napi::Value result(Napi::Env env) const {
    Napi::Int32Array out = Napi::Int32Array::New(env, merges.size() * 2);
    for (size_t k = 0; k < merges.size(); ++k) {
      out[2 * k] = merges[k].first;
      out[2 * k + 1] = merges[k].second;
    }
    return out;
  }
};

// Trains on the libuv pool; progress goes to onProgress(done, total) on the main thread, and the
// cancel flag is read at every progress report. If onProgress throws, training stops at the next
// report and the promise rejects with what it threw.
class TrainWorker : public Napi::AsyncProgressQueueWorker<int32_t> {
 public:
  TrainWorker(Napi::Env env, Training&& t, std::vector<Napi::ObjectReference>&& refs,
              Napi::Value on_progress)
      : Napi::AsyncProgressQueueWorker<int32_t>(env, "bpeTrain"),
        t_(std::move(t)),
        refs_(std::move(refs)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    if (on_progress.IsFunction()) on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  struct Cancelled {};

  void Execute(const ExecutionProgress& progress) override {
    auto report = [this, &progress](int done, int total) {
      if (js_failed_.load(std::memory_order_relaxed)) throw Cancelled{};
      if (t_.cancel && __atomic_load_n(t_.cancel, __ATOMIC_RELAXED) != 0) throw Cancelled{};
      const int32_t message[2] = {done, total};
      progress.Send(message, 2);
    };
    try {
      t_.run(report);
    } catch (const Cancelled&) {
      cancelled_ = true;
    } catch (const std::invalid_argument& e) {
      failed_ = true, range_ = true, error_ = e.what();
    } catch (const std::exception& e) {
      failed_ = true, error_ = e.what();
    }
  }

  void OnProgress(const int32_t* data, size_t count) override {
    if (on_progress_.IsEmpty() || count < 2) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (js_failed_.load(std::memory_order_relaxed)) return;
    try {
      on_progress_.Call({Napi::Number::New(env, data[0]), Napi::Number::New(env, data[1])});
    } catch (const Napi::Error& e) {
      js_error_ = e;
      js_failed_.store(true, std::memory_order_relaxed);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (js_failed_.load(std::memory_order_relaxed)) {
      deferred_.Reject(js_error_.Value());
    } else if (cancelled_) {
      Napi::Error e = Napi::Error::New(env, "bpeTrain: training was aborted");
      e.Set("name", Napi::String::New(env, "AbortError"));
      deferred_.Reject(e.Value());
    } else if (failed_) {
      deferred_.Reject(native_error(env, "bpeTrain", range_, error_).Value());
    } else {
      deferred_.Resolve(t_.result(env));
    }
  }

 private:
  Training t_;
  std::vector<Napi::ObjectReference> refs_;
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_progress_;
  std::atomic<bool> js_failed_{false};
  Napi::Error js_error_;
  bool cancelled_ = false, failed_ = false, range_ = false;
  std::string error_;
};

// bpeTrain(corpus, options, classes, cancel, onProgress?) -> Promise<Int32Array> of merges as
// [left, right] pairs. Argument errors reject the promise.
Napi::Value BpeTrain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return queue_promise(env, [&] {
    Parser p(info, "bpeTrain");
    Training t(p);
    Napi::Value on_progress = p.callback(4, "onProgress");
    return new TrainWorker(env, std::move(t), p.take_refs(), on_progress);
  });
}

// new BpeEncoder(merges: Int32Array, classes) with encode(text: string) -> Int32Array.
class BpeEncoder : public Napi::ObjectWrap<BpeEncoder> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "BpeEncoder", {InstanceMethod("encode", &BpeEncoder::encode)});
  }

  explicit BpeEncoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpeEncoder>(info) {
    guarded(info.Env(), "BpeEncoder", [&] {
      Parser p(info, "BpeEncoder");
      Merges merges = parse_merges(p, 0);
      rnnkit::CharClasses classes = parse_classes(p, 1);
      encoder_ = std::make_unique<rnnkit::BpeEncoder>(merges);
      pre_ = std::make_unique<rnnkit::PreTokenizer>(classes);
    });
  }

 private:
  Napi::Value encode(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), "encode", [&]() -> Napi::Value {
      Parser p(info, "encode");
      Napi::Value v = p.arg(0);
      if (!v.IsString()) p.type_error("'text' must be a string, got " + Parser::describe(v));
      const std::vector<uint32_t> cps = code_points(v.As<Napi::String>());
      std::vector<int32_t> ids;
      ids.reserve(cps.size());
      encoder_->encode(*pre_, cps.data(), cps.size(), ids);
      Napi::Int32Array out = Napi::Int32Array::New(info.Env(), ids.size());
      std::copy(ids.begin(), ids.end(), out.Data());
      return out;
    });
  }

  std::unique_ptr<rnnkit::BpeEncoder> encoder_;
  std::unique_ptr<rnnkit::PreTokenizer> pre_;
};

}  // namespace

void init_bpe(Napi::Env env, Napi::Object exports) {
  exports.Set("bpeTrain", Napi::Function::New(env, BpeTrain, "bpeTrain"));
  exports.Set("BpeEncoder", BpeEncoder::define(env));
}

}  // namespace rnnkit_addon
