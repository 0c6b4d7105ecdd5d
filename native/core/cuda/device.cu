// Device discovery, memory, copies and the error policy: every CUDA error becomes an Error
// exception with the call that saw it, never an abort.
#include <string>

#include "common.cuh"

namespace rnnkit {
namespace cuda {

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  throw Error(std::string("rnnkit cuda: ") + what + ": " + cudaGetErrorString(e) + " (" +
              cudaGetErrorName(e) + ")");
}

DeviceInfo device_info() noexcept {
  DeviceInfo info;
  try {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
      // A failed query leaves an error behind that later calls would report as theirs.
      cudaGetLastError();
      info.status =
          e == cudaSuccess ? "no device" : std::string("no device: ") + cudaGetErrorString(e);
      return info;
    }
    cudaDeviceProp prop;
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    check(cudaMemGetInfo(&info.free_bytes, &info.total_bytes), "cudaMemGetInfo");
    info.count = n;
    info.name = prop.name;
    info.major = prop.major;
    info.minor = prop.minor;
    info.status = "ok";
  } catch (const std::exception& ex) {
    info = DeviceInfo();
    info.status = ex.what();
  }
  return info;
}

bool device_available() noexcept { return device_info().count > 0; }

void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // out of memory is not sticky: leave the context usable
    check(e, ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
  }
  return p;
}

void device_free(void* p) noexcept {
  // cudaFree only fails on a pointer it never gave out or once the runtime is unloading at exit;
  // neither leaves anything to clean up.
  if (p) cudaFree(p);
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), "copy to device");
}

// Waits for the copy, so the host buffer is filled on return.
void copy_to_host(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()), "copy to host");
  synchronize();
}

void copy_on_device(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), "copy on device");
}

void fill_zero(void* dst, size_t bytes) {
  check(cudaMemsetAsync(dst, 0, bytes, stream()), "cudaMemsetAsync");
}

void synchronize() { check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize"); }

namespace {

struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  ~Scratch() { device_free(p); }
};

}  // namespace

void* scratch(size_t bytes) {
  thread_local Scratch s;
  if (bytes > s.bytes) {
    // cudaFree waits for the device, so no queued kernel still uses the old block.
    device_free(s.p);
    s.p = nullptr;
    s.bytes = 0;
    s.p = device_alloc(bytes);
    s.bytes = bytes;
  }
  return s.p;
}

}  // namespace cuda
}  // namespace rnnkit
