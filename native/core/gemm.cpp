// GEMM: OpenBLAS when the build found it, else a portable cache-blocked GEMM in the style of
// BLIS/GotoBLAS. The built-in one packs op(A) and op(B) into contiguous, zero-padded panels so one
// register-blocked micro-kernel (in GCC/Clang vector types, instantiated for a few tile heights)
// serves all four transpose cases and every edge size. gemm_packed runs it over a B packed once
// by the caller: the per-step products of generation, with the same weights at every step.
#include "gemm.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#ifdef RNNKIT_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace rnnkit {
namespace {

// Register tile: kMR rows of C by kNR = kNV vectors of kVec floats, sized so the kMR * kNV
// accumulators plus one row of B and a broadcast of A fit in the vector registers (AVX-512: 24
// of 32, AVX2: 12 of 16, SSE and others: 10 of 16 with room for mul + add). The micro-kernel is
// written with GCC/Clang vector types: with plain loops g++ interchanges or re-vectorises the loops
// of the tiles other than the full one and keeps their accumulators in memory.
#if defined(__AVX512F__)
constexpr int kVec = 16, kNV = 2, kMR = 12;
#elif defined(__AVX__)
constexpr int kVec = 8, kNV = 3, kMR = 4;
#else
constexpr int kVec = 4, kNV = 5, kMR = 2;
#endif
constexpr int kNR = kNV * kVec;
typedef float Vec __attribute__((vector_size(kVec * sizeof(float))));
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

// C[mr, nr] = alpha * (a_sliver * b_slivers) + beta * C over one tile of MR rows by NS slivers of
// B (the packed panel's consecutive slivers, kc * kNR floats apart). beta == 0 overwrites C without
// reading it, as BLAS does, so NaN or garbage in C does not leak through. Every instantiation sums
// each element over k in the same order, so a row gets the same bits whichever tile computes it.
template <int MR, int NS>
void micro_kernel(int kc, const float* __restrict a, const float* __restrict b, int mr, int nr,
                  float alpha, float beta, float* __restrict c, int ldc) {
  const ptrdiff_t sliver = static_cast<ptrdiff_t>(kc) * kNR;
  Vec acc[MR][NS][kNV] = {};
  for (int k = 0; k < kc; ++k, a += kMR, b += kNR) {
    Vec bv[NS][kNV];
    for (int s = 0; s < NS; ++s)
      for (int v = 0; v < kNV; ++v) std::memcpy(&bv[s][v], b + s * sliver + v * kVec, sizeof(Vec));
    for (int i = 0; i < MR; ++i)
      for (int s = 0; s < NS; ++s)
        for (int v = 0; v < kNV; ++v) acc[i][s][v] += a[i] * bv[s][v];
  }
  for (int i = 0; i < mr; ++i) {
    float sum[NS * kNR];
    std::memcpy(sum, acc[i], sizeof sum);
    float* row = c + static_cast<ptrdiff_t>(i) * ldc;
    if (beta == 0.0f)
      for (int j = 0; j < nr; ++j) row[j] = alpha * sum[j];
    else
      for (int j = 0; j < nr; ++j) row[j] = alpha * sum[j] + beta * row[j];
  }
}

using Kernel = void (*)(int, const float*, const float*, int, int, float, float, float*, int);

// micro_kernel<mr, 1> at index mr - 1, for every tile height 1..kMR.
template <int... R>
constexpr std::array<Kernel, sizeof...(R)> row_kernels(std::integer_sequence<int, R...>) {
  return {micro_kernel<R + 1, 1>...};
}
constexpr std::array<Kernel, kMR> kRowKernels = row_kernels(std::make_integer_sequence<int, kMR>());

// Few rows (a batch-1 generation step): one or two rows give too few accumulators to hide the FMA
// latency, so those tiles span kWide / mr slivers at once.
constexpr int kWide = 4;

template <int MR>
void wide_tiles(int kc, const float* a_pack, const float* panel, int nc, float alpha, float beta,
                float* C, int ldc) {
  constexpr int NS = kWide / MR;
  const ptrdiff_t sliver = static_cast<ptrdiff_t>(kc) * kNR;
  int jr = 0;
  for (; nc - jr > (NS - 1) * kNR; jr += NS * kNR)
    micro_kernel<MR, NS>(kc, a_pack, panel + jr / kNR * sliver, MR,
                         nc - jr < NS * kNR ? nc - jr : NS * kNR, alpha, beta, C + jr, ldc);
  for (; jr < nc; jr += kNR)
    micro_kernel<MR, 1>(kc, a_pack, panel + jr / kNR * sliver, MR, nc - jr < kNR ? nc - jr : kNR,
                        alpha, beta, C + jr, ldc);
}

// C[M, nc] = alpha * op(A)[M, kc] * panel + beta * C, the panel one K block of packed B (nc
// columns in slivers of kNR, each kc * kNR floats). op(A) is packed here, kMC rows at a time.
void multiply_panel(int M, int kc, const float* A, ptrdiff_t a_ms, ptrdiff_t a_ks,
                    const float* panel, int nc, float alpha, float beta, float* C, int ldc) {
  thread_local Scratch a_buf;
  float* a_pack = a_buf.get(static_cast<size_t>(kMC) * kKC);
  const ptrdiff_t sliver = static_cast<ptrdiff_t>(kc) * kNR;
  for (int ic = 0; ic < M; ic += kMC) {
    const int mc = M - ic < kMC ? M - ic : kMC;
    float* c_block = C + static_cast<ptrdiff_t>(ic) * ldc;
    if (mc <= 2) {
      pack<kMR>(A + ic * a_ms, a_ms, a_ks, mc, kc, a_pack);
      (mc == 1 ? wide_tiles<1> : wide_tiles<2>)(kc, a_pack, panel, nc, alpha, beta, c_block, ldc);
      continue;
    }
    // Tiles of nearly equal height, so that no short tile is left over (64 rows: four of 11 and
    // two of 10, not five of 12 and one of 4), each packed as a sliver of its own.
    const int tiles = (mc + kMR - 1) / kMR;
    auto first_row = [&](int t) { return t * mc / tiles; };
    for (int t = 0; t < tiles; ++t)
      pack<kMR>(A + (ic + first_row(t)) * a_ms, a_ms, a_ks, first_row(t + 1) - first_row(t), kc,
                a_pack + static_cast<ptrdiff_t>(t) * kMR * kc);
    for (int jr = 0; jr < nc; jr += kNR) {
      const int nr = nc - jr < kNR ? nc - jr : kNR;
      for (int t = 0; t < tiles; ++t) {
        const int r = first_row(t), mr = first_row(t + 1) - r;
        kRowKernels[mr - 1](kc, a_pack + static_cast<ptrdiff_t>(t) * kMR * kc,
                            panel + jr / kNR * sliver, mr, nr, alpha, beta,
                            c_block + static_cast<ptrdiff_t>(r) * ldc + jr, ldc);
      }
    }
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

int round_up(int n, int to) { return (n + to - 1) / to * to; }

// Packed matrices of 2 MB and more lie on huge pages where the system offers them (Linux's
// transparent huge pages, also in madvise mode): a generation call packs its weights afresh, 14 MB
// at config M, and faulting that in 4 KB pages costs more than packing it; the product then also
// streams them through a few TLB entries.
constexpr size_t kHugePage = size_t(1) << 21;

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

  thread_local Scratch b_buf;
  float* b_pack = b_buf.get(static_cast<size_t>(N < kNC ? round_up(N, kNR) : kNC) * kKC);

  for (int jc = 0; jc < N; jc += kNC) {
    const int nc = N - jc < kNC ? N - jc : kNC;
    for (int pc = 0; pc < K; pc += kKC) {
      const int kc = K - pc < kKC ? K - pc : kKC;
      pack<kNR>(B + jc * b_ns + pc * b_ks, b_ns, b_ks, nc, kc, b_pack);
      // The first K block applies the caller's beta; later blocks accumulate onto it.
      multiply_panel(M, kc, A + pc * a_ks, a_ms, a_ks, b_pack, nc, alpha, pc == 0 ? beta : 1.0f,
                     C + jc, ldc);
    }
  }
}

// Packed layout: K blocks of kKC rows, block pc starting at float pc * n_padded_, each block the
// N columns in slivers of kNR as pack<kNR> writes them. Only the padding columns are cleared here:
// set() writes every other entry in the end.
PackedMatrix::PackedMatrix(int K, int N)
    : K_(K),
      N_(N),
      n_padded_(round_up(N, kNR)),
      data_(nullptr, Free{sizeof(float) * size_t(K) * n_padded_}) {
  const size_t bytes = data_.get_deleter().bytes;
  if (bytes < kHugePage) {
    data_.reset(static_cast<float*>(::operator new (bytes, std::align_val_t{64})));
  } else {
    data_.reset(static_cast<float*>(::operator new (bytes, std::align_val_t{kHugePage})));
#ifdef MADV_HUGEPAGE
    madvise(data_.get(), bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
  }
  if (N == n_padded_) return;
  for (int pc = 0; pc < K; pc += kKC) {
    const int kc = K - pc < kKC ? K - pc : kKC;
    float* last = data_.get() + static_cast<ptrdiff_t>(pc) * n_padded_ + (n_padded_ - kNR) * kc;
    for (int k = 0; k < kc; ++k) std::fill(last + k * kNR + N % kNR, last + (k + 1) * kNR, 0.0f);
  }
}

void PackedMatrix::Free::operator()(float* p) const {
  ::operator delete (p, std::align_val_t{bytes < kHugePage ? 64 : kHugePage});
}

void PackedMatrix::set(int k0, int n0, int rows, int cols, bool trans, const float* src, int ld) {
  const ptrdiff_t n_step = trans ? ld : 1, k_step = trans ? 1 : ld;
  // A sliver at a time, in runs of 8 rows: the strided side of src is then read 8 consecutive
  // floats at a time from a few cache lines, and the sliver's block of output stays in L1.
  constexpr int kRun = 8;
  for (int s = n0 / kNR * kNR; s < n0 + cols; s += kNR) {
    const int n_lo = n0 > s ? n0 : s, n_hi = n0 + cols < s + kNR ? n0 + cols : s + kNR;
    for (int k = k0; k < k0 + rows;) {
      const int pc = k / kKC * kKC, kc = K_ - pc < kKC ? K_ - pc : kKC;
      const int end = std::min({k0 + rows, (k / kRun + 1) * kRun, pc + kc});
      float* out = data_.get() + static_cast<ptrdiff_t>(pc) * n_padded_ +
                   static_cast<ptrdiff_t>(s) * kc + static_cast<ptrdiff_t>(k - pc) * kNR - s;
      for (int n = n_lo; n < n_hi; ++n) {
        const float* in = src + (n - n0) * n_step + (k - k0) * k_step;
        for (int r = 0; r < end - k; ++r) out[r * kNR + n] = in[r * k_step];
      }
      k = end;
    }
  }
}

void gemm_packed(int M, const float* A, int lda, const PackedMatrix& B, float beta, float* C,
                 int ldc) {
  if (M <= 0 || B.N_ <= 0) return;
  if (B.K_ <= 0) {
    scale_c(M, B.N_, beta, C, ldc);
    return;
  }
  for (int pc = 0; pc < B.K_; pc += kKC)
    multiply_panel(M, B.K_ - pc < kKC ? B.K_ - pc : kKC, A + pc, lda, 1,
                   B.data_.get() + static_cast<ptrdiff_t>(pc) * B.n_padded_, B.N_, 1.0f,
                   pc == 0 ? beta : 1.0f, C, ldc);
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
