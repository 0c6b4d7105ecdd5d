// TokenLoop tests: what plan() feeds (prompt chunks alone and beside generating rows, group
// budgets, sampled tokens), that a row's state moves with it when rows join and retire, that
// sampling ends rows at stop sequences, the token limit and cancellation; and that a loop driven
// round by round through run_feed, with rows joining late and prompts primed in small chunks beside
// rows that generate, gives every prompt lm_generate's tokens.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "generate.h"
#include "lm_testing.h"
#include "token_loop.h"

using namespace rnnkit;
using namespace lm_testing;

namespace {

LoopRowConfig row_config(int max_tokens, int group, uint64_t row,
                         std::shared_ptr<const StopSequences> stops = nullptr) {
  return {max_tokens, sampling(max_tokens, 5).sampler, sampler_rng(5, row), std::move(stops),
          group};
}

std::vector<int32_t> fed(const Feed& f, int k) {
  return {f.tokens.begin() + f.offsets[k], f.tokens.begin() + f.offsets[k + 1]};
}

}  // namespace

TEST(plan_feeds_prompt_chunks_within_each_group_budget) {
  TokenLoop loop(10, 1, 2, false);
  const std::vector<int32_t> a = {1, 2, 3, 4, 5}, b = {6, 7, 8}, c = {9, 8, 7, 6};
  loop.add(70, a.data(), 5, row_config(4, 0, 0));
  loop.add(80, b.data(), 3, row_config(4, 0, 1));
  loop.add(90, c.data(), 4, row_config(4, 1, 2));
  Feed f;
  // Group 0 has 3 prompt tokens a round: 2 for the first row (its chunk), 1 for the second.
  loop.plan(2, 2, 3, f);
  CHECK(f.rows == std::vector<int32_t>({0, 1, 2}));
  CHECK(fed(f, 0) == std::vector<int32_t>({1, 2}) && fed(f, 1) == std::vector<int32_t>({6}) &&
        fed(f, 2) == std::vector<int32_t>({9, 8}));
  CHECK(f.want.empty());
  loop.plan(2, 2, 3, f);
  CHECK(fed(f, 0) == std::vector<int32_t>({3, 4}) && fed(f, 1) == std::vector<int32_t>({7}) &&
        fed(f, 2) == std::vector<int32_t>({7, 6}));
  CHECK(f.want == std::vector<int32_t>({2}));  // the third row read its last prompt token
  // The third row samples: its next round reads the token it sampled, whatever the budget.
  std::vector<float> logits(10, 0.0f);
  logits[3] = 50;
  int32_t id = -1, token = -1;
  CHECK(loop.sample(f, logits.data(), &id, &token) == 1 && id == 90 && token == 3);
  loop.plan(1, 1, 1, f);
  CHECK(f.rows == std::vector<int32_t>({0, 2}));
  CHECK(fed(f, 0) == std::vector<int32_t>({5}) && fed(f, 1) == std::vector<int32_t>({3}));
  CHECK(f.want == std::vector<int32_t>({0, 1}));
  // Rows that wait to sample (their logits were wanted) and a group left no budget read nothing.
  loop.plan(4, 4, 0, f);
  CHECK(f.rows.empty() && f.want.empty());

  // Beside a row that reads its sampled token, a priming row reads shared_chunk tokens.
  TokenLoop mixed(10, 1, 2, false);
  mixed.add(1, b.data(), 1, row_config(4, 0, 0));
  mixed.add(2, a.data(), 5, row_config(4, 1, 1));
  mixed.plan(3, 1, 9, f);
  CHECK(fed(f, 0) == std::vector<int32_t>({6}) && fed(f, 1) == std::vector<int32_t>({1, 2, 3}));
  CHECK(mixed.sample(f, logits.data(), &id, &token) == 1 && id == 1 && token == 3);
  mixed.plan(3, 1, 9, f);
  CHECK(fed(f, 0) == std::vector<int32_t>({3}) && fed(f, 1) == std::vector<int32_t>({4}));
}

TEST(state_moves_with_its_row_as_rows_join_and_retire) {
  const int L = 2, H = 3;
  TokenLoop loop(5, L, H, true);
  const int32_t prompt[] = {1};
  for (int32_t id = 0; id < 3; ++id) loop.add(id, prompt, 1, row_config(2, 0, id));
  // Row r's state: 100 * layer + 10 * r + unit in h, and its negative in c.
  std::vector<float> h(size_t(L) * 3 * H), c(h.size());
  for (int l = 0; l < L; ++l)
    for (int r = 0; r < 3; ++r)
      for (int u = 0; u < H; ++u)
        h[(size_t(l) * 3 + r) * H + u] = 100.0f * l + 10.0f * r + u,
                                    c[(size_t(l) * 3 + r) * H + u] =
                                        -h[(size_t(l) * 3 + r) * H + u];
  const int32_t all[] = {0, 1, 2};
  loop.write_state(all, 3, h.data(), c.data());
  loop.cancel(1);
  CHECK(loop.ended(1) && !loop.ended(0));
  std::vector<RetiredRow> gone;
  CHECK(loop.retire([&](const RetiredRow& r) { gone.push_back(r); }) == 1);
  CHECK(gone.size() == 1 && gone[0].id == 1 && gone[0].length == 0 &&
        gone[0].finish == kFinishCancelled);
  loop.add(7, prompt, 1, row_config(2, 0, 7));
  CHECK(loop.rows() == 3 && loop.ids()[0] == 0 && loop.ids()[1] == 2 && loop.ids()[2] == 7);
  // The loop's own [L, rows, H] layout: rows 0 and 2 of before, then the new row's zeros.
  const float* lh = loop.h();
  const float* lc = loop.c();
  for (int l = 0; l < L; ++l)
    for (int u = 0; u < H; ++u) {
      CHECK(lh[(size_t(l) * 3 + 0) * H + u] == 100.0f * l + u);
      CHECK(lh[(size_t(l) * 3 + 1) * H + u] == 100.0f * l + 20 + u);
      CHECK(lh[(size_t(l) * 3 + 2) * H + u] == 0 && lc[(size_t(l) * 3 + 2) * H + u] == 0);
      CHECK(lc[(size_t(l) * 3 + 1) * H + u] == -(100.0f * l + 20 + u));
    }
  // read_state gathers rows in the order asked.
  const int32_t pick[] = {1, 0};
  std::vector<float> h2(size_t(L) * 2 * H), c2(h2.size());
  loop.read_state(pick, 2, h2.data(), c2.data());
  for (int l = 0; l < L; ++l)
    for (int u = 0; u < H; ++u)
      CHECK(h2[(size_t(l) * 2) * H + u] == 100.0f * l + 20 + u &&
            c2[(size_t(l) * 2 + 1) * H + u] == -(100.0f * l + u));
}

TEST(sampling_ends_rows_at_stops_and_the_token_limit) {
  TokenLoop loop(6, 1, 1, false);
  const int32_t prompt[] = {0};
  Spans stops({{4, 5}});
  auto stop_set = std::make_shared<const StopSequences>(stops.view());
  LoopRowConfig greedy = row_config(3, 0, 0, stop_set);
  greedy.sampler = SamplerConfig{0};
  loop.add(1, prompt, 1, greedy);
  greedy.max_tokens = 2;
  loop.add(2, prompt, 1, greedy);
  greedy.max_tokens = 9;
  loop.add(3, prompt, 1, greedy);
  std::map<int32_t, RetiredRow> done;
  std::map<int32_t, std::vector<int32_t>> kept;
  auto out = [&](const RetiredRow& r) {
    done[r.id] = r;
    kept[r.id].assign(r.tokens, r.tokens + r.length);
  };
  Feed f;
  std::vector<int32_t> ids(3), tokens(3);
  for (int32_t next : {4, 5}) {
    loop.plan(8, 8, 8, f);
    std::vector<float> logits(f.want.size() * 6, 0.0f);
    for (size_t i = 0; i < f.want.size(); ++i) logits[i * 6 + next] = 1;
    if (next == 5) loop.cancel(1);  // ended after the plan: passed over by sample
    const int n = loop.sample(f, logits.data(), ids.data(), tokens.data());
    CHECK(n == (next == 4 ? 3 : 2));
    loop.retire(out);
  }
  CHECK(loop.rows() == 0);
  CHECK(done[1].finish == kFinishStop && kept[1].empty());
  CHECK(done[3].finish == kFinishStop && kept[3].empty());
  CHECK(done[2].finish == kFinishCancelled && kept[2] == std::vector<int32_t>({4}));

  TokenLoop limit(6, 1, 1, false);
  LoopRowConfig two = row_config(2, 0, 0);
  two.sampler = SamplerConfig{0};
  limit.add(4, prompt, 1, two);
  for (int round = 0; round < 2; ++round) {
    limit.plan(8, 8, 8, f);
    std::vector<float> logits(6, 0.0f);
    logits[2] = 1;
    limit.sample(f, logits.data(), ids.data(), tokens.data());
    CHECK(limit.retire(out) == round);
  }
  CHECK(done[4].finish == kFinishLength && kept[4] == std::vector<int32_t>({2, 2}));
}

// Rows join in three waves and prime 3 tokens a round alone, 2 beside generating rows (a group
// 4 a round) while the earlier rows generate: every prompt gets the tokens, length and finish
// reason lm_generate gives it.
TEST(chunked_priming_and_late_rows_give_lm_generate_tokens) {
  for (CellType cell : kCells) {
    Model m(cell, 17, 5, 7, 2, cell == CellType::Gru, 900 + int(cell));
    const int B = 9, M = 25;
    auto prompts = random_prompts(B, m.V, 14, 31);
    std::vector<std::vector<int32_t>> stops = {{3, 3}, {5}};
    const GenerateConfig cfg = sampling(M, 44);
    Result want = generate(m, prompts, cfg, stops);

    const PackedLm model(m.weights());
    TokenLoop loop(m.V, m.L, m.H, cell == CellType::Lstm);
    Spans stop_spans(stops);
    auto stop_set = std::make_shared<const StopSequences>(stop_spans.view());
    Result got{std::vector<int32_t>(size_t(B) * M, -1), std::vector<int32_t>(B, -1),
               std::vector<int32_t>(B, -1)};
    Feed f;
    FeedScratch scratch;
    std::vector<float> logits;
    std::vector<int32_t> ids(B), tokens(B);
    int added = 0;
    for (int round = 0; added < B || loop.rows() > 0; ++round) {
      if (round % 4 == 0)
        for (int end = std::min(B, added + 3); added < end; ++added)
          loop.add(added, prompts[added].data(), int(prompts[added].size()),
                   {M, cfg.sampler, sampler_rng(cfg.seed, added), stop_set, added / 3});
      loop.plan(3, 2, 4, f);
      logits.resize(f.want.size() * m.V);
      run_feed(model, loop, f, scratch, logits.data());
      loop.sample(f, logits.data(), ids.data(), tokens.data());
      loop.retire([&](const RetiredRow& r) {
        std::copy_n(r.tokens, r.length, got.tokens.begin() + size_t(r.id) * M);
        got.lengths[r.id] = r.length;
        got.finish[r.id] = r.finish;
      });
    }
    const std::string what = cell_name(cell);
    expect(got.tokens == want.tokens && got.lengths == want.lengths && got.finish == want.finish,
           what + ": the round-by-round loop differs from lm_generate");
    expect(std::count(want.finish.begin(), want.finish.end(), kFinishStop) >= 1,
           what + ": no row stopped early");
  }
}

TEST_MAIN()
