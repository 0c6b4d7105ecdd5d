// Mixed-precision products (mixed.h). Two kernels run the bfloat16 products:
//  - vdpbf16ps (AVX512-BF16): each 32-bit lane of A holds one row's two consecutive k as bfloat16,
//    broadcast to all 16 lanes; B's sliver holds, per pair of k, 32 columns' two values side by
//    side (two vectors of 16 lanes); one instruction multiplies the pairs and adds both products
//    into the 16 float32 sums of a row. Tiles of up to 8 rows by 32 columns keep 16 sums in
//    registers. This kernel is compiled into every x86-64 build through the target attribute and
//    chosen at run time where cpu_bf16() finds AVX512-BF16; it could not be run where it was
//    written (a CPU without it), so its tests run only on CPUs that have it.
//  - emulated (RNNKIT_BF16=emulate): the operands rounded to bfloat16 into float32 copies and
//    multiplied by the float32 GEMM; exact products, float32 sums, on any CPU.
#include "mixed.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu.h"
#include "qgemm.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace rnnkit {
namespace {

enum class Bf16Kernel { None, Emulated, Avx512 };

Bf16Kernel pick_bf16() {
  if (const char* mode = std::getenv("RNNKIT_BF16"); mode && std::strcmp(mode, "emulate") == 0)
    return Bf16Kernel::Emulated;
  return cpu_bf16().avx512_bf16 ? Bf16Kernel::Avx512 : Bf16Kernel::None;
}

Bf16Kernel bf16_kernel() {
  static const Bf16Kernel kernel = pick_bf16();
  return kernel;
}

// The kernel for products at precision p (None for float32); throws for bfloat16 without one.
Bf16Kernel kernel_for(Precision p) {
  if (p == Precision::F32) return Bf16Kernel::None;
  if (p != Precision::Bf16)
    throw std::invalid_argument("rnnkit: unknown precision " + std::to_string(int(p)));
  const Bf16Kernel k = bf16_kernel();
  if (k == Bf16Kernel::None)
    throw std::invalid_argument(
        "rnnkit: precision 'bf16' needs a CPU with AVX512-BF16 (vdpbf16ps), and this one has "
        "none; train with precision 'float32'");
  return k;
}

// rows x cols of src (leading dimension ld) rounded to bfloat16 into dst (leading dimension cols).
void round_copy(int rows, int cols, const float* src, int ld, float* dst) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[size_t(r) * cols + c] = round_bf16(src[size_t(r) * ld + c]);
}

// A's rows as bfloat16 pairs: out[i * pairs + p] holds (i, 2p) in its low half and (i, 2p + 1) in
// its high half (zero past K), element (i, k) at A[i * rs + k * ks].
void pack_pair_rows(int M, int K, const float* A, ptrdiff_t rs, ptrdiff_t ks, uint32_t* out) {
  const int pairs = (K + 1) / 2;
  for (int i = 0; i < M; ++i)
    for (int p = 0; p < pairs; ++p) {
      const int k = 2 * p;
      const uint32_t lo = bf16_bits(A[i * rs + k * ks]);
      const uint32_t hi = k + 1 < K ? bf16_bits(A[i * rs + (k + 1) * ks]) : 0;
      out[size_t(i) * pairs + p] = lo | hi << 16;
    }
}

// How many parts to split packing `values` values of `units` rows or columns into, each for
// parallel_for to run on a thread of its own: one per thread from 64K values on (tens of
// microseconds of work), else one.
int pack_parts(double values, int units) {
  return values >= double(1 << 16) ? std::max(1, std::min(gemm_threads(), units)) : 1;
}

// Each thread's A as pairs for the vdpbf16ps products, grown on demand.
std::vector<uint32_t>& pair_rows() {
  thread_local std::vector<uint32_t> rows;
  return rows;
}

constexpr int kPN = 32;        // columns per sliver
constexpr int kPR = 8;         // rows per tile
constexpr int kRowBlock = 64;  // rows that stay in cache while a thread runs its slivers

#if defined(__x86_64__)
// out[i][j] = sum over the pairs of row i's two products with column j.
template <int MR>
__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) void pairs_tile(int pairs,
                                                                                const uint32_t* a,
                                                                                const uint16_t* b,
                                                                                float (*out)[kPN]) {
  __m512 sum[MR][2];
  for (int i = 0; i < MR; ++i) sum[i][0] = sum[i][1] = _mm512_setzero_ps();
  for (int p = 0; p < pairs; ++p, b += 2 * kPN) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + kPN);
    for (int i = 0; i < MR; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(int(a[size_t(i) * pairs + p]));
      sum[i][0] = _mm512_dpbf16_ps(sum[i][0], av, b0);
      sum[i][1] = _mm512_dpbf16_ps(sum[i][1], av, b1);
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(out[i], sum[i][0]);
    _mm512_storeu_ps(out[i] + 16, sum[i][1]);
  }
}

constexpr PairsTile kPairsTiles[kPR] = {pairs_tile<1>, pairs_tile<2>, pairs_tile<3>, pairs_tile<4>,
                                        pairs_tile<5>, pairs_tile<6>, pairs_tile<7>, pairs_tile<8>};
#endif

// Each thread's A rounded for the emulated products, grown on demand.
std::vector<float>& rounded_rows() {
  thread_local std::vector<float> rows;
  return rows;
}

}  // namespace

const char* bf16_products() {
  switch (bf16_kernel()) {
    case Bf16Kernel::Avx512:
      return "avx512-bf16";
    case Bf16Kernel::Emulated:
      return "emulated";
    case Bf16Kernel::None:
      break;
  }
  return "none";
}

// Sliver s holds, for each pair p of k, 2 * kPN values: column n0 + j's (2p, 2p + 1) at 2j, 2j + 1
// for j < 16 (the first vector), then the same for columns n0 + 16.. (the second); zero past K
// and N.
Bf16Pairs::Bf16Pairs(int K, int N, bool trans, const float* w, int ld)
    : K_(K), N_(N), b_(size_t((N + kPN - 1) / kPN) * ((K + 1) / 2) * 2 * kPN, 0) {
  const int pairs = (K + 1) / 2, slivers = (N + kPN - 1) / kPN;
  const int parts = pack_parts(double(K) * N, slivers);
  const ptrdiff_t ks = trans ? 1 : ld, ns = trans ? ld : 1;
  parallel_for(parts, [&](int part) {  // whole slivers each
    const int n1 = std::min(N, (part + 1) * slivers / parts * kPN);
    for (int n = part * slivers / parts * kPN; n < n1; ++n) {
      uint16_t* sliver = b_.data() + size_t(n / kPN) * pairs * 2 * kPN + 2 * (n % kPN);
      for (int k = 0; k < K; ++k)
        sliver[size_t(k / 2) * 2 * kPN + k % 2] = bf16_bits(w[k * ks + n * ns]);
    }
  });
}

// The rows go in blocks of kRowBlock, each block times every sliver; a thread takes a run of
// (block, sliver) items.
void multiply_pairs(int M, const float* A, int lda, bool transA, const Bf16Pairs& B, float alpha,
                    float beta, float* C, int ldc, const PairsTile* tiles) {
#if defined(__x86_64__)
  if (!tiles) tiles = kPairsTiles;
#endif
  if (!tiles) throw std::logic_error("rnnkit: the vdpbf16ps kernel exists on x86-64 only");
  const int K = B.K_, N = B.N_, pairs = (K + 1) / 2, slivers = (N + kPN - 1) / kPN;
  std::vector<uint32_t>& a = pair_rows();
  a.resize(size_t(M) * pairs);
  const ptrdiff_t rs = transA ? 1 : lda, ks = transA ? lda : 1;
  const int parts = pack_parts(double(M) * K, M);
  parallel_for(parts, [&](int part) {
    const int i0 = part * M / parts, i1 = (part + 1) * M / parts;
    pack_pair_rows(i1 - i0, K, A + i0 * rs, rs, ks, a.data() + size_t(i0) * pairs);
  });
  const int blocks = (M + kRowBlock - 1) / kRowBlock, items = blocks * slivers;
  const int chunks = product_chunks(double(M) * N * K, items);
  const uint32_t* rows = a.data();
  parallel_for(chunks, [&](int c) {
    float out[kPR][kPN];
    for (int it = c * items / chunks; it < (c + 1) * items / chunks; ++it) {
      const int r1 = std::min(M, (it / slivers + 1) * kRowBlock), s = it % slivers;
      const int n0 = s * kPN, nr = std::min(kPN, N - n0);
      for (int i0 = it / slivers * kRowBlock; i0 < r1; i0 += kPR) {
        const int mr = std::min(kPR, r1 - i0);
        tiles[mr - 1](pairs, rows + size_t(i0) * pairs, B.b_.data() + size_t(s) * pairs * 2 * kPN,
                      out);
        for (int i = 0; i < mr; ++i) {
          float* c_row = C + size_t(i0 + i) * ldc + n0;
          if (beta == 0.0f)
            for (int j = 0; j < nr; ++j) c_row[j] = alpha * out[i][j];
          else
            for (int j = 0; j < nr; ++j) c_row[j] = alpha * out[i][j] + beta * c_row[j];
        }
      }
    }
  });
}

void gemm_at(Precision p, bool transA, bool transB, int M, int N, int K, float alpha,
             const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  const Bf16Kernel k = kernel_for(p);
  if (k == Bf16Kernel::None || M <= 0 || N <= 0 || K <= 0 || alpha == 0.0f) {
    gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (k == Bf16Kernel::Avx512) {
    multiply_pairs(M, A, lda, transA, Bf16Pairs(K, N, transB, B, ldb), alpha, beta, C, ldc);
    return;
  }
  // The stored matrices rounded, in their own layout, then the float32 GEMM.
  const int a_rows = transA ? K : M, a_cols = transA ? M : K;
  const int b_rows = transB ? N : K, b_cols = transB ? K : N;
  std::vector<float> a(size_t(a_rows) * a_cols), b(size_t(b_rows) * b_cols);
  round_copy(a_rows, a_cols, A, lda, a.data());
  round_copy(b_rows, b_cols, B, ldb, b.data());
  gemm(transA, transB, M, N, K, alpha, a.data(), a_cols, b.data(), b_cols, beta, C, ldc);
}

namespace {

std::variant<PackedMatrix, Bf16Pairs> pack_product(Bf16Kernel k, int K, int N, bool trans,
                                                   const float* w, int ld) {
  if (k == Bf16Kernel::Avx512) return Bf16Pairs(K, N, trans, w, ld);
  PackedMatrix m(K, N);
  if (k == Bf16Kernel::None) {
    m.set(0, 0, K, N, trans, w, ld);
    return m;
  }
  const int rows = trans ? N : K, cols = trans ? K : N;
  std::vector<float> rounded(size_t(rows) * cols);
  round_copy(rows, cols, w, ld, rounded.data());
  m.set(0, 0, K, N, trans, rounded.data(), cols);
  return m;
}

}  // namespace

PackedProduct::PackedProduct(Precision p, int K, int N, bool trans, const float* w, int ld)
    : round_a_(kernel_for(p) == Bf16Kernel::Emulated),
      b_(pack_product(kernel_for(p), K, N, trans, w, ld)) {}

void PackedProduct::operator()(int M, const float* A, int lda, float beta, float* C,
                               int ldc) const {
  if (const auto* pairs = std::get_if<Bf16Pairs>(&b_)) {
    multiply_pairs(M, A, lda, false, *pairs, 1.0f, beta, C, ldc);
    return;
  }
  const PackedMatrix& m = std::get<PackedMatrix>(b_);
  if (!round_a_) {
    gemm_packed(M, A, lda, m, beta, C, ldc);
    return;
  }
  const int K = m.rows();
  std::vector<float>& a = rounded_rows();
  a.resize(size_t(M) * K);
  round_copy(M, K, A, lda, a.data());
  gemm_packed(M, a.data(), K, m, beta, C, ldc);
}

}  // namespace rnnkit
