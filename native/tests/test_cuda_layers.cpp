// CUDA embedding, linear layer and softmax cross-entropy against the CPU kernels on the same
// inputs: repeated ids in the embedding gradient, bias and no bias, ignored rows and label
// smoothing, dlogits written over the logits.
#include <string>
#include <vector>

#include "cuda_test.h"
#include "layers.h"

namespace {

using cudatest::Buf;
using FVec = std::vector<float>;
namespace gpu = rnnkit::cuda;

FVec uniform(size_t n, uint64_t seed, double lo = -1, double hi = 1) {
  FVec v(n);
  check::fill_uniform(v, seed, lo, hi);
  return v;
}

TEST(embedding_matches_cpu) {
  const int V = 11, E = 37, N = 50;
  const FVec table = uniform(size_t(V) * E, 1), grad = uniform(size_t(N) * E, 2);
  std::vector<int32_t> ids(N);
  for (int n = 0; n < N; ++n) ids[n] = (n * 7) % V;  // every id several times
  Buf<float> gtable(table), ggrad(grad);
  Buf<int32_t> gids(ids);

  FVec out(size_t(N) * E);
  rnnkit::embedding_forward(table.data(), V, E, ids.data(), N, out.data());
  Buf<float> gout = cudatest::nan_buffer(out.size());
  gpu::embedding_forward(gtable.get(), V, E, gids.get(), N, gout.get());
  cudatest::expect_close(gout.download(), out, "embedding_forward");

  // Backward adds into the table it is given.
  FVec dtable = table;
  rnnkit::embedding_backward(ids.data(), N, E, grad.data(), dtable.data());
  gpu::embedding_backward(gids.get(), N, E, ggrad.get(), gtable.get());
  cudatest::expect_close(gtable.download(), dtable, "embedding_backward");
}

TEST(linear_matches_cpu) {
  const int N = 33, I = 70, O = 65;
  const FVec x = uniform(size_t(N) * I, 3), W = uniform(size_t(O) * I, 4), b = uniform(O, 5),
             dy = uniform(size_t(N) * O, 6);
  Buf<float> dx_in(x), dW_in(W), db_in(b), ddy(dy);
  for (bool bias : {true, false}) {
    const std::string name = bias ? "linear (bias)" : "linear (no bias)";
    FVec y(size_t(N) * O);
    rnnkit::linear_forward(N, I, O, x.data(), W.data(), bias ? b.data() : nullptr, y.data());
    Buf<float> dyout = cudatest::nan_buffer(y.size());
    gpu::linear_forward(N, I, O, dx_in.get(), dW_in.get(), bias ? db_in.get() : nullptr,
                        dyout.get());
    cudatest::expect_close(dyout.download(), y, name + ": y");

    FVec gx(x.size()), gW = uniform(W.size(), 7), gb = uniform(O, 8);
    Buf<float> dgx = cudatest::nan_buffer(x.size()), dgW(gW), dgb(gb);
    rnnkit::linear_backward(N, I, O, x.data(), W.data(), dy.data(), gx.data(), gW.data(),
                            bias ? gb.data() : nullptr);
    gpu::linear_backward(N, I, O, dx_in.get(), dW_in.get(), ddy.get(), dgx.get(), dgW.get(),
                         bias ? dgb.get() : nullptr);
    cudatest::expect_close(dgx.download(), gx, name + ": dx");
    cudatest::expect_close(dgW.download(), gW, name + ": dW");
    cudatest::expect_close(dgb.download(), gb, name + ": db");
  }
}

TEST(softmax_xent_matches_cpu) {
  const int N = 40, V = 300, ignore = -100;
  const FVec logits = uniform(size_t(N) * V, 9, -6, 6);
  std::vector<int32_t> targets(N);
  for (int n = 0; n < N; ++n) targets[n] = n % 5 == 0 ? ignore : (n * 37) % V;
  Buf<float> dlogits(logits);
  Buf<int32_t> dtargets(targets);
  for (float smoothing : {0.0f, 0.1f}) {
    const std::string name = "softmax_xent smoothing=" + std::to_string(smoothing);
    FVec lse(N);
    int64_t count = 0, gcount = 0;
    const double loss = rnnkit::softmax_xent_forward(N, V, logits.data(), targets.data(), ignore,
                                                     smoothing, lse.data(), &count);
    Buf<float> dlse = cudatest::nan_buffer(N);
    const double gloss = gpu::softmax_xent_forward(N, V, dlogits.get(), dtargets.get(), ignore,
                                                   smoothing, dlse.get(), &gcount);
    CHECK(gcount == count);
    const FVec lv{float(loss)}, glv{float(gloss)};
    cudatest::expect_close(glv, lv, name + ": loss");
    cudatest::expect_close(dlse.download(), lse, name + ": lse");

    FVec grad(logits.size());
    const float scale = 1.0f / float(count);
    rnnkit::softmax_xent_backward(N, V, logits.data(), targets.data(), ignore, smoothing,
                                  lse.data(), scale, grad.data());
    // In place, as the trainer calls it: dlogits over the logits.
    Buf<float> inplace(logits);
    gpu::softmax_xent_backward(N, V, inplace.get(), dtargets.get(), ignore, smoothing, dlse.get(),
                               scale, inplace.get());
    cudatest::expect_close(inplace.download(), grad, name + ": dlogits", 1e-4, 1e-7);
  }
}

}  // namespace

CUDA_TEST_MAIN()
