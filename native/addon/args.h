// Argument parsing for the N-API glue: every check names the function, the argument, what was
// expected and what came, and throws a JS TypeError or RangeError. Typed arrays are read zero-copy;
// the parser keeps a reference to each so that an async call can use them off the main thread.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "qgemm.h"
#include "recurrent.h"

namespace rnnkit_addon {

class Parser {
 public:
  Parser(const Napi::CallbackInfo& info, const char* fn) : info_(info), fn_(fn) {}

  Napi::Env env() const { return info_.Env(); }

  [[noreturn]] void type_error(const std::string& what) const {
    throw Napi::TypeError::New(env(), std::string(fn_) + ": " + what);
  }
  [[noreturn]] void range_error(const std::string& what) const {
    throw Napi::RangeError::New(env(), std::string(fn_) + ": " + what);
  }

  Napi::Value arg(size_t i) const { return i < info_.Length() ? info_[i] : env().Undefined(); }

  Napi::Object object(Napi::Value v, const std::string& name) const {
    if (!v.IsObject() || v.IsArray() || v.IsTypedArray())
      type_error(quote(name) + " must be an object, got " + describe(v));
    return v.As<Napi::Object>();
  }
  Napi::Object object(size_t i, const char* name) const { return object(arg(i), name); }

  // A call whose one argument is an options object: its fields are read by name with field() (or
  // the overloads that take a key), each named in messages as its key, and check_fields() then
  // rejects a field that none of them read, so that a misspelt optional field is an error rather
  // than silently absent.
  void options() {
    if (info_.Length() > 1)
      type_error("takes one options object, got " + std::to_string(info_.Length()) + " arguments");
    options_ = object(0, "options");
    read_.reserve(24);
  }
  Napi::Value field(const char* key) {
    read_.push_back(key);
    Napi::Value v = options_.Get(key);
    if (!v.IsUndefined()) ++present_;
    return v;
  }
  Napi::Object object(const char* key) { return object(field(key), key); }
  void check_fields() const {
    if (options_.IsEmpty()) return;
    Napi::Array keys = options_.GetPropertyNames();
    if (keys.Length() <= present_) return;  // every field present was read
    for (uint32_t k = 0; k < keys.Length(); ++k) {
      std::string key = keys.Get(k).ToString().Utf8Value();
      bool known = false;
      for (const char* r : read_) known = known || key == r;
      if (known) continue;
      std::string list;
      for (const char* r : read_) list += (list.empty() ? "" : ", ") + std::string(r);
      type_error("'options' has no field " + quote(key) + "; its fields are " + list);
    }
  }

  // A finite number in [lo, hi].
  double number(Napi::Value v, const std::string& name, double lo, double hi) const {
    if (!v.IsNumber()) type_error(quote(name) + " must be a number, got " + describe(v));
    double x = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(x) || x < lo || x > hi)
      range_error(quote(name) + " must be a finite number in [" + num(lo) + ", " + num(hi) +
                  "], got " + num(x));
    return x;
  }
  double number(size_t i, const char* name, double lo, double hi) const {
    return number(arg(i), name, lo, hi);
  }

  // An integer in [lo, hi].
  int64_t integer(Napi::Value v, const std::string& name, int64_t lo, int64_t hi) const {
    double x = number(v, name, static_cast<double>(lo), static_cast<double>(hi));
    if (std::floor(x) != x) range_error(quote(name) + " must be an integer, got " + num(x));
    return static_cast<int64_t>(x);
  }
  int64_t integer(size_t i, const char* name, int64_t lo, int64_t hi) const {
    return integer(arg(i), name, lo, hi);
  }
  // An integer property `key` of the object argument `obj` (named in messages as obj.key).
  int size(Napi::Object o, const char* obj, const char* key, int lo = 1) const {
    return static_cast<int>(integer(o.Get(key), std::string(obj) + "." + key, lo, 1 << 30));
  }

  bool boolean(Napi::Value v, const std::string& name) const {
    if (!v.IsBoolean()) type_error(quote(name) + " must be a boolean, got " + describe(v));
    return v.As<Napi::Boolean>().Value();
  }

  std::string string(Napi::Value v, const std::string& name) const {
    if (!v.IsString()) type_error(quote(name) + " must be a string, got " + describe(v));
    return v.As<Napi::String>().Utf8Value();
  }

  // An optional callback: a function, or undefined/null.
  Napi::Value callback(size_t i, const char* name) const {
    Napi::Value v = arg(i);
    if (!v.IsUndefined() && !v.IsNull() && !v.IsFunction())
      type_error(quote(name) + " must be a function, got " + describe(v));
    return v;
  }

  // One of the strings `options` (an enum spelt in JS): returns its index.
  int choice(Napi::Value v, const std::string& name,
             std::initializer_list<const char*> options) const {
    std::string s = string(v, name), list;
    int i = 0;
    for (const char* o : options) {
      if (s == o) return i;
      list += (i++ ? ", '" : "'") + std::string(o) + "'";
    }
    range_error(quote(name) + " must be one of " + list + ", got '" + s + "'");
  }

  // Typed arrays: exactly `expected` elements (`shape` says how that number is made), or any
  // number with kAnyLength (then *length receives it). optional: undefined/null gives nullptr.
  static constexpr size_t kAnyLength = static_cast<size_t>(-1);
  float* f32(Napi::Value v, const std::string& name, size_t expected, const std::string& shape,
             bool optional = false, size_t* length = nullptr) {
    return typed<float>(v, name, napi_float32_array, "Float32Array", expected, shape, optional,
                        length);
  }
  float* f32(size_t i, const char* name, size_t expected, const std::string& shape,
             bool optional = false) {
    return f32(arg(i), name, expected, shape, optional);
  }
  float* f32(const char* key, size_t expected, const std::string& shape, bool optional = false) {
    return f32(field(key), key, expected, shape, optional);
  }
  int32_t* i32(Napi::Value v, const std::string& name, size_t expected, const std::string& shape,
               bool optional = false, size_t* length = nullptr) {
    return typed<int32_t>(v, name, napi_int32_array, "Int32Array", expected, shape, optional,
                          length);
  }
  int32_t* i32(size_t i, const char* name, size_t expected, const std::string& shape,
               bool optional = false) {
    return i32(arg(i), name, expected, shape, optional);
  }
  int32_t* i32(const char* key, size_t expected, const std::string& shape, bool optional = false) {
    return i32(field(key), key, expected, shape, optional);
  }

  // Row lengths [B], each in [1, max] (`max_name` says which size that is), from the field `key`.
  const int32_t* lengths(const char* key, int B, int max, const char* max_name, bool optional) {
    const int32_t* lengths = i32(key, B, "B", optional);
    if (lengths)
      for (int b = 0; b < B; ++b)
        if (lengths[b] < 1 || lengths[b] > max)
          range_error(quote(std::string(key) + "[" + std::to_string(b) + "]") + " must be in [1, " +
                      max_name + "=" + std::to_string(max) + "], got " +
                      std::to_string(lengths[b]));
    return lengths;
  }

  // A cell-state field, which exists only for LSTM: a Float32Array there (optional or not),
  // null or absent for every other cell.
  float* lstm_state(bool lstm, const char* key, size_t expected, const std::string& shape,
                    bool optional) {
    if (lstm) return f32(key, expected, shape, optional);
    Napi::Value v = field(key);
    if (!v.IsUndefined() && !v.IsNull())
      type_error(quote(key) + " is only for LSTM and must be null for this cell, got " +
                 describe(v));
    return nullptr;
  }
  uint64_t* u64(Napi::Value v, const std::string& name, size_t expected, const std::string& shape) {
    return typed<uint64_t>(v, name, napi_biguint64_array, "BigUint64Array", expected, shape, false);
  }

  // An array of Float32Arrays; sizes receives each one's length.
  std::vector<float*> f32_list(size_t i, const char* name, std::vector<size_t>& sizes) {
    Napi::Value v = arg(i);
    if (!v.IsArray())
      type_error(quote(name) + " must be an array of Float32Array, got " + describe(v));
    Napi::Array a = v.As<Napi::Array>();
    std::vector<float*> ptrs;
    sizes.clear();
    for (uint32_t k = 0; k < a.Length(); ++k) {
      std::string item = std::string(name) + "[" + std::to_string(k) + "]";
      Napi::Value e = a.Get(k);
      if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        type_error(quote(item) + " must be a Float32Array, got " + describe(e));
      Napi::Float32Array t = e.As<Napi::Float32Array>();
      keep(t);
      ptrs.push_back(t.Data());
      sizes.push_back(t.ElementLength());
    }
    return ptrs;
  }

  // The references that keep the arrays alive; moved into an async worker.
  std::vector<Napi::ObjectReference> take_refs() { return std::move(refs_); }

  static std::string quote(const std::string& name) { return "'" + name + "'"; }
  static std::string num(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", x);
    return buf;
  }

  static std::string describe(const Napi::Value& v) {
    if (v.IsUndefined()) return "undefined";
    if (v.IsNull()) return "null";
    if (v.IsBoolean()) return "a boolean";
    if (v.IsNumber()) return "the number " + num(v.As<Napi::Number>().DoubleValue());
    if (v.IsString()) return "a string";
    if (v.IsArray()) return "an array";
    if (v.IsTypedArray()) {
      Napi::TypedArray t = v.As<Napi::TypedArray>();
      return std::string(typed_name(t.TypedArrayType())) + " of length " +
             std::to_string(t.ElementLength());
    }
    if (v.IsFunction()) return "a function";
    return "an object";
  }

 private:
  template <typename T>
  T* typed(Napi::Value v, const std::string& name, napi_typedarray_type type, const char* type_name,
           size_t expected, const std::string& shape, bool optional, size_t* length = nullptr) {
    if (optional && (v.IsUndefined() || v.IsNull())) return nullptr;
    std::string want = std::string(type_name[0] == 'I' ? "an " : "a ") + type_name;
    if (expected != kAnyLength)
      want += " of length " + std::to_string(expected) + (shape.empty() ? "" : " (" + shape + ")");
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
      type_error(quote(name) + " must be " + want + ", got " + describe(v));
    Napi::TypedArrayOf<T> t = v.As<Napi::TypedArrayOf<T>>();
    if (expected != kAnyLength && t.ElementLength() != expected)
      range_error(quote(name) + " must be " + want + ", got length " +
                  std::to_string(t.ElementLength()));
    if (length) *length = t.ElementLength();
    keep(t);
    return t.Data();
  }

  void keep(Napi::Object o) { refs_.push_back(Napi::Persistent(o)); }

  static const char* typed_name(napi_typedarray_type t) {
    switch (t) {
      case napi_int8_array:
        return "Int8Array";
      case napi_uint8_array:
        return "Uint8Array";
      case napi_uint8_clamped_array:
        return "Uint8ClampedArray";
      case napi_int16_array:
        return "Int16Array";
      case napi_uint16_array:
        return "Uint16Array";
      case napi_int32_array:
        return "Int32Array";
      case napi_uint32_array:
        return "Uint32Array";
      case napi_float32_array:
        return "Float32Array";
      case napi_float64_array:
        return "Float64Array";
      default:
        return "a typed array";
    }
  }

  const Napi::CallbackInfo& info_;
  const char* fn_;
  std::vector<Napi::ObjectReference> refs_;
  Napi::Object options_;
  std::vector<const char*> read_;
  uint32_t present_ = 0;
};

// "V*E = 65*128": how an expected length is made, for error messages.
inline std::string dims(std::initializer_list<std::pair<const char*, long long>> parts) {
  std::string s, v;
  for (const auto& [name, n] : parts) {
    s += (s.empty() ? "" : "*") + std::string(name);
    v += (v.empty() ? "" : "*") + std::to_string(n);
  }
  return s + " = " + v;
}

inline rnnkit::CellType parse_cell(Parser& p, Napi::Value v, const std::string& name) {
  return static_cast<rnnkit::CellType>(p.choice(v, name, {"rnn_tanh", "rnn_relu", "lstm", "gru"}));
}

// The type a model's products run in, from `v` ('float32' when absent).
inline rnnkit::WeightType parse_weight_type(Parser& p, Napi::Value v, const std::string& name) {
  if (v.IsUndefined()) return rnnkit::WeightType::F32;
  return static_cast<rnnkit::WeightType>(p.choice(v, name, {"float32", "int8", "bf16"}));
}

// int8 weights' scales [n] from `v`, each a finite number > 0; null for the other types, which
// take none.
inline const float* parse_scales(Parser& p, rnnkit::WeightType type, Napi::Value v,
                                 const std::string& name, size_t n, const std::string& shape) {
  if (type != rnnkit::WeightType::Int8) {
    if (!v.IsUndefined()) p.type_error(Parser::quote(name) + " belongs to int8 weights only");
    return nullptr;
  }
  const float* s = p.f32(v, name, n, shape);
  for (size_t i = 0; i < n; ++i)
    if (!(s[i] > 0.0f) || !std::isfinite(s[i]))
      p.range_error(Parser::quote(name + "[" + std::to_string(i) + "]") +
                    " must be a finite number > 0 (a scale), got " + std::to_string(s[i]));
  return s;
}

}  // namespace rnnkit_addon
