// lm_generate tests, on small random models of every cell type: greedy output against a
// one-token-at-a-time reference built from the layer kernels; batch-composition invariance (a
// prompt gets the same tokens in any batch, at any split, on any number of threads); stop
// sequences; cancellation; and the progress callback.
#include <algorithm>
#include <string>
#include <vector>

#include "check.h"
#include "generate.h"
#include "layers.h"
#include "lm_testing.h"

using namespace rnnkit;
using namespace lm_testing;

// The reference feeds one token at a time through stack_forward (T=1, B=1) and linear_forward,
// following the tokens lm_generate chose; each choice must be the argmax of the reference logits
// (up to float noise between batched and single-row GEMMs).
TEST(greedy_matches_stepwise_reference) {
  for (CellType cell : kCells)
    for (bool residual : {false, true}) {
      Model m(cell, 13, 6, 8, 3, residual, 100 + int(cell));
      const int M = 25;
      auto prompts = random_prompts(4, m.V, 9, 7 + int(cell));
      Result r = generate(m, prompts, GenerateConfig{M, {0, 0, 1, 1, 0}, 1, 0});
      const StackShape s{cell, 1, 1, m.E, m.H, m.L, 0, residual, false, 0};
      const bool lstm = cell == CellType::Lstm;
      std::vector<float> ws(stack_workspace_size(s)), x(m.E), y(m.H), logits(m.V);
      for (size_t b = 0; b < prompts.size(); ++b) {
        std::string what = std::string(cell_name(cell)) + (residual ? " residual" : "") + " row " +
                           std::to_string(b);
        CHECK(r.lengths[b] == M && r.finish[b] == kFinishLength);
        std::vector<float> h(size_t(m.L) * m.H, 0), c(lstm ? h.size() : 0, 0), h2(h), c2(c);
        std::vector<int32_t> seq = prompts[b];
        seq.insert(seq.end(), r.tokens.begin() + b * M, r.tokens.begin() + (b + 1) * M);
        for (size_t t = 0; t + 1 < seq.size(); ++t) {
          embedding_forward(m.embedding.data(), m.V, m.E, &seq[t], 1, x.data());
          stack_forward(s, m.stack.data(), x.data(), nullptr, h.data(), lstm ? c.data() : nullptr,
                        y.data(), h2.data(), lstm ? c2.data() : nullptr, ws.data());
          h.swap(h2), c.swap(c2);
          if (t + 1 < prompts[b].size()) continue;
          linear_forward(1, m.H, m.V, y.data(), m.W.data(), m.b.data(), logits.data());
          float top = *std::max_element(logits.begin(), logits.end());
          if (!(logits[seq[t + 1]] >= top - 1e-4f)) {
            check::fail(what + ": step " + std::to_string(t + 1 - prompts[b].size()) + " chose " +
                        std::to_string(seq[t + 1]) + " below the argmax");
            break;
          }
        }
      }
    }
}

TEST(batch_composition_does_not_change_a_row) {
  for (CellType cell : kCells) {
    Model m(cell, 17, 5, 7, 2, cell == CellType::Gru, 200 + int(cell));
    const int B = 7, M = 30;
    auto prompts = random_prompts(B, m.V, 12, 11);
    std::vector<std::vector<int32_t>> stops = {{3, 3}, {5}};
    Result all = generate(m, prompts, sampling(M, 99), stops);
    const std::string what = cell_name(cell);
    // Each prompt alone, at its row offset.
    for (int b = 0; b < B; ++b) {
      Result one = generate(m, {prompts[b]}, sampling(M, 99, b), stops);
      expect(one.tokens == std::vector<int32_t>(all.tokens.begin() + b * M,
                                                all.tokens.begin() + (b + 1) * M) &&
                 one.lengths[0] == all.lengths[b] && one.finish[0] == all.finish[b],
             what + ": row " + std::to_string(b) + " alone differs from the batch");
    }
    // The batch split in two.
    std::vector<std::vector<int32_t>> head(prompts.begin(), prompts.begin() + 3),
        tail(prompts.begin() + 3, prompts.end());
    Result first = generate(m, head, sampling(M, 99), stops),
           second = generate(m, tail, sampling(M, 99, 3), stops);
    first.tokens.insert(first.tokens.end(), second.tokens.begin(), second.tokens.end());
    expect(first.tokens == all.tokens, what + ": the split batch differs");
    expect(generate(m, prompts, sampling(M, 100), stops).tokens != all.tokens,
           what + ": another seed gave the same tokens");
    // Rows really did finish at different steps, so compaction was exercised.
    expect(*std::min_element(all.lengths.begin(), all.lengths.end()) < M - 2 &&
               std::count(all.finish.begin(), all.finish.end(), kFinishStop) >= 1,
           what + ": no row stopped early");
  }
}

// With helper threads a batch runs as row groups, one per thread: every row's tokens, length and
// finish are those of the whole batch on one thread, and of a run with a progress callback
// (which keeps one group).
TEST(row_groups_on_helper_threads_change_no_row) {
  const int before = gemm_threads();
  for (CellType cell : kCells) {
    Model m(cell, 19, 6, 9, 2, false, 700 + int(cell));
    const int B = 37, M = 40;
    auto prompts = random_prompts(B, m.V, 10, 61);
    std::vector<std::vector<int32_t>> stops = {{2, 2}, {7}, {11}, {13}};
    set_gemm_threads(1);
    Result one = generate(m, prompts, sampling(M, 17), stops);
    set_gemm_threads(3);
    Result groups = generate(m, prompts, sampling(M, 17), stops);
    int steps = 0;
    Result watched = generate(m, prompts, sampling(M, 17), stops, nullptr,
                              [&](int, const int32_t*, const int32_t*, int) { ++steps; });
    const std::string what = cell_name(cell);
    expect(
        groups.tokens == one.tokens && groups.lengths == one.lengths && groups.finish == one.finish,
        what + ": row groups on 3 threads differ from one thread");
    expect(watched.tokens == one.tokens && steps > 0, what + ": the watched run differs");
    expect(std::count(one.finish.begin(), one.finish.end(), kFinishStop) >= 1,
           what + ": no row stopped early");
  }
  set_gemm_threads(before);
}

TEST(stop_sequences_end_rows_and_are_excluded) {
  Model m(CellType::Lstm, 11, 6, 9, 2, false, 300);
  const int M = 40;
  auto prompts = random_prompts(5, m.V, 6, 21);
  Result free_run = generate(m, prompts, sampling(M, 5));
  // Stops taken from row 0's free run: a pair in the middle and a single token later on.
  std::vector<int32_t> row0 = free_run.row(0, M);
  std::vector<std::vector<int32_t>> stops = {{row0[10], row0[11]}, {row0[20]}};
  Result r = generate(m, prompts, sampling(M, 5), stops);
  for (int b = 0; b < 5; ++b) {
    // The expected end: the first step at which the free run ends with a stop (longest wins).
    std::vector<int32_t> gen = free_run.row(b, M);
    int end = M, cut = 0;
    for (int n = 1; n <= M && cut == 0; ++n) {
      for (const auto& s : stops)
        if (int(s.size()) <= n && std::equal(s.begin(), s.end(), gen.begin() + n - s.size()))
          cut = std::max(cut, int(s.size()));
      if (cut > 0) end = n;
    }
    if (cut == 0) {
      CHECK(r.lengths[b] == M && r.finish[b] == kFinishLength);
      continue;
    }
    CHECK(r.finish[b] == kFinishStop);
    CHECK(r.lengths[b] == end - cut);
    CHECK(r.row(b, M) == std::vector<int32_t>(gen.begin(), gen.begin() + end - cut));
    for (int t = r.lengths[b]; t < M; ++t) CHECK(r.tokens[size_t(b) * M + t] == -1);
  }
  CHECK(r.finish[0] == kFinishStop && r.lengths[0] <= 10);
  // When a stop is a suffix of another that also matched, the longer one is dropped whole.
  size_t k = 1;
  while (k < row0.size() && std::count(row0.begin(), row0.begin() + k, row0[k])) ++k;
  CHECK(k < row0.size());
  Result nested = generate(m, {prompts[0]}, sampling(M, 5), {{row0[k - 1], row0[k]}, {row0[k]}});
  CHECK(nested.finish[0] == kFinishStop && nested.lengths[0] == int(k) - 1);
  // A stop matched at once leaves an empty row.
  Result empty = generate(m, {prompts[0]}, sampling(M, 5), {{row0[0]}});
  CHECK(empty.lengths[0] == 0 && empty.finish[0] == kFinishStop && empty.tokens[0] == -1);
}

TEST(cancel_flag_stops_all_rows) {
  Model m(CellType::Gru, 9, 4, 6, 1, false, 400);
  auto prompts = random_prompts(3, m.V, 5, 31);
  volatile int32_t flag = 1;
  Result before = generate(m, prompts, sampling(50, 1), {}, &flag);
  for (int b = 0; b < 3; ++b) CHECK(before.lengths[b] == 0 && before.finish[b] == kFinishCancelled);
  // Raised during step 4: steps 0..4 complete, the check before step 5 stops every row.
  flag = 0;
  Result during = generate(m, prompts, sampling(50, 1), {}, &flag,
                           [&](int step, const int32_t*, const int32_t*, int) {
                             if (step == 4) flag = 1;
                           });
  Result full = generate(m, prompts, sampling(50, 1));
  for (int b = 0; b < 3; ++b) {
    CHECK(during.lengths[b] == 5 && during.finish[b] == kFinishCancelled);
    CHECK(during.row(b, 50) ==
          std::vector<int32_t>(full.tokens.begin() + b * 50, full.tokens.begin() + b * 50 + 5));
  }
}

// A token whose embedding is NaN poisons the state of every row fed it: such a row ends with
// kFinishError at the first step whose logits are all NaN, keeping the tokens it had, and the
// other rows run on as they would alone. (A ReLU cell maps NaN to 0, so its state recovers.)
TEST(rows_without_finite_logits_end_with_an_error) {
  for (CellType cell : {CellType::RnnTanh, CellType::Lstm, CellType::Gru}) {
    Model m(cell, 11, 4, 6, 2, false, 450 + int(cell));
    const int bad = 3, M = 12;
    std::fill(m.embedding.begin() + bad * m.E, m.embedding.begin() + (bad + 1) * m.E, NAN);
    GenerateConfig cfg = sampling(M, 9);
    cfg.sampler.no_repeat_ngram = 0;
    // Token `bad` has no finite logit left to be sampled by a healthy row: its own logit is
    // pushed to -inf, so only the poisoned prompt can reach it.
    m.b[bad] = -INFINITY;
    std::vector<std::vector<int32_t>> prompts = {{1, 2}, {4, bad, 5}, {6}};
    Result all = generate(m, prompts, cfg);
    CHECK(all.finish[1] == kFinishError && all.lengths[1] == 0 && all.tokens[M] == -1);
    for (int b : {0, 2}) {
      CHECK(all.finish[b] == kFinishLength && all.lengths[b] == M);
      GenerateConfig alone = cfg;
      alone.row_offset = b;
      Result one = generate(m, {prompts[b]}, alone);
      CHECK(one.row(0, M) == all.row(b, M));
    }
    // The progress callback reports the failed row's token as -1.
    int reported = 0;
    generate(m, prompts, cfg, {}, nullptr,
             [&](int step, const int32_t* rows, const int32_t* t, int n) {
               for (int i = 0; i < n; ++i)
                 if (rows[i] == 1) {
                   CHECK(step == 0 && t[i] == -1);
                   ++reported;
                 }
             });
    CHECK(reported == 1);
  }
}

TEST(progress_sees_every_token) {
  Model m(CellType::RnnTanh, 12, 5, 8, 2, true, 500);
  const int B = 6, M = 20;
  auto prompts = random_prompts(B, m.V, 7, 41);
  std::vector<std::vector<int32_t>> stops = {{4}};
  std::vector<std::vector<int32_t>> seen(B);
  int last_step = -1;
  Result r = generate(m, prompts, sampling(M, 8), stops, nullptr,
                      [&](int step, const int32_t* rows, const int32_t* tokens, int n) {
                        CHECK(step == last_step + 1);
                        last_step = step;
                        for (int i = 0; i < n; ++i) seen[rows[i]].push_back(tokens[i]);
                      });
  for (int b = 0; b < B; ++b) {
    // Every token the row sampled, the stop sequence included.
    std::vector<int32_t> want = r.row(b, M);
    if (r.finish[b] == kFinishStop) want.push_back(4);
    CHECK(seen[b] == want);
  }
  size_t most = 0;
  for (const auto& v : seen) most = std::max(most, v.size());
  CHECK(last_step + 1 == int(most));
}

TEST(long_prompts_and_single_token_prompts) {
  Model m(CellType::Lstm, 7, 3, 5, 2, false, 600);
  std::vector<std::vector<int32_t>> prompts = {{1}, random_prompts(1, m.V, 1, 51)[0], {}};
  prompts[2].assign(300, 2);
  Result all = generate(m, prompts, sampling(15, 3));
  for (int b = 0; b < 3; ++b) {
    Result one = generate(m, {prompts[b]}, sampling(15, 3, b));
    CHECK(one.tokens ==
          std::vector<int32_t>(all.tokens.begin() + b * 15, all.tokens.begin() + (b + 1) * 15));
    for (int32_t t : all.row(b, 15)) CHECK(t >= 0 && t < m.V);
  }
}

TEST_MAIN()
