// Embedding, linear layer, softmax cross-entropy: forward/backward pairs over raw buffers.
#pragma once
#include <cstdint>
#include <vector>

#include "gemm.h"
#include "mixed.h"
#include "qgemm.h"

namespace rnnkit {

// out[n, :] = table[ids[n], :]. table [V, E], ids [N] (each in [0, V)), out [N, E].
void embedding_forward(const float* table, int V, int E, const int32_t* ids, int N, float* out);
// dtable[ids[n], :] += dout[n, :].
void embedding_backward(const int32_t* ids, int N, int E, const float* dout, float* dtable);

// y = x W^T + b.  x [N, I], W [O, I] (PyTorch's nn.Linear layout), b [O] or null, y [N, O]; the
// product at precision p (mixed.h), the bias added in float32.
void linear_forward(int N, int I, int O, const float* x, const float* W, const float* b, float* y,
                    Precision p = Precision::F32);
// dx = dy W (overwritten; null: not needed); dW += dy^T x; db += column sums of dy (null: none).
// Both products at precision p.
void linear_backward(int N, int I, int O, const float* x, const float* W, const float* dy,
                     float* dx, float* dW, float* db, Precision p = Precision::F32);

// A Linear(I, O) layer's weights packed once for running it at every step of a decoding loop:
// forward computes what linear_forward does, with the packed product of the weights' type
// (qgemm.h; scales [O] for int8). Copies what it needs.
class PackedLinear {
 public:
  PackedLinear(int I, int O, const float* W, const float* b, WeightType type = WeightType::F32,
               const float* scales = nullptr);
  // y [N, O] = x [N, I] W^T + b.
  void forward(int N, const float* x, float* y) const;
  // Bytes of the packed weights and the bias.
  size_t bytes() const { return w_.bytes() + sizeof(float) * b_.size(); }

 private:
  int I_, O_;
  PackedWeights w_;
  std::vector<float> b_;  // empty: no bias
};

// Each row of x [N, V] becomes its log-softmax, in place.
void log_softmax_rows(int N, int V, float* x);

// Softmax cross-entropy over the rows of logits [N, V] against targets [N]; rows whose target
// equals ignore_index count for nothing. With label smoothing e the target distribution is
// (1 - e) * onehot + e / V. Writes each row's log-sum-exp into lse [N] for backward and the
// number of counted rows into *count; returns the SUM of the counted rows' losses (in double).
double softmax_xent_forward(int N, int V, const float* logits, const int32_t* targets,
                            int ignore_index, float label_smoothing, float* lse, int64_t* count);
// dlogits = scale * (softmax(logits) - target distribution) for counted rows, 0 for ignored rows.
// dlogits may alias logits. Use scale = 1 / count for the gradient of the mean loss.
void softmax_xent_backward(int N, int V, const float* logits, const int32_t* targets,
                           int ignore_index, float label_smoothing, const float* lse, float scale,
                           float* dlogits);

}  // namespace rnnkit
