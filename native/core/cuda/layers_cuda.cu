// Embedding, linear layer and fused softmax cross-entropy on the device (layers.cpp's twins).
#include <cmath>

#include "common.cuh"

namespace rnnkit {
namespace cuda {
namespace {

__global__ void gather_rows(const float* __restrict__ table, int V, int E,
                            const int32_t* __restrict__ ids, size_t n, float* __restrict__ out) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int32_t id = ids[i / E];
  out[i] = id >= 0 && id < V ? table[size_t(id) * E + i % E] : 0.0f;
}

__global__ void scatter_add_rows(const int32_t* __restrict__ ids, size_t n, int E,
                                 const float* __restrict__ dout, float* dtable) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) atomicAdd(dtable + size_t(ids[i / E]) * E + i % E, dout[i]);
}

__global__ void broadcast_rows(size_t n, int O, const float* __restrict__ b,
                               float* __restrict__ y) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = b[i % O];
}

// Threads (x, y): x picks a column of a 32-column strip, y a residue class of rows; the kColRows
// partial sums of a column are then added in a fixed order.
constexpr int kColRows = kThreads / 32;

__global__ void column_sums(size_t rows, int cols, const float* __restrict__ a, int lda,
                            float* __restrict__ dst) {
  __shared__ float part[kColRows][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.0f;
  if (c < cols)
    for (size_t r = threadIdx.y; r < rows; r += kColRows) s += a[r * lda + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  for (int k = 1; k < kColRows; ++k) s += part[k][threadIdx.x];
  dst[c] += s;
}

// One block per row: the row's log-sum-exp (the sum of exponentials in float, its log in double,
// as layers.cpp does), and its loss in double for the counted rows.
__global__ void xent_rows(int V, const float* __restrict__ logits,
                          const int32_t* __restrict__ targets, int ignore_index,
                          float label_smoothing, float* __restrict__ lse,
                          double* __restrict__ loss) {
  const int n = blockIdx.x;
  const float* x = logits + size_t(n) * V;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < V; j += kThreads) m = fmaxf(m, x[j]);
  m = block_max_all(m);
  float se = 0.0f, sx = 0.0f;
  for (int j = threadIdx.x; j < V; j += kThreads) {
    se += expf(x[j] - m);
    sx += x[j];
  }
  se = block_sum(se);
  __syncthreads();  // block_sum's storage is reused by the next reduction
  sx = block_sum(sx);
  if (threadIdx.x != 0) return;
  const double row_lse = m + log(double(se));
  lse[n] = float(row_lse);
  const int t = targets[n];
  if (t == ignore_index) {
    loss[n] = NAN;  // not counted
    return;
  }
  const double e = label_smoothing;
  double l = row_lse - (1.0 - e) * x[t];
  if (e != 0.0) l -= e / V * sx;
  loss[n] = l;
}

// Sums the counted rows' losses in a fixed order: per-thread runs, then the block reduction.
__global__ void xent_total(int N, const double* __restrict__ loss, double* __restrict__ out) {
  double s = 0.0, c = 0.0;
  for (int n = threadIdx.x; n < N; n += kThreads)
    if (!isnan(loss[n])) s += loss[n], c += 1.0;
  s = block_sum(s);
  __syncthreads();
  c = block_sum(c);
  if (threadIdx.x == 0) out[0] = s, out[1] = c;
}

__global__ void xent_grad(size_t total, int V, const float* logits,
                          const int32_t* __restrict__ targets, int ignore_index,
                          const float* __restrict__ lse, float scale, float off, float hit,
                          float* dlogits) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= total) return;
  const size_t n = i / V;
  const int j = int(i % V), t = targets[n];
  // dlogits may be logits: this thread reads its element before writing it.
  float d = 0.0f;
  if (t != ignore_index) {
    d = scale * expf(logits[i] - lse[n]) - off;
    if (j == t) d -= hit;
  }
  dlogits[i] = d;
}

}  // namespace

void add_column_sums(size_t rows, int cols, const float* a, int lda, float* dst) {
  if (cols <= 0) return;
  column_sums<<<(cols + 31) / 32, dim3(32, kColRows), 0, stream()>>>(rows, cols, a, lda, dst);
  check_launch("column_sums");
}

void embedding_forward(const float* table, int V, int E, const int32_t* ids, int N, float* out) {
  const size_t n = size_t(N) * E;
  if (n == 0) return;
  gather_rows<<<blocks_for(n), kThreads, 0, stream()>>>(table, V, E, ids, n, out);
  check_launch("embedding gather_rows");
}

void embedding_backward(const int32_t* ids, int N, int E, const float* dout, float* dtable) {
  const size_t n = size_t(N) * E;
  if (n == 0) return;
  scatter_add_rows<<<blocks_for(n), kThreads, 0, stream()>>>(ids, n, E, dout, dtable);
  check_launch("embedding scatter_add_rows");
}

void linear_forward(int N, int I, int O, const float* x, const float* W, const float* b, float* y) {
  const size_t n = size_t(N) * O;
  if (b && n > 0) {
    broadcast_rows<<<blocks_for(n), kThreads, 0, stream()>>>(n, O, b, y);
    check_launch("linear broadcast_rows");
  }
  gemm(false, true, N, O, I, 1.0f, x, I, W, I, b ? 1.0f : 0.0f, y, O);
}

void linear_backward(int N, int I, int O, const float* x, const float* W, const float* dy,
                     float* dx, float* dW, float* db) {
  if (dx) gemm(false, false, N, I, O, 1.0f, dy, O, W, I, 0.0f, dx, I);
  gemm(true, false, O, I, N, 1.0f, dy, O, x, I, 1.0f, dW, I);
  if (db) add_column_sums(size_t(N), O, dy, O, db);
}

double softmax_xent_forward(int N, int V, const float* logits, const int32_t* targets,
                            int ignore_index, float label_smoothing, float* lse, int64_t* count) {
  *count = 0;
  if (N <= 0) return 0.0;
  double* tmp = static_cast<double*>(scratch(sizeof(double) * (size_t(N) + 2)));
  xent_rows<<<N, kThreads, 0, stream()>>>(V, logits, targets, ignore_index, label_smoothing, lse,
                                          tmp + 2);
  check_launch("softmax_xent xent_rows");
  xent_total<<<1, kThreads, 0, stream()>>>(N, tmp + 2, tmp);
  check_launch("softmax_xent xent_total");
  double host[2];
  copy_to_host(host, tmp, sizeof host);
  *count = static_cast<int64_t>(host[1]);
  return host[0];
}

void softmax_xent_backward(int N, int V, const float* logits, const int32_t* targets,
                           int ignore_index, float label_smoothing, const float* lse, float scale,
                           float* dlogits) {
  const size_t total = size_t(N) * V;
  if (total == 0) return;
  const float off = scale * label_smoothing / V;
  const float hit = scale * (1.0f - label_smoothing);
  xent_grad<<<blocks_for(total), kThreads, 0, stream()>>>(total, V, logits, targets, ignore_index,
                                                          lse, scale, off, hit, dlogits);
  check_launch("softmax_xent xent_grad");
}

}  // namespace cuda
}  // namespace rnnkit
