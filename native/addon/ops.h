// Sync and async entry points for an operation struct. An operation's constructor parses and
// validates the JS arguments (on the main thread; an options object may hold only the fields it
// read), run() calls the kernel (on the main thread for
// the sync entry, on the libuv pool for the *Async twin), and result() makes the JS value.
#pragma once
#include <napi.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "args.h"

namespace rnnkit_addon {

// Kernel failures that argument checks cannot foresee come back as RangeError (invalid_argument)
// or Error (anything else), prefixed with the function's name.
inline Napi::Error native_error(Napi::Env env, const char* fn, bool range,
                                const std::string& what) {
  std::string msg = std::string(fn) + ": " + what;
  return range ? Napi::RangeError::New(env, msg) : Napi::Error::New(env, msg);
}

// Runs f on the main thread, turning C++ exceptions from the kernels (including their shape
// checks, which can run while an op is being parsed) into JS errors; JS errors pass through.
template <typename F>
auto guarded(Napi::Env env, const char* fn, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw native_error(env, fn, true, e.what());
  } catch (const std::exception& e) {
    throw native_error(env, fn, false, e.what());
  }
}

template <typename Op>
Napi::Value Sync(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), Op::name, [&] {
    Parser p(info, Op::name);
    Op op(p);
    p.check_fields();
    op.run();
    return op.result(info.Env());
  });
}

template <typename Op>
class AsyncOp : public Napi::AsyncWorker {
 public:
  AsyncOp(Napi::Env env, Op&& op, std::vector<Napi::ObjectReference>&& refs)
      : Napi::AsyncWorker(env, Op::name),
        op_(std::move(op)),
        refs_(std::move(refs)),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      op_.run();
    } catch (const std::invalid_argument& e) {
      failed_ = true, range_ = true, error_ = e.what();
    } catch (const std::exception& e) {
      failed_ = true, error_ = e.what();
    }
  }
  void OnOK() override {
    if (failed_)
      deferred_.Reject(native_error(Env(), Op::name, range_, error_).Value());
    else
      deferred_.Resolve(op_.result(Env()));
  }

 private:
  Op op_;
  std::vector<Napi::ObjectReference> refs_;
  Napi::Promise::Deferred deferred_;
  bool failed_ = false, range_ = false;
  std::string error_;
};

// Queues the async worker that `make` builds (parsing the arguments on the way) and returns its
// promise; a JS error thrown while building it (a validation error) rejects the promise instead.
template <typename Make>
Napi::Value queue_promise(Napi::Env env, Make&& make) {
  try {
    auto* worker = make();
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  } catch (const Napi::Error& e) {
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
}

// Validation errors of an async call reject its promise rather than throw.
template <typename Op>
Napi::Value Async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return queue_promise(env, [&] {
    return guarded(env, Op::name, [&] {
      Parser p(info, Op::name);
      Op op(p);
      p.check_fields();
      return new AsyncOp<Op>(env, std::move(op), p.take_refs());
    });
  });
}

template <typename Op>
void add(Napi::Env env, Napi::Object exports, bool async) {
  exports.Set(Op::name, Napi::Function::New(env, Sync<Op>, Op::name));
  if (async) {
    std::string name = std::string(Op::name) + "Async";
    exports.Set(name, Napi::Function::New(env, Async<Op>, name));
  }
}

}  // namespace rnnkit_addon
