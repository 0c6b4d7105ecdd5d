// Packed models held by JS: new PackedLm(weights) and new PackedSeq2SeqDecoder(decoder) pack a
// model's weights once (native/core's packed classes copy what they need) for a model whose
// weights never change, a quantized one, so that its generations and searches do not pack them
// again each call. Operations take one where they take the weights (ModelArg); every operation
// sharing it holds it until it ends, whatever becomes of the JS object.
//   weightBytes   bytes of the packed weights (0 once released)
//   release()     frees them once the operations sharing them have ended; using the object
//                 afterwards is an error
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <utility>

#include "args.h"
#include "ops.h"

namespace rnnkit_addon {

// Traits: name (the JS class), Packed (the native class), tag (a napi_type_tag of its own) and
// parse(Parser&), which reads the weights from the constructor's arguments.
template <typename Traits>
class PackedObject : public Napi::ObjectWrap<PackedObject<Traits>> {
 public:
  using Packed = typename Traits::Packed;

  static Napi::Function define(Napi::Env env) {
    return PackedObject::DefineClass(
        env, Traits::name,
        {PackedObject::template InstanceAccessor<&PackedObject::weight_bytes>("weightBytes"),
         PackedObject::template InstanceMethod<&PackedObject::release>("release")});
  }

  explicit PackedObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PackedObject>(info) {
    guarded(info.Env(), Traits::name, [&] {
      Parser p(info, Traits::name);
      const auto weights = Traits::parse(p);
      p.check_fields();
      packed_ = std::make_shared<const Packed>(weights);
      info.This().As<Napi::Object>().TypeTag(&Traits::tag);
    });
  }

  // The packed model that v, argument `name`, holds, or null when v is not one of these objects.
  static std::shared_ptr<const Packed> of(Parser& p, Napi::Value v, const std::string& name) {
    if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&Traits::tag)) return nullptr;
    return PackedObject::Unwrap(v.As<Napi::Object>())->get(p, name);
  }

 private:
  const std::shared_ptr<const Packed>& get(Parser& p, const std::string& name) const {
    if (!packed_)
      p.type_error(Parser::quote(name) + " is a " + Traits::name + " that was released");
    return packed_;
  }

  Napi::Value weight_bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), packed_ ? static_cast<double>(packed_->bytes()) : 0.0);
  }

  Napi::Value release(const Napi::CallbackInfo& info) {
    packed_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<const Packed> packed_;
};

// An operation's model: a packed object's (packed), or weights it reads from JS (w), which it
// packs as it runs, off the main thread.
template <typename Traits, typename Weights>
struct ModelArg {
  std::shared_ptr<const typename Traits::Packed> packed;
  Weights w{};

  // `object`, a packed object's model (PackedObject::of), or where null the weights parse() reads.
  template <typename Parse>
  ModelArg(std::shared_ptr<const typename Traits::Packed> object, Parse&& parse)
      : packed(std::move(object)) {
    if (!packed) w = parse();
  }
  const auto& shape() const {
    return packed ? packed->shape : static_cast<const decltype(packed->shape)&>(w);
  }
  // The packed model: the object's, or the weights packed on first use (in run()).
  const typename Traits::Packed& get() {
    if (!packed) packed = std::make_shared<const typename Traits::Packed>(w);
    return *packed;
  }
};

}  // namespace rnnkit_addon
