#include "sampling.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <numeric>

namespace rnnkit {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Each distinct token of the history is penalised once, however often it occurs.
void penalise_repeats(float penalty, float* logits, const int32_t* history, int n, uint8_t* mark) {
  for (int i = 0; i < n; ++i) {
    int32_t t = history[i];
    if (mark[t]) continue;
    mark[t] = 1;
    logits[t] = logits[t] > 0 ? logits[t] / penalty : logits[t] * penalty;
  }
  for (int i = 0; i < n; ++i) mark[history[i]] = 0;
}

// The tokens that follow an earlier occurrence of the history's last n-1 tokens would repeat an
// n-gram. Banning all V of them would leave nothing to sample, so then the ban is dropped.
void ban_repeated_ngrams(int n, float* logits, int V, const int32_t* history, int len,
                         uint8_t* mark, int32_t* banned) {
  if (len < n) return;
  const int32_t* tail = history + len - (n - 1);
  int count = 0;
  for (int i = 0; i + n <= len; ++i) {
    if (!std::equal(tail, tail + n - 1, history + i)) continue;
    int32_t t = history[i + n - 1];
    if (!mark[t]) mark[t] = 1, banned[count++] = t;
  }
  for (int k = 0; k < count; ++k) mark[banned[k]] = 0;
  if (count == V) return;
  for (int k = 0; k < count; ++k) logits[banned[k]] = kNegInf;
}

}  // namespace

int32_t sample_token(const SamplerConfig& cfg, float* logits, int V, const int32_t* history,
                     int n_history, Rng& rng, SamplerScratch& scratch) {
  if (cfg.repetition_penalty != 1)
    penalise_repeats(cfg.repetition_penalty, logits, history, n_history, scratch.mark.data());
  if (cfg.no_repeat_ngram > 0)
    ban_repeated_ngrams(cfg.no_repeat_ngram, logits, V, history, n_history, scratch.mark.data(),
                        scratch.index.data());

  // NaN would break the orderings below, and +inf the softmax (inf - inf); clamp both here, after
  // the penalty, which could itself overflow a large logit.
  int32_t best = 0;
  float top = kNegInf;
  bool finite = false;
  for (int i = 0; i < V; ++i) {
    finite = finite || std::isfinite(logits[i]);
    float x = std::isnan(logits[i]) ? kNegInf : std::min(logits[i], FLT_MAX);
    logits[i] = x;
    if (x > top) top = x, best = i;
  }
  const double u = cfg.temperature == 0 ? 0 : rng.uniform();
  if (!finite) return kNoFiniteLogit;
  if (cfg.temperature == 0) return best;

  // Candidates: all tokens in id order, or idx[0, n) in descending order. Sorting the top-k set
  // (k is small) makes the draw independent of how the standard library's nth_element arranges it.
  int32_t* idx = scratch.index.data();
  auto higher = [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  int n = V, sorted = 0;
  bool indexed = cfg.top_k > 0 && cfg.top_k < V;
  if (indexed) {
    std::iota(idx, idx + V, 0);
    std::nth_element(idx, idx + cfg.top_k - 1, idx + V, higher);
    std::sort(idx, idx + cfg.top_k, higher);
    n = sorted = cfg.top_k;
  }

  // Unnormalised probabilities in place; x - top <= 0, so nothing overflows at any temperature.
  const float t = cfg.temperature;
  double total = 0;
  for (int j = 0; j < n; ++j) {
    int32_t id = indexed ? idx[j] : j;
    float p = std::exp((logits[id] - top) / t);
    logits[id] = p;
    total += p;
  }

  if (cfg.top_p < 1) {
    if (!indexed) std::iota(idx, idx + V, 0);
    indexed = true;
    // The nucleus is usually a short head of the distribution: sort in doubling chunks, each
    // selected from the unsorted rest, and stop once the mass is reached.
    const double target = cfg.top_p * total;
    double mass = 0;
    int chunk = 32, keep = n;
    for (int j = 0; j < n; ++j) {
      if (j == sorted) {
        int end = std::min(n, sorted + chunk);
        if (end < n) std::nth_element(idx + sorted, idx + end - 1, idx + n, higher);
        std::sort(idx + sorted, idx + end, higher);
        sorted = end, chunk *= 2;
      }
      mass += logits[idx[j]];
      if (mass >= target) {
        keep = j + 1;
        break;
      }
    }
    n = keep, total = mass;
  }

  // Multinomial draw. Rounding can leave the threshold at the very top of the mass; the last
  // token with mass then takes it. The most likely token always has mass 1, so one exists.
  const double r = u * total;
  double acc = 0;
  int32_t last = best;
  for (int j = 0; j < n; ++j) {
    int32_t id = indexed ? idx[j] : j;
    if (logits[id] <= 0) continue;
    last = id;
    acc += logits[id];
    if (r < acc) return id;
  }
  return last;
}

}  // namespace rnnkit
