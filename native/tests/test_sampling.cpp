// Sampler tests: greedy decoding, the support and frequencies of top-k / top-p / temperature
// sampling against the renormalised softmax, the repetition-penalty and no-repeat-n-gram rules,
// robustness to non-finite logits, and the one-draw-per-token contract that keeps seeded rows
// reproducible.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "check.h"
#include "sampling.h"

using rnnkit::Rng;
using rnnkit::sample_token;
using rnnkit::SamplerConfig;
using rnnkit::SamplerScratch;

namespace {

constexpr float kInf = INFINITY;

SamplerConfig config(float temperature, int top_k = 0, float top_p = 1) {
  SamplerConfig c;
  c.temperature = temperature;
  c.top_k = top_k;
  c.top_p = top_p;
  return c;
}

// Samples n tokens from fresh copies of `logits` and returns each token's frequency.
std::vector<double> frequencies(const SamplerConfig& cfg, const std::vector<float>& logits, int n,
                                uint64_t seed) {
  const int V = static_cast<int>(logits.size());
  SamplerScratch scratch(V);
  Rng rng(seed);
  std::vector<double> f(V, 0);
  std::vector<float> work(V);
  for (int i = 0; i < n; ++i) {
    work = logits;
    f[sample_token(cfg, work.data(), V, nullptr, 0, rng, scratch)] += 1.0 / n;
  }
  return f;
}

// softmax(logits / t) restricted to `allowed` and renormalised.
std::vector<double> expected(const std::vector<float>& logits, float t,
                             const std::vector<int>& allowed) {
  std::vector<double> p(logits.size(), 0);
  double top = *std::max_element(logits.begin(), logits.end()), sum = 0;
  for (int id : allowed) sum += p[id] = std::exp((logits[id] - top) / t);
  for (double& x : p) x /= sum;
  return p;
}

// Token ids in descending logit order.
std::vector<int> ranking(const std::vector<float>& logits) {
  std::vector<int> r(logits.size());
  std::iota(r.begin(), r.end(), 0);
  std::stable_sort(r.begin(), r.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  return r;
}

std::vector<float> random_logits(int V, uint64_t seed, double scale) {
  std::vector<float> l(V);
  check::fill_uniform(l, seed, -scale, scale);
  return l;
}

int greedy(const SamplerConfig& cfg, std::vector<float> logits, const std::vector<int32_t>& hist) {
  SamplerScratch scratch(static_cast<int>(logits.size()));
  Rng rng(0);
  return sample_token(cfg, logits.data(), static_cast<int>(logits.size()), hist.data(),
                      static_cast<int>(hist.size()), rng, scratch);
}

}  // namespace

TEST(greedy_is_argmax_lowest_id_on_ties) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> l = random_logits(97, seed, 5);
    CHECK(greedy(config(0), l, {}) == ranking(l)[0]);
  }
  std::vector<float> tie = {0, 3, 1, 3, 3};
  CHECK(greedy(config(0), tie, {}) == 1);
  // Greedy draws nothing, so a row's stream is untouched.
  SamplerScratch scratch(5);
  Rng rng(7);
  uint64_t before = rng.state;
  sample_token(config(0), tie.data(), 5, nullptr, 0, rng, scratch);
  CHECK(rng.state == before);
}

TEST(top_k_one_is_greedy) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> l = random_logits(50, seed, 2);
    std::vector<double> f = frequencies(config(1.5f, 1), l, 200, seed);
    CHECK(std::fabs(f[ranking(l)[0]] - 1) < 1e-9);
  }
}

TEST(plain_sampling_matches_softmax) {
  std::vector<float> l = random_logits(12, 3, 2);
  std::vector<int> all(l.size());
  std::iota(all.begin(), all.end(), 0);
  std::vector<double> f = frequencies(config(1), l, 200000, 11);
  check::close(f.data(), expected(l, 1, all).data(), l.size(), 0, 0.006, "softmax frequencies");
}

TEST(temperature_sharpens_and_flattens) {
  std::vector<float> l = random_logits(10, 4, 2);
  std::vector<int> all(l.size());
  std::iota(all.begin(), all.end(), 0);
  for (float t : {0.25f, 0.5f, 2.0f, 8.0f}) {
    std::vector<double> f = frequencies(config(t), l, 200000, 12);
    check::close(f.data(), expected(l, t, all).data(), l.size(), 0, 0.006,
                 "temperature " + std::to_string(t));
  }
}

TEST(top_k_restricts_support) {
  std::vector<float> l = random_logits(40, 5, 2);
  std::vector<int> r = ranking(l);
  for (int k : {2, 5, 17}) {
    std::vector<int> allowed(r.begin(), r.begin() + k);
    std::vector<double> f = frequencies(config(0.8f, k), l, 200000, 13 + k);
    std::vector<double> want = expected(l, 0.8f, allowed);
    for (int id = 0; id < 40; ++id)
      if (want[id] == 0) CHECK(f[id] == 0);
    check::close(f.data(), want.data(), l.size(), 0, 0.006, "top_k " + std::to_string(k));
  }
}

TEST(top_p_keeps_smallest_nucleus) {
  // Probabilities 0.4, 0.3, 0.2, 0.1 (in shuffled ids) and a long tail that gets none.
  const int V = 200;
  std::vector<float> l(V, -30);
  l[17] = std::log(0.4f), l[3] = std::log(0.3f), l[150] = std::log(0.2f), l[88] = std::log(0.1f);
  struct Case {
    float p;
    std::vector<int> allowed;
  };
  for (const Case& c : {Case{0.35f, {17}}, Case{0.39f, {17}}, Case{0.65f, {17, 3}},
                        Case{0.85f, {17, 3, 150}}, Case{0.95f, {17, 3, 150, 88}}}) {
    std::vector<double> f = frequencies(config(1, 0, c.p), l, 100000, 21);
    std::vector<double> want = expected(l, 1, c.allowed);
    for (int id = 0; id < V; ++id)
      if (want[id] == 0) CHECK(f[id] == 0);
    check::close(f.data(), want.data(), V, 0, 0.006, "top_p " + std::to_string(c.p));
  }
  // A wide, flat distribution: the nucleus spans several doubling chunks of the partial sort.
  std::vector<float> flat = random_logits(5000, 6, 0.5);
  std::vector<int> r = ranking(flat);
  std::vector<double> all = expected(flat, 1, r);
  double mass = 0;
  size_t keep = 0;
  while (mass < 0.9) mass += all[r[keep++]];
  std::vector<double> f = frequencies(config(1, 0, 0.9f), flat, 3000, 22);
  // (Two tokens of slack at the edge, where float and double sums may disagree.)
  for (size_t j = keep + 2; j < r.size(); ++j) CHECK(f[r[j]] == 0);
  CHECK(keep > 1000);
}

TEST(top_k_then_top_p) {
  std::vector<float> l = random_logits(30, 7, 3);
  std::vector<int> r = ranking(l);
  std::vector<int> top5(r.begin(), r.begin() + 5);
  std::vector<double> p5 = expected(l, 1, top5);
  double mass = 0;
  size_t keep = 0;
  while (mass < 0.7) mass += p5[r[keep++]];
  std::vector<int> allowed(r.begin(), r.begin() + keep);
  std::vector<double> f = frequencies(config(1, 5, 0.7f), l, 200000, 23);
  check::close(f.data(), expected(l, 1, allowed).data(), l.size(), 0, 0.006, "top_k + top_p");
}

TEST(repetition_penalty_math) {
  SamplerConfig cfg = config(0);
  cfg.repetition_penalty = 2;
  std::vector<float> l = {4, -2, 3, 1, 0, 3.5f};
  std::vector<int32_t> hist = {0, 1, 0, 0, 4, 1};
  SamplerScratch scratch(6);
  Rng rng(1);
  // Token 0 (4 -> 2) loses to token 5 (3.5, not in the history).
  CHECK(sample_token(cfg, l.data(), 6, hist.data(), 6, rng, scratch) == 5);
  // Each distinct token is penalised once, however often it occurs.
  std::vector<float> want = {2, -4, 3, 1, 0, 3.5f};
  check::close(l.data(), want.data(), 6, 0, 0, "penalised logits");
  CHECK(std::all_of(scratch.mark.begin(), scratch.mark.end(), [](uint8_t m) { return m == 0; }));
}

TEST(no_repeat_ngram_bans) {
  SamplerConfig cfg = config(0);
  cfg.no_repeat_ngram = 3;
  std::vector<float> l = {0, 1, 2, 9, 8, 7};
  // "1 2" was followed by 3 and by 5 before: both are banned after a trailing "1 2".
  std::vector<int32_t> hist = {1, 2, 3, 0, 1, 2, 5, 4, 1, 2};
  CHECK(greedy(cfg, l, hist) == 4);
  // A trailing "2 1" never occurred before: nothing is banned.
  std::vector<int32_t> other = {1, 2, 3, 2, 1};
  CHECK(greedy(cfg, l, other) == 3);
  // Shorter than n: no n-gram exists yet.
  CHECK(greedy(cfg, l, {3, 3}) == 3);
  // n = 1 bans every token already seen.
  cfg.no_repeat_ngram = 1;
  CHECK(greedy(cfg, l, {3, 4}) == 5);
  // Banning the whole vocabulary would leave nothing: the ban is dropped for that step.
  CHECK(greedy(cfg, l, {0, 1, 2, 3, 4, 5}) == 3);
  // Sampling never picks a banned token either.
  cfg = config(1);
  cfg.no_repeat_ngram = 2;
  SamplerScratch scratch(6);
  Rng rng(3);
  std::vector<int32_t> h2 = {3, 4, 5, 3, 5, 0, 3};  // after 3: 4 and 5 are banned
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> work = l;
    int t = sample_token(cfg, work.data(), 6, h2.data(), 7, rng, scratch);
    CHECK(t != 4 && t != 5);
  }
}

TEST(non_finite_logits) {
  const int V = 8;
  SamplerScratch scratch(V);
  Rng rng(5);
  for (int top_k : {0, 3})
    for (float top_p : {1.0f, 0.5f}) {
      std::vector<float> l = {NAN, 1, NAN, -kInf, 2, NAN, 0, -kInf};
      int t = sample_token(config(1, top_k, top_p), l.data(), V, nullptr, 0, rng, scratch);
      CHECK(t == 1 || t == 4 || t == 6);
      std::vector<float> inf = {0, kInf, 1, kInf, NAN, 0, 0, 0};
      t = sample_token(config(0.5f, top_k, top_p), inf.data(), V, nullptr, 0, rng, scratch);
      CHECK(t == 1 || t == 3);
      std::vector<float> none(V, -kInf);
      none[2] = NAN;
      uint64_t before = rng.state;
      CHECK(sample_token(config(1, top_k, top_p), none.data(), V, nullptr, 0, rng, scratch) ==
            rnnkit::kNoFiniteLogit);
      CHECK(rng.state == before + 1);
      // +inf is not finite either: a row of +inf and NaN has nothing to sample.
      std::vector<float> overflow = {kInf, NAN, kInf, -kInf, NAN, kInf, NAN, NAN};
      CHECK(sample_token(config(1, top_k, top_p), overflow.data(), V, nullptr, 0, rng, scratch) ==
            rnnkit::kNoFiniteLogit);
    }
  // Greedy ignores NaN rather than picking it, and has nothing to pick without a finite logit.
  CHECK(greedy(config(0), {NAN, -1, NAN, 0.5f, 0.5f}, {}) == 3);
  CHECK(greedy(config(0), {NAN, NAN, NAN}, {}) == rnnkit::kNoFiniteLogit);
  CHECK(greedy(config(0), {-kInf, NAN, kInf}, {}) == rnnkit::kNoFiniteLogit);
  // A ban that leaves only NaN logits leaves nothing either.
  SamplerConfig ban = config(0);
  ban.no_repeat_ngram = 2;
  CHECK(greedy(ban, {NAN, 1, NAN}, {1, 1}) == rnnkit::kNoFiniteLogit);
}

TEST(one_draw_per_token_and_determinism) {
  const int V = 30;
  SamplerConfig cfg = config(0.9f, 7, 0.8f);
  cfg.repetition_penalty = 1.2f;
  cfg.no_repeat_ngram = 2;
  std::vector<float> base = random_logits(V, 8, 2);
  auto run = [&](Rng rng, int n, std::vector<int32_t>& hist) {
    SamplerScratch scratch(V);
    for (int i = 0; i < n; ++i) {
      std::vector<float> l = base;
      uint64_t before = rng.state;
      hist.push_back(
          sample_token(cfg, l.data(), V, hist.data(), static_cast<int>(hist.size()), rng, scratch));
      CHECK(rng.state == before + 1);
    }
    return rng;
  };
  std::vector<int32_t> a = {1}, b = {1}, c = {1}, d = {1};
  run(rnnkit::sampler_rng(42, 3), 50, a);
  run(rnnkit::sampler_rng(42, 3), 50, b);
  CHECK(a == b);
  run(rnnkit::sampler_rng(42, 4), 50, c);
  CHECK(a != c);
  // A stream saved mid-way and resumed from its raw state continues exactly.
  Rng half = run(rnnkit::sampler_rng(42, 3), 20, d);
  run(Rng::from_state(half.state), 30, d);
  CHECK(a == d);
}

TEST_MAIN()
