#include "generate.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "gemm.h"

namespace rnnkit {
namespace {

// Length of the longest stop sequence that the generated tokens gen[0, n) end with; 0 for none.
// The longest, because when "b" and "ab" both match the user produced all of "ab".
int matched_stop(const TokenSpans& stops, const int32_t* gen, int n) {
  int best = 0;
  for (int s = 0; s < stops.count; ++s) {
    int len = stops.offsets[s + 1] - stops.offsets[s];
    if (len > best && len <= n &&
        std::equal(stops.tokens + stops.offsets[s], stops.tokens + stops.offsets[s + 1],
                   gen + n - len))
      best = len;
  }
  return best;
}

// Keeps the state rows keep[0, m) (increasing) of s [L, n, H], in place, as s [L, m, H]. Every
// row moves to the same place or an earlier one, so walking forward never reads a moved-over row.
void gather_rows(float* s, int n, const int* keep, int m, int L, int H) {
  for (int l = 0; l < L; ++l)
    for (int j = 0; j < m; ++j)
      std::memmove(s + (size_t(l) * m + j) * H, s + (size_t(l) * n + keep[j]) * H,
                   sizeof(float) * H);
}

}  // namespace

PackedLm::PackedLm(const LmWeights& w)
    : V_(w.V),
      H_(w.H),
      stack_(w.cell, w.V, w.E, w.H, w.L, w.residual, w.embedding, w.stack),
      decoder_(w.H, w.V) {
  decoder_.set(0, 0, w.H, w.V, true, w.decoder_weight, w.H);
  if (w.decoder_bias) bias_.assign(w.decoder_bias, w.decoder_bias + w.V);
}

// Linear(H, V) as linear_forward computes it: the bias, then the product added onto it.
void PackedLm::decode(int n, const float* y, float* logits) const {
  if (!bias_.empty())
    for (int i = 0; i < n; ++i) std::copy(bias_.begin(), bias_.end(), logits + size_t(i) * V_);
  gemm_packed(n, y, H_, decoder_, bias_.empty() ? 0.0f : 1.0f, logits, V_);
}

void lm_generate(const LmWeights& w, const TokenSpans& prompts, const GenerateConfig& cfg,
                 const TokenSpans& stops, const volatile int32_t* cancel,
                 const GenerateProgress& progress, int32_t* tokens, int32_t* lengths,
                 int32_t* finish) {
  const int B = prompts.count, V = w.V, H = w.H, L = w.L, M = cfg.max_tokens;
  const bool lstm = w.cell == CellType::Lstm;
  std::fill(tokens, tokens + size_t(B) * M, -1);
  std::fill(lengths, lengths + B, 0);
  std::fill(finish, finish + B, kFinishLength);
  // A relaxed read is enough: the flag only has to be seen eventually, and it guards no data.
  auto cancelled = [cancel] { return cancel != nullptr && *cancel != 0; };
  if (B == 0) return;
  if (cancelled()) {
    std::fill(finish, finish + B, kFinishCancelled);
    return;
  }

  std::vector<int32_t> prompt_len(B);
  for (int b = 0; b < B; ++b) prompt_len[b] = prompts.offsets[b + 1] - prompts.offsets[b];
  const int T = *std::max_element(prompt_len.begin(), prompt_len.end());

  const size_t state = size_t(L) * B * H;
  // The weights are packed once here for the hundreds of steps that follow.
  const PackedLm model(w);
  std::vector<float> ws(model.workspace_size(B));
  std::vector<float> h(state), c(lstm ? state : 0);
  std::vector<float> y(size_t(B) * H), logits(size_t(B) * V);
  // rows[i] is the prompt that batch row i generates for: longest prompts first, so that the rows
  // still priming at any step are the first ones.
  std::vector<int32_t> rows(B), next(B);
  std::iota(rows.begin(), rows.end(), 0);
  std::stable_sort(rows.begin(), rows.end(),
                   [&](int32_t a, int32_t b) { return prompt_len[a] > prompt_len[b]; });
  std::vector<int> keep(B);
  std::vector<Rng> rng;
  rng.reserve(B);
  for (int b = 0; b < B; ++b) rng.push_back(sampler_rng(cfg.seed, cfg.row_offset + b));
  SamplerScratch scratch(V);
  // Row b's history (prompt, then generated tokens) starts at history[offsets[b] + b * M].
  const bool keep_history = sampler_uses_history(cfg.sampler);
  std::vector<int32_t> history(keep_history ? size_t(prompts.offsets[B]) + size_t(B) * M : 0);
  auto history_of = [&](int b) { return history.data() + prompts.offsets[b] + size_t(b) * M; };
  if (keep_history)
    for (int b = 0; b < B; ++b)
      std::copy(prompts.tokens + prompts.offsets[b], prompts.tokens + prompts.offsets[b + 1],
                history_of(b));

  // Prime the prompts a token at a time: step t feeds the rows whose prompts are longer than t,
  // so each row's output y ends as the one after its own last prompt token.
  for (int t = 0; t < T; ++t) {
    int n = 0;
    for (; n < B && prompt_len[rows[n]] > t; ++n)
      next[n] = prompts.tokens[prompts.offsets[rows[n]] + t];
    model.step(n, next.data(), h.data(), c.data(), state / L, y.data(), ws.data());
  }

  int n = B;
  for (int step = 0;; ++step) {
    if (cancelled()) {
      for (int i = 0; i < n; ++i) finish[rows[i]] = kFinishCancelled;
      break;
    }
    model.decode(n, y.data(), logits.data());
    for (int i = 0; i < n; ++i) {
      const int b = rows[i];
      int32_t* hist = keep_history ? history_of(b) : nullptr;
      const int hist_len = prompt_len[b] + step;
      const int32_t token = sample_token(cfg.sampler, logits.data() + size_t(i) * V, V, hist,
                                         hist_len, rng[b], scratch);
      next[i] = token;
      tokens[size_t(b) * M + step] = token;
      if (keep_history) hist[hist_len] = token;
    }
    if (progress) progress(step, rows.data(), next.data(), n);

    int m = 0;
    for (int i = 0; i < n; ++i) {
      const int b = rows[i];
      int32_t* gen = tokens + size_t(b) * M;
      const int stop = matched_stop(stops, gen, step + 1);
      lengths[b] = step + 1 - stop;
      if (stop > 0) {
        std::fill(gen + lengths[b], gen + step + 1, -1);
        finish[b] = kFinishStop;
      } else if (step + 1 == M) {
        finish[b] = kFinishLength;
      } else {
        keep[m++] = i;
      }
    }
    if (m == 0) break;

    // Finished rows leave the batch: the state rows of the rest move up over theirs, so every
    // later step works on active rows only.
    if (m < n) {
      gather_rows(h.data(), n, keep.data(), m, L, H);
      if (lstm) gather_rows(c.data(), n, keep.data(), m, L, H);
      for (int j = 0; j < m; ++j) rows[j] = rows[keep[j]], next[j] = next[keep[j]];
      n = m;
    }
    model.step(n, next.data(), h.data(), c.data(), size_t(n) * H, y.data(), ws.data());
  }
}

}  // namespace rnnkit
