// Small random language models and token sequences for the generation tests (test_generate.cpp,
// test_token_loop.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "check.h"
#include "generate.h"
#include "recurrent.h"

namespace lm_testing {

using namespace rnnkit;

struct Model {
  CellType cell;
  int V, E, H, L;
  bool residual;
  std::vector<float> embedding, stack, W, b;
  Model(CellType cell_, int V_, int E_, int H_, int L_, bool residual_, uint64_t seed)
      : cell(cell_), V(V_), E(E_), H(H_), L(L_), residual(residual_) {
    embedding.resize(size_t(V) * E);
    stack.resize(stack_param_count(cell, E, H, L));
    W.resize(size_t(V) * H);
    b.resize(V);
    check::fill_uniform(embedding, seed, -1, 1);
    check::fill_uniform(stack, seed + 1, -0.6, 0.6);
    check::fill_uniform(W, seed + 2, -1.5, 1.5);
    check::fill_uniform(b, seed + 3, -0.5, 0.5);
  }
  LmWeights weights() const {
    return {{cell, V, E, H, L, residual}, embedding.data(), stack.data(), W.data(), b.data()};
  }
};

struct Spans {
  std::vector<int32_t> tokens, offsets{0};
  explicit Spans(const std::vector<std::vector<int32_t>>& seqs) {
    for (const auto& s : seqs) {
      tokens.insert(tokens.end(), s.begin(), s.end());
      offsets.push_back(static_cast<int32_t>(tokens.size()));
    }
  }
  TokenSpans view() const {
    return {tokens.data(), offsets.data(), static_cast<int>(offsets.size()) - 1};
  }
};

inline std::vector<std::vector<int32_t>> random_prompts(int B, int V, int max_len, uint64_t seed) {
  std::vector<std::vector<int32_t>> prompts(B);
  uint64_t k = 0;
  for (auto& p : prompts) {
    p.resize(1 + static_cast<int>(uniform01(seed, k++) * max_len));
    for (int32_t& t : p) t = static_cast<int32_t>(uniform01(seed, k++) * V);
  }
  return prompts;
}

struct Result {
  std::vector<int32_t> tokens, lengths, finish;
  // Row b's kept tokens.
  std::vector<int32_t> row(int b, int M) const {
    return {tokens.begin() + size_t(b) * M, tokens.begin() + size_t(b) * M + lengths[b]};
  }
};

inline Result generate(const Model& m, const std::vector<std::vector<int32_t>>& prompts,
                       const GenerateConfig& cfg,
                       const std::vector<std::vector<int32_t>>& stops = {},
                       const volatile int32_t* cancel = nullptr,
                       const GenerateProgress& progress = {}) {
  Spans p(prompts), s(stops);
  const int B = static_cast<int>(prompts.size());
  Result r{std::vector<int32_t>(size_t(B) * cfg.max_tokens), std::vector<int32_t>(B),
           std::vector<int32_t>(B)};
  lm_generate(PackedLm(m.weights()), p.view(), cfg, s.view(), cancel, progress, r.tokens.data(),
              r.lengths.data(), r.finish.data());
  return r;
}

inline GenerateConfig sampling(int max_tokens, uint64_t seed, uint64_t row_offset = 0) {
  GenerateConfig cfg{max_tokens, {}, seed, row_offset};
  cfg.sampler.temperature = 1.2f;
  cfg.sampler.top_k = 9;
  cfg.sampler.top_p = 0.95f;
  cfg.sampler.repetition_penalty = 1.3f;
  cfg.sampler.no_repeat_ngram = 4;
  return cfg;
}

inline void expect(bool ok, const std::string& what) {
  if (!ok) check::fail(what);
}

inline const CellType kCells[] = {CellType::RnnTanh, CellType::RnnRelu, CellType::Lstm,
                                  CellType::Gru};

}  // namespace lm_testing
