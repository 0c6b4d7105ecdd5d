// CUDA GEMM (cuBLAS or the built-in kernel) and the built-in kernel against the CPU GEMM, for
// every transposition, sizes that are no multiple of any tile, leading dimensions past the
// matrix, beta 0 over a NaN-filled device C (which must not be read) and beta 1; the
// strided-batched GEMM against one CPU GEMM per batch entry.
#include <string>
#include <vector>

#include "cuda_test.h"
#include "gemm.h"

namespace {

using cudatest::Buf;
using FVec = std::vector<float>;
namespace gpu = rnnkit::cuda;

struct Case {
  int M, N, K, pad;
};
const Case kCases[] = {
    {1, 1, 1, 0}, {7, 5, 3, 2}, {65, 130, 67, 1}, {128, 64, 256, 0}, {3, 200, 1, 5}};

using GemmFn = void (*)(bool, bool, int, int, int, float, const float*, int, const float*, int,
                        float, float*, int);

void compare(GemmFn fn, const char* name) {
  for (const Case& c : kCases)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (float beta : {0.0f, 1.0f}) {
          const int lda = (ta ? c.M : c.K) + c.pad, ldb = (tb ? c.K : c.N) + c.pad,
                    ldc = c.N + c.pad;
          FVec A(size_t(ta ? c.K : c.M) * lda), B(size_t(tb ? c.N : c.K) * ldb),
              C(size_t(c.M) * ldc);
          check::fill_uniform(A, 11);
          check::fill_uniform(B, 12);
          check::fill_uniform(C, 13);
          // The reference gets zeros where the device gets NaN: C's values are not its concern.
          FVec want = beta == 0 ? FVec(C.size(), 0.0f) : C;
          if (beta == 0) C.assign(C.size(), std::numeric_limits<float>::quiet_NaN());
          rnnkit::gemm(ta, tb, c.M, c.N, c.K, 0.5f, A.data(), lda, B.data(), ldb, beta, want.data(),
                       ldc);
          Buf<float> dA(A), dB(B), dC(C);
          fn(ta, tb, c.M, c.N, c.K, 0.5f, dA.get(), lda, dB.get(), ldb, beta, dC.get(), ldc);
          FVec got = dC.download();
          // The padding columns of C are not part of the product: compare the M x N block.
          FVec g, w;
          for (int r = 0; r < c.M; ++r)
            for (int j = 0; j < c.N; ++j)
              g.push_back(got[size_t(r) * ldc + j]), w.push_back(want[size_t(r) * ldc + j]);
          cudatest::expect_close(g, w,
                                 std::string(name) + " M=" + std::to_string(c.M) +
                                     " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) +
                                     " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                                     " beta=" + std::to_string(int(beta)));
        }
}

TEST(gemm_matches_cpu) { compare(gpu::gemm, "gemm"); }

TEST(builtin_gemm_matches_cpu) { compare(gpu::gemm_builtin, "gemm_builtin"); }

// Attention's use: batch entry b is row b of time-major tensors, a view with leading dimension
// B * width starting at b * width.
TEST(batched_gemm_matches_per_entry_gemms) {
  const int T = 9, S = 13, K = 6, B = 5;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int M = ta ? S : T, N = tb ? T : S;
      // op(A) [M, K], op(B) [K, N]; each stored in a time-major tensor of B interleaved rows.
      const int a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
      FVec A(size_t(a_rows) * B * a_cols), Bm(size_t(b_rows) * B * b_cols), C(size_t(M) * B * N);
      check::fill_uniform(A, 21);
      check::fill_uniform(Bm, 22);
      check::fill_uniform(C, 23);
      FVec want = C;
      for (int b = 0; b < B; ++b)
        rnnkit::gemm(ta, tb, M, N, K, 1.0f, A.data() + b * a_cols, B * a_cols,
                     Bm.data() + b * b_cols, B * b_cols, 1.0f, want.data() + b * N, B * N);
      Buf<float> dA(A), dB(Bm), dC(C);
      gpu::gemm_batched(ta, tb, M, N, K, 1.0f, dA.get(), B * a_cols, a_cols, dB.get(), B * b_cols,
                        b_cols, 1.0f, dC.get(), B * N, N, B);
      cudatest::expect_close(dC.download(), want,
                             "gemm_batched ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
    }
}

TEST(errors_are_exceptions) {
  bool threw = false;
  try {
    gpu::DeviceBuffer<float> huge(size_t(1) << 50);  // a petabyte
  } catch (const gpu::Error&) {
    threw = true;
  }
  CHECK(threw);
  // The failed allocation leaves the device usable.
  Buf<float> small(FVec(4, 1.0f));
  CHECK(small.download()[3] == 1.0f);
}

}  // namespace

CUDA_TEST_MAIN()
