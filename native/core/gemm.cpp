// GEMM: OpenBLAS where it is installed (opened at run time), and a portable cache-blocked GEMM in
// the style of BLIS/GotoBLAS, which takes the multi-row products where it measures faster. The
// built-in one packs op(A) and op(B) into contiguous, zero-padded panels so one register-blocked
// micro-kernel (in GCC/Clang vector types, instantiated for a few tile heights) serves all four
// transpose cases and every edge size. gemm_packed runs it over a B packed once by the caller:
// the per-step products of generation and of a recurrent layer, with the same weights at every
// step.
#include "gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>
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
// B (the packed panel's consecutive slivers, kc * kNR floats apart); the A sliver holds AS floats
// per k. beta == 0 overwrites C without reading it, as BLAS does, so NaN or garbage in C does not
// leak through. Every instantiation sums each element over k in the same order, so a row gets
// the same bits whichever tile computes it.
template <int MR, int NS, int AS = kMR>
void micro_kernel(int kc, const float* __restrict a, const float* __restrict b, int mr, int nr,
                  float alpha, float beta, float* __restrict c, int ldc) {
  const ptrdiff_t sliver = static_cast<ptrdiff_t>(kc) * kNR;
  Vec acc[MR][NS][kNV] = {};
  for (int k = 0; k < kc; ++k, a += AS, b += kNR) {
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
// latency, so those tiles span kWide / mr slivers at once. Their A is packed MR wide, not kMR.
constexpr int kWide = 4;

// Products of fewer rows pack B for too few multiply-adds per element: gemm leaves them to
// gemm_blas, and OpenBLAS's kernels, which read B with less copying at so few rows.
constexpr int kFewRows = 16;

template <int MR>
void wide_tiles(int kc, const float* a_pack, const float* panel, int nc, float alpha, float beta,
                float* C, int ldc) {
  constexpr int NS = kWide / MR;
  const ptrdiff_t sliver = static_cast<ptrdiff_t>(kc) * kNR;
  int jr = 0;
  for (; nc - jr > (NS - 1) * kNR; jr += NS * kNR)
    micro_kernel<MR, NS, MR>(kc, a_pack, panel + jr / kNR * sliver, MR,
                             nc - jr < NS * kNR ? nc - jr : NS * kNR, alpha, beta, C + jr, ldc);
  for (; jr < nc; jr += kNR)
    micro_kernel<MR, 1, MR>(kc, a_pack, panel + jr / kNR * sliver, MR,
                            nc - jr < kNR ? nc - jr : kNR, alpha, beta, C + jr, ldc);
}

// A block of mc rows splits into tiles of nearly equal height, so that no short tile is left over
// (64 rows: four of 11 and two of 10, not five of 12 and one of 4); tile t is rows
// [first(t), first(t + 1)). One or two rows are one tile (wide_tiles).
struct RowTiles {
  int mc, count;
  explicit RowTiles(int rows) : mc(rows), count((rows + kMR - 1) / kMR) {}
  int first(int t) const { return t * mc / count; }
  // Floats of one K block of kc columns packed.
  size_t packed(int kc) const { return static_cast<size_t>(count) * kMR * kc; }
};

// Packs a block of op(A) [mc, kc] (element (m, k) at A[m * ms + k * ks]) tile by tile, each tile a
// kMR-wide sliver of its own; one or two rows as a sliver just that wide (wide_tiles).
void pack_a(const float* A, ptrdiff_t ms, ptrdiff_t ks, int mc, int kc, float* dst) {
  if (mc <= 2) {
    (mc == 1 ? pack<1> : pack<2>)(A, ms, ks, mc, kc, dst);
    return;
  }
  const RowTiles tiles(mc);
  for (int t = 0; t < tiles.count; ++t)
    pack<kMR>(A + tiles.first(t) * ms, ms, ks, tiles.first(t + 1) - tiles.first(t), kc,
              dst + static_cast<ptrdiff_t>(t) * kMR * kc);
}

// C[mc, nc] = alpha * a_pack * panel + beta * C: a block of op(A) packed by pack_a times one K
// block of packed B (nc columns in slivers of kNR, each kc * kNR floats).
void multiply_block(int mc, int kc, const float* a_pack, const float* panel, int nc, float alpha,
                    float beta, float* C, int ldc) {
  if (mc <= 2) {
    (mc == 1 ? wide_tiles<1> : wide_tiles<2>)(kc, a_pack, panel, nc, alpha, beta, C, ldc);
    return;
  }
  const RowTiles tiles(mc);
  const ptrdiff_t sliver = static_cast<ptrdiff_t>(kc) * kNR;
  for (int jr = 0; jr < nc; jr += kNR) {
    const int nr = nc - jr < kNR ? nc - jr : kNR;
    for (int t = 0; t < tiles.count; ++t) {
      const int r = tiles.first(t), mr = tiles.first(t + 1) - r;
      kRowKernels[mr - 1](kc, a_pack + static_cast<ptrdiff_t>(t) * kMR * kc,
                          panel + jr / kNR * sliver, mr, nr, alpha, beta,
                          C + static_cast<ptrdiff_t>(r) * ldc + jr, ldc);
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

// Storage of packed matrices. On Linux those of 2 MB and more are mapped straight from the
// system, 2 MB aligned on transparent huge pages where it offers them (also in madvise mode): a
// generation call packs its weights afresh, 14 MB at config M, and faulting that in 4 KB pages
// costs more than packing it; the product then also streams them through a few TLB entries. And
// they are unmapped when freed, where the allocator kept them in each thread's arena: calls on
// the four threads of Node's pool held 14 MB each.
constexpr size_t kHugePage = size_t(1) << 21;

#ifdef __linux__
size_t mapped_size(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }
#endif

float* allocate_panels(size_t bytes) {
#ifdef __linux__
  if (bytes >= kHugePage) {
    // Maps a huge page more than needed and unmaps what lies outside the aligned span.
    const size_t size = mapped_size(bytes), span = size + kHugePage;
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    char* begin = static_cast<char*>(raw);
    char* start = begin + (kHugePage - reinterpret_cast<uintptr_t>(raw) % kHugePage) % kHugePage;
    if (start > begin) munmap(begin, start - begin);
    if (begin + span > start + size) munmap(start + size, begin + span - (start + size));
#ifdef MADV_HUGEPAGE
    madvise(start, size, MADV_HUGEPAGE);
#endif
    return reinterpret_cast<float*>(start);
  }
#endif
  return static_cast<float*>(::operator new (bytes, std::align_val_t{64}));
}

// Helper threads for gemm_packed and gemm_builtin, which split a product's columns (rows) into
// chunks that the calling thread and the helpers claim one at a time. On a shared machine a helper
// may wake late or be preempted: the caller then does the chunks that helper would have done, and
// waits only for one it has already claimed. Helpers poll briefly after a product, then sleep.
// Created on first use and never destroyed, so that no exit-time destructor waits on a thread.
class Helpers {
 public:
  static Helpers& instance() {
    static Helpers* helpers = new Helpers;
    return *helpers;
  }

  // Runs chunk(i) for every i in [0, n) on this thread and up to gemm_threads() - 1 helpers, and
  // returns true once all are done; false, running nothing, while another thread's call has them.
  // A chunk that runs products of its own (parallel_for's) gets false: they run on its thread.
  bool run(int n, const std::function<void(int)>& chunk) {
    if (in_chunk_) return false;
    std::unique_lock<std::mutex> caller(run_mu_, std::try_to_lock);
    if (!caller.owns_lock()) return false;
    in_chunk_ = true;
    const int helpers = gemm_threads() - 1;
    while (int(threads_.size()) < helpers)
      threads_.emplace_back(&Helpers::help, this, int(threads_.size()));
    // Closes the last round before this one's size and job are set: a helper that read next_
    // during the last round and then reads this round's n_ must fail its claim, or it would run
    // one of this round's chunks twice and count it twice.
    next_.store(uint64_t(++rounds_) << 32 | kClosed);
    active_.store(helpers, std::memory_order_relaxed);
    job_.store(&chunk, std::memory_order_relaxed);
    n_.store(n, std::memory_order_release);
    done_.store(0, std::memory_order_relaxed);
    // Publishes the round: a claim reads the job only after its compare-exchange on next_.
    const uint32_t round = ++rounds_;
    next_.store(uint64_t(round) << 32);
    if (sleeping_.load() > 0) {
      std::lock_guard<std::mutex> lock(sleep_mu_);
      wake_.notify_all();
    }
    work(round);
    // Only chunks the helpers have claimed are left: wait for them, yielding to a helper that
    // may be waiting for this core.
    while (done_.load(std::memory_order_acquire) != n) std::this_thread::yield();
    in_chunk_ = false;
    return true;
  }

 private:
  static constexpr std::chrono::microseconds kPoll{50};
  static constexpr uint32_t kClosed = 0xffffffffu;  // a closed round's next chunk: none to claim

  // Claims and runs chunks of `round` while it has unclaimed ones. next_ holds the round (which
  // wraps) in its high half and the next unclaimed chunk in its low half.
  void work(uint32_t round) {
    for (uint64_t v = next_.load(std::memory_order_acquire);;) {
      const uint32_t i = uint32_t(v);
      if (uint32_t(v >> 32) != round || i >= uint32_t(n_.load(std::memory_order_acquire))) return;
      if (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
      (*job_.load(std::memory_order_relaxed))(int(i));
      done_.fetch_add(1, std::memory_order_release);
      v = next_.load(std::memory_order_acquire);
    }
  }

  void help(int id) {
    uint32_t seen = 0;
    auto fresh = [&] { return uint32_t(next_.load() >> 32) != seen; };
    for (;;) {
      // Polls for the next round a while, yielding the core to any thread that wants it, so that
      // the next product of a generation step, microseconds away, needs no wake-up; then sleeps.
      // A helper beyond the thread count set now sleeps at once.
      const auto until = std::chrono::steady_clock::now() + kPoll;
      if (id < active_.load(std::memory_order_relaxed))
        while (!fresh() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      if (!fresh()) {
        std::unique_lock<std::mutex> lock(sleep_mu_);
        sleeping_.fetch_add(1);
        wake_.wait(lock, fresh);
        sleeping_.fetch_sub(1);
      }
      seen = uint32_t(next_.load() >> 32);
      if (id < active_.load(std::memory_order_relaxed)) {
        in_chunk_ = true;
        work(seen);
        in_chunk_ = false;
      }
    }
  }

  static thread_local bool in_chunk_;  // this thread is running a round's chunks

  std::mutex run_mu_, sleep_mu_;  // a caller's whole run; the helpers' sleep
  std::condition_variable wake_;
  std::vector<std::thread> threads_;
  uint32_t rounds_ = 0;
  std::atomic<uint64_t> next_{0};
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  std::atomic<int> n_{0}, done_{0}, active_{0}, sleeping_{0};
};

thread_local bool Helpers::in_chunk_ = false;

// Whether a product of `work` multiply-adds is worth splitting over threads: not below some 50 us
// of work.
bool worth_splitting(double work) { return gemm_threads() > 1 && work >= double(1 << 22); }

// Row blocks of an M-row product: blocks of at most kMC rows, and when split over threads at
// least four per thread (rows allowing), so that a late helper leaves little for the caller to
// wait on.
int row_blocks(int M, bool split) {
  const int blocks = (M + kMC - 1) / kMC;
  return split ? std::max(blocks, std::min(4 * gemm_threads(), (M + kMR - 1) / kMR)) : blocks;
}

// The calling thread's buffer for packed blocks of op(A).
float* a_panel(size_t n) {
  thread_local Scratch buf;
  return buf.get(n);
}

}  // namespace

bool run_on_helpers(int n, const std::function<void(int)>& f) {
  return Helpers::instance().run(n, f);
}

int product_chunks(double work, int slivers) {
  const int threads = gemm_threads();
  if (threads < 2 || work < double(1 << 20)) return 1;
  return std::max(1, std::min(slivers / 4, 4 * threads));
}

int row_groups(int rows) { return std::max(1, std::min(gemm_threads(), rows / 8)); }

namespace {

// gemm_builtin's blocked loops over a product with K > 0, its rows split into blocks that the
// helper threads claim when `split`.
void gemm_blocks(bool split, bool transA, bool transB, int M, int N, int K, float alpha,
                 const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  // Element strides of op(A) along (M, K) and of op(B) along (N, K).
  const ptrdiff_t a_ms = transA ? 1 : lda, a_ks = transA ? lda : 1;
  const ptrdiff_t b_ns = transB ? ldb : 1, b_ks = transB ? 1 : ldb;

  thread_local Scratch b_buf;
  float* b_pack = b_buf.get(static_cast<size_t>(N < kNC ? round_up(N, kNR) : kNC) * kKC);
  const int blocks = row_blocks(M, split);

  for (int jc = 0; jc < N; jc += kNC) {
    const int nc = N - jc < kNC ? N - jc : kNC;
    for (int pc = 0; pc < K; pc += kKC) {
      const int kc = K - pc < kKC ? K - pc : kKC;
      // The first K block applies the caller's beta; later blocks accumulate onto it.
      const float beta_k = pc == 0 ? beta : 1.0f;
      // Split over threads, the helpers pack B's block too, a run of slivers each.
      const int slivers = (nc + kNR - 1) / kNR;
      const int runs = split ? std::min(slivers, 2 * gemm_threads()) : 1;
      auto pack_run = [&](int i) {
        const int s0 = i * slivers / runs, s1 = (i + 1) * slivers / runs;
        pack<kNR>(B + (jc + s0 * kNR) * b_ns + pc * b_ks, b_ns, b_ks,
                  std::min(s1 * kNR, nc) - s0 * kNR, kc,
                  b_pack + static_cast<ptrdiff_t>(s0) * kNR * kc);
      };
      parallel_for(runs, pack_run);
      // Row block i times the packed block of B, on whichever thread claims it.
      auto row_block = [&](int i) {
        const int r0 = int(int64_t(i) * M / blocks), mc = int(int64_t(i + 1) * M / blocks) - r0;
        float* a_pack = a_panel(RowTiles(mc).packed(kc));
        pack_a(A + r0 * a_ms + pc * a_ks, a_ms, a_ks, mc, kc, a_pack);
        multiply_block(mc, kc, a_pack, b_pack, nc, alpha, beta_k,
                       C + static_cast<ptrdiff_t>(r0) * ldc + jc, ldc);
      };
      parallel_for(blocks, row_block);
    }
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
  const bool split = worth_splitting(double(M) * N * K);
  const int threads = gemm_threads();
  if (!split || M >= 2 * kMR * threads) {
    gemm_blocks(split, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Too few rows for two row tiles per thread (a decoder step over a few beams): the threads take
  // slices of the columns instead, each packing its own part of B.
  const int slivers = (N + kNR - 1) / kNR, parts = std::min(slivers, 4 * threads);
  parallel_for(parts, [&](int i) {
    const int n0 = i * slivers / parts * kNR, n1 = std::min(N, (i + 1) * slivers / parts * kNR);
    gemm_blocks(false, transA, transB, M, n1 - n0, K, alpha, A, lda,
                B + static_cast<ptrdiff_t>(n0) * (transB ? ldb : 1), ldb, beta, C + n0, ldc);
  });
}

// Packed layout: K blocks of kKC rows, block pc starting at float pc * n_padded_, each block the
// N columns in slivers of kNR as pack<kNR> writes them. Only the padding columns are cleared here:
// set() writes every other entry in the end.
PackedMatrix::PackedMatrix(int K, int N)
    : K_(K),
      N_(N),
      n_padded_(round_up(N, kNR)),
      data_(allocate_panels(sizeof(float) * size_t(K) * n_padded_),
            Free{sizeof(float) * size_t(K) * n_padded_}) {
  if (N == n_padded_) return;
  for (int pc = 0; pc < K; pc += kKC) {
    const int kc = K - pc < kKC ? K - pc : kKC;
    float* last = data_.get() + static_cast<ptrdiff_t>(pc) * n_padded_ + (n_padded_ - kNR) * kc;
    for (int k = 0; k < kc; ++k) std::fill(last + k * kNR + N % kNR, last + (k + 1) * kNR, 0.0f);
  }
}

void PackedMatrix::Free::operator()(float* p) const {
#ifdef __linux__
  if (bytes >= kHugePage) {
    munmap(p, mapped_size(bytes));
    return;
  }
#endif
  ::operator delete (p, std::align_val_t{64});
}

void PackedMatrix::set(int k0, int n0, int rows, int cols, bool trans, const float* src, int ld) {
  const ptrdiff_t n_step = trans ? ld : 1, k_step = trans ? 1 : ld;
  // A sliver at a time, in runs of 16 rows: a transposed source (a layer's weights, [N, K]) is
  // then read a cache line of each of the sliver's columns at a time, and the sliver's block of
  // output stays in L1.
  constexpr int kRun = 16;
  for (int s = n0 / kNR * kNR; s < n0 + cols; s += kNR) {
    const int n_lo = n0 > s ? n0 : s, n_hi = n0 + cols < s + kNR ? n0 + cols : s + kNR;
    for (int k = k0; k < k0 + rows;) {
      const int pc = k / kKC * kKC, kc = K_ - pc < kKC ? K_ - pc : kKC;
      const int end = std::min({k0 + rows, (k / kRun + 1) * kRun, pc + kc});
      float* out = data_.get() + static_cast<ptrdiff_t>(pc) * n_padded_ +
                   static_cast<ptrdiff_t>(s) * kc + static_cast<ptrdiff_t>(k - pc) * kNR - s;
      const float* in = src + (k - k0) * k_step - n0 * n_step;
      if (trans && end - k == kRun)
        for (int n = n_lo; n < n_hi; ++n)
          for (int r = 0; r < kRun; ++r) out[r * kNR + n] = in[n * n_step + r];
      else
        for (int n = n_lo; n < n_hi; ++n)
          for (int r = 0; r < end - k; ++r) out[r * kNR + n] = in[n * n_step + r * k_step];
      k = end;
    }
  }
}

void gemm_packed(int M, const float* A, int lda, const PackedMatrix& B, float beta, float* C,
                 int ldc) {
  const int K = B.K_, N = B.N_;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  // A is packed once, K block after K block, each in blocks of kMC rows; every column chunk below
  // reads it from there.
  float* a_pack = a_panel(RowTiles(M).packed(K) + RowTiles(kMR).packed(K) * ((M - 1) / kMC + 1));
  // Calls f(pc, kc, ic, mc, packed A of that block) for every K block and row block, in order.
  auto blocks = [&](auto&& f) {
    float* at = a_pack;
    for (int pc = 0; pc < K; pc += kKC) {
      const int kc = K - pc < kKC ? K - pc : kKC;
      for (int ic = 0; ic < M; ic += kMC) {
        const int mc = M - ic < kMC ? M - ic : kMC;
        f(pc, kc, ic, mc, at);
        at += RowTiles(mc).packed(kc);
      }
    }
  };
  blocks([&](int pc, int kc, int ic, int mc, float* a) {
    pack_a(A + static_cast<ptrdiff_t>(ic) * lda + pc, lda, 1, mc, kc, a);
  });
  // The product's columns from sliver s0 to sliver s1.
  auto columns = [&](int s0, int s1) {
    const int n0 = s0 * kNR, nc = (s1 * kNR < N ? s1 * kNR : N) - n0;
    blocks([&](int pc, int kc, int ic, int mc, const float* a) {
      multiply_block(mc, kc, a,
                     B.data_.get() + static_cast<ptrdiff_t>(pc) * B.n_padded_ +
                         static_cast<ptrdiff_t>(n0) * kc,
                     nc, 1.0f, pc == 0 ? beta : 1.0f, C + static_cast<ptrdiff_t>(ic) * ldc + n0,
                     ldc);
    });
  };
  const int slivers = (N + kNR - 1) / kNR;
  const int chunks = product_chunks(double(M) * N * K, slivers);
  parallel_for(chunks, [&](int i) { columns(i * slivers / chunks, (i + 1) * slivers / chunks); });
}

namespace {

// OpenBLAS, opened at run time rather than linked, so that one binary loads where it is not
// installed (the built-in GEMM then runs everything) and uses it where it is. RNNKIT_BLAS=off
// keeps it closed; RNNKIT_BLAS_LIB names the library file to open instead of the usual names.
// Only OpenBLAS is taken: a library without its openblas_* calls is closed again.
enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };  // cblas.h's values
struct OpenBlas {
  void (*sgemm)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                float*, int);
  void (*sgemv)(int, int, int, int, float, const float*, int, const float*, int, float, float*,
                int);
  char* (*corename)();
  int (*get_threads)();
  void (*set_threads)(int);
  std::string path;
};

template <class F>
bool bind(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

const OpenBlas* open_blas() {
  const char* mode = std::getenv("RNNKIT_BLAS");
  if (mode && std::strcmp(mode, "off") == 0) return nullptr;
  std::vector<std::string> names;
  if (const char* lib = std::getenv("RNNKIT_BLAS_LIB"); lib && *lib)
    names.push_back(lib);
  else
    names = {"libopenblas.so.0",
             "libopenblas.so",
             "libopenblasp.so.0",
             "libopenblas.so.3",
             "libopenblas.dylib",
             "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
             "/usr/local/opt/openblas/lib/libopenblas.dylib"};
  for (const std::string& name : names) {
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    auto* b = new OpenBlas;
    if (bind(lib, "cblas_sgemm", b->sgemm) && bind(lib, "cblas_sgemv", b->sgemv) &&
        bind(lib, "openblas_get_corename", b->corename) &&
        bind(lib, "openblas_get_num_threads", b->get_threads) &&
        bind(lib, "openblas_set_num_threads", b->set_threads)) {
      b->path = name;
      return b;
    }
    delete b;
    dlclose(lib);
  }
  return nullptr;
}

// Opened once, on first use, and kept open for the life of the process.
const OpenBlas* openblas() {
  static const OpenBlas* const blas = open_blas();
  return blas;
}

// The measured speed of both GEMMs on one core at two product shapes of the kind rnnkit trains
// with (a layer's input projection, and a weight gradient with op(A) transposed), best of a few
// runs each, interleaved. A few tens of milliseconds, once per process. It calls neither
// gemm_threads() nor parallel_for with more than one chunk, as the thread set-up depends on it.
GemmCalibration calibrate(const OpenBlas& blas) {
  struct Shape {
    bool ta;
    int M, N, K;
  };
  const Shape shapes[] = {{false, 96, 1024, 512}, {true, 128, 1024, 384}};
  const int before = blas.get_threads();
  blas.set_threads(1);
  double flops = 0, t_blas = 0, t_builtin = 0;
  for (const Shape& s : shapes) {
    std::vector<float> A(size_t(s.M) * s.K), B(size_t(s.K) * s.N), C(size_t(s.M) * s.N);
    for (size_t i = 0; i < A.size(); ++i) A[i] = float(int(i * 7919 % 201) - 100) / 100.0f;
    for (size_t i = 0; i < B.size(); ++i) B[i] = float(int(i * 104729 % 199) - 99) / 100.0f;
    const int lda = s.ta ? s.M : s.K;
    auto time = [&](auto&& f) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    double best_blas = 1e30, best_builtin = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      best_blas =
          std::min(best_blas, time([&] {
                     blas.sgemm(kRowMajor, s.ta ? kTrans : kNoTrans, kNoTrans, s.M, s.N, s.K, 1.0f,
                                A.data(), lda, B.data(), s.N, 0.0f, C.data(), s.N);
                   }));
      best_builtin = std::min(best_builtin, time([&] {
                                gemm_blocks(false, s.ta, false, s.M, s.N, s.K, 1.0f, A.data(), lda,
                                            B.data(), s.N, 0.0f, C.data(), s.N);
                              }));
    }
    flops += 2.0 * s.M * s.N * s.K;
    t_blas += best_blas;
    t_builtin += best_builtin;
  }
  blas.set_threads(before);
  return {true, flops / t_blas * 1e-9, flops / t_builtin * 1e-9};
}

// Which GEMM takes gemm's products of kFewRows rows or more: the built-in one without OpenBLAS;
// else RNNKIT_PRODUCTS=openblas|builtin where set; else the one measured faster on this CPU, the
// built-in GEMM only when clearly so (3%), as OpenBLAS's kernels for a CPU it knows are the
// reference.
struct ProductsChoice {
  const char* kernel;
  GemmCalibration calibration;
};
const ProductsChoice& products_choice() {
  static const ProductsChoice choice = []() -> ProductsChoice {
    const OpenBlas* blas = openblas();
    if (!blas) return {"builtin", {}};
    const char* forced = std::getenv("RNNKIT_PRODUCTS");
    if (forced && std::strcmp(forced, "openblas") == 0) return {"openblas", {}};
    if (forced && std::strcmp(forced, "builtin") == 0) return {"builtin", {}};
    // On a thread of its own: the product that asks first may be a packed one, which has taken
    // its thread's panels (a_panel) before it asks, and the measurement's products use the same
    // thread-local panels; measured on the caller's thread, they reallocated them under it.
    GemmCalibration c;
    std::thread([&] { c = calibrate(*blas); }).join();
    return {c.builtin_gflops > c.openblas_gflops * 1.03 ? "builtin" : "openblas", c};
  }();
  return choice;
}

bool builtin_products() {
  static const bool builtin = std::strcmp(gemm_products(), "builtin") == 0;
  return builtin;
}

// rnnkit's thread count, and OpenBLAS's: the same where OpenBLAS takes the multi-row products,
// else one, as it then only runs single rows (memory-bound) and its idle threads would spin on
// the cores that the built-in GEMM's helpers need. Set up on first use, before any OpenBLAS call.
// Without OpenBLAS the count starts as the number of cores.
std::atomic<int>& thread_count() {
  static std::atomic<int> count{[] {
    const OpenBlas* blas = openblas();
    if (!blas) return std::max(1, int(std::thread::hardware_concurrency()));
    const int n = blas->get_threads();
    blas->set_threads(builtin_products() ? 1 : n);
    return n;
  }()};
  return count;
}

}  // namespace

void gemm_blas(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc) {
  const OpenBlas* blas = openblas();
  if (!blas) {
    gemm_builtin(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M <= 0 || N <= 0) return;
  // cblas rejects lda/ldb < 1, which a K == 0 product may legitimately pass; alpha == 0 is
  // handled here too so both backends agree on never reading A and B then.
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  thread_count();  // OpenBLAS's thread count set up
  // Where OpenBLAS runs one thread (the built-in GEMM taking the larger products), a product with
  // few rows and a large B (a megabyte or more, which it streams for some 50 us) splits its columns
  // over rnnkit's threads.
  const int parts =
      M < kFewRows && builtin_products() && double(N) * K >= (1 << 18) ? gemm_threads() : 1;
  parallel_for(parts, [&](int i) {
    const int n0 = int(int64_t(i) * N / parts), n = int(int64_t(i + 1) * N / parts) - n0;
    const float* b = B + (transB ? ptrdiff_t(n0) * ldb : n0);
    // A single row (a batch-1 generation step) is a matrix-vector product: OpenBLAS's sgemm
    // pays its packing and threading set-up for it, sgemv streams the matrix once.
    // C[1,N] = a . op(B): with B stored [N,K] (transB) that is B a, else B^T a over B [K,N].
    if (M == 1)
      blas->sgemv(kRowMajor, transB ? kNoTrans : kTrans, transB ? n : K, transB ? K : n, alpha, b,
                  ldb, A, transA ? lda : 1, beta, C + n0, 1);
    else
      blas->sgemm(kRowMajor, transA ? kTrans : kNoTrans, transB ? kTrans : kNoTrans, M, n, K, alpha,
                  A, lda, b, ldb, beta, C + n0, ldc);
  });
}

const char* gemm_backend() { return openblas() ? "openblas" : "builtin"; }

const char* blas_core() { return openblas() ? openblas()->corename() : ""; }

const char* blas_library() { return openblas() ? openblas()->path.c_str() : ""; }

const char* gemm_products() { return products_choice().kernel; }

GemmCalibration gemm_calibration() { return products_choice().calibration; }

int gemm_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_gemm_threads(int n) {
  n = n < 1 ? 1 : n;
  thread_count().store(n, std::memory_order_relaxed);
  if (const OpenBlas* blas = openblas()) blas->set_threads(builtin_products() ? 1 : n);
}

int builtin_vector_bits() { return kVec * 32; }

namespace {
thread_local int builtin_scopes = 0;  // the BuiltinProducts alive on this thread
}  // namespace

BuiltinProducts::BuiltinProducts() { ++builtin_scopes; }

BuiltinProducts::~BuiltinProducts() { --builtin_scopes; }

void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  const bool builtin = builtin_scopes > 0 || (M >= kFewRows && builtin_products());
  (builtin ? gemm_builtin : gemm_blas)(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                       ldc);
}

}  // namespace rnnkit
