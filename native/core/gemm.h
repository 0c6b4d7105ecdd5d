// General matrix multiply, the one primitive every other kernel builds on.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>

namespace rnnkit {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is [M,K] (A stored [M,K] with lda >= K, or [K,M] with lda >= M when transA).
// op(B) is [K,N] (B stored [K,N] with ldb >= N, or [N,K] with ldb >= K when transB).
// Products of 16 rows or more go to the kernel gemm_products() names, fewer rows to gemm_blas;
// every product to gemm_builtin while the calling thread holds a BuiltinProducts.
void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// OpenBLAS (sgemv for a single row) where it was found, else the built-in GEMM. Where
// OpenBLAS runs one thread (gemm_threads), products of a few rows split their columns over
// rnnkit's threads.
void gemm_blas(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc);

// While one is alive, the products gemm runs on the thread that made it go to the built-in GEMM,
// on rnnkit's threads, whatever their size and gemm_products(). For work that a search on
// rnnkit's threads follows at once (a translation's encoder): OpenBLAS's workers spin for a while
// after each product they run, on the cores the search then needs. Nests.
class BuiltinProducts {
 public:
  BuiltinProducts();
  ~BuiltinProducts();
  BuiltinProducts(const BuiltinProducts&) = delete;
  BuiltinProducts& operator=(const BuiltinProducts&) = delete;
};

// The built-in cache-blocked GEMM, always compiled. Large products split their rows over
// gemm_threads() threads (the caller's and helpers'); the result does not depend on how many.
void gemm_builtin(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc);

// A right-hand side op(B) [K, N] packed once into the built-in GEMM's panel layout, for products
// that reuse it many times (the weights of a generation loop): gemm_packed then reads it as it is,
// where gemm would copy B into panels at every call. set() fills it block by block; an entry never
// set is undefined.
class PackedMatrix {
 public:
  PackedMatrix(int K, int N);
  // Rows [k0, k0 + rows) x columns [n0, n0 + cols) of op(B) from src: stored [rows, cols] with
  // ld >= cols, or [cols, rows] with ld >= rows when trans.
  void set(int k0, int n0, int rows, int cols, bool trans, const float* src, int ld);
  int rows() const { return K_; }
  int cols() const { return N_; }
  size_t bytes() const { return data_.get_deleter().bytes; }

 private:
  friend void gemm_packed(int, const float*, int, const PackedMatrix&, float, float*, int);
  struct Free {
    size_t bytes;
    void operator()(float* p) const;
  };
  int K_, N_, n_padded_;
  std::unique_ptr<float, Free> data_;
};

// C[M,N] = A B + beta * C with A [M,K] row-major (lda >= K) and B packed. The built-in kernel
// whatever the backend, so a row's result does not depend on M or on the other rows. Large
// products split their columns over gemm_threads() threads (the caller's and helpers').
void gemm_packed(int M, const float* A, int lda, const PackedMatrix& B, float beta, float* C,
                 int ldc);

// How many chunks to split the columns of a packed product of `work` multiply-adds over `slivers`
// slivers into, each for parallel_for to run on a thread of its own: one (no helpers) below a
// million, some 10-60 us of work, else up to four per thread of at least four slivers each, so
// that a late helper leaves little for the caller to wait on.
int product_chunks(double work, int slivers);

// How many groups to split `rows` independent rows into, each to run on a thread of its own
// (parallel_for): one per thread, of at least 8 rows each, as packed products keep their speed
// down to about 8 rows; 1 below 16 rows or without helper threads.
int row_groups(int rows);

// The BLAS in use ("openblas" where the library was found at run time, else "builtin");
// OpenBLAS's core (the kernels it picked for this CPU, "" without it) and the library file opened;
// the vector width of the built-in kernel in bits (512 AVX-512, 256 AVX/AVX2, 128 otherwise); and
// which of the two takes `gemm`'s products of 16 rows or more: "builtin" without OpenBLAS, else
// RNNKIT_PRODUCTS where set to "openblas" or "builtin", else the one measured faster on this CPU
// at first use (gemm_calibration).
const char* gemm_backend();
const char* blas_core();
const char* blas_library();
int builtin_vector_bits();
const char* gemm_products();
// The single-core speed of both GEMMs measured for that choice; measured false where none was
// made (no OpenBLAS, or RNNKIT_PRODUCTS set).
struct GemmCalibration {
  bool measured = false;
  double openblas_gflops = 0, builtin_gflops = 0;
};
GemmCalibration gemm_calibration();
// How many threads gemm_builtin, gemm_packed and parallel_for run, and OpenBLAS where it takes
// the multi-row products (else OpenBLAS runs one). The count starts as OpenBLAS's default, or the
// number of cores with the built-in GEMM.
int gemm_threads();
// Sets that thread count. n >= 1.
void set_gemm_threads(int n);

// parallel_for's hand-off: runs f(i) for every i in [0, n) on the calling thread and the helper
// threads and returns true once all are done; false, running nothing, while another thread's call
// (or the chunk this thread is running) has the helpers.
bool run_on_helpers(int n, const std::function<void(int)>& f);

// Runs f(i) for every i in [0, n) on the calling thread and up to gemm_threads() - 1 helper
// threads (those of gemm_builtin and gemm_packed), and returns once all are done. Meanwhile the
// products that f runs stay on the thread that runs it; so does every f(i) while another thread's
// call has the helpers. A single call, or one thread, runs f in place, with nothing to set up.
// Only then may f throw.
template <class F>
void parallel_for(int n, F&& f) {
  if (n > 1 && gemm_threads() > 1 && run_on_helpers(n, f)) return;
  for (int i = 0; i < n; ++i) f(i);
}

}  // namespace rnnkit
