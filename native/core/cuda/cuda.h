// The CUDA twins of the CPU kernels: the same functions under the same names, with the same
// argument vocabulary, layouts and contracts as gemm.h, recurrent.h, layers.h, optim.h,
// attention.h and sampling.h, except that every tensor argument is a device pointer.
//
// This header has no CUDA types in it, so the addon and the tests include it from plain C++.
// Work is queued on the calling thread's default stream (cudaStreamPerThread), so two host
// threads never serialise on one stream; calls return before the device has finished, except
// those that return a value computed on the device (softmax_xent_forward, global_norm,
// clip_global_norm), which wait for it. Every CUDA or cuBLAS failure, including one reported
// late by an earlier asynchronous launch, throws rnnkit::cuda::Error naming the call that saw it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "attention.h"
#include "optim.h"
#include "recurrent.h"
#include "sampling.h"

namespace rnnkit {
namespace cuda {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What rnnkit.info() reports. Never throws: a machine without a GPU or without a driver gives
// count 0 and the reason in `status`.
struct DeviceInfo {
  int count = 0;             // devices visible to this process
  std::string name;          // device 0's name ("" when count is 0)
  size_t total_bytes = 0;    // device 0's memory
  size_t free_bytes = 0;     // free at the time of the call
  int major = 0, minor = 0;  // device 0's compute capability
  std::string status;        // "ok", or why no device can be used
};
DeviceInfo device_info() noexcept;
// Whether a device can run kernels now (device_info().count > 0).
bool device_available() noexcept;

void* device_alloc(size_t bytes);  // 0 bytes: null
void device_free(void* p) noexcept;
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_on_device(void* dst, const void* src, size_t bytes);
void fill_zero(void* dst, size_t bytes);
// Waits for everything this thread queued and reports any error an asynchronous launch left.
void synchronize();

// An owning array in device memory.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : p_(static_cast<T*>(device_alloc(n * sizeof(T)))), n_(n) {}
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { device_free(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }

  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    if (host.size() != n_)
      throw std::invalid_argument("rnnkit cuda: upload of " + std::to_string(host.size()) +
                                  " elements into a buffer of " + std::to_string(n_));
    copy_to_device(p_, host.data(), n_ * sizeof(T));
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    copy_to_host(host.data(), p_, n_ * sizeof(T));
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// ---- gemm.h ----
// cuBLAS when the build found it, the built-in tiled kernel otherwise.
void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);
// The built-in kernel, always compiled, so tests can compare it with cuBLAS.
void gemm_builtin(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc);
// `count` independent GEMMs, the i-th on A + i * strideA, B + i * strideB and C + i * strideC
// (strides in floats): the per-batch-row GEMMs of attention in one launch.
void gemm_batched(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  int lda, long long strideA, const float* B, int ldb, long long strideB,
                  float beta, float* C, int ldc, long long strideC, int count);
// "cublas" or "builtin".
const char* gemm_backend();

// ---- recurrent.h ----
// Floats the device workspace must hold; its layout is this file's own, not the CPU's.
size_t stack_workspace_size(const StackShape& s);
// lengths, h0, c0, x, params, ws: device pointers. lengths values are not read back to the host,
// so they are not range-checked here: a row's steps simply run while t < lengths[b].
void stack_forward(const StackShape& s, const float* params, const float* x, const int32_t* lengths,
                   const float* h0, const float* c0, float* y, float* hT, float* cT, float* ws);
void stack_backward(const StackShape& s, const float* params, const float* x,
                    const int32_t* lengths, const float* h0, const float* c0, float* ws,
                    const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0,
                    float* dc0, float* dparams);

// ---- layers.h ----
// ids outside [0, V) give zero rows instead of reading outside the table.
void embedding_forward(const float* table, int V, int E, const int32_t* ids, int N, float* out);
// Scattered with atomic adds, so repeated ids sum in an unspecified order.
void embedding_backward(const int32_t* ids, int N, int E, const float* dout, float* dtable);
void linear_forward(int N, int I, int O, const float* x, const float* W, const float* b, float* y);
void linear_backward(int N, int I, int O, const float* x, const float* W, const float* dy,
                     float* dx, float* dW, float* db);
// logits, targets, lse: device; count: host. Waits for the device.
double softmax_xent_forward(int N, int V, const float* logits, const int32_t* targets,
                            int ignore_index, float label_smoothing, float* lse, int64_t* count);
void softmax_xent_backward(int N, int V, const float* logits, const int32_t* targets,
                           int ignore_index, float label_smoothing, const float* lse, float scale,
                           float* dlogits);

// ---- optim.h ---- (TensorList: host arrays of device pointers)
double global_norm(const TensorList& t);
double clip_global_norm(const TensorList& grads, double max_norm);
void adam_update(const TensorList& params, const TensorList& grads, const TensorList& m,
                 const TensorList& v, int64_t step, const AdamConfig& cfg);
void sgd_update(const TensorList& params, const TensorList& grads, const TensorList& velocity,
                const SgdConfig& cfg);

// ---- attention.h ---- (lengths: device)
void attention_keys_forward(const AttentionShape& s, const float* params, const float* enc,
                            float* keys);
void attention_keys_backward(const AttentionShape& s, const float* params, const float* enc,
                             const float* dkeys, float* denc, float* dparams);
void attention_scores_forward(const AttentionShape& s, const float* params, const float* q,
                              const float* keys, const int32_t* lengths, float* qproj,
                              float* scores);
void attention_scores_backward(const AttentionShape& s, const float* params, const float* q,
                               const float* keys, const int32_t* lengths, const float* qproj,
                               const float* dscores, float* dq, float* dkeys, float* dparams,
                               float* dqproj);
void masked_softmax_forward(int T, int B, int S, const int32_t* lengths, float* x);
void masked_softmax_backward(int T, int B, int S, const int32_t* lengths, const float* y,
                             float* dy);
void attention_context_forward(int T, int B, int S, int He, const float* align, const float* enc,
                               float* ctx);
void attention_context_backward(int T, int B, int S, int He, const float* align, const float* enc,
                                const float* dctx, float* dalign, float* denc);
void attention_combine_forward(int N, int He, int Hd, const float* Wc, const float* ctx,
                               const float* q, float* out);
void attention_combine_backward(int N, int He, int Hd, const float* Wc, const float* ctx,
                                const float* q, const float* out, float* dout, float* dctx,
                                float* dq, float* dWc);
size_t luong_attention_workspace_size(const AttentionShape& s);
void luong_attention_forward(const AttentionShape& s, const float* params, const float* q,
                             const float* enc, const int32_t* lengths, float* ws, float* align,
                             float* out);
void luong_attention_backward(const AttentionShape& s, const float* params, const float* q,
                              const float* enc, const int32_t* lengths, float* ws,
                              const float* align, const float* out, float* dout, float* dq,
                              float* denc, float* dparams);

// ---- sampling.h ----
// sample_token for B rows at once: row b samples from logits [B, V] row b (overwritten), with
// history row b (history + b * history_stride, its first history_len[b] tokens; null when
// sampler_uses_history(cfg) is false) and the generator whose Rng::state is rng_state[b], which
// advances exactly as the CPU's does. Writes tokens [B]. All pointers are device pointers.
// The same steps and candidate order as sample_token; the probabilities come from the device's
// expf, so a draw that lands within rounding of a boundary between two tokens may pick the other.
void sample_tokens(const SamplerConfig& cfg, float* logits, int B, int V, const int32_t* history,
                   int history_stride, const int32_t* history_len, uint64_t* rng_state,
                   int32_t* tokens);

}  // namespace cuda
}  // namespace rnnkit
