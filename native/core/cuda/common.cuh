// Private to the CUDA kernels: error checking, launch geometry, per-thread scratch memory and the
// block reductions several kernels share.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cub/block/block_reduce.cuh>

#include "cuda.h"

namespace rnnkit {
namespace cuda {

// Every launch and copy goes to the calling thread's default stream (see cuda.h).
inline cudaStream_t stream() { return cudaStreamPerThread; }

// Throws Error("rnnkit cuda: <what>: <CUDA's message> (<error name>)") unless e is cudaSuccess.
void check(cudaError_t e, const char* what);
// After a kernel launch: a bad configuration shows up here, a fault in the kernel at a later call.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

constexpr int kThreads = 256;
inline unsigned blocks_for(size_t n, int threads = kThreads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

// Device memory owned by the calling thread and kept between calls, so that kernels needing a few
// temporary buffers allocate nothing once warm. Valid until the thread's next scratch() call;
// work queued on the thread's stream before then may use it (growing it waits for the device).
void* scratch(size_t bytes);

// Sum over the block of kThreads threads; the result is valid in thread 0.
template <typename T>
__device__ T block_sum(T v) {
  using Reduce = cub::BlockReduce<T, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  return Reduce(tmp).Sum(v);
}

// Sum over the block, returned to every thread.
template <typename T>
__device__ T block_sum_all(T v) {
  __shared__ T total;
  T s = block_sum(v);
  if (threadIdx.x == 0) total = s;
  __syncthreads();
  T r = total;
  __syncthreads();
  return r;
}

// Max over the block, returned to every thread.
__device__ inline float block_max_all(float v) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ float result;
  float m = Reduce(tmp).Reduce(v, [](float a, float b) { return b > a ? b : a; });
  if (threadIdx.x == 0) result = m;
  __syncthreads();
  float r = result;
  __syncthreads();
  return r;
}

// dst[c] += sum of the column c of a [rows, cols] (leading dimension lda), in a fixed order, so
// that bias gradients are reproducible (no atomics).
void add_column_sums(size_t rows, int cols, const float* a, int lda, float* dst);

}  // namespace cuda
}  // namespace rnnkit
