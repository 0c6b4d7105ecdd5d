// Row-major GEMM on the device. cuBLAS is column-major; a row-major C = op(A) op(B) is the
// column-major C^T = op(B)^T op(A)^T, so each call passes B before A and N before M, and the
// matrices are used as stored. Without cuBLAS a tiled shared-memory kernel does the same.
#include <string>

#include "common.cuh"
#ifdef RNNKIT_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

namespace rnnkit {
namespace cuda {
namespace {

// A block computes a kTile x kTile tile of C with kThreads threads, each a 4 x 4 block of it,
// stepping through K kDepth at a time.
constexpr int kTile = 64, kDepth = 16, kSub = kTile / 16;

template <bool TransA, bool TransB>
__global__ void gemm_tiled(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                           long long strideA, const float* __restrict__ B, int ldb,
                           long long strideB, float beta, float* __restrict__ C, int ldc,
                           long long strideC) {
  __shared__ float As[kDepth][kTile + 1];
  __shared__ float Bs[kDepth][kTile + 1];
  A += blockIdx.z * strideA;
  B += blockIdx.z * strideB;
  C += blockIdx.z * strideC;
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[kSub][kSub] = {};
  for (int k0 = 0; k0 < K; k0 += kDepth) {
    // Consecutive threads read consecutive addresses of whichever layout the operand has.
    for (int e = threadIdx.x; e < kTile * kDepth; e += kThreads) {
      const int r = TransA ? e % kTile : e / kDepth, k = TransA ? e / kTile : e % kDepth;
      const int gr = row0 + r, gk = k0 + k;
      As[k][r] =
          gr < M && gk < K ? (TransA ? A[size_t(gk) * lda + gr] : A[size_t(gr) * lda + gk]) : 0.0f;
    }
    for (int e = threadIdx.x; e < kTile * kDepth; e += kThreads) {
      const int c = TransB ? e / kDepth : e % kTile, k = TransB ? e % kDepth : e / kTile;
      const int gc = col0 + c, gk = k0 + k;
      Bs[k][c] =
          gc < N && gk < K ? (TransB ? B[size_t(gc) * ldb + gk] : B[size_t(gk) * ldb + gc]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kDepth; ++k) {
      float a[kSub], b[kSub];
#pragma unroll
      for (int i = 0; i < kSub; ++i) a[i] = As[k][ty + 16 * i], b[i] = Bs[k][tx + 16 * i];
#pragma unroll
      for (int i = 0; i < kSub; ++i)
#pragma unroll
        for (int j = 0; j < kSub; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < kSub; ++i)
    for (int j = 0; j < kSub; ++j) {
      const int r = row0 + ty + 16 * i, c = col0 + tx + 16 * j;
      if (r >= M || c >= N) continue;
      float* out = C + size_t(r) * ldc + c;
      // beta == 0 must not read C, which may hold anything (BLAS semantics).
      *out = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *out;
    }
}

void builtin_batched(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                     long long sA, const float* B, int ldb, long long sB, float beta, float* C,
                     int ldc, long long sC, int count) {
  const dim3 grid((N + kTile - 1) / kTile, (M + kTile - 1) / kTile, count);
  auto launch = [&](auto kernel) {
    kernel<<<grid, kThreads, 0, stream()>>>(M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc,
                                            sC);
  };
  if (ta && tb)
    launch(gemm_tiled<true, true>);
  else if (ta)
    launch(gemm_tiled<true, false>);
  else if (tb)
    launch(gemm_tiled<false, true>);
  else
    launch(gemm_tiled<false, false>);
  check_launch("gemm_tiled");
}

#ifdef RNNKIT_HAVE_CUBLAS
void check_cublas(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  throw Error(std::string("rnnkit cuda: ") + what + ": " + cublasGetStatusString(st));
}

// One handle per host thread (a handle is not safe to share between threads), bound to the
// thread's stream.
cublasHandle_t handle() {
  struct Handle {
    cublasHandle_t h = nullptr;
    Handle() {
      check_cublas(cublasCreate(&h), "cublasCreate");
      check_cublas(cublasSetStream(h, stream()), "cublasSetStream");
    }
    ~Handle() { cublasDestroy(h); }
  };
  thread_local Handle handle;
  return handle.h;
}

cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }
#endif

bool empty(int M, int N) { return M <= 0 || N <= 0; }

}  // namespace

const char* gemm_backend() {
#ifdef RNNKIT_HAVE_CUBLAS
  return "cublas";
#else
  return "builtin";
#endif
}

void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
#ifdef RNNKIT_HAVE_CUBLAS
  if (empty(M, N)) return;
  check_cublas(
      cublasSgemm(handle(), op(transB), op(transA), N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc),
      "cublasSgemm");
#else
  gemm_builtin(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemm_builtin(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (empty(M, N)) return;
  builtin_batched(transA, transB, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

void gemm_batched(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  int lda, long long strideA, const float* B, int ldb, long long strideB,
                  float beta, float* C, int ldc, long long strideC, int count) {
  if (empty(M, N) || count <= 0) return;
#ifdef RNNKIT_HAVE_CUBLAS
  check_cublas(cublasSgemmStridedBatched(handle(), op(transB), op(transA), N, M, K, &alpha, B, ldb,
                                         strideB, A, lda, strideA, &beta, C, ldc, strideC, count),
               "cublasSgemmStridedBatched");
#else
  builtin_batched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                  strideC, count);
#endif
}

}  // namespace cuda
}  // namespace rnnkit
