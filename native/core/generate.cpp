#include "generate.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "layers.h"

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

// Copies the state rows keep[0, m) of src [L, n, H] into dst [L, m, H].
void gather_rows(const float* src, int n, const int* keep, int m, int L, int H, float* dst) {
  for (int l = 0; l < L; ++l)
    for (int j = 0; j < m; ++j)
      std::memcpy(dst + (size_t(l) * m + j) * H, src + (size_t(l) * n + keep[j]) * H,
                  sizeof(float) * H);
}

}  // namespace

void lm_generate(const LmWeights& w, const TokenSpans& prompts, const GenerateConfig& cfg,
                 const TokenSpans& stops, const volatile int32_t* cancel,
                 const GenerateProgress& progress, int32_t* tokens, int32_t* lengths,
                 int32_t* finish) {
  const int B = prompts.count, V = w.V, E = w.E, H = w.H, L = w.L, M = cfg.max_tokens;
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

  const StackShape step_shape{w.cell, 1, B, E, H, L, 0.0f, w.residual, false, 0};
  StackShape prime_shape = step_shape;
  prime_shape.T = T;
  const size_t state = size_t(L) * B * H;
  std::vector<float> ws(
      std::max(stack_workspace_size(prime_shape), stack_workspace_size(step_shape)));
  std::vector<float> h(2 * state), c(lstm ? 2 * state : 0);
  std::vector<float> x(size_t(B) * E), y(size_t(B) * H), logits(size_t(B) * V);
  std::vector<int32_t> rows(B), next(B);
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

  // cur selects the ping-pong half of h and c that holds the state of the active rows.
  int cur = 0;
  auto h_at = [&](int half) { return h.data() + half * state; };
  auto c_at = [&](int half) { return lstm ? c.data() + half * state : nullptr; };

  // Prime every prompt in one padded forward; each row's next-token logits come from the output
  // at its own last step. Padding ids are 0, a valid id the stack never looks at.
  {
    std::vector<int32_t> ids(size_t(T) * B, 0);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < prompt_len[b]; ++t)
        ids[size_t(t) * B + b] = prompts.tokens[prompts.offsets[b] + t];
    std::vector<float> xs(size_t(T) * B * E), ys(size_t(T) * B * H);
    embedding_forward(w.embedding, V, E, ids.data(), T * B, xs.data());
    stack_forward(prime_shape, w.stack, xs.data(), prompt_len.data(), nullptr, nullptr, ys.data(),
                  h_at(cur), c_at(cur), ws.data());
    for (int b = 0; b < B; ++b)
      std::memcpy(y.data() + size_t(b) * H, ys.data() + (size_t(prompt_len[b] - 1) * B + b) * H,
                  sizeof(float) * H);
  }

  std::iota(rows.begin(), rows.end(), 0);
  int n = B;
  for (int step = 0;; ++step) {
    if (cancelled()) {
      for (int i = 0; i < n; ++i) finish[rows[i]] = kFinishCancelled;
      break;
    }
    linear_forward(n, H, V, y.data(), w.decoder_weight, w.decoder_bias, logits.data());
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

    // Finished rows leave the batch: their state rows are dropped by gathering the rest into the
    // other half, so every later step works on active rows only.
    if (m < n) {
      gather_rows(h_at(cur), n, keep.data(), m, L, H, h_at(1 - cur));
      if (lstm) gather_rows(c_at(cur), n, keep.data(), m, L, H, c_at(1 - cur));
      cur = 1 - cur;
      for (int j = 0; j < m; ++j) rows[j] = rows[keep[j]], next[j] = next[keep[j]];
      n = m;
    }
    StackShape s = step_shape;
    s.B = n;
    embedding_forward(w.embedding, V, E, next.data(), n, x.data());
    stack_forward(s, w.stack, x.data(), nullptr, h_at(cur), c_at(cur), y.data(), h_at(1 - cur),
                  c_at(1 - cur), ws.data());
    cur = 1 - cur;
  }
}

}  // namespace rnnkit
