// Products at the precision a training run asks for: float32, or bfloat16 operands with float32
// sums (mixed precision: the caller's weights, gradients, optimizer and loss stay float32, and only
// the matrix products read their operands rounded to bfloat16).
//
// A product of two bfloat16 values (8 significant bits each) is exact in float32, so rounding
// op(A) and op(B) to bfloat16 (to nearest, ties to even) and multiplying the rounded values with
// the float32 GEMM computes what AVX512-BF16's vdpbf16ps computes, up to the order of the float32
// sums (and vdpbf16ps flushing subnormal inputs and results to zero).
#pragma once
#include <cstdint>
#include <variant>
#include <vector>

#include "gemm.h"

namespace rnnkit {

enum class Precision : int { F32 = 0, Bf16 = 1 };

// Which kernel runs the bfloat16 products in this process, chosen at first use:
//  "avx512-bf16": vdpbf16ps (pairs of bfloat16 products summed into float32 lanes), where the CPU
//                 and operating system run AVX512-BF16 (cpu_bf16());
//  "emulated":    where RNNKIT_BF16=emulate is set (any CPU): the operands rounded to bfloat16 and
//                 multiplied by the float32 GEMM, the same numbers as above up to the order of the
//                 sums; for testing the numerics on CPUs without bfloat16 instructions, as it is
//                 no faster than float32;
//  "none":        neither: bfloat16 products are refused.
const char* bf16_products();

// C[M,N] = alpha * op(A) * op(B) + beta * C as gemm() takes them, at precision p: for Bf16 the
// elements of op(A) and op(B) are rounded to bfloat16 and their products summed in float32.
// Throws std::invalid_argument for Bf16 where bf16_products() is "none".
void gemm_at(Precision p, bool transA, bool transB, int M, int N, int K, float alpha,
             const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc);

// One tile of a pairs product: out[i][j] = the sum over p < pairs of row i's pair p (a[i * pairs
// + p], two bfloat16 in the low and high half) times column j's pair p (b[p * 64 + 2 * j], two
// bfloat16), for the MR rows and 32 columns of the tile.
using PairsTile = void (*)(int pairs, const uint32_t* a, const uint16_t* b, float (*out)[32]);

// The bfloat16 operand of vdpbf16ps products: op(B) [K, N] in slivers of 32 columns, each holding,
// for every pair of consecutive k, its columns' two values side by side (see mixed.cpp).
class Bf16Pairs {
 public:
  // op(B) from w: stored [N, K] (ld >= K) when trans, else [K, N] (ld >= N).
  Bf16Pairs(int K, int N, bool trans, const float* w, int ld);

 private:
  friend void multiply_pairs(int, const float*, int, bool, const Bf16Pairs&, float, float, float*,
                             int, const PairsTile*);
  int K_, N_;
  std::vector<uint16_t> b_;
};

// C[M, N] = alpha * op(A) B + beta * C, op(A) [M, K] stored [M, K] (lda >= K), or [K, M]
// (lda >= M) when transA, rounded to bfloat16 as it is read, with tiles[mr - 1] running the tiles
// of mr = 1..8 rows: by default (null) the vdpbf16ps tiles, which run only on x86-64 CPUs with
// AVX512-BF16 (cpu_bf16()); gemm_at and PackedProduct call it so where bf16_products() is
// "avx512-bf16". The kernel tests pass tiles written from the instruction's definition, to check
// the packing and the driver on any CPU.
void multiply_pairs(int M, const float* A, int lda, bool transA, const Bf16Pairs& B, float alpha,
                    float beta, float* C, int ldc, const PairsTile* tiles = nullptr);

// op(B) [K, N] packed once at precision p for the products of many A's with it (the per-step
// products of a recurrent layer over its weights); the same errors as gemm_at.
class PackedProduct {
 public:
  // op(B) from w: stored [N, K] (ld >= K) when trans, else [K, N] (ld >= N).
  PackedProduct(Precision p, int K, int N, bool trans, const float* w, int ld);
  // C[M, N] = A op(B) + beta * C, A [M, K] row-major (lda >= K), at the precision packed.
  void operator()(int M, const float* A, int lda, float beta, float* C, int ldc) const;

 private:
  bool round_a_;  // emulated bfloat16: A's rows rounded before the float32 product
  std::variant<PackedMatrix, Bf16Pairs> b_;
};

}  // namespace rnnkit
