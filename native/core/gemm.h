// General matrix multiply, the one primitive every other kernel builds on.
#pragma once

namespace rnnkit {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is [M,K] (A stored [M,K] with lda >= K, or [K,M] with lda >= M when transA).
// op(B) is [K,N] (B stored [K,N] with ldb >= N, or [N,K] with ldb >= K when transB).
// Uses OpenBLAS when the build found it, the built-in GEMM otherwise.
void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// The built-in cache-blocked GEMM, always compiled, so tests can compare it with BLAS.
void gemm_builtin(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc);

// Which GEMM `gemm` uses ("openblas" or "builtin") and how many threads it runs.
const char* gemm_backend();
int gemm_threads();
// Sets the thread count of the BLAS in use (the built-in GEMM is single-threaded). n >= 1.
void set_gemm_threads(int n);

}  // namespace rnnkit
