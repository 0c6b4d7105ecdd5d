#include "token_loop.h"

#include <algorithm>
#include <cstring>

namespace rnnkit {
namespace {

// Row to[j] of dst [L, nd, H] = row from[j] of src [L, ns, H] for j in [0, k), where a null
// from or to stands for j itself. With src == dst, every row must move to the same place or an
// earlier one (to[j] <= from[j], increasing), so walking forward never reads a moved-over row.
void copy_rows(const float* src, int ns, const int32_t* from, float* dst, int nd, const int32_t* to,
               int k, int L, int H) {
  for (int l = 0; l < L; ++l)
    for (int j = 0; j < k; ++j)
      std::memmove(dst + (size_t(l) * nd + (to ? to[j] : j)) * H,
                   src + (size_t(l) * ns + (from ? from[j] : j)) * H, sizeof(float) * H);
}

}  // namespace

StopSequences::StopSequences(const TokenSpans& s)
    : tokens_(s.tokens, s.tokens + (s.count > 0 ? s.offsets[s.count] : 0)),
      offsets_(s.offsets, s.offsets + s.count + 1) {}

int StopSequences::match(const int32_t* gen, int n) const {
  int best = 0;
  for (size_t s = 0; s + 1 < offsets_.size(); ++s) {
    const int len = offsets_[s + 1] - offsets_[s];
    if (len > best && len <= n &&
        std::equal(tokens_.begin() + offsets_[s], tokens_.begin() + offsets_[s + 1], gen + n - len))
      best = len;
  }
  return best;
}

TokenLoop::TokenLoop(int V, int L, int H, bool lstm)
    : V_(V), L_(L), H_(H), lstm_(lstm), scratch_(V) {}

float* TokenLoop::h() {
  sync_state();
  return h_.data();
}

float* TokenLoop::c() {
  sync_state();
  return lstm_ ? c_.data() : nullptr;
}

void TokenLoop::add(int32_t id, const int32_t* prompt, int length, const LoopRowConfig& cfg) {
  Row r{id, length, 0, 0, 0, -1, cfg, {}};
  r.seq.reserve(size_t(length) + cfg.max_tokens);
  r.seq.assign(prompt, prompt + length);
  rows_.push_back(std::move(r));
  ids_.push_back(id);
}

void TokenLoop::sync_state() {
  const int n = rows(), s = state_rows_;
  if (n == s) return;
  // The old rows of layer l move from l * s to l * n: the last layer first, as each moves later.
  for (std::vector<float>* v : {&h_, &c_}) {
    if (v == &c_ && !lstm_) continue;
    v->resize(size_t(L_) * n * H_);
    for (int l = L_ - 1; l >= 0; --l) {
      float* to = v->data() + size_t(l) * n * H_;
      std::memmove(to, v->data() + size_t(l) * s * H_, sizeof(float) * s * H_);
      std::fill(to + size_t(s) * H_, to + size_t(n) * H_, 0.0f);
    }
  }
  state_rows_ = n;
}

void TokenLoop::plan(int chunk, int shared_chunk, int budget, Feed& f) {
  f.rows.clear(), f.tokens.clear(), f.want.clear();
  f.offsets.assign(1, 0);
  spent_.clear();
  for (const Row& r : rows_)
    if (r.finish < 0 && r.fed >= r.prompt && r.fed < static_cast<int>(r.seq.size())) {
      chunk = shared_chunk;
      break;
    }
  for (int i = 0; i < rows(); ++i) {
    Row& r = rows_[i];
    const int from = r.fed;
    int count = 1;
    if (r.finish >= 0 || from == static_cast<int>(r.seq.size())) continue;  // ended, or to sample
    if (from < r.prompt) {
      int& spent = spent_[r.cfg.group];
      count = std::min({chunk, r.prompt - from, budget - spent});
      if (count <= 0) continue;
      spent += count;
    }
    r.fed += count;
    if (r.fed >= r.prompt) f.want.push_back(f.size());
    f.rows.push_back(i);
    f.tokens.insert(f.tokens.end(), r.seq.begin() + from, r.seq.begin() + r.fed);
    f.offsets.push_back(static_cast<int32_t>(f.tokens.size()));
  }
}

void TokenLoop::read_state(const int32_t* rows, int k, float* h, float* c) {
  sync_state();
  copy_rows(h_.data(), state_rows_, rows, h, k, nullptr, k, L_, H_);
  if (lstm_) copy_rows(c_.data(), state_rows_, rows, c, k, nullptr, k, L_, H_);
}

void TokenLoop::write_state(const int32_t* rows, int k, const float* h, const float* c) {
  sync_state();
  copy_rows(h, k, nullptr, h_.data(), state_rows_, rows, k, L_, H_);
  if (lstm_) copy_rows(c, k, nullptr, c_.data(), state_rows_, rows, k, L_, H_);
}

int TokenLoop::sample(const Feed& f, float* logits, int32_t* ids, int32_t* tokens) {
  int n = 0;
  for (size_t i = 0; i < f.want.size(); ++i) {
    Row& r = rows_[f.rows[f.want[i]]];
    if (r.finish >= 0) continue;
    const bool history = sampler_uses_history(r.cfg.sampler);
    const int32_t token =
        sample_token(r.cfg.sampler, logits + i * V_, V_, history ? r.seq.data() : nullptr,
                     history ? static_cast<int>(r.seq.size()) : 0, r.cfg.rng, scratch_);
    ids[n] = r.id, tokens[n++] = token;
    if (token == kNoFiniteLogit) {
      r.finish = kFinishError;
      continue;
    }
    r.seq.push_back(token);
    ++r.generated;
    r.stop = r.cfg.stops ? r.cfg.stops->match(r.seq.data() + r.prompt, r.generated) : 0;
    if (r.stop > 0)
      r.finish = kFinishStop;
    else if (r.generated == r.cfg.max_tokens)
      r.finish = kFinishLength;
  }
  return n;
}

void TokenLoop::cancel(int i) {
  if (rows_[i].finish < 0) rows_[i].finish = kFinishCancelled;
}

void TokenLoop::drop_ended() {
  sync_state();
  const int n = rows();
  keep_.clear();
  for (int i = 0; i < n; ++i)
    if (rows_[i].finish < 0) keep_.push_back(i);
  const int m = static_cast<int>(keep_.size());
  copy_rows(h_.data(), n, keep_.data(), h_.data(), m, nullptr, m, L_, H_);
  if (lstm_) copy_rows(c_.data(), n, keep_.data(), c_.data(), m, nullptr, m, L_, H_);
  for (int j = 0; j < m; ++j) {
    if (keep_[j] != j) rows_[j] = std::move(rows_[keep_[j]]);
    ids_[j] = ids_[keep_[j]];
  }
  rows_.erase(rows_.begin() + m, rows_.end());
  ids_.resize(m);
  h_.resize(size_t(L_) * m * H_);
  if (lstm_) c_.resize(size_t(L_) * m * H_);
  state_rows_ = m;
}

}  // namespace rnnkit
