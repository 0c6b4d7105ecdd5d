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
    : stack_(w.cell, w.V, w.E, w.H, w.L, w.residual, w.embedding, w.stack),
      decoder_(w.H, w.V, w.decoder_weight, w.decoder_bias) {}

namespace {

// Rows [b0, b0 + count) of a batch with every buffer their token loop needs, allocated when
// constructed, so that run() allocates nothing and can run on a helper thread. Rows are kept by
// their index in the whole batch, as the outputs and the progress callback have them.
class RowGroup {
 public:
  RowGroup(const PackedLm& model, const LmWeights& w, const TokenSpans& prompts,
           const GenerateConfig& cfg, int b0, int count)
      : model_(model),
        prompts_(prompts),
        cfg_(cfg),
        b0_(b0),
        B_(count),
        V_(w.V),
        H_(w.H),
        L_(w.L),
        M_(cfg.max_tokens),
        state_(size_t(w.L) * count * w.H),
        ws_(model.workspace_size(count)),
        h_(state_),
        c_(w.cell == CellType::Lstm ? state_ : 0),
        y_(size_t(count) * w.H),
        logits_(size_t(count) * w.V),
        rows_(count),
        next_(count),
        keep_(count),
        scratch_(w.V),
        keep_history_(sampler_uses_history(cfg.sampler)) {
    // rows_[i] is the prompt that group row i generates for: longest prompts first, so that the
    // rows still priming at any step are the first ones.
    std::iota(rows_.begin(), rows_.end(), b0);
    std::stable_sort(rows_.begin(), rows_.end(),
                     [&](int32_t a, int32_t b) { return length(a) > length(b); });
    T_ = length(rows_[0]);
    rng_.reserve(B_);
    for (int i = 0; i < B_; ++i) rng_.push_back(sampler_rng(cfg.seed, cfg.row_offset + b0 + i));
    if (!keep_history_) return;
    // Row b's history (prompt, then generated tokens) starts at history_of(b).
    history_.resize(size_t(prompts.offsets[b0 + B_] - prompts.offsets[b0]) + size_t(B_) * M_);
    for (int b = b0; b < b0 + B_; ++b)
      std::copy(prompts.tokens + prompts.offsets[b], prompts.tokens + prompts.offsets[b + 1],
                history_of(b));
  }

  void run(const TokenSpans& stops, const volatile int32_t* cancel,
           const GenerateProgress& progress, int32_t* tokens, int32_t* lengths, int32_t* finish) {
    // A relaxed read is enough: the flag only has to be seen eventually, and it guards no data.
    auto cancelled = [cancel] { return cancel != nullptr && *cancel != 0; };
    const int V = V_, H = H_, L = L_, M = M_;
    // Prime the prompts a token at a time: step t feeds the rows whose prompts are longer than t,
    // so each row's output y ends as the one after its own last prompt token.
    for (int t = 0; t < T_; ++t) {
      int n = 0;
      for (; n < B_ && length(rows_[n]) > t; ++n)
        next_[n] = prompts_.tokens[prompts_.offsets[rows_[n]] + t];
      model_.step(n, next_.data(), h_.data(), c_.data(), state_ / L, y_.data(), ws_.data());
    }

    int n = B_;
    for (int step = 0;; ++step) {
      if (cancelled()) {
        for (int i = 0; i < n; ++i) finish[rows_[i]] = kFinishCancelled;
        break;
      }
      model_.decode(n, y_.data(), logits_.data());
      for (int i = 0; i < n; ++i) {
        const int b = rows_[i];
        int32_t* hist = keep_history_ ? history_of(b) : nullptr;
        const int hist_len = length(b) + step;
        const int32_t token = sample_token(cfg_.sampler, logits_.data() + size_t(i) * V, V, hist,
                                           hist_len, rng_[b - b0_], scratch_);
        next_[i] = token;
        tokens[size_t(b) * M + step] = token;
        if (keep_history_) hist[hist_len] = token;
      }
      if (progress) progress(step, rows_.data(), next_.data(), n);

      int m = 0;
      for (int i = 0; i < n; ++i) {
        const int b = rows_[i];
        int32_t* gen = tokens + size_t(b) * M;
        if (next_[i] == kNoFiniteLogit) {
          lengths[b] = step;
          finish[b] = kFinishError;
          continue;
        }
        const int stop = matched_stop(stops, gen, step + 1);
        lengths[b] = step + 1 - stop;
        if (stop > 0) {
          std::fill(gen + lengths[b], gen + step + 1, -1);
          finish[b] = kFinishStop;
        } else if (step + 1 == M) {
          finish[b] = kFinishLength;
        } else {
          keep_[m++] = i;
        }
      }
      if (m == 0) break;

      // Finished rows leave the batch: the state rows of the rest move up over theirs, so every
      // later step works on active rows only.
      if (m < n) {
        gather_rows(h_.data(), n, keep_.data(), m, L, H);
        if (!c_.empty()) gather_rows(c_.data(), n, keep_.data(), m, L, H);
        for (int j = 0; j < m; ++j) rows_[j] = rows_[keep_[j]], next_[j] = next_[keep_[j]];
        n = m;
      }
      model_.step(n, next_.data(), h_.data(), c_.data(), size_t(n) * H, y_.data(), ws_.data());
    }
  }

 private:
  int length(int b) const { return prompts_.offsets[b + 1] - prompts_.offsets[b]; }
  int32_t* history_of(int b) {
    return history_.data() + (prompts_.offsets[b] - prompts_.offsets[b0_]) + size_t(b - b0_) * M_;
  }

  const PackedLm& model_;
  const TokenSpans& prompts_;
  const GenerateConfig& cfg_;
  const int b0_, B_, V_, H_, L_, M_;
  int T_ = 0;
  const size_t state_;
  std::vector<float> ws_, h_, c_, y_, logits_;
  std::vector<int32_t> rows_, next_;
  std::vector<int> keep_;
  std::vector<Rng> rng_;
  SamplerScratch scratch_;
  const bool keep_history_;
  std::vector<int32_t> history_;
};

}  // namespace

void lm_generate(const LmWeights& w, const TokenSpans& prompts, const GenerateConfig& cfg,
                 const TokenSpans& stops, const volatile int32_t* cancel,
                 const GenerateProgress& progress, int32_t* tokens, int32_t* lengths,
                 int32_t* finish) {
  const int B = prompts.count, M = cfg.max_tokens;
  std::fill(tokens, tokens + size_t(B) * M, -1);
  std::fill(lengths, lengths + B, 0);
  std::fill(finish, finish + B, kFinishLength);
  if (B == 0) return;
  if (cancel != nullptr && *cancel != 0) {
    std::fill(finish, finish + B, kFinishCancelled);
    return;
  }
  // The weights are packed once here for the hundreds of steps that follow.
  const PackedLm model(w);
  // Rows are independent, so with helper threads and no per-step progress the batch splits into
  // one group per thread, each running its whole token loop on its own (its products then on
  // one thread): no thread waits for another at every product, as splitting each product's
  // columns would have them do. A row's tokens do not depend on the split.
  const int groups = progress ? 1 : row_groups(B);
  std::vector<RowGroup> group;
  group.reserve(groups);
  for (int g = 0; g < groups; ++g) {
    const int b0 = int(int64_t(g) * B / groups), b1 = int(int64_t(g + 1) * B / groups);
    group.emplace_back(model, w, prompts, cfg, b0, b1 - b0);
  }
  parallel_for(groups,
               [&](int g) { group[g].run(stops, cancel, progress, tokens, lengths, finish); });
}

}  // namespace rnnkit
