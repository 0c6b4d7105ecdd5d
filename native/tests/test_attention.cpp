// Attention kernel tests: the Luong layer against a float64 reference written straight from the
// formulas (one loop per sum, no GEMMs), its backward against central finite differences, and
// the masking: padded source positions get exactly zero weight and a padded row's result equals
// the same row run alone.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "attention.h"
#include "check.h"

using namespace rnnkit;

namespace {

const char* kind_name(AttentionKind k) {
  return k == AttentionKind::Dot ? "dot" : k == AttentionKind::General ? "general" : "additive";
}

const AttentionKind kKinds[] = {AttentionKind::Dot, AttentionKind::General,
                                AttentionKind::Additive};

// A random case: q [T,B,Hd], enc [S,B,He], params, and lengths that include S and 1.
struct Case {
  AttentionShape s;
  std::vector<float> params, q, enc;
  std::vector<int32_t> lengths;

  Case(AttentionKind kind, int T, int S, int B, int Hd, int He, int A, uint64_t seed) {
    s = {kind, T, S, B, Hd, kind == AttentionKind::Dot ? Hd : He, A};
    params.resize(attention_param_count(s));
    q.resize(static_cast<size_t>(T) * B * Hd);
    enc.resize(static_cast<size_t>(S) * B * s.He);
    check::fill_uniform(params, seed, -0.5, 0.5);
    check::fill_uniform(q, seed + 1);
    check::fill_uniform(enc, seed + 2);
    lengths.resize(B);
    for (int b = 0; b < B; ++b) lengths[b] = b == 0 ? S : 1 + (b * 7 + 3) % S;
  }
  std::string name(const char* what) const {
    return std::string(what) + " " + kind_name(s.kind) + " T" + std::to_string(s.T) + " S" +
           std::to_string(s.S) + " B" + std::to_string(s.B) + " Hd" + std::to_string(s.Hd) + " He" +
           std::to_string(s.He);
  }
  void forward(std::vector<float>& align, std::vector<float>& out, std::vector<float>& ws) const {
    const size_t TB = static_cast<size_t>(s.T) * s.B;
    align.assign(TB * s.S, NAN);
    out.assign(TB * s.Hd, NAN);
    ws.assign(luong_attention_workspace_size(s), NAN);
    luong_attention_forward(s, params.data(), q.data(), enc.data(), lengths.data(), ws.data(),
                            align.data(), out.data());
  }
};

// The layer in float64, one (t, b) at a time.
void reference(const Case& c, std::vector<double>& align, std::vector<double>& out) {
  const AttentionShape& s = c.s;
  const int B = s.B, He = s.He, Hd = s.Hd, A = s.A;
  const float* p = c.params.data();
  align.assign(static_cast<size_t>(s.T) * B * s.S, 0.0);
  out.assign(static_cast<size_t>(s.T) * B * Hd, 0.0);
  auto encv = [&](int j, int b, int k) { return double(c.enc[(size_t(j) * B + b) * He + k]); };
  for (int t = 0; t < s.T; ++t)
    for (int b = 0; b < B; ++b) {
      const float* q = &c.q[(size_t(t) * B + b) * Hd];
      std::vector<double> e(c.lengths[b]);
      for (int j = 0; j < c.lengths[b]; ++j) {
        double score = 0;
        if (s.kind == AttentionKind::Dot) {
          for (int k = 0; k < Hd; ++k) score += q[k] * encv(j, b, k);
        } else if (s.kind == AttentionKind::General) {
          for (int i = 0; i < Hd; ++i)
            for (int k = 0; k < He; ++k) score += q[i] * double(p[i * He + k]) * encv(j, b, k);
        } else {
          const float *Wq = p, *Wk = p + A * Hd, *v = Wk + A * He;
          for (int a = 0; a < A; ++a) {
            double z = 0;
            for (int i = 0; i < Hd; ++i) z += double(Wq[a * Hd + i]) * q[i];
            for (int k = 0; k < He; ++k) z += double(Wk[a * He + k]) * encv(j, b, k);
            score += v[a] * std::tanh(z);
          }
        }
        e[j] = score;
      }
      double m = -INFINITY, sum = 0;
      for (double x : e) m = std::fmax(m, x);
      for (double& x : e) sum += (x = std::exp(x - m));
      double* a = &align[(size_t(t) * B + b) * s.S];
      for (int j = 0; j < c.lengths[b]; ++j) a[j] = e[j] / sum;
      std::vector<double> ctx(He, 0.0);
      for (int j = 0; j < c.lengths[b]; ++j)
        for (int k = 0; k < He; ++k) ctx[k] += a[j] * encv(j, b, k);
      const float* Wc = p + attention_combine_offset(s);
      for (int o = 0; o < Hd; ++o) {
        double z = 0;
        for (int k = 0; k < He; ++k) z += double(Wc[o * (He + Hd) + k]) * ctx[k];
        for (int i = 0; i < Hd; ++i) z += double(Wc[o * (He + Hd) + He + i]) * q[i];
        out[(size_t(t) * B + b) * Hd + o] = std::tanh(z);
      }
    }
}

double dot(const std::vector<float>& y, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * r[i];
  return s;
}

}  // namespace

TEST(luong_forward_matches_float64_reference) {
  uint64_t seed = 1;
  const int shapes[][6] = {
      {1, 1, 1, 1, 1, 1}, {3, 5, 4, 6, 7, 5}, {7, 9, 3, 17, 33, 8}, {2, 30, 5, 20, 12, 16}};
  for (const auto& d : shapes)
    for (AttentionKind kind : kKinds) {
      Case c(kind, d[0], d[1], d[2], d[3], d[4], d[5], seed += 10);
      std::vector<float> align, out, ws;
      c.forward(align, out, ws);
      std::vector<double> want_align, want_out;
      reference(c, want_align, want_out);
      check::close(align.data(), want_align.data(), align.size(), 1e-5, 1e-6, c.name("align"));
      check::close(out.data(), want_out.data(), out.size(), 1e-5, 2e-6, c.name("out"));
    }
}

TEST(luong_padded_positions_get_exactly_zero_weight) {
  for (AttentionKind kind : kKinds) {
    Case c(kind, 4, 8, 5, 6, 6, 4, 77);
    std::vector<float> align, out, ws;
    c.forward(align, out, ws);
    for (int t = 0; t < c.s.T; ++t)
      for (int b = 0; b < c.s.B; ++b) {
        double sum = 0;
        for (int j = 0; j < c.s.S; ++j) {
          float a = align[(size_t(t) * c.s.B + b) * c.s.S + j];
          if (j >= c.lengths[b]) CHECK(a == 0.0f);
          sum += a;
        }
        CHECK(std::fabs(sum - 1.0) < 1e-5);
      }
  }
}

// Row b of a padded batch against a batch of that one row, cut to its own length.
TEST(luong_padded_row_equals_row_alone) {
  for (AttentionKind kind : kKinds) {
    Case c(kind, 3, 7, 4, 5, 6, 4, 91);
    std::vector<float> align, out, ws;
    c.forward(align, out, ws);
    for (int b = 0; b < c.s.B; ++b) {
      Case one = c;
      const int n = c.lengths[b];
      one.s.B = 1;
      one.s.S = n;
      one.lengths = {n};
      one.q.assign(size_t(c.s.T) * c.s.Hd, 0);
      one.enc.assign(size_t(n) * c.s.He, 0);
      for (int t = 0; t < c.s.T; ++t)
        for (int k = 0; k < c.s.Hd; ++k)
          one.q[size_t(t) * c.s.Hd + k] = c.q[(size_t(t) * c.s.B + b) * c.s.Hd + k];
      for (int j = 0; j < n; ++j)
        for (int k = 0; k < c.s.He; ++k)
          one.enc[size_t(j) * c.s.He + k] = c.enc[(size_t(j) * c.s.B + b) * c.s.He + k];
      std::vector<float> align1, out1, ws1;
      one.forward(align1, out1, ws1);
      for (int t = 0; t < c.s.T; ++t) {
        check::close(&align[(size_t(t) * c.s.B + b) * c.s.S], &align1[size_t(t) * n], n, 1e-6, 1e-7,
                     c.name("alone align"));
        check::close(&out[(size_t(t) * c.s.B + b) * c.s.Hd], &out1[size_t(t) * c.s.Hd], c.s.Hd,
                     1e-6, 1e-7, c.name("alone out"));
      }
    }
  }
}

// d(sum out * r) with respect to q, enc and every parameter, against central differences.
TEST(luong_backward_finite_differences) {
  uint64_t seed = 500;
  const int shapes[][6] = {{1, 1, 1, 1, 1, 1}, {3, 4, 3, 5, 6, 4}, {2, 6, 4, 7, 3, 5}};
  for (const auto& d : shapes)
    for (AttentionKind kind : kKinds) {
      Case c(kind, d[0], d[1], d[2], d[3], d[4], d[5], seed += 10);
      std::vector<float> align, out, ws;
      c.forward(align, out, ws);
      std::vector<float> r(out.size());
      check::fill_uniform(r, seed + 5);
      std::vector<float> dout = r, dq(c.q.size(), NAN), denc(c.enc.size(), NAN);
      std::vector<float> dparams(c.params.size());
      check::fill_uniform(dparams, seed + 6);
      const std::vector<float> dparams0 = dparams;
      luong_attention_backward(c.s, c.params.data(), c.q.data(), c.enc.data(), c.lengths.data(),
                               ws.data(), align.data(), out.data(), dout.data(), dq.data(),
                               denc.data(), dparams.data());
      for (size_t i = 0; i < dparams.size(); ++i) dparams[i] -= dparams0[i];
      auto loss = [&] {
        std::vector<float> a2, o2, w2;
        c.forward(a2, o2, w2);
        return dot(o2, r);
      };
      auto expect = [&](std::vector<float>& x, const std::vector<float>& g, const char* what) {
        std::vector<double> numeric = check::numeric_gradient(loss, x.data(), x.size(), 1e-2);
        check::close(g.data(), numeric.data(), x.size(), 2e-3, 2e-3, c.name(what));
      };
      expect(c.q, dq, "dq");
      expect(c.enc, denc, "denc");
      expect(c.params, dparams, "dparams");
    }
}

TEST(masked_softmax_backward_matches_float64) {
  const int T = 3, B = 4, S = 6;
  const int32_t lengths[B] = {6, 1, 3, 5};
  std::vector<float> x(T * B * S), y, dy(x.size());
  check::fill_uniform(x, 3, -4, 4);
  check::fill_uniform(dy, 4);
  y = x;
  masked_softmax_forward(T, B, S, lengths, y.data());
  std::vector<float> dx = dy;
  masked_softmax_backward(T, B, S, lengths, y.data(), dx.data());
  std::vector<double> want(x.size(), 0.0);
  for (int r = 0; r < T * B; ++r) {
    const int n = lengths[r % B];
    double m = -INFINITY, sum = 0, inner = 0;
    std::vector<double> p(n);
    for (int j = 0; j < n; ++j) m = std::max(m, double(x[r * S + j]));
    for (int j = 0; j < n; ++j) sum += p[j] = std::exp(x[r * S + j] - m);
    for (int j = 0; j < n; ++j) p[j] /= sum;
    for (int j = 0; j < n; ++j) inner += p[j] * dy[r * S + j];
    for (int j = 0; j < n; ++j) want[r * S + j] = p[j] * (dy[r * S + j] - inner);
  }
  check::close(dx.data(), want.data(), dx.size(), 1e-5, 1e-7, "masked softmax dx");
}

TEST_MAIN()
