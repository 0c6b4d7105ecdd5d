#include "generate.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "gemm.h"

namespace rnnkit {

PackedLm::PackedLm(const LmWeights& w)
    : shape(w),
      stack_(w.cell, w.V, w.E, w.H, w.L, w.residual, w.embedding, w.stack, w.weights,
             w.stack_scales),
      decoder_(w.H, w.V, w.decoder_weight, w.decoder_bias, w.weights, w.decoder_scales) {}

void run_feed(const PackedLm& model, TokenLoop& loop, const Feed& f, FeedScratch& s,
              float* logits) {
  const int k = f.size(), n = loop.rows(), H = loop.hidden_size(), L = loop.layers();
  if (k == 0) return;
  // order[j]: the feed position stepped as row j, the longest feeds first.
  s.order.resize(k);
  std::iota(s.order.begin(), s.order.end(), 0);
  std::stable_sort(s.order.begin(), s.order.end(),
                   [&](int32_t a, int32_t b) { return f.length(a) > f.length(b); });
  bool in_place = k == n;
  for (int j = 0; j < k && in_place; ++j) in_place = f.rows[s.order[j]] == j;
  float *h = nullptr, *c = nullptr;
  if (in_place) {
    h = loop.h(), c = loop.c();
  } else {
    s.rows.resize(k);
    for (int j = 0; j < k; ++j) s.rows[j] = f.rows[s.order[j]];
    s.h.resize(size_t(L) * k * H);
    s.c.resize(loop.lstm() ? s.h.size() : 0);
    loop.read_state(s.rows.data(), k, s.h.data(), s.c.data());
    h = s.h.data(), c = loop.lstm() ? s.c.data() : nullptr;
  }
  const int T = f.length(s.order[0]);
  s.ws.resize(model.workspace_size(k));
  s.y.resize(size_t(k) * H);
  s.step.resize(k);
  // Each position's output after its last token: y itself when every feed is one token long.
  if (T > 1) s.last.resize(size_t(k) * H);
  float* last = T > 1 ? s.last.data() : s.y.data();
  for (int t = 0, m = k; t < T; ++t) {
    while (f.length(s.order[m - 1]) <= t) --m;
    for (int j = 0; j < m; ++j) s.step[j] = f.tokens[f.offsets[s.order[j]] + t];
    model.step(m, s.step.data(), h, c, size_t(k) * H, s.y.data(), s.ws.data());
    if (T > 1)
      for (int j = 0; j < m; ++j)
        if (f.length(s.order[j]) == t + 1)
          std::copy_n(s.y.data() + size_t(j) * H, H, last + size_t(s.order[j]) * H);
  }
  if (!in_place) loop.write_state(s.rows.data(), k, h, c);
  // last is by feed position (when T == 1, order is the identity: the sort is stable).
  const int w = static_cast<int>(f.want.size());
  if (w == k) return model.decode(k, last, logits);
  s.picked.resize(size_t(w) * H);
  for (int i = 0; i < w; ++i)
    std::copy_n(last + size_t(f.want[i]) * H, H, s.picked.data() + size_t(i) * H);
  model.decode(w, s.picked.data(), logits);
}

double lm_score(const PackedLm& model, const int32_t* tokens, int n, int rows) {
  const int V = model.shape.V, L = model.shape.L, H = model.shape.H;
  const bool lstm = model.shape.cell == CellType::Lstm;
  const int predictions = n - 1, base = predictions / rows, longer = predictions % rows;
  std::vector<float> h(size_t(L) * rows * H, 0.0f), c(lstm ? h.size() : 0, 0.0f);
  std::vector<float> y(size_t(rows) * H), logits(size_t(rows) * V), ws(model.workspace_size(rows));
  std::vector<int32_t> in(rows);
  auto start = [&](int b) { return b * base + std::min(b, longer); };
  double sum = 0;
  // The longer streams come first, so the streams still reading at step t are rows [0, m).
  for (int t = 0; t < base + (longer > 0); ++t) {
    const int m = t < base ? rows : longer;
    for (int b = 0; b < m; ++b) in[b] = tokens[start(b) + t];
    model.step(m, in.data(), h.data(), lstm ? c.data() : nullptr, size_t(rows) * H, y.data(),
               ws.data());
    model.decode(m, y.data(), logits.data());
    log_softmax_rows(m, V, logits.data());
    for (int b = 0; b < m; ++b) sum -= logits[size_t(b) * V + tokens[start(b) + t + 1]];
  }
  return sum;
}

namespace {

// Rows [b0, b0 + count) of a batch in a TokenLoop of their own, with every buffer their token loop
// needs, so that run() can run on a helper thread. Rows are kept by their index in the whole
// batch, as the outputs and the progress callback have them.
class RowGroup {
 public:
  RowGroup(const PackedLm& model, const TokenSpans& prompts, const GenerateConfig& cfg,
           const std::shared_ptr<const StopSequences>& stops, int b0, int count)
      : model_(model),
        loop_(model.shape.V, model.shape.L, model.shape.H, model.shape.cell == CellType::Lstm),
        M_(cfg.max_tokens),
        logits_(size_t(count) * model.shape.V),
        ids_(count),
        next_(count) {
    // Longest prompts first, so that the rows still priming at any step are the first ones and
    // run_feed steps the loop's state in place.
    std::vector<int32_t> rows(count);
    std::iota(rows.begin(), rows.end(), b0);
    auto length = [&](int b) { return prompts.offsets[b + 1] - prompts.offsets[b]; };
    std::stable_sort(rows.begin(), rows.end(),
                     [&](int32_t a, int32_t b) { return length(a) > length(b); });
    for (int32_t b : rows)
      loop_.add(b, prompts.tokens + prompts.offsets[b], length(b),
                {cfg.max_tokens, cfg.sampler, sampler_rng(cfg.seed, cfg.row_offset + b), stops, 0});
  }

  void run(const volatile int32_t* cancel, const GenerateProgress& progress, int32_t* tokens,
           int32_t* lengths, int32_t* finish) {
    // A relaxed read is enough: the flag only has to be seen eventually, and it guards no data.
    auto cancelled = [cancel] { return cancel != nullptr && *cancel != 0; };
    auto out = [&](const RetiredRow& r) {
      std::copy_n(r.tokens, r.length, tokens + size_t(r.id) * M_);
      lengths[r.id] = r.length;
      finish[r.id] = r.finish;
    };
    constexpr int kAll = std::numeric_limits<int>::max();
    for (int step = 0; loop_.rows() > 0; ++step) {
      // The first round primes every prompt; each later one feeds every row its sampled token.
      loop_.plan(kAll, kAll, kAll, feed_);
      run_feed(model_, loop_, feed_, scratch_, logits_.data());
      if (cancelled()) {
        for (int i = 0; i < loop_.rows(); ++i) loop_.cancel(i);
      } else {
        const int n = loop_.sample(feed_, logits_.data(), ids_.data(), next_.data());
        if (progress) progress(step, ids_.data(), next_.data(), n);
      }
      loop_.retire(out);
    }
  }

 private:
  const PackedLm& model_;
  TokenLoop loop_;
  const int M_;
  Feed feed_;
  FeedScratch scratch_;
  std::vector<float> logits_;
  std::vector<int32_t> ids_, next_;
};

}  // namespace

void lm_generate(const PackedLm& model, const TokenSpans& prompts, const GenerateConfig& cfg,
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
  // Rows are independent, so with helper threads and no per-step progress the batch splits into
  // one group per thread, each running its whole token loop on its own (its products then on
  // one thread): no thread waits for another at every product, as splitting each product's
  // columns would have them do. A row's tokens do not depend on the split.
  const int groups = progress ? 1 : row_groups(B);
  std::vector<RowGroup> group;
  group.reserve(groups);
  const auto stop_set = stops.count > 0 ? std::make_shared<const StopSequences>(stops) : nullptr;
  for (int g = 0; g < groups; ++g) {
    const int b0 = int(int64_t(g) * B / groups), b1 = int(int64_t(g + 1) * B / groups);
    group.emplace_back(model, prompts, cfg, stop_set, b0, b1 - b0);
  }
  parallel_for(groups, [&](int g) { group[g].run(cancel, progress, tokens, lengths, finish); });
}

}  // namespace rnnkit
