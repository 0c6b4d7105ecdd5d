// The batched CUDA sampler against sample_token row by row, for greedy decoding, plain sampling,
// temperature, top-k, top-p, both together, the repetition penalty and the n-gram ban, with
// NaN and infinite logits among them. Every row's generator must advance exactly as on the CPU.
// Greedy tokens must be identical; sampled tokens may differ where a draw falls within float
// rounding of a boundary between two tokens (the device's expf is not glibc's), which on these
// inputs is rare: at most 1% of rows.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cuda_test.h"
#include "sampling.h"

namespace {

using cudatest::Buf;
using rnnkit::SamplerConfig;
using FVec = std::vector<float>;
namespace gpu = rnnkit::cuda;

struct Named {
  const char* name;
  SamplerConfig cfg;
};

std::vector<Named> configs() {
  auto make = [](float t, int k, float p, float pen, int ngram) {
    SamplerConfig c;
    c.temperature = t;
    c.top_k = k;
    c.top_p = p;
    c.repetition_penalty = pen;
    c.no_repeat_ngram = ngram;
    return c;
  };
  return {{"greedy", make(0, 0, 1, 1, 0)},
          {"multinomial", make(1, 0, 1, 1, 0)},
          {"temperature 0.7", make(0.7f, 0, 1, 1, 0)},
          {"top-k 40", make(1, 40, 1, 1, 0)},
          {"top-p 0.9", make(1, 0, 0.9f, 1, 0)},
          {"top-k 50 top-p 0.8", make(0.9f, 50, 0.8f, 1, 0)},
          {"penalty 1.3", make(1, 0, 1, 1.3f, 0)},
          {"no-repeat 2-gram", make(1, 0, 1, 1, 2)},
          {"greedy penalty + 3-gram", make(0, 0, 1, 1.5f, 3)}};
}

TEST(batched_sampler_matches_sample_token) {
  const int B = 400, V = 500, hist_len = 24, stride = 32;
  FVec logits(size_t(B) * V);
  check::fill_uniform(logits, 1, -4, 4);
  logits[3] = std::numeric_limits<float>::quiet_NaN();
  logits[V + 7] = std::numeric_limits<float>::infinity();
  logits[2 * V + 9] = -std::numeric_limits<float>::infinity();
  // Rows with no finite logit: all NaN, and NaN with infinities.
  const int kNan = 5, kMixed = 6;
  for (int j = 0; j < V; ++j) {
    logits[size_t(kNan) * V + j] = std::numeric_limits<float>::quiet_NaN();
    logits[size_t(kMixed) * V + j] =
        j % 3 == 0 ? std::numeric_limits<float>::quiet_NaN()
                   : (j % 3 == 1 ? 1 : -1) * std::numeric_limits<float>::infinity();
  }
  std::vector<int32_t> history(size_t(B) * stride, 0), lens(B, hist_len);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < hist_len; ++i)
      history[size_t(b) * stride + i] = int32_t((b * 13 + i * 7 + (i % 3) * 100) % 40);
  for (const Named& n : configs()) {
    const std::string name = n.name;
    std::vector<int32_t> want(B);
    std::vector<uint64_t> states(B);
    FVec cpu_logits = logits;
    rnnkit::SamplerScratch scratch(V);
    for (int b = 0; b < B; ++b) {
      rnnkit::Rng rng = rnnkit::sampler_rng(99, b);
      want[b] = rnnkit::sample_token(n.cfg, cpu_logits.data() + size_t(b) * V, V,
                                     history.data() + size_t(b) * stride, hist_len, rng, scratch);
      states[b] = rng.state;
    }
    std::vector<uint64_t> start(B);
    for (int b = 0; b < B; ++b) start[b] = rnnkit::sampler_rng(99, b).state;
    Buf<float> glogits(logits);
    Buf<int32_t> ghist(history), glens(lens), gtokens(std::vector<int32_t>(B, -1));
    Buf<uint64_t> gstate(start);
    gpu::sample_tokens(n.cfg, glogits.get(), B, V, ghist.get(), stride, glens.get(), gstate.get(),
                       gtokens.get());
    const std::vector<int32_t> got = gtokens.download();
    const std::vector<uint64_t> got_states = gstate.download();
    int differ = 0;
    bool in_range = true, same_states = true;
    for (int b = 0; b < B; ++b) {
      differ += got[b] != want[b];
      const bool broken = b == kNan || b == kMixed;
      in_range = in_range &&
                 (broken ? got[b] == rnnkit::kNoFiniteLogit && want[b] == rnnkit::kNoFiniteLogit
                         : got[b] >= 0 && got[b] < V);
      same_states = same_states && got_states[b] == states[b];
    }
    if (!in_range)
      check::fail(name + ": a token outside [0, V), or a row without finite logits sampled");
    if (!same_states) check::fail(name + ": the generators did not advance as on the CPU");
    const bool greedy = n.cfg.temperature == 0;
    if (greedy ? differ > 0 : differ > B / 100)
      check::fail(name + ": " + std::to_string(differ) + " of " + std::to_string(B) +
                  " rows differ from sample_token");
  }
}

}  // namespace

CUDA_TEST_MAIN()
