// GEMM tests: `gemm` (rnnkit's choice), `gemm_blas` (OpenBLAS when built with it) and
// `gemm_builtin` against a float64 reference over every transpose case, awkward and block-crossing
// sizes, padded strides and BLAS alpha/beta semantics; then against each other, which is how CI
// sees OpenBLAS and the portable GEMM agree.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "gemm.h"

using rnnkit::gemm;
using rnnkit::gemm_blas;
using rnnkit::gemm_builtin;

namespace {

using GemmFn = void (*)(bool, bool, int, int, int, float, const float*, int, const float*, int,
                        float, float*, int);
struct Impl {
  const char* name;
  GemmFn fn;
};
const Impl kImpls[] = {{"gemm", &gemm}, {"gemm_blas", &gemm_blas}, {"gemm_builtin", &gemm_builtin}};

constexpr float kSentinel = 12345.0f;

// One problem: op(A) [M,K], op(B) [K,N], C [M,N], each stored with `pad` extra columns so
// leading dimensions exceed the logical width.
struct Problem {
  bool ta, tb;
  int M, N, K, pad;
  int lda() const { return (ta ? M : K) + pad; }
  int ldb() const { return (tb ? K : N) + pad; }
  int ldc() const { return N + pad; }
  size_t a_size() const { return static_cast<size_t>(ta ? K : M) * lda(); }
  size_t b_size() const { return static_cast<size_t>(tb ? N : K) * ldb(); }
  size_t c_size() const { return static_cast<size_t>(M) * ldc(); }
  std::string label(const char* impl, float alpha, float beta) const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s %c%c M=%d N=%d K=%d pad=%d alpha=%g beta=%g", impl,
                  ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, pad, alpha, beta);
    return buf;
  }
};

// C = alpha * op(A) op(B) + beta * C in double; beta == 0 ignores C entirely.
std::vector<double> reference(const Problem& p, float alpha, const std::vector<float>& A,
                              const std::vector<float>& B, float beta,
                              const std::vector<float>& C) {
  std::vector<double> out(p.c_size());
  for (int i = 0; i < p.M; ++i)
    for (int j = 0; j < p.N; ++j) {
      double s = 0;
      for (int k = 0; k < p.K; ++k) {
        double a = p.ta ? A[static_cast<size_t>(k) * p.lda() + i]
                        : A[static_cast<size_t>(i) * p.lda() + k];
        double b = p.tb ? B[static_cast<size_t>(j) * p.ldb() + k]
                        : B[static_cast<size_t>(k) * p.ldb() + j];
        s += a * b;
      }
      size_t c = static_cast<size_t>(i) * p.ldc() + j;
      out[c] = alpha * s + (beta == 0.0f ? 0.0 : beta * static_cast<double>(C[c]));
    }
  return out;
}

// The logical M x N part of C against the reference, and the padding columns untouched.
void expect_c(const Problem& p, const std::vector<float>& C, const std::vector<double>& want,
              const std::string& what) {
  // Float rounding grows with the length of each dot product; a wrong result is off by O(1).
  const double atol = 1e-6 * (p.K + 1);
  for (int i = 0; i < p.M; ++i) {
    size_t row = static_cast<size_t>(i) * p.ldc();
    if (!check::close(&C[row], &want[row], p.N, 1e-5, atol, what + " row " + std::to_string(i)))
      return;
    for (int j = p.N; j < p.ldc(); ++j)
      if (C[row + j] != kSentinel) {
        check::fail(what + ": padding of C was written");
        return;
      }
  }
}

void run_against_reference(const Problem& p, float alpha, float beta, uint64_t seed) {
  std::vector<float> A(p.a_size()), B(p.b_size()), C0(p.c_size(), kSentinel);
  check::fill_uniform(A, seed);
  check::fill_uniform(B, seed + 1);
  for (int i = 0; i < p.M; ++i)
    for (int j = 0; j < p.N; ++j)
      C0[static_cast<size_t>(i) * p.ldc() + j] =
          beta == 0.0f ? NAN : rnnkit::uniform01(seed + 2, i * 7919u + j) * 2 - 1;
  std::vector<double> want = reference(p, alpha, A, B, beta, C0);
  for (const Impl& impl : kImpls) {
    std::vector<float> C = C0;
    impl.fn(p.ta, p.tb, p.M, p.N, p.K, alpha, A.data(), p.lda(), B.data(), p.ldb(), beta, C.data(),
            p.ldc());
    expect_c(p, C, want, p.label(impl.name, alpha, beta));
  }
}

const int kAwkward[] = {1, 3, 7, 17, 33, 65, 130};

}  // namespace

TEST(all_transposes_awkward_sizes) {
  uint64_t seed = 1;
  for (int t = 0; t < 4; ++t)
    for (int M : kAwkward)
      for (int N : kAwkward) {
        // K cycles through the sizes too, so every (M, N) pair meets a different depth.
        int K = kAwkward[(M + 3 * N) % 7];
        run_against_reference({(t & 2) != 0, (t & 1) != 0, M, N, K, 0}, 1.0f, 0.0f, seed++);
      }
}

TEST(padded_leading_dimensions) {
  uint64_t seed = 100;
  for (int t = 0; t < 4; ++t)
    for (int pad : {1, 5, 16})
      for (int M : {17, 1})  // M = 1 is the matrix-vector path
        run_against_reference({(t & 2) != 0, (t & 1) != 0, M, 33, 65, pad}, 0.5f, 2.0f, seed++);
}

TEST(alpha_beta) {
  const float cases[][2] = {{1, 0}, {0.5f, 2}, {-1.5f, 1}, {1, -0.25f}, {3, 0}};
  uint64_t seed = 200;
  for (int t = 0; t < 4; ++t)
    for (const auto& ab : cases)
      run_against_reference({(t & 2) != 0, (t & 1) != 0, 33, 17, 65, 3}, ab[0], ab[1], seed++);
}

// Sizes that cross the built-in GEMM's M, N and K cache blocks (so later K blocks must
// accumulate onto the first one's beta * C) and its register tile edges.
TEST(block_crossing_sizes) {
  uint64_t seed = 300;
  for (int t = 0; t < 4; ++t) {
    bool ta = (t & 2) != 0, tb = (t & 1) != 0;
    run_against_reference({ta, tb, 203, 45, 600, 2}, 0.75f, 0.5f, seed++);
    run_against_reference({ta, tb, 5, 4200, 70, 0}, 1.0f, 0.0f, seed++);
  }
}

TEST(degenerate_sizes) {
  for (const Impl& impl : kImpls) {
    std::string name = impl.name;
    // K == 0: C = beta * C, and beta == 0 clears NaN. lda/ldb of 0 are what a caller with an
    // empty inner dimension naturally passes.
    std::vector<float> C = {1, 2, 3, 4, 5, 6};
    impl.fn(false, false, 2, 3, 0, 1.0f, nullptr, 0, nullptr, 3, 2.0f, C.data(), 3);
    const float doubled[] = {2, 4, 6, 8, 10, 12};
    check::close(C.data(), doubled, 6, 0, 0, name + " K=0 beta=2");
    std::vector<float> nan_c(6, NAN);
    impl.fn(true, true, 2, 3, 0, 1.0f, nullptr, 2, nullptr, 0, 0.0f, nan_c.data(), 3);
    const float zeros[6] = {};
    check::close(nan_c.data(), zeros, 6, 0, 0, name + " K=0 beta=0 over NaN");
    // M == 0 or N == 0: nothing is read or written.
    float untouched = kSentinel;
    impl.fn(false, false, 0, 1, 4, 1.0f, nullptr, 4, nullptr, 1, 0.0f, &untouched, 1);
    impl.fn(false, false, 1, 0, 4, 1.0f, nullptr, 4, nullptr, 1, 0.0f, &untouched, 1);
    CHECK(untouched == kSentinel);
    // alpha == 0: A and B are not referenced, as in BLAS, so NaN there does not reach C.
    std::vector<float> nan_ab(4, NAN), C2 = {1, -2, 3, -4};
    impl.fn(false, false, 2, 2, 2, 0.0f, nan_ab.data(), 2, nan_ab.data(), 2, -1.0f, C2.data(), 2);
    const float negated[] = {-1, 2, -3, 4};
    check::close(C2.data(), negated, 4, 0, 0, name + " alpha=0");
  }
}

// The two backends agree closely on a realistic layer-sized problem in every transpose case.
TEST(gemm_matches_builtin) {
  const int M = 96, N = 300, K = 257;
  for (int t = 0; t < 4; ++t) {
    Problem p{(t & 2) != 0, (t & 1) != 0, M, N, K, 0};
    std::vector<float> A(p.a_size()), B(p.b_size()), C0(p.c_size());
    check::fill_uniform(A, 400 + t);
    check::fill_uniform(B, 500 + t);
    check::fill_uniform(C0, 600 + t);
    std::vector<float> C1 = C0, C2 = C0;
    gemm_blas(p.ta, p.tb, M, N, K, 0.5f, A.data(), p.lda(), B.data(), p.ldb(), 1.0f, C1.data(),
              p.ldc());
    gemm_builtin(p.ta, p.tb, M, N, K, 0.5f, A.data(), p.lda(), B.data(), p.ldb(), 1.0f, C2.data(),
                 p.ldc());
    check::close(C1.data(), C2.data(), C1.size(), 1e-5, 1e-5, p.label("blas vs builtin", 0.5f, 1));
    // gemm is one of the two, bit for bit.
    std::vector<float> C3 = C0;
    gemm(p.ta, p.tb, M, N, K, 0.5f, A.data(), p.lda(), B.data(), p.ldb(), 1.0f, C3.data(), p.ldc());
    CHECK(C3 == (std::string(rnnkit::gemm_products()) == "builtin" ? C2 : C1));
  }
}

// Split over threads, the built-in GEMM's rows keep every bit in every transpose case, with more
// row blocks than one of kMC rows and several K blocks; and two threads multiplying at once (one
// of them then without helpers) each get their own product right.
TEST(builtin_threads_change_nothing) {
  const int M = 450, N = 170, K = 600;
  const int before = rnnkit::gemm_threads();
  for (int t = 0; t < 4; ++t) {
    Problem p{(t & 2) != 0, (t & 1) != 0, M, N, K, 3};
    std::vector<float> A(p.a_size()), B(p.b_size()), C0(p.c_size());
    check::fill_uniform(A, 1000 + t);
    check::fill_uniform(B, 1100 + t);
    check::fill_uniform(C0, 1200 + t);
    auto product = [&] {
      std::vector<float> C = C0;
      gemm_builtin(p.ta, p.tb, M, N, K, 0.5f, A.data(), p.lda(), B.data(), p.ldb(), -1.0f, C.data(),
                   p.ldc());
      return C;
    };
    rnnkit::set_gemm_threads(1);
    const std::vector<float> one = product();
    run_against_reference(p, 0.5f, -1.0f, 1300 + t);
    rnnkit::set_gemm_threads(3);
    CHECK(product() == one);
    std::vector<float> other;
    for (int round = 0; round < 5; ++round) {
      std::thread th([&] { other = product(); });
      CHECK(product() == one);
      th.join();
      CHECK(other == one);
    }
  }
  rnnkit::set_gemm_threads(before);
}

// gemm_packed against the float64 reference: B packed from four pieces (split along K and N, some
// transposed), on sizes that end mid-sliver and cross the K blocks (256) and the M blocks (192),
// with padded lda and ldc, beta 0 over NaN and beta != 0.
TEST(packed_matches_reference) {
  uint64_t seed = 700;
  const int kMs[] = {1, 2, 3, 5, 12, 13, 64, 200}, kNs[] = {1, 17, 32, 33, 130},
            kKs[] = {1, 7, 256, 257, 600};
  for (int M : kMs)
    for (int N : kNs)
      for (int K : kKs) {
        const float beta = (M + N + K) % 2 ? 0.0f : -0.5f;
        Problem p{false, false, M, N, K, 3};
        std::vector<float> A(p.a_size()), B(p.b_size()), C(p.c_size(), kSentinel);
        check::fill_uniform(A, seed++);
        check::fill_uniform(B, seed++);
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < N; ++j)
            C[static_cast<size_t>(i) * p.ldc() + j] =
                beta == 0.0f ? NAN : rnnkit::uniform01(seed, i * 7919u + j) * 2 - 1;
        std::vector<double> want = reference(p, 1.0f, A, B, beta, C);
        rnnkit::PackedMatrix packed(K, N);
        const int k1 = K / 3, n1 = N / 2;
        // Rows [0, k1) as stored; rows [k1, K) from a transposed copy, which set() reads as such.
        std::vector<float> Bt(static_cast<size_t>(N) * K);
        for (int k = 0; k < K; ++k)
          for (int n = 0; n < N; ++n) Bt[static_cast<size_t>(n) * K + k] = B[k * p.ldb() + n];
        packed.set(0, 0, k1, n1, false, B.data(), p.ldb());
        packed.set(0, n1, k1, N - n1, false, B.data() + n1, p.ldb());
        packed.set(k1, 0, K - k1, n1, true, Bt.data() + k1, K);
        packed.set(k1, n1, K - k1, N - n1, true, Bt.data() + static_cast<size_t>(n1) * K + k1, K);
        CHECK(packed.rows() == K && packed.cols() == N);
        rnnkit::gemm_packed(M, A.data(), p.lda(), packed, beta, C.data(), p.ldc());
        expect_c(p, C, want, p.label("gemm_packed", 1.0f, beta));
      }
}

// Every row of a packed product has the same bits whatever M and whichever tile computes it, so
// a generated sequence does not depend on the batch it ran in.
TEST(packed_rows_do_not_depend_on_the_batch) {
  const int M = 37, N = 130, K = 600;
  std::vector<float> A(static_cast<size_t>(M) * K), W(static_cast<size_t>(N) * K);
  check::fill_uniform(A, 800);
  check::fill_uniform(W, 801);
  rnnkit::PackedMatrix packed(K, N);
  packed.set(0, 0, K, N, true, W.data(), K);
  std::vector<float> all(static_cast<size_t>(M) * N);
  rnnkit::gemm_packed(M, A.data(), K, packed, 0.0f, all.data(), N);
  for (int m0 = 0; m0 < M;) {
    const int rows = 1 + m0 % 5 < M - m0 ? 1 + m0 % 5 : M - m0;
    std::vector<float> part(static_cast<size_t>(rows) * N);
    rnnkit::gemm_packed(rows, A.data() + static_cast<size_t>(m0) * K, K, packed, 0.0f, part.data(),
                        N);
    CHECK(std::equal(part.begin(), part.end(), all.begin() + static_cast<size_t>(m0) * N));
    m0 += rows;
  }
}

// Split over threads, the packed product keeps every bit; and two threads multiplying at once
// (one of them then without helpers) each get their own product right.
TEST(packed_threads_change_nothing) {
  const int K = 600, N = 2000;  // a million multiply-adds per row: split even at one row
  std::vector<float> W(static_cast<size_t>(N) * K);
  check::fill_uniform(W, 900);
  rnnkit::PackedMatrix packed(K, N);
  packed.set(0, 0, K, N, true, W.data(), K);
  auto product = [&](int M, uint64_t seed) {
    std::vector<float> A(static_cast<size_t>(M) * K), C(static_cast<size_t>(M) * N);
    check::fill_uniform(A, seed);
    rnnkit::gemm_packed(M, A.data(), K, packed, 0.0f, C.data(), N);
    return C;
  };
  const int before = rnnkit::gemm_threads();
  rnnkit::set_gemm_threads(1);
  const std::vector<float> one = product(1, 901), many = product(70, 902);
  rnnkit::set_gemm_threads(3);
  CHECK(product(1, 901) == one);
  CHECK(product(70, 902) == many);
  std::vector<float> other;
  for (int round = 0; round < 20; ++round) {
    std::thread t([&] { other = product(70, 902); });
    CHECK(product(1, 901) == one);
    t.join();
    CHECK(other == many);
  }
  rnnkit::set_gemm_threads(before);
}

// parallel_for from two threads at once, in many short rounds of different sizes: every call
// runs each of its chunks exactly once and returns only after all of them have finished, whichever
// thread takes the helpers and however a helper's claim interleaves with the next round.
TEST(parallel_for_rounds_from_two_threads) {
  const int before = rnnkit::gemm_threads();
  rnnkit::set_gemm_threads(3);
  auto hammer = [](int seed, int* bad) {
    for (int call = 0; call < 20000; ++call) {
      const int n = 2 + (call * 7 + seed) % 11;
      std::vector<std::atomic<int>> runs(n), finished(n);
      for (int i = 0; i < n; ++i) runs[i] = finished[i] = 0;
      rnnkit::parallel_for(n, [&](int i) {
        runs[i].fetch_add(1);
        finished[i].store(1, std::memory_order_release);
      });
      for (int i = 0; i < n; ++i)
        if (runs[i].load() != 1 || finished[i].load(std::memory_order_acquire) != 1) ++*bad;
    }
  };
  int bad_here = 0, bad_there = 0;
  std::thread other(hammer, 5, &bad_there);
  hammer(0, &bad_here);
  other.join();
  CHECK(bad_here == 0);
  CHECK(bad_there == 0);
  rnnkit::set_gemm_threads(before);
}

TEST(backend_reports) {
  std::string backend = rnnkit::gemm_backend();
  CHECK(backend == "openblas" || backend == "builtin");
  const std::string products = rnnkit::gemm_products(), core = rnnkit::blas_core();
  CHECK(products == "openblas" || products == "builtin");
  CHECK(backend == "openblas" ? !core.empty() : core.empty() && products == "builtin");
  const int bits = rnnkit::builtin_vector_bits();
  CHECK(bits == 128 || bits == 256 || bits == 512);
  // The products' kernel is the built-in one without OpenBLAS; else, unless RNNKIT_PRODUCTS names
  // one, the one measured faster (the built-in one only by 3% or more).
  const rnnkit::GemmCalibration cal = rnnkit::gemm_calibration();
  if (backend == "builtin") CHECK(products == "builtin" && !cal.measured);
  if (cal.measured) {
    CHECK(cal.openblas_gflops > 0 && cal.builtin_gflops > 0);
    CHECK(products == (cal.builtin_gflops > 1.03 * cal.openblas_gflops ? "builtin" : "openblas"));
  }
  const char* forced = std::getenv("RNNKIT_PRODUCTS");
  if (backend == "openblas" && forced) CHECK(products == forced && !cal.measured);
  rnnkit::set_gemm_threads(1);
  CHECK(rnnkit::gemm_threads() == 1);
  rnnkit::set_gemm_threads(2);
  CHECK(rnnkit::gemm_threads() >= 1);
}

TEST_MAIN()
