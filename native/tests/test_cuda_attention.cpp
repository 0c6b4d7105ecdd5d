// CUDA attention against the CPU kernels on the same inputs: the whole Luong layer forward and
// backward for the dot, general and additive scores over a padded source batch, and the score
// gradient given nonzero entries past the source lengths, which it must ignore.
#include <string>
#include <vector>

#include "attention.h"
#include "cuda_test.h"

namespace {

using cudatest::Buf;
using rnnkit::AttentionKind;
using rnnkit::AttentionShape;
using FVec = std::vector<float>;
namespace gpu = rnnkit::cuda;

const char* const kKindNames[] = {"dot", "general", "additive"};

FVec uniform(size_t n, uint64_t seed, double lo = -1, double hi = 1) {
  FVec v(n);
  check::fill_uniform(v, seed, lo, hi);
  return v;
}

AttentionShape shape(AttentionKind kind) {
  // Dot needs He == Hd.
  return {kind, 6, 9, 4, 12, kind == AttentionKind::Dot ? 12 : 10, 7};
}

TEST(luong_layer_matches_cpu) {
  const std::vector<int32_t> lengths = {9, 3, 1, 7};
  for (AttentionKind kind : {AttentionKind::Dot, AttentionKind::General, AttentionKind::Additive}) {
    const AttentionShape s = shape(kind);
    const std::string name = std::string("luong ") + kKindNames[int(kind)];
    const size_t TB = size_t(s.T) * s.B, SB = size_t(s.S) * s.B;
    const FVec params = uniform(rnnkit::attention_param_count(s), 1, -0.4, 0.4),
               q = uniform(TB * s.Hd, 2), enc = uniform(SB * s.He, 3), dout = uniform(TB * s.Hd, 4);
    const size_t wsn = rnnkit::luong_attention_workspace_size(s);

    FVec ws(wsn), align(TB * s.S), out(TB * s.Hd), d = dout, dq(q.size()), denc(enc.size());
    FVec dparams = uniform(params.size(), 5);
    rnnkit::luong_attention_forward(s, params.data(), q.data(), enc.data(), lengths.data(),
                                    ws.data(), align.data(), out.data());
    const FVec align_cpu = align, out_cpu = out;
    rnnkit::luong_attention_backward(s, params.data(), q.data(), enc.data(), lengths.data(),
                                     ws.data(), align.data(), out.data(), d.data(), dq.data(),
                                     denc.data(), dparams.data());

    Buf<float> gparams(params), gq(q), genc(enc), gdout(dout), gdparams(uniform(params.size(), 5));
    Buf<int32_t> glen(lengths);
    Buf<float> gws = cudatest::nan_buffer(gpu::luong_attention_workspace_size(s));
    Buf<float> galign = cudatest::nan_buffer(align.size()), gout = cudatest::nan_buffer(out.size());
    Buf<float> gdq = cudatest::nan_buffer(q.size()), gdenc = cudatest::nan_buffer(enc.size());
    gpu::luong_attention_forward(s, gparams.get(), gq.get(), genc.get(), glen.get(), gws.get(),
                                 galign.get(), gout.get());
    cudatest::expect_close(galign.download(), align_cpu, name + ": align");
    cudatest::expect_close(gout.download(), out_cpu, name + ": out");
    gpu::luong_attention_backward(s, gparams.get(), gq.get(), genc.get(), glen.get(), gws.get(),
                                  galign.get(), gout.get(), gdout.get(), gdq.get(), gdenc.get(),
                                  gdparams.get());
    cudatest::expect_close(gdq.download(), dq, name + ": dq");
    cudatest::expect_close(gdenc.download(), denc, name + ": denc");
    cudatest::expect_close(gdparams.download(), dparams, name + ": dparams");
  }
}

TEST(score_gradient_ignores_padding) {
  const std::vector<int32_t> lengths = {2, 9, 5, 1};
  for (AttentionKind kind : {AttentionKind::Dot, AttentionKind::General, AttentionKind::Additive}) {
    const AttentionShape s = shape(kind);
    const std::string name = std::string("scores_backward ") + kKindNames[int(kind)];
    const int K = rnnkit::attention_key_size(s);
    const size_t TB = size_t(s.T) * s.B, SB = size_t(s.S) * s.B;
    const FVec params = uniform(rnnkit::attention_param_count(s), 6, -0.4, 0.4),
               q = uniform(TB * s.Hd, 7), keys = uniform(SB * K, 8),
               qproj = uniform(kind == AttentionKind::Additive ? TB * s.A : 0, 9),
               dscores = uniform(TB * s.S, 10);  // nonzero everywhere, padding included
    FVec dq = uniform(q.size(), 11), dkeys = uniform(keys.size(), 12),
         dparams = uniform(params.size(), 13);
    Buf<float> gparams(params), gq(q), gkeys(keys), gqproj(qproj), gds(dscores), gdq(dq),
        gdkeys(dkeys), gdparams(dparams);
    Buf<int32_t> glen(lengths);
    FVec dqproj(qproj.size());
    Buf<float> gdqproj(dqproj);
    rnnkit::attention_scores_backward(s, params.data(), q.data(), keys.data(), lengths.data(),
                                      qproj.empty() ? nullptr : qproj.data(), dscores.data(),
                                      dq.data(), dkeys.data(), dparams.data(),
                                      dqproj.empty() ? nullptr : dqproj.data());
    gpu::attention_scores_backward(s, gparams.get(), gq.get(), gkeys.get(), glen.get(),
                                   cudatest::ptr_or_null(gqproj), gds.get(), gdq.get(),
                                   gdkeys.get(), gdparams.get(), cudatest::ptr_or_null(gdqproj));
    cudatest::expect_close(gdq.download(), dq, name + ": dq");
    cudatest::expect_close(gdkeys.download(), dkeys, name + ": dkeys");
    cudatest::expect_close(gdparams.download(), dparams, name + ": dparams");
  }
}

}  // namespace

CUDA_TEST_MAIN()
