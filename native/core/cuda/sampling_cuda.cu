// Batched next-token sampling on the device: sample_token (sampling.cpp) for B rows at once, one
// thread block per row, with the same steps in the same order and the same random stream per row.
//   prepare: repetition penalty, no-repeat-n-gram ban, NaN/inf clamp, argmax, one uniform draw;
//   sort (top-k or top-p only): each row's logits in descending order, ties by lower id (a stable
//     segmented radix sort of the row in id order), which is sample_token's candidate order;
//   draw: the candidates' probabilities, the nucleus cut and the multinomial draw, as running
//     sums over the candidates in order (each thread sums a contiguous run, a block scan joins
//     the runs), so no thread ever holds the whole distribution.
#include <cfloat>
#include <climits>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <stdexcept>
#include <string>

#include "common.cuh"

namespace rnnkit {
namespace cuda {
namespace {

// What prepare leaves for draw; done rows already have their token.
struct RowState {
  double u;
  float top;
  int32_t best;
  int32_t done;
};

struct Best {
  float v;
  int32_t i;
};

__device__ Best better(Best a, Best b) { return b.v > a.v || (b.v == a.v && b.i < a.i) ? b : a; }

__device__ bool ngram_match(const int32_t* hist, const int32_t* tail, int i, int n) {
  for (int k = 0; k + 1 < n; ++k)
    if (hist[i + k] != tail[k]) return false;
  return true;
}

__global__ void prepare(SamplerConfig cfg, float* logits, int V, const int32_t* history,
                        int history_stride, const int32_t* history_len, uint64_t* rng_state,
                        RowState* rows, int32_t* tokens) {
  const int b = blockIdx.x;
  float* x = logits + size_t(b) * V;
  const int32_t* hist = history ? history + size_t(b) * history_stride : nullptr;
  const int len = hist ? history_len[b] : 0;

  // Each distinct history token once: the thread holding its first occurrence applies it.
  if (cfg.repetition_penalty != 1 && hist) {
    for (int i = threadIdx.x; i < len; i += kThreads) {
      const int32_t t = hist[i];
      bool first = true;
      for (int k = 0; k < i && first; ++k) first = hist[k] != t;
      if (first) x[t] = x[t] > 0 ? x[t] / cfg.repetition_penalty : x[t] * cfg.repetition_penalty;
    }
    __syncthreads();
  }

  // Ban the tokens that would repeat an n-gram, unless that bans all V of them.
  const int n = cfg.no_repeat_ngram;
  if (n > 0 && hist && len >= n) {
    const int32_t* tail = hist + len - (n - 1);
    int distinct = 0;
    for (int i = threadIdx.x; i + n <= len; i += kThreads) {
      if (!ngram_match(hist, tail, i, n)) continue;
      bool first = true;
      for (int k = 0; k < i && first; ++k)
        first = !(hist[k + n - 1] == hist[i + n - 1] && ngram_match(hist, tail, k, n));
      distinct += first;
    }
    if (block_sum_all(distinct) != V)
      for (int i = threadIdx.x; i + n <= len; i += kThreads)
        if (ngram_match(hist, tail, i, n)) x[hist[i + n - 1]] = -INFINITY;
    __syncthreads();
  }

  // NaN counts as -inf and +inf as the largest float; then the argmax, ties to the lowest id.
  Best best{-INFINITY, INT_MAX};
  int finite = 0;
  for (int j = threadIdx.x; j < V; j += kThreads) {
    finite += isfinite(x[j]);
    const float v = isnan(x[j]) ? -INFINITY : fminf(x[j], FLT_MAX);
    x[j] = v;
    best = better(best, Best{v, j});
  }
  finite = block_sum_all(finite);
  using Reduce = cub::BlockReduce<Best, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  best = Reduce(tmp).Reduce(best, [](Best a, Best c) { return better(a, c); });
  if (threadIdx.x != 0) return;
  // With no finite logit, sample_token answers kNoFiniteLogit.
  const int32_t id = finite == 0 ? kNoFiniteLogit : best.i;
  RowState r{0.0, best.v, id, 1};
  if (cfg.temperature == 0) {
    tokens[b] = id;
  } else {
    Rng rng = Rng::from_state(rng_state[b]);
    r.u = rng.uniform();
    rng_state[b] = rng.state;
    if (finite == 0)
      tokens[b] = id;
    else
      r.done = 0;
  }
  rows[b] = r;
}

__global__ void iota_rows(int B, int V, int32_t* ids, int32_t* offsets) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < size_t(B) * V) ids[i] = int32_t(i % V);
  if (i <= size_t(B)) offsets[i] = int32_t(i * V);
}

using Scan = cub::BlockScan<double, kThreads>;
using ReduceInt = cub::BlockReduce<int, kThreads>;

// The candidates [0, n) of one row, their unnormalised probabilities computed on the fly, and
// each thread's contiguous run [lo, hi) of them with the mass before it (offset).
struct Candidates {
  const float* key;
  const int32_t* id;  // null: candidate j is token j
  float top, temperature;
  int lo, hi;
  double offset;

  __device__ float p(int j) const { return expf((key[j] - top) / temperature); }
  __device__ int token(int j) const { return id ? id[j] : j; }

  // Splits [0, n) into runs and returns the total mass; every thread gets it.
  __device__ double split(int n, typename Scan::TempStorage& tmp) {
    const int chunk = (n + kThreads - 1) / kThreads;
    lo = min(n, int(threadIdx.x) * chunk);
    hi = min(n, lo + chunk);
    double s = 0.0;
    for (int j = lo; j < hi; ++j) s += p(j);
    double total;
    Scan(tmp).ExclusiveSum(s, offset, total);
    __syncthreads();
    return total;
  }

  // The first j whose running mass (through j) passes `threshold` (>= when inclusive, > when
  // not), with that mass in *mass; INT_MAX when none does. Every thread gets the answer.
  __device__ int first_reaching(double threshold, bool inclusive, double* mass,
                                typename ReduceInt::TempStorage& tmp) {
    __shared__ double found_mass;
    __shared__ int found;
    int j_hit = INT_MAX;
    double acc = offset;
    for (int j = lo; j < hi; ++j) {
      acc += p(j);
      if (inclusive ? acc >= threshold : acc > threshold) {
        j_hit = j;
        break;
      }
    }
    const int first = ReduceInt(tmp).Reduce(j_hit, [](int a, int c) { return c < a ? c : a; });
    if (threadIdx.x == 0) found = first;
    __syncthreads();
    if (found != INT_MAX && j_hit == found) found_mass = acc;
    __syncthreads();
    const int r = found;
    if (r != INT_MAX) *mass = found_mass;
    __syncthreads();
    return r;
  }
};

__global__ void draw(SamplerConfig cfg, int V, const float* logits, const float* sorted_keys,
                     const int32_t* sorted_ids, const RowState* rows, int32_t* tokens) {
  const int b = blockIdx.x;
  const RowState r = rows[b];
  if (r.done) return;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ typename ReduceInt::TempStorage reduce_tmp;
  const size_t at = size_t(b) * V;
  Candidates c{sorted_keys ? sorted_keys + at : logits + at,
               sorted_ids ? sorted_ids + at : nullptr,
               r.top,
               cfg.temperature,
               0,
               0,
               0.0};
  int n = cfg.top_k > 0 && cfg.top_k < V ? cfg.top_k : V;
  double total = c.split(n, scan_tmp);
  if (cfg.top_p < 1) {
    double mass = total;
    const int keep = c.first_reaching(cfg.top_p * total, true, &mass, reduce_tmp);
    if (keep != INT_MAX) {
      n = keep + 1;
      total = mass;
      c.split(n, scan_tmp);
    }
  }
  double unused;
  const int j = c.first_reaching(r.u * total, false, &unused, reduce_tmp);
  if (j != INT_MAX) {
    if (threadIdx.x == 0) tokens[b] = c.token(j);
    return;
  }
  // Rounding left the threshold at the very top of the mass: the last candidate with mass.
  int last = -1;
  for (int k = c.lo; k < c.hi; ++k)
    if (c.p(k) > 0) last = k;
  last = ReduceInt(reduce_tmp).Reduce(last, [](int a, int d) { return d > a ? d : a; });
  if (threadIdx.x == 0) tokens[b] = last >= 0 ? c.token(last) : r.best;
}

size_t round_up(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

void sample_tokens(const SamplerConfig& cfg, float* logits, int B, int V, const int32_t* history,
                   int history_stride, const int32_t* history_len, uint64_t* rng_state,
                   int32_t* tokens) {
  if (V < 1) throw std::invalid_argument("rnnkit cuda sample_tokens: V must be >= 1");
  if (B <= 0) return;
  if (sampler_uses_history(cfg) && (!history || !history_len))
    throw std::invalid_argument(
        "rnnkit cuda sample_tokens: the repetition penalty and the n-gram ban need the history");
  const bool sort = cfg.temperature != 0 && ((cfg.top_k > 0 && cfg.top_k < V) || cfg.top_p < 1);
  const size_t items = size_t(B) * V;
  if (sort && items > size_t(INT_MAX))
    throw std::invalid_argument(
        "rnnkit cuda sample_tokens: B * V must fit in an int for top-k/top-p");

  size_t sort_bytes = 0;
  const int32_t* none = nullptr;
  if (sort)
    check(cub::DeviceSegmentedRadixSort::SortPairsDescending(
              nullptr, sort_bytes, logits, static_cast<float*>(nullptr), none,
              static_cast<int32_t*>(nullptr), int(items), B, none, none, 0, 32, stream()),
          "sample_tokens sort size");
  const size_t rows_bytes = round_up(sizeof(RowState) * B);
  const size_t item_bytes = sort ? round_up(sizeof(int32_t) * items) : 0;
  const size_t offset_bytes = sort ? round_up(sizeof(int32_t) * (B + 1)) : 0;
  char* base = static_cast<char*>(
      scratch(rows_bytes + offset_bytes + 3 * item_bytes + round_up(sort_bytes)));
  RowState* rows = reinterpret_cast<RowState*>(base);
  int32_t* offsets = reinterpret_cast<int32_t*>(base + rows_bytes);
  int32_t* ids = reinterpret_cast<int32_t*>(base + rows_bytes + offset_bytes);
  float* skeys = reinterpret_cast<float*>(base + rows_bytes + offset_bytes + item_bytes);
  int32_t* sids = reinterpret_cast<int32_t*>(base + rows_bytes + offset_bytes + 2 * item_bytes);
  void* sort_tmp = base + rows_bytes + offset_bytes + 3 * item_bytes;

  prepare<<<B, kThreads, 0, stream()>>>(cfg, logits, V, history, history_stride, history_len,
                                        rng_state, rows, tokens);
  check_launch("sample_tokens prepare");
  if (sort) {
    iota_rows<<<blocks_for(items + 1), kThreads, 0, stream()>>>(B, V, ids, offsets);
    check_launch("sample_tokens iota_rows");
    check(cub::DeviceSegmentedRadixSort::SortPairsDescending(sort_tmp, sort_bytes, logits, skeys,
                                                             ids, sids, int(items), B, offsets,
                                                             offsets + 1, 0, 32, stream()),
          "sample_tokens sort");
  }
  draw<<<B, kThreads, 0, stream()>>>(cfg, V, logits, sort ? skeys : nullptr, sort ? sids : nullptr,
                                     rows, tokens);
  check_launch("sample_tokens draw");
}

}  // namespace cuda
}  // namespace rnnkit
