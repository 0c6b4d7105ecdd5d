// Beam search bookkeeping: per source, the best 2 * beam extensions of its live hypotheses (a heap
// over every row's log-probabilities), of which the first `beam` that do not end become the next
// hypotheses; token and attention histories follow their rows' parents. All buffers are
// allocated up front.
#include "beam.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "layers.h"

namespace rnnkit {
namespace {

double penalty(float alpha, int length) {
  return alpha == 0 ? 1.0 : std::pow((5.0 + length) / 6.0, static_cast<double>(alpha));
}

// The best `n` candidates of one source (rows k of logp with a finite score), best first.
void top_candidates(const double* score, const float* logp, int K, int V, int n,
                    std::vector<BeamCandidate>& out) {
  out.clear();
  auto worse = [](const BeamCandidate& a, const BeamCandidate& b) { return a.total > b.total; };
  for (int k = 0; k < K; ++k) {
    if (!std::isfinite(score[k])) continue;
    const float* row = logp + static_cast<size_t>(k) * V;
    for (int v = 0; v < V; ++v) {
      const double total = score[k] + row[v];
      if (static_cast<int>(out.size()) == n && total <= out.front().total) continue;
      if (static_cast<int>(out.size()) == n) {
        std::pop_heap(out.begin(), out.end(), worse);
        out.pop_back();
      }
      out.push_back({total, k, v});
      std::push_heap(out.begin(), out.end(), worse);
    }
  }
  std::sort_heap(out.begin(), out.end(), worse);
}

}  // namespace

BeamSearch::BeamSearch(const BeamConfig& cfg, int B, int S, int V)
    : cfg_(cfg),
      B_(B),
      S_(S),
      V_(V),
      K_(cfg.beam),
      T_(cfg.max_len),
      sampling_(cfg.beam == 1 && cfg.sampler.temperature > 0),
      ids_(static_cast<size_t>(B) * cfg.beam, cfg.bos),
      hist_(ids_.size() * T_),
      hist2_(hist_.size()),
      ahist_(hist_.size() * S),
      ahist2_(ahist_.size()),
      score_(ids_.size(), -INFINITY),
      score2_(ids_.size()),
      from_(ids_.size()),
      finished_(B),
      done_(B, 0),
      scratch_(sampling_ ? V : 0),
      row_(sampling_ ? V : 0) {
  for (int b = 0; b < B; ++b) score_[static_cast<size_t>(b) * K_] = 0;  // one live hypothesis
  for (int r = 0; r < rows(); ++r) from_[r] = r;
  for (int b = 0; sampling_ && b < B; ++b)
    rngs_.push_back(sampler_rng(cfg.seed, cfg.source_offset + b));
}

bool BeamSearch::done() const {
  return step_ >= T_ || std::all_of(done_.begin(), done_.end(), [](char d) { return d != 0; });
}

// Row r's first n tokens and their attention rows, as a finished hypothesis.
BeamHypothesis BeamSearch::hypothesis(int r, int n, double normalised) const {
  const int32_t* t = &hist_[static_cast<size_t>(r) * T_];
  const float* al = &ahist_[static_cast<size_t>(r) * T_ * S_];
  return BeamHypothesis{normalised, std::vector<int32_t>(t, t + n),
                        std::vector<float>(al, al + static_cast<size_t>(n) * S_)};
}

void BeamSearch::step(float* logp, const float* a) {
  const int R = rows(), K = K_, T = T_, S = S_, V = V_, step = step_;
  log_softmax_rows(R, V, logp);

  // Choose each source's next hypotheses: row r0 + j continues row from[r0 + j] with ids[..].
  for (int b = 0; b < B_; ++b) {
    const int r0 = b * K;
    for (int k = 0; k < K; ++k) {
      from_[r0 + k] = r0 + k;
      score2_[r0 + k] = -INFINITY;
      ids_[r0 + k] = cfg_.eos;  // rows left dead still need a valid id
    }
    if (done_[b]) continue;
    const float* lp = logp + static_cast<size_t>(r0) * V;
    if (sampling_) {
      // The sampler overwrites what it reads: it gets a copy, the score the log-probability.
      std::copy(lp, lp + V, row_.begin());
      const int32_t v = sample_token(cfg_.sampler, row_.data(), V,
                                     &hist_[static_cast<size_t>(r0) * T], step, rngs_[b], scratch_);
      // No finite log-probability: the source stops with the hypotheses it has finished.
      if (v == kNoFiniteLogit) {
        done_[b] = 1;
        continue;
      }
      cand_.assign(1, {score_[r0] + lp[v], 0, v});
    } else {
      top_candidates(&score_[r0], lp, K, V, 2 * K, cand_);
    }
    int kept = 0;
    for (size_t i = 0; i < cand_.size() && kept < K; ++i) {
      const BeamCandidate& cd = cand_[i];
      if (cd.token != cfg_.eos) {
        from_[r0 + kept] = r0 + cd.beam;
        score2_[r0 + kept] = cd.total;
        ids_[r0 + kept] = cd.token;
        ++kept;
      } else if (static_cast<int>(i) < K) {
        const double lp = penalty(cfg_.length_penalty, step + 1);
        finished_[b].push_back(hypothesis(r0 + cd.beam, step, cd.total / lp));
        // The end token's own attention row is not kept: it produced no output token.
      }
    }
    if (static_cast<int>(finished_[b].size()) >= K) done_[b] = 1;
  }

  // Each row's history is its parent's, plus this step's token and attention row.
  for (int r = 0; r < R; ++r) {
    const int p = from_[r];
    const size_t dst = static_cast<size_t>(r) * T, src = static_cast<size_t>(p) * T;
    std::memcpy(&hist2_[dst], &hist_[src], sizeof(int32_t) * step);
    hist2_[dst + step] = ids_[r];
    std::memcpy(&ahist2_[dst * S], &ahist_[src * S], sizeof(float) * step * S);
    std::memcpy(&ahist2_[(dst + step) * S], a + static_cast<size_t>(p) * S, sizeof(float) * S);
  }
  std::swap(hist_, hist2_);
  std::swap(ahist_, ahist2_);
  std::swap(score_, score2_);
  ++step_;
}

void BeamSearch::results(int32_t* tokens, int32_t* lengths, float* scores, float* align) const {
  const int T = T_, S = S_;
  for (int b = 0; b < B_; ++b) {
    std::vector<BeamHypothesis> f = finished_[b];
    if (!done_[b])
      for (int k = 0; k < K_; ++k)
        if (std::isfinite(score_[b * K_ + k]))
          f.push_back(hypothesis(b * K_ + k, step_,
                                 score_[b * K_ + k] / penalty(cfg_.length_penalty, step_)));
    std::stable_sort(f.begin(), f.end(), [](const BeamHypothesis& x, const BeamHypothesis& y) {
      return x.score > y.score;
    });
    for (int n = 0; n < cfg_.n_best; ++n) {
      const size_t o = static_cast<size_t>(b) * cfg_.n_best + n;
      int32_t* t = tokens + o * T;
      float* al = align + o * T * S;
      std::fill(t, t + T, -1);
      std::fill(al, al + static_cast<size_t>(T) * S, 0.0f);
      if (n >= static_cast<int>(f.size())) {
        lengths[o] = 0;
        scores[o] = -INFINITY;
        continue;
      }
      const BeamHypothesis& hy = f[n];
      lengths[o] = static_cast<int32_t>(hy.tokens.size());
      scores[o] = static_cast<float>(hy.score);
      std::copy(hy.tokens.begin(), hy.tokens.end(), t);
      std::copy(hy.align.begin(), hy.align.end(), al);
    }
  }
}

}  // namespace rnnkit
