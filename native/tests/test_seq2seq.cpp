// Beam search tests on small random decoders: greedy decoding (beam 1) against a step-by-step
// loop over one source at a time, every returned hypothesis's score against the log-probability
// of its tokens rescored by teacher forcing, n-best order, and batch independence (a source's
// hypotheses do not depend on the other sources of its batch or on their lengths).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "attention.h"
#include "check.h"
#include "gemm.h"
#include "layers.h"
#include "quantized_testing.h"
#include "recurrent.h"
#include "seq2seq.h"

using namespace rnnkit;

namespace {

const int V = 7, E = 3, H = 5, L = 2, He = 4, A = 3, S = 5, B = 3;
const int32_t kBos = 0, kEos = 1;

struct Model {
  Seq2SeqDecoderWeights w;
  std::vector<float> embedding, stack, attention, out_weight, out_bias;
  std::vector<float> enc, h0, c0;
  std::vector<float> stack_scales, attention_scales, out_scales;
  int batch;  // sources
  std::vector<int32_t> lengths{5, 2, 4};

  Model(CellType cell, AttentionKind kind, uint64_t seed, bool feeding = false, int sources = B)
      : batch(sources) {
    for (int b = B; b < batch; ++b) lengths.push_back(1 + b * 3 % S);
    const int he = kind == AttentionKind::Dot ? H : He;
    const AttentionShape as{kind, 1, S, batch, H, he, A};
    embedding.resize(V * E);
    stack.resize(stack_param_count(cell, E + (feeding ? H : 0), H, L));
    attention.resize(attention_param_count(as));
    out_weight.resize(V * H);
    out_bias.resize(V);
    enc.resize(S * batch * he);
    h0.resize(L * batch * H);
    c0.resize(cell == CellType::Lstm ? h0.size() : 0);
    check::fill_uniform(embedding, seed);
    check::fill_uniform(stack, seed + 1, -0.8, 0.8);
    check::fill_uniform(attention, seed + 2);
    check::fill_uniform(out_weight, seed + 3, -2, 2);
    check::fill_uniform(out_bias, seed + 4);
    out_bias[kEos] += 1.0f;  // so that some hypotheses end before max_len
    check::fill_uniform(enc, seed + 5);
    check::fill_uniform(h0, seed + 6);
    check::fill_uniform(c0, seed + 7);
    w = {{cell, kind, feeding, V, E, H, L, he, A},
         embedding.data(),
         stack.data(),
         attention.data(),
         out_weight.data(),
         out_bias.data()};
  }

  // Holds the decoder's matrices as a quantized model of `type` does (q * scale, or bfloat16) and
  // searches on that type's products; the float32 paths (teacher_forced) read the same weights.
  void quantize(WeightType type) {
    const int I = E + (w.input_feeding ? H : 0), GH = gate_count(w.cell) * H;
    const AttentionShape as{w.kind, 1, S, batch, H, w.He, A};
    stack_scales.resize(size_t(L) * 2 * GH);
    attention_scales.resize(attention_scale_count(as));
    out_scales.resize(V);
    for (int l = 0; l < L; ++l) {
      const int in = l == 0 ? I : H;
      float* w_ih = stack.data() + stack_layer_offset(w.cell, I, H, l);
      float* s = stack_scales.data() + size_t(l) * 2 * GH;
      quantized_testing::hold(type, w_ih, GH, in, in, s);
      quantized_testing::hold(type, w_ih + size_t(GH) * in, GH, H, H, s + GH);
    }
    float* s = attention_scales.data();
    if (w.kind == AttentionKind::General)
      quantized_testing::hold(type, attention.data(), H, w.He, w.He, s);
    if (w.kind == AttentionKind::Additive) {
      quantized_testing::hold(type, attention.data(), A, H, H, s);
      quantized_testing::hold(type, attention.data() + A * H, A, w.He, w.He, s + A);
    }
    quantized_testing::hold(type, attention.data() + attention_combine_offset(as), H, w.He + H,
                            w.He + H, s + attention_scale_count(as) - H);
    quantized_testing::hold(type, out_weight.data(), V, H, H, out_scales.data());
    w.weights = type;
    const bool int8 = type == WeightType::Int8;
    w.stack_scales = int8 ? stack_scales.data() : nullptr;
    w.attention_scales = int8 ? attention_scales.data() : nullptr;
    w.out_scales = int8 ? out_scales.data() : nullptr;
  }

  // Source b alone: enc [len, 1, He], h0/c0 [L, 1, H].
  void source(int b, std::vector<float>& e, std::vector<float>& h, std::vector<float>& c) const {
    const int n = lengths[b];
    e.assign(enc.begin(), enc.begin());
    for (int s = 0; s < n; ++s)
      e.insert(e.end(), &enc[(s * batch + b) * w.He], &enc[(s * batch + b) * w.He] + w.He);
    h.clear();
    c.clear();
    for (int l = 0; l < L; ++l) {
      h.insert(h.end(), &h0[(l * batch + b) * H], &h0[(l * batch + b) * H] + H);
      if (!c0.empty()) c.insert(c.end(), &c0[(l * batch + b) * H], &c0[(l * batch + b) * H] + H);
    }
  }

  // Log-probabilities of every next token after each prefix of `tokens` for source b alone
  // (teacher forcing one step at a time): rows [tokens.size() + 1, V]; also the attention rows.
  void teacher_forced(int b, const std::vector<int32_t>& tokens, std::vector<float>& logp,
                      std::vector<float>& align) const {
    std::vector<float> e, h, c;
    source(b, e, h, c);
    const int n = lengths[b];
    const bool lstm = w.cell == CellType::Lstm;
    const int I = E + (w.input_feeding ? H : 0);
    const StackShape ss{w.cell, 1, 1, I, H, L, 0.0f, false, false, 0};
    const AttentionShape as{w.kind, 1, n, 1, H, w.He, A};
    std::vector<float> ws(stack_workspace_size(ss)), aws(luong_attention_workspace_size(as));
    std::vector<float> x(I, 0.0f), y(H), hT(h.size()), cT(c.size()), a(n), out(H), row(V);
    logp.clear();
    align.clear();
    int32_t id = kBos;
    for (size_t t = 0; t <= tokens.size(); ++t) {
      embedding_forward(w.embedding, V, E, &id, 1, x.data());
      stack_forward(ss, w.stack, x.data(), nullptr, h.data(), lstm ? c.data() : nullptr, y.data(),
                    hT.data(), lstm ? cT.data() : nullptr, ws.data());
      h = hT;
      c = cT;
      luong_attention_forward(as, w.attention, y.data(), e.data(), &n, aws.data(), a.data(),
                              out.data());
      if (w.input_feeding) std::copy(out.begin(), out.end(), x.begin() + E);
      linear_forward(1, H, V, out.data(), w.out_weight, w.out_bias, row.data());
      double m = -INFINITY, sum = 0;
      for (float v : row) m = std::max(m, double(v));
      for (float v : row) sum += std::exp(v - m);
      for (float v : row) logp.push_back(static_cast<float>(v - m - std::log(sum)));
      align.insert(align.end(), a.begin(), a.end());
      if (t < tokens.size()) id = tokens[t];
    }
  }
};

struct Result {
  int T, N;
  std::vector<int32_t> tokens, lengths;
  std::vector<float> scores, align;
  std::vector<int32_t> hyp(int b, int n) const {
    const int32_t* t = &tokens[(b * N + n) * T];
    return std::vector<int32_t>(t, t + lengths[b * N + n]);
  }
};

// m's search, on its weights or on `packed` (m.w packed before).
Result decode(const Model& m, const BeamConfig& cfg, const PackedSeq2SeqDecoder* packed = nullptr) {
  const int n = m.batch * cfg.n_best;
  Result r{cfg.max_len, cfg.n_best, {}, {}, {}, {}};
  r.tokens.assign(n * cfg.max_len, -7);
  r.lengths.assign(n, -7);
  r.scores.assign(n, NAN);
  r.align.assign(n * cfg.max_len * S, NAN);
  auto search = [&](const auto& decoder) {
    seq2seq_beam_search(decoder, S, m.batch, m.enc.data(), m.lengths.data(), m.h0.data(),
                        m.c0.empty() ? nullptr : m.c0.data(), cfg, r.tokens.data(),
                        r.lengths.data(), r.scores.data(), r.align.data());
  };
  if (packed)
    search(*packed);
  else
    search(m.w);
  return r;
}

Result decode(const Model& m, int beam, int n_best, int max_len, float alpha) {
  return decode(m, BeamConfig{beam, n_best, max_len, alpha, kBos, kEos});
}

const CellType kCells[] = {CellType::Lstm, CellType::Gru};
const AttentionKind kKinds[] = {AttentionKind::Dot, AttentionKind::General,
                                AttentionKind::Additive};

std::string name(const Model& m, const char* what) {
  return std::string(what) + (m.w.cell == CellType::Lstm ? " lstm " : " gru ") +
         std::to_string(static_cast<int>(m.w.kind)) + (m.w.input_feeding ? " feeding " : " ") +
         weight_type_name(m.w.weights);
}

}  // namespace

// Source b of m alone, its encoder states padded to S with NaN that the search must never read.
Model alone(const Model& m, int b) {
  Model one = m;
  std::vector<float> e, h, c;
  m.source(b, e, h, c);
  one.batch = 1;
  one.enc.assign(S * m.w.He, NAN);
  std::copy(e.begin(), e.end(), one.enc.begin());
  one.h0 = h;
  one.c0 = c;
  one.lengths = {m.lengths[b]};
  return one;
}

TEST(greedy_matches_one_source_at_a_time) {
  uint64_t seed = 10;
  for (CellType cell : kCells)
    for (AttentionKind kind : kKinds)
      for (bool feeding : {false, true}) {
        Model m(cell, kind, seed += 10, feeding);
        const int T = 8;
        Result r = decode(m, 1, 1, T, 0.0f);
        for (int b = 0; b < B; ++b) {
          // The greedy reference: extend by the argmax until it is the end token or T tokens.
          std::vector<int32_t> want;
          std::vector<float> logp, align;
          double total = 0;
          for (int t = 0; t < T; ++t) {
            m.teacher_forced(b, want, logp, align);
            const float* row = &logp[want.size() * V];
            int best = 0;
            for (int v = 1; v < V; ++v)
              if (row[v] > row[best]) best = v;
            total += row[best];
            if (best == kEos) break;
            want.push_back(best);
          }
          m.teacher_forced(b, want, logp, align);
          const float score = static_cast<float>(total);
          // Source b as row rb of a search: of the whole batch, and of a batch of its own (a
          // single row, which the search runs unpacked).
          auto check_row = [&](const Result& res, int rb, const std::string& what) {
            std::vector<int32_t> got = res.hyp(rb, 0);
            CHECK(got == want);
            check::close(&res.scores[rb], &score, 1, 1e-5, 1e-5, name(m, what.c_str()));
            for (size_t t = 0; t < got.size(); ++t)
              check::close(&res.align[(rb * T + t) * S], &align[t * m.lengths[b]], m.lengths[b],
                           1e-5, 1e-6, name(m, what.c_str()));
            for (int t = 0; t < T; ++t)
              for (int s = t < static_cast<int>(got.size()) ? m.lengths[b] : 0; s < S; ++s)
                CHECK(res.align[(rb * T + t) * S + s] == 0.0f);
            for (int t = static_cast<int>(got.size()); t < T; ++t)
              CHECK(res.tokens[rb * T + t] == -1);
          };
          check_row(r, b, "greedy");
          check_row(decode(alone(m, b), 1, 1, T, 0.0f), 0, "greedy alone");
        }
      }
}

// On int8 and bfloat16 weights the float32 rescoring reads the same (quantized) weights: bf16
// differs by float rounding only, int8 by its activations' quantization (a step of max|a| / 127
// per row at every product), which moves a score by up to 0.02 in these cases.
TEST(beam_scores_are_rescored_log_probabilities) {
  uint64_t seed = 300;
  int ended = 0, full = 0;  // both kinds of hypothesis must be exercised
  for (WeightType type : {WeightType::F32, WeightType::Int8, WeightType::Bf16})
    for (CellType cell : kCells)
      for (AttentionKind kind : kKinds)
        for (float alpha : {0.0f, 0.6f}) {
          Model m(cell, kind, seed += 10, alpha > 0);
          if (type != WeightType::F32) m.quantize(type);
          const double tol = type == WeightType::Int8   ? 0.1
                             : type == WeightType::Bf16 ? 1e-4
                                                        : 1e-5;
          const int T = 6, K = 4, N = 3;
          Result r = decode(m, K, N, T, alpha);
          for (int b = 0; b < B; ++b) {
            for (int n = 0; n < N; ++n) {
              std::vector<int32_t> hyp = r.hyp(b, n);
              std::vector<float> logp, align;
              m.teacher_forced(b, hyp, logp, align);
              double total = 0;
              for (size_t t = 0; t < hyp.size(); ++t) total += logp[t * V + hyp[t]];
              // A hypothesis shorter than T ended with the end token, which is scored too.
              int length = static_cast<int>(hyp.size());
              if (length < T) total += logp[hyp.size() * V + kEos], ++length;
              const float want =
                  static_cast<float>(total / std::pow((5.0 + length) / 6.0, double(alpha)));
              check::close(&r.scores[b * N + n], &want, 1, tol, tol, name(m, "beam score"));
              if (n > 0) CHECK(r.scores[b * N + n] <= r.scores[b * N + n - 1]);
              ended += hyp.size() < size_t(T);
              full += hyp.size() == size_t(T);
            }
          }
        }
  CHECK(ended > 0);
  CHECK(full > 0);
}

// The same bits, not merely close: a search is the same computation for a source whatever else
// its batch holds and however the batch splits over threads.
void check_same(const Result& a, int b, const Result& all, int ball, const std::string& what) {
  const int N = a.N, T = a.T;
  const bool same =
      std::memcmp(&a.tokens[b * N * T], &all.tokens[ball * N * T], sizeof(int32_t) * N * T) == 0 &&
      std::memcmp(&a.lengths[b * N], &all.lengths[ball * N], sizeof(int32_t) * N) == 0 &&
      std::memcmp(&a.scores[b * N], &all.scores[ball * N], sizeof(float) * N) == 0 &&
      std::memcmp(&a.align[b * N * T * S], &all.align[ball * N * T * S],
                  sizeof(float) * N * T * S) == 0;
  if (!same) check::fail(what + ": source " + std::to_string(ball) + " differs");
}

// A batch of 8 sources with 3 hypotheses each splits into groups of sources on two threads; each
// source's n-best hypotheses, scores and attention equal those of searching it alone, on float32,
// int8 and bfloat16 weights.
TEST(beam_results_are_those_of_each_source_alone) {
  const int before = gemm_threads();
  set_gemm_threads(2);
  const int sources = 8, K = 3, T = 7;
  CHECK(row_groups(sources * K) == 2);
  uint64_t seed = 900;
  for (CellType cell : kCells)
    for (AttentionKind kind : kKinds)
      for (bool feeding : {false, true})
        for (WeightType type : {WeightType::F32, WeightType::Int8, WeightType::Bf16}) {
          Model m(cell, kind, seed += 10, feeding, sources);
          if (type != WeightType::F32) m.quantize(type);
          const BeamConfig cfg{K, K, T, 0.6f, kBos, kEos};
          const Result all = decode(m, cfg);
          for (int b = 0; b < sources; ++b)
            check_same(decode(alone(m, b), cfg), 0, all, b, name(m, "alone"));
        }
  set_gemm_threads(before);
}

// A decoder packed once, as a quantized model holds it for its life, serves searches of any batch
// size and beam, each giving the bits that a search packing the weights for itself gives.
TEST(a_decoder_packed_once_serves_every_search) {
  uint64_t seed = 1200;
  for (CellType cell : kCells)
    for (AttentionKind kind : kKinds)
      for (WeightType type : {WeightType::F32, WeightType::Int8, WeightType::Bf16}) {
        Model m(cell, kind, seed += 10, kind != AttentionKind::Dot);
        if (type != WeightType::F32) m.quantize(type);
        const PackedSeq2SeqDecoder packed(m.w);
        for (int beam : {1, 3}) {
          const BeamConfig cfg{beam, beam, 6, 0.6f, kBos, kEos};
          const Result all = decode(m, cfg);
          const Result reused = decode(m, cfg, &packed);
          for (int b = 0; b < B; ++b) {
            check_same(reused, b, all, b, name(m, "packed once"));
            // A single source: a float32 greedy search of it runs unpacked, so the batch's
            // packed search of it is the reference.
            check_same(decode(alone(m, b), cfg, &packed), 0, all, b, name(m, "packed once, alone"));
          }
        }
      }
}

// Greedy search and sampling over a batch split into groups equal one group over the whole batch.
TEST(split_batches_decode_as_one_group) {
  const int before = gemm_threads();
  const int sources = 20, T = 6;
  uint64_t seed = 950;
  for (CellType cell : kCells)
    for (AttentionKind kind : kKinds) {
      Model m(cell, kind, seed += 10, kind == AttentionKind::General, sources);
      for (float temperature : {0.0f, 1.5f}) {
        BeamConfig cfg{1, 1, T, 0.0f, kBos, kEos};
        cfg.sampler.temperature = temperature;
        cfg.seed = 3;
        set_gemm_threads(1);
        const Result one = decode(m, cfg);
        set_gemm_threads(2);
        CHECK(row_groups(sources) == 2);
        const Result split = decode(m, cfg);
        for (int b = 0; b < sources; ++b) check_same(split, b, one, b, name(m, "split"));
      }
    }
  set_gemm_threads(before);
}

namespace {

// A feeding-decoder case: x [T, B, E], and the Model's enc, lengths, h0, c0 and weights.
struct Feeding {
  Model m;
  FeedingShape f;
  std::vector<float> x;
  Feeding(CellType cell, AttentionKind kind, uint64_t seed) : m(cell, kind, seed, true) {
    f = {cell, kind, 4, S, B, E, H, L, m.w.He, A, 0.0f, true, 0};
    x.resize(size_t(f.T) * B * E);
    check::fill_uniform(x, seed + 50);
  }
  void forward(std::vector<float>& out, std::vector<float>& align, std::vector<float>& ws) {
    out.assign(size_t(f.T) * B * H, NAN);
    align.assign(size_t(f.T) * B * S, NAN);
    ws.assign(feeding_workspace_size(f), NAN);
    feeding_decoder_forward(f, m.stack.data(), m.attention.data(), x.data(), m.enc.data(),
                            m.lengths.data(), m.h0.data(), m.c0.empty() ? nullptr : m.c0.data(),
                            ws.data(), out.data(), align.data());
  }
};

}  // namespace

// Each row against one step at a time over that row alone, feeding its output back by hand.
TEST(feeding_decoder_matches_a_step_loop_per_row) {
  uint64_t seed = 700;
  for (CellType cell : kCells)
    for (AttentionKind kind : kKinds) {
      Feeding c(cell, kind, seed += 10);
      std::vector<float> out, align, ws;
      c.forward(out, align, ws);
      const bool lstm = cell == CellType::Lstm;
      for (int b = 0; b < B; ++b) {
        std::vector<float> e, h, cs;
        c.m.source(b, e, h, cs);
        const int n = c.m.lengths[b];
        const StackShape ss{cell, 1, 1, E + H, H, L, 0.0f, false, false, 0};
        const AttentionShape as{kind, 1, n, 1, H, c.m.w.He, A};
        std::vector<float> sws(stack_workspace_size(ss)), aws(luong_attention_workspace_size(as));
        std::vector<float> xin(E + H, 0.0f), y(H), hT(h.size()), cT(cs.size()), a(n), o(H);
        for (int t = 0; t < c.f.T; ++t) {
          std::copy_n(&c.x[(size_t(t) * B + b) * E], E, xin.begin());
          stack_forward(ss, c.m.stack.data(), xin.data(), nullptr, h.data(),
                        lstm ? cs.data() : nullptr, y.data(), hT.data(), lstm ? cT.data() : nullptr,
                        sws.data());
          h = hT;
          cs = cT;
          luong_attention_forward(as, c.m.attention.data(), y.data(), e.data(), &n, aws.data(),
                                  a.data(), o.data());
          std::copy(o.begin(), o.end(), xin.begin() + E);
          check::close(&out[(size_t(t) * B + b) * H], o.data(), H, 1e-5, 1e-6,
                       name(c.m, "feeding out"));
          check::close(&align[(size_t(t) * B + b) * S], a.data(), n, 1e-5, 1e-6,
                       name(c.m, "feeding align"));
        }
      }
    }
}

// d(sum out * r) with respect to x, enc, h0, c0 and both parameter buffers.
TEST(feeding_decoder_backward_finite_differences) {
  uint64_t seed = 800;
  for (CellType cell : kCells)
    for (AttentionKind kind : kKinds) {
      Feeding c(cell, kind, seed += 10);
      std::vector<float> out, align, ws;
      c.forward(out, align, ws);
      std::vector<float> r(out.size());
      check::fill_uniform(r, seed + 3);
      std::vector<float> dout = r, dx(c.x.size(), NAN), denc(c.m.enc.size(), NAN);
      std::vector<float> dh0(c.m.h0.size(), NAN), dc0(c.m.c0.size(), NAN);
      std::vector<float> dstack(c.m.stack.size(), 0.0f), datt(c.m.attention.size(), 0.0f);
      feeding_decoder_backward(c.f, c.m.stack.data(), c.m.attention.data(), c.x.data(),
                               c.m.enc.data(), c.m.lengths.data(), c.m.h0.data(),
                               c.m.c0.empty() ? nullptr : c.m.c0.data(), ws.data(), out.data(),
                               align.data(), dout.data(), dx.data(), denc.data(), dh0.data(),
                               c.m.c0.empty() ? nullptr : dc0.data(), dstack.data(), datt.data());
      auto loss = [&] {
        std::vector<float> o2, a2, w2;
        c.forward(o2, a2, w2);
        double sum = 0;
        for (size_t i = 0; i < o2.size(); ++i) sum += double(o2[i]) * r[i];
        return sum;
      };
      auto expect = [&](std::vector<float>& v, const std::vector<float>& g, const char* what) {
        std::vector<double> numeric = check::numeric_gradient(loss, v.data(), v.size(), 1e-2);
        check::close(g.data(), numeric.data(), v.size(), 3e-3, 3e-3, name(c.m, what));
      };
      expect(c.x, dx, "feeding dx");
      expect(c.m.enc, denc, "feeding denc");
      expect(c.m.h0, dh0, "feeding dh0");
      if (!c.m.c0.empty()) expect(c.m.c0, dc0, "feeding dc0");
      expect(c.m.stack, dstack, "feeding dstack");
      expect(c.m.attention, datt, "feeding dattention");
    }
}

// Sampling (beam 1, temperature > 0): reproducible from the seed, independent of the batch, and
// every sample's score is the log-probability of its tokens.
TEST(sampling_is_seeded_and_scored) {
  Model m(CellType::Lstm, AttentionKind::Additive, 1000, true);
  const int T = 6;
  auto sample = [&](uint64_t seed) {
    Result r{T,
             1,
             std::vector<int32_t>(B * T),
             std::vector<int32_t>(B),
             std::vector<float>(B),
             std::vector<float>(B * T * S)};
    BeamConfig cfg{1, 1, T, 0.0f, kBos, kEos};
    cfg.sampler.temperature = 1.5f;
    cfg.seed = seed;
    seq2seq_beam_search(m.w, S, B, m.enc.data(), m.lengths.data(), m.h0.data(), m.c0.data(), cfg,
                        r.tokens.data(), r.lengths.data(), r.scores.data(), r.align.data());
    return r;
  };
  Result a = sample(5), b = sample(5), greedy = decode(m, 1, 1, T, 0.0f);
  int differ = 0;
  for (int s = 0; s < B; ++s) {
    CHECK(a.hyp(s, 0) == b.hyp(s, 0));
    differ += a.hyp(s, 0) != greedy.hyp(s, 0);
    std::vector<int32_t> hyp = a.hyp(s, 0);
    std::vector<float> logp, align;
    m.teacher_forced(s, hyp, logp, align);
    double total = 0;
    for (size_t t = 0; t < hyp.size(); ++t) total += logp[t * V + hyp[t]];
    if (hyp.size() < size_t(T)) total += logp[hyp.size() * V + kEos];
    const float want = static_cast<float>(total);
    check::close(&a.scores[s], &want, 1, 1e-5, 1e-5, "sample score");
  }
  int other = 0;
  for (uint64_t seed = 6; seed < 12; ++seed) other += sample(seed).tokens != a.tokens;
  CHECK(differ + other > 0);
}

TEST_MAIN()
