// int8 and bfloat16 weight products (qgemm.h) against float64 references: the exact product of the
// quantized operands (every kernel must reach the same int32 sums), and the float32 product within
// the quantization error bound computed for each element. Built and run once per instruction-set
// variant, each asserting which int8 kernel it dispatched to (RNNKIT_EXPECT_INT8_KERNEL, where set,
// names the one the run must get: CI runs the arm64 build on emulated CPUs with and without SDOT).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention.h"
#include "check.h"
#include "cpu.h"
#include "gemm.h"
#include "lm_testing.h"
#include "qgemm.h"
#include "quantized_testing.h"
#include "recurrent.h"

using namespace rnnkit;

namespace {

struct Shape {
  int M, N, K, pad;
};
const Shape kShapes[] = {{1, 1, 1, 0},      {1, 16, 4, 0},    {2, 17, 5, 3},   {3, 15, 3, 1},
                         {4, 33, 64, 0},    {5, 100, 257, 2}, {7, 48, 130, 0}, {64, 70, 96, 5},
                         {1, 2048, 512, 0}, {37, 257, 300, 1}};

// A weight matrix W [N, K] with one scale per row, the max magnitude over 127, and its q.
struct Int8Weights {
  std::vector<float> W, scales;
  std::vector<int> q;
  Int8Weights(int N, int K, uint64_t seed) : W(size_t(N) * K), scales(N), q(size_t(N) * K) {
    check::fill_uniform(W, seed, -2, 2);
    for (int n = 0; n < N; ++n) {
      double max = 0;
      for (int k = 0; k < K; ++k) max = std::max(max, std::fabs(double(W[size_t(n) * K + k])));
      scales[n] = float(max / 127);
      for (int k = 0; k < K; ++k)
        q[size_t(n) * K + k] = int(std::nearbyint(double(W[size_t(n) * K + k]) / scales[n]));
    }
  }
};

std::string label(const char* what, const Shape& s, float beta) {
  return std::string(what) + " M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) +
         " K=" + std::to_string(s.K) + " pad=" + std::to_string(s.pad) +
         " beta=" + std::to_string(beta);
}

}  // namespace

TEST(dispatches_to_the_kernel_of_its_build) {
  const std::string isa = compiled_isa(), kernel = int8_kernel();
  std::printf("    %s build: int8 kernel %s\n", isa.c_str(), kernel.c_str());
#if defined(__aarch64__)
  if (isa == "baseline") CHECK(kernel == "arm64-sdot" || kernel == "portable");
#else
  if (isa == "baseline") CHECK(kernel == "portable");
#endif
  if (isa == "avx2") CHECK(kernel == (cpu_avx_vnni() ? "avx-vnni" : "avx2"));
  if (isa == "avx512")
    CHECK(kernel == "avx512-vnni" || kernel == (cpu_avx_vnni() ? "avx-vnni" : "avx2"));
  if (const char* expected = std::getenv("RNNKIT_EXPECT_INT8_KERNEL"); expected && *expected)
    CHECK(kernel == expected);
}

TEST(quantize_row_is_symmetric_and_within_half_a_step) {
  std::vector<float> x(301);
  check::fill_uniform(x, 7, -3, 3);
  x[17] = -5.0f;  // the largest magnitude, negative
  std::vector<int8_t> q(x.size());
  const float s = quantize_row(x.data(), int(x.size()), q.data());
  CHECK(std::fabs(s - 5.0f / 127) <= 1e-7f);
  CHECK(q[17] == -127);
  for (size_t k = 0; k < x.size(); ++k) {
    CHECK(q[k] != -128);
    CHECK(std::fabs(double(x[k]) - double(s) * q[k]) <= double(s) / 2 * (1 + 1e-5));
  }
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    std::vector<float> row = {0.5f, bad, -1.0f};
    std::vector<int8_t> qb(3, 1);
    CHECK(std::isnan(quantize_row(row.data(), 3, qb.data())));
    CHECK(qb[0] == 0 && qb[1] == 0 && qb[2] == 0);
  }
  std::vector<float> zeros(9, 0.0f);
  std::vector<int8_t> qz(9, 1);
  CHECK(quantize_row(zeros.data(), 9, qz.data()) == 1.0f);
  CHECK(std::all_of(qz.begin(), qz.end(), [](int8_t v) { return v == 0; }));
}

TEST(int8_product_matches_the_quantized_operands_and_the_float_bound) {
  for (const Shape& sh : kShapes)
    for (float beta : {0.0f, 0.5f}) {
      const int M = sh.M, N = sh.N, K = sh.K, lda = K + sh.pad, ldc = N + sh.pad;
      std::vector<float> A(size_t(M) * lda), C(size_t(M) * ldc);
      check::fill_uniform(A, 11 + M, -1, 1);
      check::fill_uniform(C, 13 + N, -1, 1);
      if (beta == 0.0f) std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
      const std::vector<float> C0 = C;
      const Int8Weights w(N, K, 17 + K);
      gemm_int8(M, A.data(), lda, PackedInt8(K, N, w.W.data(), K, w.scales.data()), beta, C.data(),
                ldc);
      std::vector<double> exact(size_t(M) * N), bound(size_t(M) * N), got(size_t(M) * N);
      std::vector<double> exact_tol(size_t(M) * N);
      bool bound_ok = true;
      for (int i = 0; i < M; ++i) {
        std::vector<int8_t> qa(K);
        const double sa = quantize_row(A.data() + size_t(i) * lda, K, qa.data());
        for (int n = 0; n < N; ++n) {
          const double sw = w.scales[n];
          double e = 0, f = 0, err = 0, mag = 0;
          for (int k = 0; k < K; ++k) {
            const double a = A[size_t(i) * lda + k], wk = w.W[size_t(n) * K + k];
            e += sa * qa[k] * (sw * w.q[size_t(n) * K + k]);
            f += a * wk;
            // |a w - (sa qa)(sw qw)| <= |w| sa/2 + (|a| + sa/2) sw/2
            err += std::fabs(wk) * sa / 2 + (std::fabs(a) + sa / 2) * sw / 2;
            mag += std::fabs(a * wk);
          }
          const double c0 = beta == 0.0f ? 0.0 : beta * double(C0[size_t(i) * ldc + n]);
          const double c = C[size_t(i) * ldc + n];
          exact[size_t(i) * N + n] = e + c0;
          got[size_t(i) * N + n] = c;
          exact_tol[size_t(i) * N + n] = 1e-5 * (mag + std::fabs(c0)) + 1e-6;
          if (!(std::fabs(c - (f + c0)) <= err + 1e-5 * (mag + std::fabs(c0)) + 1e-6)) {
            if (bound_ok)
              check::fail(label("int8 vs float32 bound", sh, beta) + ": row " + std::to_string(i) +
                          " column " + std::to_string(n) + ": " + std::to_string(c) + " vs " +
                          std::to_string(f + c0) + " (bound " + std::to_string(err) + ")");
            bound_ok = false;
          }
        }
      }
      for (size_t j = 0; j < got.size(); ++j)
        if (!(std::fabs(got[j] - exact[j]) <= exact_tol[j])) {
          check::fail(label("int8 vs the quantized operands", sh, beta) + ": element " +
                      std::to_string(j) + ": " + std::to_string(got[j]) + " vs " +
                      std::to_string(exact[j]));
          break;
        }
    }
}

// The VNNI tiles (A's bytes offset by 128, the column sums of q taken off after) with vpdpbusd
// computed by AVX2 instructions: the same floats as this build's kernel, bit for bit, in every
// shape (rows past a tile of 4, columns past a sliver of 16, K past a group of 4, beta).
TEST(vnni_tiles_give_the_kernels_products_bit_for_bit) {
  const Int8Tiles* vnni = int8_vnni_tiles_emulated();
  if (!vnni) {
    std::printf("    (no AVX2 in this build: the VNNI tiles are not built)\n");
    return;
  }
  for (const Shape& sh : kShapes)
    for (float beta : {0.0f, 0.5f}) {
      const int M = sh.M, N = sh.N, K = sh.K, lda = K + sh.pad, ldc = N + sh.pad;
      std::vector<float> A(size_t(M) * lda), C(size_t(M) * ldc);
      check::fill_uniform(A, 23 + M, -1, 1);
      check::fill_uniform(C, 29 + N, -1, 1);
      std::vector<float> want = C;
      const Int8Weights w(N, K, 31 + K);
      const PackedInt8 B(K, N, w.W.data(), K, w.scales.data());
      gemm_int8(M, A.data(), lda, B, beta, want.data(), ldc);
      gemm_int8(M, A.data(), lda, B, beta, C.data(), ldc, vnni);
      if (std::memcmp(C.data(), want.data(), sizeof(float) * C.size()) != 0)
        check::fail(label("vnni tiles vs the kernel", sh, beta));
    }
}

TEST(int8_weights_given_as_q_times_scale_pack_back_to_q) {
  // A quantized model's weights arrive widened, q * scale in float32; with scales not the row's
  // max / 127 (a file may hold any), packing must recover q, not requantize.
  const int N = 40, K = 70;
  std::vector<float> scales(N), W(size_t(N) * K);
  std::vector<int> q(size_t(N) * K);
  for (int n = 0; n < N; ++n) {
    scales[n] = 0.013f * float(n + 1);
    for (int k = 0; k < K; ++k) {
      q[size_t(n) * K + k] = (n * 31 + k * 7) % 201 - 100;  // |q| <= 100 < 127
      W[size_t(n) * K + k] = float(q[size_t(n) * K + k]) * scales[n];
    }
  }
  const PackedInt8 B(K, N, W.data(), K, scales.data());
  std::vector<float> A(size_t(K) * K, 0.0f), C(size_t(K) * N);
  // Rows of A are unit vectors e_k (scale 1/127, q = 127 at k): C[k][n] = W[n][k] exactly.
  for (int k = 0; k < K; ++k) A[size_t(k) * K + k] = 1.0f;
  gemm_int8(K, A.data(), K, B, 0.0f, C.data(), N);
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < N; ++n) {
      const double want = double(1.0f / 127.0f) * 127 * scales[n] * q[size_t(n) * K + k];
      CHECK(std::fabs(C[size_t(k) * N + n] - want) <= 1e-6 * std::fabs(want) + 1e-9);
    }
}

TEST(int8_rows_with_a_nan_give_nan_as_float32_would) {
  const int N = 20, K = 9;
  const Int8Weights w(N, K, 8);
  std::vector<float> A(2 * K, 0.25f), C(2 * N);
  A[K + 4] = std::numeric_limits<float>::quiet_NaN();
  gemm_int8(2, A.data(), K, PackedInt8(K, N, w.W.data(), K, w.scales.data()), 0.0f, C.data(), N);
  for (int n = 0; n < N; ++n) CHECK(std::isfinite(C[n]) && std::isnan(C[N + n]));
}

// A row of a many-row product is the same floats as that row alone: for bf16 the many-row product
// widens each sliver once and runs K in blocks of 256 over tiles of 6 rows, the single row
// streams it.
TEST(quantized_rows_do_not_depend_on_the_batch_or_threads) {
  const int N = 300, K = 600, M = 37;
  const Int8Weights w(N, K, 5);
  for (WeightType type : {WeightType::Int8, WeightType::Bf16}) {
    const PackedWeights B(type, K, N, w.W.data(), K, w.scales.data());
    std::vector<float> A(size_t(M) * K), all(size_t(M) * N), one(N);
    check::fill_uniform(A, 3, -1, 1);
    B.product(M, A.data(), K, 0.0f, all.data(), N);
    const int threads = gemm_threads();
    set_gemm_threads(1);
    for (int i : {0, 5, 36}) {
      B.product(1, A.data() + size_t(i) * K, K, 0.0f, one.data(), N);
      CHECK(std::memcmp(one.data(), all.data() + size_t(i) * N, sizeof(float) * N) == 0);
    }
    set_gemm_threads(threads);
  }
}

TEST(int8_scales_that_are_not_positive_and_finite_are_refused) {
  const int N = 3, K = 4;
  std::vector<float> W(N * K, 0.5f);
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    std::vector<float> scales = {0.1f, bad, 0.1f};
    bool threw = false;
    try {
      PackedInt8(K, N, W.data(), K, scales.data());
    } catch (const std::invalid_argument& e) {
      threw = std::string(e.what()).find("row 1") != std::string::npos;
    }
    CHECK(threw);
  }
}

TEST(bf16_rounds_to_nearest_even) {
  CHECK(round_bf16(1.0f) == 1.0f);
  CHECK(round_bf16(1.0f + 0x1p-8f) == 1.0f);                       // a tie: to the even 1.0
  CHECK(round_bf16(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);         // a tie: to the even 1 + 2^-6
  CHECK(round_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);  // past the tie: up
  CHECK(round_bf16(-3.5f) == -3.5f);
  CHECK(std::isnan(round_bf16(std::numeric_limits<float>::quiet_NaN())));
}

TEST(bf16_product_matches_the_rounded_weights_and_the_float_bound) {
  for (const Shape& sh : kShapes)
    for (float beta : {0.0f, 0.5f}) {
      const int M = sh.M, N = sh.N, K = sh.K, lda = K + sh.pad, ldc = N + sh.pad;
      std::vector<float> A(size_t(M) * lda), W(size_t(N) * K), C(size_t(M) * ldc);
      check::fill_uniform(A, 21 + M, -1, 1);
      check::fill_uniform(W, 23 + K, -2, 2);
      check::fill_uniform(C, 29 + N, -1, 1);
      if (beta == 0.0f) std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
      const std::vector<float> C0 = C;
      gemm_bf16(M, A.data(), lda, PackedBf16(K, N, W.data(), K), beta, C.data(), ldc);
      bool ok = true;
      for (int i = 0; i < M && ok; ++i)
        for (int n = 0; n < N && ok; ++n) {
          double e = 0, f = 0, mag = 0;
          for (int k = 0; k < K; ++k) {
            const double a = A[size_t(i) * lda + k], wk = W[size_t(n) * K + k];
            e += a * round_bf16(W[size_t(n) * K + k]);
            f += a * wk;
            mag += std::fabs(a * wk);
          }
          const double c0 = beta == 0.0f ? 0.0 : beta * double(C0[size_t(i) * ldc + n]);
          const double c = C[size_t(i) * ldc + n], fp = 1e-5 * (mag + std::fabs(c0)) + 1e-6;
          // Rounding to 8 significant bits moves each weight by at most 2^-8 of itself.
          if (!(std::fabs(c - (e + c0)) <= fp) || !(std::fabs(c - (f + c0)) <= 0x1p-8 * mag + fp)) {
            check::fail(label("bf16", sh, beta) + ": row " + std::to_string(i) + " column " +
                        std::to_string(n) + ": " + std::to_string(c) + " vs rounded " +
                        std::to_string(e + c0) + ", float " + std::to_string(f + c0));
            ok = false;
          }
        }
    }
}

TEST(packed_weights_run_the_product_of_their_type) {
  const int M = 5, N = 50, K = 40;
  const Int8Weights w(N, K, 9);
  std::vector<float> A(size_t(M) * K), want(size_t(M) * N), got(size_t(M) * N);
  check::fill_uniform(A, 4, -1, 1);
  PackedMatrix m(K, N);
  m.set(0, 0, K, N, true, w.W.data(), K);
  gemm_packed(M, A.data(), K, m, 0.0f, want.data(), N);
  PackedWeights(WeightType::F32, K, N, w.W.data(), K, nullptr)
      .product(M, A.data(), K, 0.0f, got.data(), N);
  CHECK(std::memcmp(want.data(), got.data(), sizeof(float) * want.size()) == 0);
  gemm_int8(M, A.data(), K, PackedInt8(K, N, w.W.data(), K, w.scales.data()), 0.0f, want.data(), N);
  PackedWeights(WeightType::Int8, K, N, w.W.data(), K, w.scales.data())
      .product(M, A.data(), K, 0.0f, got.data(), N);
  CHECK(std::memcmp(want.data(), got.data(), sizeof(float) * want.size()) == 0);
  gemm_bf16(M, A.data(), K, PackedBf16(K, N, w.W.data(), K), 0.0f, want.data(), N);
  PackedWeights(WeightType::Bf16, K, N, w.W.data(), K, nullptr)
      .product(M, A.data(), K, 0.0f, got.data(), N);
  CHECK(std::memcmp(want.data(), got.data(), sizeof(float) * want.size()) == 0);
  const PackedWeights q(WeightType::Int8, K, N, w.W.data(), K, w.scales.data());
  const PackedWeights b(WeightType::Bf16, K, N, w.W.data(), K, nullptr);
  CHECK(q.bytes() * 3 < m.bytes() && b.bytes() * 3 < m.bytes() * 2);
}

// The packed stack on int8 (bf16) weights against the float32 stack on the same weights, as a
// quantized model holds them (q * scale; rounded to bf16): every cell, folded and not, residual.
TEST(quantized_stack_steps_stay_near_the_float_stack) {
  struct Case {
    CellType cell;
    int V, E, L;
    bool residual;
  };
  const Case cases[] = {{CellType::Lstm, 20, 16, 2, false},
                        {CellType::Gru, 50, 12, 2, true},
                        {CellType::RnnTanh, 9, 8, 1, false},
                        {CellType::Lstm, 30, 8, 1, false}};
  const int H = 32, B = 6, steps = 5;
  for (const Case& cs : cases)
    for (WeightType type : {WeightType::Int8, WeightType::Bf16}) {
      lm_testing::Model m(cs.cell, cs.V, cs.E, H, cs.L, cs.residual, 31);
      const int GH = gate_count(cs.cell) * H;
      std::vector<float> scales(size_t(cs.L) * 2 * GH);
      for (int l = 0; l < cs.L; ++l) {
        const int I = l == 0 ? cs.E : H;
        float* w_ih = m.stack.data() + stack_layer_offset(cs.cell, cs.E, H, l);
        float* s_ih = scales.data() + size_t(l) * 2 * GH;
        quantized_testing::hold(type, w_ih, GH, I, I, s_ih);
        quantized_testing::hold(type, w_ih + size_t(GH) * I, GH, H, H, s_ih + GH);
      }
      const PackedStack f32(cs.cell, cs.V, cs.E, H, cs.L, cs.residual, m.embedding.data(),
                            m.stack.data());
      const PackedStack qs(cs.cell, cs.V, cs.E, H, cs.L, cs.residual, m.embedding.data(),
                           m.stack.data(), type, scales.data());
      CHECK(qs.bytes() < f32.bytes());
      const size_t S = size_t(cs.L) * B * H;
      std::vector<float> h1(S, 0.0f), c1(S, 0.0f), h2(S, 0.0f), c2(S, 0.0f);
      std::vector<float> y1(size_t(B) * H), y2(size_t(B) * H);
      std::vector<float> ws1(f32.workspace_size(B)), ws2(qs.workspace_size(B));
      std::vector<int32_t> tok(B);
      double worst = 0;
      for (int t = 0; t < steps; ++t) {
        for (int b = 0; b < B; ++b) tok[b] = (b * 7 + t * 3) % cs.V;
        f32.step(B, tok.data(), h1.data(), c1.data(), size_t(B) * H, y1.data(), ws1.data());
        qs.step(B, tok.data(), h2.data(), c2.data(), size_t(B) * H, y2.data(), ws2.data());
        for (size_t j = 0; j < y1.size(); ++j)
          worst = std::max(worst, double(std::fabs(y1[j] - y2[j])));
      }
      // The activations' quantization (a step of max|a| / 127 per row) is all that differs for
      // int8; bf16 differs by float rounding only.
      const double tol = type == WeightType::Int8 ? 0.05 : 1e-4;
      if (!(worst <= tol))
        check::fail(std::string(cell_name(cs.cell)) + " " + weight_type_name(type) +
                    ": outputs differ by " + std::to_string(worst) + " > " + std::to_string(tol));
    }
}

// The packed attention on int8 (bf16) weights against the float32 one on the same weights, as a
// quantized model holds them: keys, alignments and outputs of every kind, rows over sources of
// different lengths.
TEST(quantized_attention_steps_stay_near_the_float_attention) {
  const int S = 6, B = 3, Hd = 24, He = 20, A = 16, K = 2;
  const int32_t lengths[B] = {6, 2, 4};
  for (AttentionKind kind : {AttentionKind::Dot, AttentionKind::General, AttentionKind::Additive})
    for (WeightType type : {WeightType::Int8, WeightType::Bf16}) {
      const int he = kind == AttentionKind::Dot ? Hd : He;
      const AttentionShape as{kind, 1, S, B, Hd, he, A};
      std::vector<float> params(attention_param_count(as)), scales(attention_scale_count(as));
      check::fill_uniform(params, 70 + int(kind), -0.5, 0.5);
      // The matrices in the buffer's order, each [rows, cols], as their scales follow.
      std::vector<std::pair<int, int>> matrices;
      if (kind == AttentionKind::General) matrices.push_back({Hd, he});
      if (kind == AttentionKind::Additive) matrices.insert(matrices.end(), {{A, Hd}, {A, he}});
      float* at = params.data();
      float* s = scales.data();
      for (auto [rows, cols] : matrices) {
        quantized_testing::hold(type, at, rows, cols, cols, s);
        at += size_t(rows) * cols + (kind == AttentionKind::Additive && cols == he ? A : 0);
        s += rows;
      }
      quantized_testing::hold(type, params.data() + attention_combine_offset(as), Hd, he + Hd,
                              he + Hd, s);
      const PackedAttention f32(as, params.data());
      const PackedAttention qa(as, params.data(), type, scales.data());
      std::vector<float> enc(size_t(S) * B * he), q(size_t(B) * K * Hd);
      check::fill_uniform(enc, 81, -1, 1);
      check::fill_uniform(q, 82, -1, 1);
      const size_t nkeys = size_t(S) * B * attention_key_size(as);
      std::vector<float> k1(nkeys), k2(nkeys), a1(size_t(B) * K * S), a2(a1.size());
      std::vector<float> o1(q.size()), o2(q.size());
      std::vector<float> ws1(f32.workspace_size(B * K)), ws2(qa.workspace_size(B * K));
      f32.keys(S * B, enc.data(), k1.data());
      qa.keys(S * B, enc.data(), k2.data());
      f32.step({S, B, enc.data(), k1.data(), lengths}, 0, B, K, q.data(), ws1.data(), a1.data(),
               o1.data());
      qa.step({S, B, enc.data(), k2.data(), lengths}, 0, B, K, q.data(), ws2.data(), a2.data(),
              o2.data());
      // int8 quantizes each activation row to a step of max|a| / 127; bf16 rounds no activation.
      const double tol = type == WeightType::Int8 ? 0.03 : 1e-4;
      const std::string what =
          std::string("attention kind ") + std::to_string(int(kind)) + " " + weight_type_name(type);
      check::close(k2.data(), k1.data(), nkeys, tol, tol, what + " keys");
      check::close(a2.data(), a1.data(), a1.size(), tol, tol, what + " align");
      check::close(o2.data(), o1.data(), o1.size(), tol, tol, what + " out");
      if (type == WeightType::Int8)
        CHECK(std::memcmp(o1.data(), o2.data(), sizeof(float) * o1.size()) != 0);
    }
}

TEST_MAIN()
