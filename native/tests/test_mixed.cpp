// Mixed-precision products (mixed.h) against float64 references: the exact products of the
// operands rounded to bfloat16, summed in float64, within the float32 summation bound computed for
// each element; and the float64 product of the unrounded operands within that bound plus the
// bfloat16 rounding bound. The emulated kernel runs everywhere (this binary sets
// RNNKIT_BF16=emulate); the vdpbf16ps kernel runs where the CPU has AVX512-BF16 and is reported
// skipped elsewhere.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "check.h"
#include "cpu.h"
#include "gemm.h"
#include "mixed.h"
#include "qgemm.h"

using namespace rnnkit;

namespace {

struct Shape {
  int M, N, K;
};
// Odd K (half a pair empty), N off the 32-column slivers, M past an 8-row tile and a 64-row block;
// the last two large enough for B, then A, to be packed on several threads.
const Shape kShapes[] = {{1, 1, 1},     {1, 32, 2},     {3, 33, 5},     {8, 64, 64},
                         {9, 31, 129},  {70, 70, 96},   {130, 45, 257}, {17, 300, 64},
                         {200, 16, 33}, {2, 1000, 300}, {300, 40, 261}};

// C = alpha op(A) op(B) + beta C0 for the stored A, B (transposed per ta, tb) and C0.
using Kernel =
    std::function<void(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                       const float* B, int ldb, float beta, float* C, int ldc)>;

// Every element within its bound: err[e] <= tol[e]; reports the worst.
void within(const std::vector<double>& err, const std::vector<double>& tol,
            const std::string& what) {
  size_t worst = 0;
  double excess = 0;
  for (size_t e = 0; e < err.size(); ++e)
    if (!(err[e] <= tol[e]) && (excess == 0 || err[e] - tol[e] > excess))
      worst = e, excess = std::isfinite(err[e]) ? err[e] - tol[e] : INFINITY;
  if (excess == 0) return;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: element %zu: error %.3g over its bound %.3g", what.c_str(),
                worst, err[worst], tol[worst]);
  check::fail(buf);
}

// Runs `kernel` over every shape, transpose case and (alpha, beta), checking both references.
// Returns how many products differed from the float32 product of the unrounded operands.
int check_products(const char* name, const Kernel& kernel) {
  const double u = std::ldexp(1.0, -24), r = std::ldexp(1.0, -8);
  int rounded_away = 0;
  uint64_t seed = 11;
  for (const Shape& s : kShapes)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const float alpha = t == 3 ? -0.75f : 1.0f, beta = t < 2 ? 0.0f : 0.5f;
      std::vector<float> A(size_t(s.M) * s.K), B(size_t(s.K) * s.N), C(size_t(s.M) * s.N);
      check::fill_uniform(A, seed++, -2, 2);
      check::fill_uniform(B, seed++, -2, 2);
      check::fill_uniform(C, seed++, -1, 1);
      const std::vector<float> C0 = C;
      auto a = [&](int i, int k) { return ta ? A[size_t(k) * s.M + i] : A[size_t(i) * s.K + k]; };
      auto b = [&](int k, int j) { return tb ? B[size_t(j) * s.K + k] : B[size_t(k) * s.N + j]; };
      kernel(ta, tb, s.M, s.N, s.K, alpha, A.data(), ta ? s.M : s.K, B.data(), tb ? s.K : s.N, beta,
             C.data(), s.N);
      std::vector<float> F = C0;
      gemm(ta, tb, s.M, s.N, s.K, alpha, A.data(), ta ? s.M : s.K, B.data(), tb ? s.K : s.N, beta,
           F.data(), s.N);
      std::vector<double> err_r(C.size()), tol_r(C.size()), err_x(C.size()), tol_x(C.size());
      for (int i = 0; i < s.M; ++i)
        for (int j = 0; j < s.N; ++j) {
          double rounded = 0, exact = 0, mag = 0;
          for (int k = 0; k < s.K; ++k) {
            rounded += double(round_bf16(a(i, k))) * double(round_bf16(b(k, j)));
            exact += double(a(i, k)) * double(b(k, j));
            mag += std::fabs(double(a(i, k)) * double(b(k, j)));
          }
          const size_t e = size_t(i) * s.N + j;
          const double c0 = double(beta) * C0[e];
          // float32 sums of K terms, then the alpha and beta terms: a unit roundoff per operation
          // on magnitudes at most those of the rounded products (each within 2r + r^2 of exact).
          const double sums =
              (s.K + 3) * u * (std::fabs(alpha) * mag * (1 + 3 * r) + std::fabs(c0));
          err_r[e] = std::fabs(C[e] - (alpha * rounded + c0));
          tol_r[e] = sums;
          err_x[e] = std::fabs(C[e] - (alpha * exact + c0));
          tol_x[e] = std::fabs(alpha) * (2 * r + r * r) * mag + sums;
          rounded_away += C[e] != F[e];
        }
      const std::string what = std::string(name) + " M=" + std::to_string(s.M) +
                               " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                               " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb);
      within(err_r, tol_r, what + " vs the rounded operands' product");
      within(err_x, tol_x, what + " vs the float32 operands' product");
    }
  return rounded_away;
}

}  // namespace

TEST(emulated_bf16_products_are_those_of_the_rounded_operands) {
  CHECK(std::string(bf16_products()) == "emulated");
  const int differ = check_products(
      "gemm_at bf16", [](bool ta, bool tb, int M, int N, int K, float alpha, const float* A,
                         int lda, const float* B, int ldb, float beta, float* C, int ldc) {
        gemm_at(Precision::Bf16, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      });
  // Rounding to 8 significant bits changes most sums of random operands.
  CHECK(differ > 1000);
}

TEST(packed_bf16_products_are_those_of_the_rounded_operands) {
  // PackedProduct multiplies a row-major A by op(B) packed once, with alpha 1: other alphas scale
  // its product afterwards.
  check_products(
      "PackedProduct bf16", [](bool ta, bool tb, int M, int N, int K, float alpha, const float* A,
                               int lda, const float* B, int ldb, float beta, float* C, int ldc) {
        std::vector<float> a(size_t(M) * K), p(size_t(M) * N);
        for (int i = 0; i < M; ++i)
          for (int k = 0; k < K; ++k)
            a[size_t(i) * K + k] = ta ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k];
        PackedProduct(Precision::Bf16, K, N, tb, B, ldb)(M, a.data(), K, 0.0f, p.data(), N);
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < N; ++j) {
            float& c = C[size_t(i) * ldc + j];
            c = alpha * p[size_t(i) * N + j] + (beta == 0.0f ? 0.0f : beta * c);
          }
      });
}

TEST(float32_precision_is_the_float32_gemm) {
  const int M = 37, N = 45, K = 70;
  std::vector<float> A(size_t(M) * K), B(size_t(K) * N), C(size_t(M) * N), D(size_t(M) * N),
      P(size_t(M) * N);
  check::fill_uniform(A, 3);
  check::fill_uniform(B, 4);
  gemm_at(Precision::F32, false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C.data(), N);
  gemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, D.data(), N);
  CHECK(C == D);
  PackedProduct(Precision::F32, K, N, true, B.data(), K)(M, A.data(), K, 0.0f, P.data(), N);
  check::close(P.data(), D.data(), P.size(), 1e-5, 1e-6, "PackedProduct float32 vs gemm");
}

// vdpbf16ps as Intel defines it, lane by lane: each 32-bit lane of the sum adds the product of
// the two operands' high bfloat16 halves, then that of their low halves, each widened to float32.
template <int MR>
void model_tile(int pairs, const uint32_t* a, const uint16_t* b, float (*out)[32]) {
  auto widen = [](uint32_t h) {
    const uint32_t u = h << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  };
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 32; ++j) {
      float sum = 0;
      for (int p = 0; p < pairs; ++p) {
        const uint32_t x = a[size_t(i) * pairs + p];
        const uint16_t* y = b + size_t(p) * 64 + 2 * j;
        sum += widen(x >> 16) * widen(y[1]);
        sum += widen(x & 0xffff) * widen(y[0]);
      }
      out[i][j] = sum;
    }
}
constexpr PairsTile kModelTiles[8] = {model_tile<1>, model_tile<2>, model_tile<3>, model_tile<4>,
                                      model_tile<5>, model_tile<6>, model_tile<7>, model_tile<8>};

// The pairs layout and the driver, on tiles written from the instruction's definition.
TEST(pairs_products_on_a_model_of_vdpbf16ps_are_those_of_the_rounded_operands) {
  check_products("pairs (model tiles)", [](bool ta, bool tb, int M, int N, int K, float alpha,
                                           const float* A, int lda, const float* B, int ldb,
                                           float beta, float* C, int ldc) {
    multiply_pairs(M, A, lda, ta, Bf16Pairs(K, N, tb, B, ldb), alpha, beta, C, ldc, kModelTiles);
  });
}

// The vdpbf16ps tiles themselves: only where the CPU runs them (registered by main).
void vdpbf16ps_products_are_those_of_the_rounded_operands() {
  check_products("vdpbf16ps", [](bool ta, bool tb, int M, int N, int K, float alpha, const float* A,
                                 int lda, const float* B, int ldb, float beta, float* C, int ldc) {
    multiply_pairs(M, A, lda, ta, Bf16Pairs(K, N, tb, B, ldb), alpha, beta, C, ldc);
  });
}

int main() {
  setenv("RNNKIT_BF16", "emulate", 1);  // before the first product picks the kernel
  const Bf16Instructions cpu = cpu_bf16();
  std::printf("CPU: AVX512-BF16 %s, AMX-BF16 %s\n", cpu.avx512_bf16 ? "yes" : "no",
              cpu.amx_bf16 ? "yes" : "no");
  // AVX512-BF16 counts only with the AVX-512 level it extends.
  if (cpu.avx512_bf16 && !isa_supported("avx512")) check::fail("AVX512-BF16 without AVX-512");
  if (cpu.avx512_bf16)
    check::registry().push_back({"vdpbf16ps_products_are_those_of_the_rounded_operands",
                                 vdpbf16ps_products_are_those_of_the_rounded_operands});
  else
    std::printf("skip vdpbf16ps_products_are_those_of_the_rounded_operands (no AVX512-BF16)\n");
  return check::run_all();
}
