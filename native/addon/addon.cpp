// N-API glue: argument checks -> JS errors, and sync/async entry points over native/core.
// Each operation is one struct: its constructor parses and validates the JS arguments on the main
// thread, run() calls the kernel (on the main thread, or on the libuv pool for the *Async twin),
// and result() turns what it computed into a JS value.
#include <napi.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "cpu.h"
#include "dropout.h"
#include "gemm.h"
#include "layers.h"
#include "mixed.h"
#include "ops.h"
#include "optim.h"
#include "qgemm.h"
#include "recurrent.h"
#ifdef RNNKIT_HAVE_CUDA
#include "cuda/cuda.h"
#endif

namespace rnnkit_addon {

void init_generate(Napi::Env env, Napi::Object exports);  // generate_ops.cpp
void init_seq2seq(Napi::Env env, Napi::Object exports);   // seq2seq_ops.cpp
void init_bpe(Napi::Env env, Napi::Object exports);       // bpe_ops.cpp

namespace {

using rnnkit::CellType;
using rnnkit::StackShape;

// Typed arrays above 2^32 - 1 elements do not exist in V8; parameter buffers stay well below.
constexpr double kMaxElements = 4294967295.0;

// The optional precision field of a shape object: 'float32' (the default) or 'bf16', which is
// refused here, before any work, where this process has no kernel for it.
rnnkit::Precision parse_precision(Parser& p, Napi::Object o) {
  const Napi::Value v = o.Get("precision");
  if (v.IsUndefined()) return rnnkit::Precision::F32;
  const auto precision =
      static_cast<rnnkit::Precision>(p.choice(v, "shape.precision", {"float32", "bf16"}));
  if (precision == rnnkit::Precision::Bf16 && std::string(rnnkit::bf16_products()) == "none")
    p.range_error(
        "'shape.precision' 'bf16' needs a CPU with AVX512-BF16 (vdpbf16ps), and this one has "
        "none");
  return precision;
}

// A stack's shape {cell, T, B, I, H, L, dropout, residual, training, seed, precision?}.
StackShape parse_stack_shape(Parser& p, Napi::Object o) {
  StackShape s;
  s.cell = parse_cell(p, o.Get("cell"), "shape.cell");
  s.T = p.size(o, "shape", "T");
  s.B = p.size(o, "shape", "B");
  s.I = p.size(o, "shape", "I");
  s.H = p.size(o, "shape", "H");
  s.L = p.size(o, "shape", "L");
  s.dropout = static_cast<float>(p.number(o.Get("dropout"), "shape.dropout", 0, 0.99));
  s.residual = p.boolean(o.Get("residual"), "shape.residual");
  s.training = p.boolean(o.Get("training"), "shape.training");
  s.seed = static_cast<uint64_t>(p.integer(o.Get("seed"), "shape.seed", 0, 9007199254740991LL));
  s.precision = parse_precision(p, o);
  return s;
}

// The fields stackForward and stackBackward share: {shape, params, x, lengths, h0, c0, ws}.
struct StackInputs {
  StackShape s;
  bool lstm;
  size_t state;
  std::string state_dims;
  const float *params, *x, *h0, *c0;
  const int32_t* lengths;
  float* ws;
  // The call's one argument is the options object; a backward needs a training forward's ws.
  StackInputs(Parser& p, bool backward) {
    p.options();
    s = parse_stack_shape(p, p.object("shape"));
    if (backward && !s.training)
      p.range_error(
          "'shape.training' must be true: backward needs the workspace of a training "
          "forward");
    lstm = s.cell == CellType::Lstm;
    state = size_t(s.L) * s.B * s.H;
    state_dims = dims({{"L", s.L}, {"B", s.B}, {"H", s.H}});
    params = p.f32("params", rnnkit::stack_param_count(s.cell, s.I, s.H, s.L),
                   "stackParamCount(cell, I, H, L)");
    x = p.f32("x", size_t(s.T) * s.B * s.I, dims({{"T", s.T}, {"B", s.B}, {"I", s.I}}));
    lengths = p.lengths("lengths", s.B, s.T, "T", true);
    h0 = p.f32("h0", state, state_dims, true);
    c0 = p.lstm_state(lstm, "c0", state, state_dims, true);
    ws = p.f32("ws", rnnkit::stack_workspace_size(s), "stackWorkspaceSize(shape)");
  }
};

// stackForward({shape, params, x, lengths, h0, c0, y, hT, cT, ws})
struct StackForward {
  static constexpr const char* name = "stackForward";
  StackInputs a;
  float *y, *hT, *cT;

  explicit StackForward(Parser& p) : a(p, false) {
    const StackShape& s = a.s;
    y = p.f32("y", size_t(s.T) * s.B * s.H, dims({{"T", s.T}, {"B", s.B}, {"H", s.H}}));
    hT = p.f32("hT", a.state, a.state_dims);
    cT = p.lstm_state(a.lstm, "cT", a.state, a.state_dims, false);
  }
  void run() { rnnkit::stack_forward(a.s, a.params, a.x, a.lengths, a.h0, a.c0, y, hT, cT, a.ws); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// stackBackward({shape, params, x, lengths, h0, c0, ws, dy, dhT, dcT, dx, dh0, dc0, dparams})
struct StackBackward {
  static constexpr const char* name = "stackBackward";
  StackInputs a;
  const float *dy, *dhT, *dcT;
  float *dx, *dh0, *dc0, *dparams;

  explicit StackBackward(Parser& p) : a(p, true) {
    const StackShape& s = a.s;
    const std::string tbi = dims({{"T", s.T}, {"B", s.B}, {"I", s.I}});
    dy = p.f32("dy", size_t(s.T) * s.B * s.H, dims({{"T", s.T}, {"B", s.B}, {"H", s.H}}));
    dhT = p.f32("dhT", a.state, a.state_dims, true);
    dcT = p.lstm_state(a.lstm, "dcT", a.state, a.state_dims, true);
    dx = p.f32("dx", size_t(s.T) * s.B * s.I, tbi, true);
    dh0 = p.f32("dh0", a.state, a.state_dims, true);
    dc0 = p.lstm_state(a.lstm, "dc0", a.state, a.state_dims, true);
    dparams = p.f32("dparams", rnnkit::stack_param_count(s.cell, s.I, s.H, s.L),
                    "stackParamCount(cell, I, H, L)");
  }
  void run() {
    rnnkit::stack_backward(a.s, a.params, a.x, a.lengths, a.h0, a.c0, a.ws, dy, dhT, dcT, dx, dh0,
                           dc0, dparams);
  }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// Token ids: every one in [0, V), or equal to `ignore` when that is allowed.
const int32_t* parse_ids(Parser& p, size_t i, const char* name, size_t n, int V,
                         const int32_t* ignore = nullptr) {
  const int32_t* ids = p.i32(i, name, n, "");
  for (size_t k = 0; k < n; ++k)
    if ((ids[k] < 0 || ids[k] >= V) && !(ignore && ids[k] == *ignore))
      p.range_error(std::string("'") + name + "[" + std::to_string(k) + "]' must be in [0, " +
                    std::to_string(V) + ")" +
                    (ignore ? " or the ignore index " + std::to_string(*ignore) : "") + ", got " +
                    std::to_string(ids[k]));
  return ids;
}

size_t length_of(Parser& p, size_t i, const char* name) {
  Napi::Value v = p.arg(i);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    p.type_error(std::string("'") + name + "' must be an Int32Array, got " + Parser::describe(v));
  size_t n = v.As<Napi::TypedArray>().ElementLength();
  if (n == 0) p.range_error(std::string("'") + name + "' must not be empty");
  return n;
}

// embeddingForward({V, E}, table, ids, out)
struct EmbeddingForward {
  static constexpr const char* name = "embeddingForward";
  int V, E, N;
  const float* table;
  const int32_t* ids;
  float* out;
  explicit EmbeddingForward(Parser& p) {
    Napi::Object o = p.object(0, "shape");
    V = p.size(o, "shape", "V");
    E = p.size(o, "shape", "E");
    table = p.f32(1, "table", size_t(V) * E, dims({{"V", V}, {"E", E}}));
    N = static_cast<int>(length_of(p, 2, "ids"));
    ids = parse_ids(p, 2, "ids", N, V);
    out = p.f32(3, "out", size_t(N) * E, dims({{"N", N}, {"E", E}}));
  }
  void run() { rnnkit::embedding_forward(table, V, E, ids, N, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// embeddingBackward({V, E}, ids, dout, dtable)
struct EmbeddingBackward {
  static constexpr const char* name = "embeddingBackward";
  int V, E, N;
  const int32_t* ids;
  const float* dout;
  float* dtable;
  explicit EmbeddingBackward(Parser& p) {
    Napi::Object o = p.object(0, "shape");
    V = p.size(o, "shape", "V");
    E = p.size(o, "shape", "E");
    N = static_cast<int>(length_of(p, 1, "ids"));
    ids = parse_ids(p, 1, "ids", N, V);
    dout = p.f32(2, "dout", size_t(N) * E, dims({{"N", N}, {"E", E}}));
    dtable = p.f32(3, "dtable", size_t(V) * E, dims({{"V", V}, {"E", E}}));
  }
  void run() { rnnkit::embedding_backward(ids, N, E, dout, dtable); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct LinearShape {
  int N, I, O;
  rnnkit::Precision precision;
  LinearShape(Parser& p, size_t i) {
    Napi::Object o = p.object(i, "shape");
    N = p.size(o, "shape", "N");
    I = p.size(o, "shape", "I");
    O = p.size(o, "shape", "O");
    precision = parse_precision(p, o);
  }
};

// linearForward({N, I, O, precision?}, x, W, b, y)
struct LinearForward {
  static constexpr const char* name = "linearForward";
  LinearShape d;
  const float *x, *W, *b;
  float* y;
  explicit LinearForward(Parser& p) : d(p, 0) {
    x = p.f32(1, "x", size_t(d.N) * d.I, dims({{"N", d.N}, {"I", d.I}}));
    W = p.f32(2, "W", size_t(d.O) * d.I, dims({{"O", d.O}, {"I", d.I}}));
    b = p.f32(3, "b", d.O, "O", true);
    y = p.f32(4, "y", size_t(d.N) * d.O, dims({{"N", d.N}, {"O", d.O}}));
  }
  void run() { rnnkit::linear_forward(d.N, d.I, d.O, x, W, b, y, d.precision); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// linearBackward({N, I, O, precision?}, x, W, dy, dx, dW, db)
struct LinearBackward {
  static constexpr const char* name = "linearBackward";
  LinearShape d;
  const float *x, *W, *dy;
  float *dx, *dW, *db;
  explicit LinearBackward(Parser& p) : d(p, 0) {
    x = p.f32(1, "x", size_t(d.N) * d.I, dims({{"N", d.N}, {"I", d.I}}));
    W = p.f32(2, "W", size_t(d.O) * d.I, dims({{"O", d.O}, {"I", d.I}}));
    dy = p.f32(3, "dy", size_t(d.N) * d.O, dims({{"N", d.N}, {"O", d.O}}));
    dx = p.f32(4, "dx", size_t(d.N) * d.I, dims({{"N", d.N}, {"I", d.I}}), true);
    dW = p.f32(5, "dW", size_t(d.O) * d.I, dims({{"O", d.O}, {"I", d.I}}));
    db = p.f32(6, "db", d.O, "O", true);
  }
  void run() { rnnkit::linear_backward(d.N, d.I, d.O, x, W, dy, dx, dW, db, d.precision); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct XentArgs {
  int N, V, ignore;
  float smoothing;
  const float* logits;
  const int32_t* targets;
  XentArgs(Parser& p) {
    Napi::Object o = p.object(0, "shape");
    N = p.size(o, "shape", "N");
    V = p.size(o, "shape", "V");
    logits = p.f32(1, "logits", size_t(N) * V, dims({{"N", N}, {"V", V}}));
    ignore = static_cast<int>(p.integer(3, "ignoreIndex", -(1LL << 31), (1LL << 31) - 1));
    targets = parse_ids(p, 2, "targets", N, V, &ignore);
    smoothing = static_cast<float>(p.number(4, "labelSmoothing", 0, 1));
  }
};

// softmaxXentForward({N, V}, logits, targets, ignoreIndex, labelSmoothing, lse) -> {sum, count}
struct SoftmaxXentForward {
  static constexpr const char* name = "softmaxXentForward";
  XentArgs a;
  float* lse;
  double sum = 0;
  int64_t count = 0;
  explicit SoftmaxXentForward(Parser& p) : a(p) { lse = p.f32(5, "lse", a.N, "N"); }
  void run() {
    sum = rnnkit::softmax_xent_forward(a.N, a.V, a.logits, a.targets, a.ignore, a.smoothing, lse,
                                       &count);
  }
  Napi::Value result(Napi::Env env) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("sum", sum);
    r.Set("count", static_cast<double>(count));
    return r;
  }
};

// softmaxXentBackward({N, V}, logits, targets, ignoreIndex, labelSmoothing, lse, scale, dlogits)
struct SoftmaxXentBackward {
  static constexpr const char* name = "softmaxXentBackward";
  XentArgs a;
  const float* lse;
  float scale;
  float* dlogits;
  explicit SoftmaxXentBackward(Parser& p) : a(p) {
    lse = p.f32(5, "lse", a.N, "N");
    scale = static_cast<float>(p.number(6, "scale", -3.4e38, 3.4e38));
    dlogits = p.f32(7, "dlogits", size_t(a.N) * a.V, dims({{"N", a.N}, {"V", a.V}}));
  }
  void run() {
    rnnkit::softmax_xent_backward(a.N, a.V, a.logits, a.targets, a.ignore, a.smoothing, lse, scale,
                                  dlogits);
  }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// dropout(x, p, seed, y): y = x * mask, the mask a pure function of (seed, index) kept with
// probability 1 - p and scaled by 1 / (1 - p). Backward is the same call on the gradients.
struct DropoutOp {
  static constexpr const char* name = "dropout";
  size_t n = 0;
  const float* x;
  rnnkit::Dropout d;
  float* y;
  explicit DropoutOp(Parser& p) {
    x = p.f32(p.arg(0), "x", Parser::kAnyLength, "", false, &n);
    d = rnnkit::Dropout(static_cast<uint64_t>(p.integer(2, "seed", 0, 9007199254740991LL)),
                        static_cast<float>(p.number(1, "p", 0, 0.99)));
    y = p.f32(3, "y", n, "x.length");
  }
  void run() { rnnkit::dropout_apply(d, x, n, y); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// A list of Float32Arrays, optionally required to match another list's sizes.
struct List {
  std::vector<float*> ptrs;
  std::vector<size_t> sizes;
  List(Parser& p, size_t i, const char* name, const List* like = nullptr) {
    ptrs = p.f32_list(i, name, sizes);
    if (like) {
      if (sizes.size() != like->sizes.size())
        p.range_error(std::string("'") + name + "' must hold " +
                      std::to_string(like->sizes.size()) + " arrays (one per parameter), got " +
                      std::to_string(sizes.size()));
      for (size_t k = 0; k < sizes.size(); ++k)
        if (sizes[k] != like->sizes[k])
          p.range_error(std::string("'") + name + "[" + std::to_string(k) + "]' must have length " +
                        std::to_string(like->sizes[k]) + " like its parameter, got " +
                        std::to_string(sizes[k]));
    }
  }
  rnnkit::TensorList view() const {
    return {ptrs.data(), sizes.data(), static_cast<int>(ptrs.size())};
  }
};

// globalNorm(tensors) -> number
struct GlobalNorm {
  static constexpr const char* name = "globalNorm";
  List t;
  double norm = 0;
  explicit GlobalNorm(Parser& p) : t(p, 0, "tensors") {}
  void run() { norm = rnnkit::global_norm(t.view()); }
  Napi::Value result(Napi::Env env) { return Napi::Number::New(env, norm); }
};

// clipGlobalNorm(grads, maxNorm) -> norm before clipping
struct ClipGlobalNorm {
  static constexpr const char* name = "clipGlobalNorm";
  List g;
  double max_norm, norm = 0;
  explicit ClipGlobalNorm(Parser& p) : g(p, 0, "grads") {
    max_norm = p.number(1, "maxNorm", 1e-30, 3.4e38);
  }
  void run() { norm = rnnkit::clip_global_norm(g.view(), max_norm); }
  Napi::Value result(Napi::Env env) { return Napi::Number::New(env, norm); }
};

// adamUpdate(params, grads, m, v, step, {lr, beta1, beta2, eps, weightDecay, decoupled})
struct AdamUpdate {
  static constexpr const char* name = "adamUpdate";
  List params, grads, m, v;
  int64_t step;
  rnnkit::AdamConfig cfg;
  explicit AdamUpdate(Parser& p)
      : params(p, 0, "params"),
        grads(p, 1, "grads", &params),
        m(p, 2, "m", &params),
        v(p, 3, "v", &params) {
    step = p.integer(4, "step", 1, 1LL << 50);
    Napi::Object o = p.object(5, "config");
    cfg.lr = static_cast<float>(p.number(o.Get("lr"), "config.lr", 0, 1e6));
    cfg.beta1 = static_cast<float>(p.number(o.Get("beta1"), "config.beta1", 0, 0.999999));
    cfg.beta2 = static_cast<float>(p.number(o.Get("beta2"), "config.beta2", 0, 0.99999999));
    cfg.eps = static_cast<float>(p.number(o.Get("eps"), "config.eps", 1e-30, 1));
    cfg.weight_decay =
        static_cast<float>(p.number(o.Get("weightDecay"), "config.weightDecay", 0, 1e6));
    cfg.decoupled = p.boolean(o.Get("decoupled"), "config.decoupled");
  }
  void run() { rnnkit::adam_update(params.view(), grads.view(), m.view(), v.view(), step, cfg); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// sgdUpdate(params, grads, velocity, {lr, momentum, weightDecay, nesterov})
struct SgdUpdate {
  static constexpr const char* name = "sgdUpdate";
  List params, grads, velocity;
  rnnkit::SgdConfig cfg;
  explicit SgdUpdate(Parser& p)
      : params(p, 0, "params"), grads(p, 1, "grads", &params), velocity(p, 2, "velocity", &params) {
    Napi::Object o = p.object(3, "config");
    cfg.lr = static_cast<float>(p.number(o.Get("lr"), "config.lr", 0, 1e6));
    cfg.momentum = static_cast<float>(p.number(o.Get("momentum"), "config.momentum", 0, 1));
    cfg.weight_decay =
        static_cast<float>(p.number(o.Get("weightDecay"), "config.weightDecay", 0, 1e6));
    cfg.nesterov = p.boolean(o.Get("nesterov"), "config.nesterov");
    if (cfg.nesterov && cfg.momentum == 0)
      p.range_error("'config.nesterov' needs a momentum above 0");
  }
  void run() { rnnkit::sgd_update(params.view(), grads.view(), velocity.view(), cfg); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// gemm({transA, transB, M, N, K, alpha, beta, kernel}, A, B, C): C = alpha op(A) op(B) + beta C,
// kernel 'auto' (rnnkit's choice, as its layers get), 'blas' or 'builtin'.
struct Gemm {
  static constexpr const char* name = "gemm";
  bool ta, tb;
  int kernel;
  int M, N, K;
  float alpha, beta;
  const float *A, *B;
  float* C;
  explicit Gemm(Parser& p) {
    Napi::Object o = p.object(0, "shape");
    ta = p.boolean(o.Get("transA"), "shape.transA");
    tb = p.boolean(o.Get("transB"), "shape.transB");
    kernel = p.choice(o.Get("kernel"), "shape.kernel", {"auto", "blas", "builtin"});
    M = p.size(o, "shape", "M");
    N = p.size(o, "shape", "N");
    K = p.size(o, "shape", "K");
    alpha = static_cast<float>(p.number(o.Get("alpha"), "shape.alpha", -3.4e38, 3.4e38));
    beta = static_cast<float>(p.number(o.Get("beta"), "shape.beta", -3.4e38, 3.4e38));
    A = p.f32(1, "A", size_t(M) * K, dims({{"M", M}, {"K", K}}));
    B = p.f32(2, "B", size_t(K) * N, dims({{"K", K}, {"N", N}}));
    C = p.f32(3, "C", size_t(M) * N, dims({{"M", M}, {"N", N}}));
  }
  void run() {
    auto f = kernel == 0 ? rnnkit::gemm : kernel == 1 ? rnnkit::gemm_blas : rnnkit::gemm_builtin;
    f(ta, tb, M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, beta, C, N);
  }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

// stackParamCount({cell, I, H, L}) -> floats in the flat parameter buffer
Napi::Value StackParamCount(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), "stackParamCount", [&] {
    Parser p(info, "stackParamCount");
    Napi::Object o = p.object(0, "shape");
    CellType cell = parse_cell(p, o.Get("cell"), "shape.cell");
    int I = p.size(o, "shape", "I"), H = p.size(o, "shape", "H"), L = p.size(o, "shape", "L");
    double n = double(L) * rnnkit::gate_count(cell) * H * (double(I) + H + 2);
    if (n > kMaxElements)
      p.range_error("the parameter count G*H*(I+H+2)*L of this shape is " + Parser::num(n) +
                    ", above the largest Float32Array (2^32 - 1 elements)");
    return Napi::Number::New(info.Env(),
                             static_cast<double>(rnnkit::stack_param_count(cell, I, H, L)));
  });
}

// stackWorkspaceSize(shape) -> floats the workspace must hold
Napi::Value StackWorkspaceSize(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), "stackWorkspaceSize", [&] {
    Parser p(info, "stackWorkspaceSize");
    StackShape s = parse_stack_shape(p, p.object(0, "shape"));
    return Napi::Number::New(info.Env(), static_cast<double>(rnnkit::stack_workspace_size(s)));
  });
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  r.Set("isa", rnnkit::compiled_isa());
  r.Set("gemm", rnnkit::gemm_backend());
  r.Set("blasCore", rnnkit::blas_core());
  r.Set("blasLibrary", rnnkit::blas_library());
  r.Set("builtinVectorBits", rnnkit::builtin_vector_bits());
  r.Set("products", rnnkit::gemm_products());
  r.Set("int8Kernel", rnnkit::int8_kernel());
  const rnnkit::Bf16Instructions bf16 = rnnkit::cpu_bf16();
  Napi::Object b = Napi::Object::New(env);
  b.Set("avx512Bf16", bf16.avx512_bf16);
  b.Set("amxBf16", bf16.amx_bf16);
  const std::string products = rnnkit::bf16_products();
  b.Set("products", products == "none" ? env.Null() : Napi::String::New(env, products));
  r.Set("bf16", b);
  const rnnkit::GemmCalibration cal = rnnkit::gemm_calibration();
  if (cal.measured) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("openblasGflops", cal.openblas_gflops);
    c.Set("builtinGflops", cal.builtin_gflops);
    r.Set("calibration", c);
  } else {
    r.Set("calibration", env.Null());
  }
  r.Set("threads", rnnkit::gemm_threads());
#ifdef RNNKIT_HAVE_CUDA
  // Compiled with the CUDA kernels: say so, and what device (if any) they would run on.
  r.Set("cuda", true);
  const rnnkit::cuda::DeviceInfo d = rnnkit::cuda::device_info();
  Napi::Object dev = Napi::Object::New(env);
  dev.Set("count", d.count);
  dev.Set("name", d.name);
  dev.Set("totalMemory", static_cast<double>(d.total_bytes));
  dev.Set("freeMemory", static_cast<double>(d.free_bytes));
  dev.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
  dev.Set("status", d.status);
  dev.Set("gemm", rnnkit::cuda::gemm_backend());
  r.Set("cudaDevice", dev);
#else
  r.Set("cuda", false);
#endif
  return r;
}

// cpu() -> { isa, cpu, supported }: the variant this build is, the CPU's name, and the variants
// the CPU and OS run (best first). The loader asks the baseline build before loading another.
Napi::Value Cpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  r.Set("isa", rnnkit::compiled_isa());
  r.Set("cpu", rnnkit::cpu_name());
  Napi::Array supported = Napi::Array::New(env);
  for (const std::string& isa : rnnkit::isa_variants())
    if (rnnkit::isa_supported(isa)) supported.Set(supported.Length(), isa);
  r.Set("supported", supported);
  return r;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Parser p(info, "setThreads");
  rnnkit::set_gemm_threads(static_cast<int>(p.integer(0, "threads", 1, 1024)));
  return info.Env().Undefined();
}

// withBuiltinProducts(fn): calls fn() with the products it runs on this thread on the built-in
// GEMM and rnnkit's threads (rnnkit::BuiltinProducts), and returns what it returns; an exception
// it throws passes through, the scope ended.
Napi::Value WithBuiltinProducts(const Napi::CallbackInfo& info) {
  Parser p(info, "withBuiltinProducts");
  Napi::Value v = p.arg(0);
  if (!v.IsFunction() || info.Length() != 1)
    p.type_error("takes one function, got " + Parser::describe(v));
  const rnnkit::BuiltinProducts scope;
  return v.As<Napi::Function>().Call({});
}

// releaseBuffers(buffers): detaches each ArrayBuffer of the list, which frees its memory now
// rather than at the garbage collection that finds it unreachable (V8 lets tens of MiB of
// unreachable buffers wait for one). The caller owns them: every view of them reads as empty after.
// Anything else in the list (a SharedArrayBuffer, which cannot be detached) is left as it is.
Napi::Value ReleaseBuffers(const Napi::CallbackInfo& info) {
  Parser p(info, "releaseBuffers");
  Napi::Value v = p.arg(0);
  if (!v.IsArray() || info.Length() != 1)
    p.type_error("takes one array of ArrayBuffers, got " + Parser::describe(v));
  Napi::Array list = v.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    if (!item.IsArrayBuffer()) continue;
    Napi::ArrayBuffer buffer = item.As<Napi::ArrayBuffer>();
    if (!buffer.IsDetached()) buffer.Detach();
  }
  return info.Env().Undefined();
}

// glibc serves a block of at least its mmap threshold from a mapping of its own, returned to the
// system when freed; but after the first such free it raises the threshold to that block's size
// (up to 32 MiB), and from then on blocks of that size come from the heap, whose freed pages it
// keeps. A model's weights are such blocks (a load reads the file, widens it and fills the model's
// arrays: tens of MiB per model), so a loop that loads, generates and drops models held 400+ MiB
// of freed heap. A fixed threshold keeps every block of 1 MiB or more mapped on its own. Once per
// process, whatever the number of threads that load the addon.
void keep_large_blocks_mapped() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] { mallopt(M_MMAP_THRESHOLD, 1 << 20); });
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  keep_large_blocks_mapped();
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("cpu", Napi::Function::New(env, Cpu, "cpu"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("withBuiltinProducts",
              Napi::Function::New(env, WithBuiltinProducts, "withBuiltinProducts"));
  exports.Set("releaseBuffers", Napi::Function::New(env, ReleaseBuffers, "releaseBuffers"));
  exports.Set("stackParamCount", Napi::Function::New(env, StackParamCount, "stackParamCount"));
  exports.Set("stackWorkspaceSize",
              Napi::Function::New(env, StackWorkspaceSize, "stackWorkspaceSize"));
  add<StackForward>(env, exports, true);
  add<StackBackward>(env, exports, false);
  add<EmbeddingForward>(env, exports, false);
  add<EmbeddingBackward>(env, exports, false);
  add<LinearForward>(env, exports, false);
  add<LinearBackward>(env, exports, false);
  add<SoftmaxXentForward>(env, exports, false);
  add<SoftmaxXentBackward>(env, exports, false);
  add<DropoutOp>(env, exports, false);
  add<GlobalNorm>(env, exports, false);
  add<ClipGlobalNorm>(env, exports, false);
  add<AdamUpdate>(env, exports, false);
  add<SgdUpdate>(env, exports, false);
  add<Gemm>(env, exports, true);
  init_generate(env, exports);
  init_seq2seq(env, exports);
  init_bpe(env, exports);
  return exports;
}

}  // namespace
}  // namespace rnnkit_addon

static Napi::Object InitRnnkit(Napi::Env env, Napi::Object exports) {
  return rnnkit_addon::Init(env, exports);
}

NODE_API_MODULE(rnnkit, InitRnnkit)
