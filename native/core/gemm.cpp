// GEMM: OpenBLAS when the build found it, else a portable cache-blocked GEMM in the style of
// BLIS/GotoBLAS. The built-in one packs op(A) and op(B) into contiguous, zero-padded panels so a
// single register-blocked micro-kernel serves all four transpose cases and every edge size; the
// micro-kernel is plain fixed-size loops that g++/clang -O3 turn into broadcast + FMA vector code.
#include "gemm.h"

#include <cstddef>
#include <new>

#ifdef RNNKIT_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace rnnkit {
namespace {

// Register tile: kMR rows of C by kNR columns, kNR a multiple of the vector width, sized so the
// kMR * kNR accumulators plus one row of B and a broadcast of A fit in the vector registers
// (AVX-512: 24 of 32, AVX2: 12 of 16, SSE and others: 10 of 16 with room for mul + add). kNR is
// kept above 16 on purpose: g++ fully unrolls loops of up to 16 iterations before vectorising,
// and then vectorises the row loop instead, spilling every accumulator.
#if defined(__AVX512F__)
constexpr int kNR = 32;
constexpr int kMR = 12;
#elif defined(__AVX__)
constexpr int kNR = 24;
constexpr int kMR = 4;
#else
constexpr int kNR = 20;
constexpr int kMR = 2;
#endif
// Cache blocks: a kKC x kNR sliver of packed B stays in L1 while kMC x kKC of packed A sits in
// L2 and kKC x kNC of packed B in L3. kMC and kNC are rounded to multiples of kMR and kNR.
constexpr int kKC = 256;
constexpr int kMC = 192 / kMR * kMR;
constexpr int kNC = 4096 / kNR * kNR;

// A 64-byte aligned scratch buffer, grown on demand and reused across calls, so packing does not
// allocate per call and vector loads of packed panels never straddle cache lines.
class Scratch {
 public:
  ~Scratch() { release(); }
  float* get(size_t n) {
    if (n > size_) {
      release();
      data_ = static_cast<float*>(::operator new (n * sizeof(float), std::align_val_t{64}));
      size_ = n;
    }
    return data_;
  }

 private:
  void release() {
    if (data_) ::operator delete (data_, std::align_val_t{64});
    data_ = nullptr;
    size_ = 0;
  }
  float* data_ = nullptr;
  size_t size_ = 0;
};

// Copies a `width` x kc block of a strided matrix (element (w, k) at src[w * ws + k * ks]) into
// slivers of W rows: sliver s holds, for each k, W consecutive values (zero past `width`).
// op(A) blocks are packed with W = kMR along M, op(B) blocks with W = kNR along N.
template <int W>
void pack(const float* src, ptrdiff_t ws, ptrdiff_t ks, int width, int kc, float* dst) {
  for (int s = 0; s < width; s += W, dst += static_cast<ptrdiff_t>(W) * kc) {
    const int w_n = width - s < W ? width - s : W;
    const float* base = src + s * ws;
    for (int k = 0; k < kc; ++k) {
      float* out = dst + static_cast<ptrdiff_t>(k) * W;
      for (int w = 0; w < w_n; ++w) out[w] = base[w * ws + k * ks];
      for (int w = w_n; w < W; ++w) out[w] = 0.0f;
    }
  }
}

// C[mr, nr] = alpha * (a_sliver * b_sliver) + beta * C over one kMR x kNR tile. beta == 0
// overwrites C without reading it, as BLAS does, so NaN or garbage in C does not leak through.
void micro_kernel(int kc, const float* __restrict a, const float* __restrict b, int mr, int nr,
                  float alpha, float beta, float* __restrict c, int ldc) {
  float acc[kMR][kNR] = {};
  for (int k = 0; k < kc; ++k, a += kMR, b += kNR)
    for (int i = 0; i < kMR; ++i)
      for (int j = 0; j < kNR; ++j) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < mr; ++i) {
    float* row = c + static_cast<ptrdiff_t>(i) * ldc;
    if (beta == 0.0f)
      for (int j = 0; j < nr; ++j) row[j] = alpha * acc[i][j];
    else
      for (int j = 0; j < nr; ++j) row[j] = alpha * acc[i][j] + beta * row[j];
  }
}

// C = beta * C, for the cases where no product is formed (K == 0 or alpha == 0).
void scale_c(int M, int N, float beta, float* C, int ldc) {
  for (int i = 0; i < M; ++i) {
    float* row = C + static_cast<ptrdiff_t>(i) * ldc;
    if (beta == 0.0f)
      for (int j = 0; j < N; ++j) row[j] = 0.0f;
    else
      for (int j = 0; j < N; ++j) row[j] *= beta;
  }
}

}  // namespace

void gemm_builtin(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  // Element strides of op(A) along (M, K) and of op(B) along (N, K).
  const ptrdiff_t a_ms = transA ? 1 : lda, a_ks = transA ? lda : 1;
  const ptrdiff_t b_ns = transB ? ldb : 1, b_ks = transB ? 1 : ldb;

  thread_local Scratch a_buf, b_buf;
  float* a_pack = a_buf.get(static_cast<size_t>(kMC) * kKC);
  const int nc_max = N < kNC ? (N + kNR - 1) / kNR * kNR : kNC;
  float* b_pack = b_buf.get(static_cast<size_t>(nc_max) * kKC);

  for (int jc = 0; jc < N; jc += kNC) {
    const int nc = N - jc < kNC ? N - jc : kNC;
    for (int pc = 0; pc < K; pc += kKC) {
      const int kc = K - pc < kKC ? K - pc : kKC;
      // The first K block applies the caller's beta; later blocks accumulate onto it.
      const float beta_k = pc == 0 ? beta : 1.0f;
      pack<kNR>(B + jc * b_ns + pc * b_ks, b_ns, b_ks, nc, kc, b_pack);
      for (int ic = 0; ic < M; ic += kMC) {
        const int mc = M - ic < kMC ? M - ic : kMC;
        pack<kMR>(A + ic * a_ms + pc * a_ks, a_ms, a_ks, mc, kc, a_pack);
        for (int jr = 0; jr < nc; jr += kNR) {
          const int nr = nc - jr < kNR ? nc - jr : kNR;
          for (int ir = 0; ir < mc; ir += kMR) {
            const int mr = mc - ir < kMR ? mc - ir : kMR;
            float* c = C + static_cast<ptrdiff_t>(ic + ir) * ldc + jc + jr;
            micro_kernel(kc, a_pack + static_cast<ptrdiff_t>(ir) * kc,
                         b_pack + static_cast<ptrdiff_t>(jr) * kc, mr, nr, alpha, beta_k, c, ldc);
          }
        }
      }
    }
  }
}

#ifdef RNNKIT_HAVE_OPENBLAS

void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  // cblas rejects lda/ldb < 1, which a K == 0 product may legitimately pass; alpha == 0 is
  // handled here too so both backends agree on never reading A and B then.
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  // A single row (a batch-1 generation step) is a matrix-vector product: OpenBLAS's sgemm pays
  // its packing and threading set-up for it, sgemv streams the matrix once.
  if (M == 1) {
    // C[1,N] = a . op(B): with B stored [N,K] (transB) that is B a, else B^T a over B [K,N].
    const int a_step = transA ? lda : 1;
    cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, transB ? N : K, transB ? K : N,
                alpha, B, ldb, A, a_step, beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char* gemm_backend() { return "openblas"; }
int gemm_threads() { return openblas_get_num_threads(); }
void set_gemm_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

#else

void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  gemm_builtin(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char* gemm_backend() { return "builtin"; }
int gemm_threads() { return 1; }
void set_gemm_threads(int) {}

#endif

}  // namespace rnnkit
