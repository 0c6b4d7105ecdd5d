// Weights of the inference products held in fewer bytes than float32: int8 with one float scale
// per output row (symmetric: the row's largest magnitude maps to 127), its products taking the
// activations quantized per row at every call (dynamic) into int8 x int8 -> int32 sums; or
// bfloat16, widened to float32 as the product reads it. PackedWeights holds one matrix of any of
// the three types, packed once, for the steps of a generation loop (PackedStack, PackedLinear).
//
// The int8 product runs, per build: vpdpbusd where the CPU has it, AVX512-VNNI's form in the avx512
// build and AVX-VNNI's in the avx2 and avx512 builds, else AVX2 (vpmaddubsw with the sign moved
// onto the weights, see qgemm.cpp) in those builds, and a portable loop in the baseline build
// (x86-64-v2; arm64 uses SDOT where the CPU has it). int8_kernel() names the one in use.
#pragma once
#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "gemm.h"

namespace rnnkit {

enum class WeightType : int { F32 = 0, Int8 = 1, Bf16 = 2 };

// The type's name as the JS API spells it: "float32", "int8", "bf16".
const char* weight_type_name(WeightType type);

// Quantizes x [n] symmetrically: scale = max|x| / 127 (1 for a row of zeros), q[k] = round(x[k] /
// scale), in [-127, 127]. Returns the scale; |x[k] - scale * q[k]| <= scale / 2. A row holding a
// NaN or an infinity gets scale NaN (and q = 0), so that its products are NaN, as float32's are.
float quantize_row(const float* x, int n, int8_t* q);

// op(B) [K, N] = W^T for W [N, K] (row n at W + n * ld, ld >= K, each row with its scale > 0):
// B[k][n] = q[n][k] * scales[n] with q[n][k] = W[n][k] / scales[n] (in double) rounded to nearest
// (ties to even) and clamped to [-127, 127] (a NaN weight to 0),
// so that W holding q * scale (a quantized model's weights widened) packs back to exactly q.
// An int8 product's tiles, in qgemm.cpp's layout: tiles[mr - 1] sums the int32 products of mr
// = 1..4 rows of A's bytes (plus 128 each where `offset`, which the product then takes off) with
// one packed sliver.
using Int8Tile = void (*)(int groups, const int8_t* a, int lda, const int8_t* b, int32_t* acc);
struct Int8Tiles {
  const char* name;
  Int8Tile tiles[4];
  bool offset;
};

// The VNNI tiles with vpdpbusd computed by AVX2 instructions instead (the same int32 sums), so that
// the kernel tests run those tiles, their offset and the driver on CPUs without VNNI. Builds with
// AVX2 only; null in the others.
const Int8Tiles* int8_vnni_tiles_emulated();

class PackedInt8 {
 public:
  PackedInt8(int K, int N, const float* W, int ld, const float* scales);
  int rows() const { return K_; }
  int cols() const { return N_; }
  size_t bytes() const { return q_.size() + sizeof(float) * scales_.size() + 4 * sums_.size(); }

 private:
  friend void gemm_int8(int, const float*, int, const PackedInt8&, float, float*, int,
                        const Int8Tiles*);
  int K_, N_, groups_;
  std::vector<int8_t> q_;      // slivers of 16 columns, K in groups of 4 (see qgemm.cpp)
  std::vector<float> scales_;  // [N]
  std::vector<int32_t> sums_;  // column sums of q, padded to whole slivers
};

// C[M,N] = A B + beta * C with A [M,K] (lda >= K) quantized per row as quantize_row does, on
// `tiles` (null: this build's and this CPU's, int8_kernel()). A row's result does not depend on M
// or the other rows.
void gemm_int8(int M, const float* A, int lda, const PackedInt8& B, float beta, float* C, int ldc,
               const Int8Tiles* tiles = nullptr);

// op(B) [K, N] = W^T rounded to bfloat16 (to nearest, ties to even), so that W holding bfloat16
// values packs back exactly.
class PackedBf16 {
 public:
  PackedBf16(int K, int N, const float* W, int ld);
  int rows() const { return K_; }
  int cols() const { return N_; }
  size_t bytes() const { return sizeof(uint16_t) * b_.size(); }

 private:
  friend void gemm_bf16(int, const float*, int, const PackedBf16&, float, float*, int);
  int K_, N_;
  std::vector<uint16_t> b_;  // slivers of 16 columns, each [K][16]
};

// C[M,N] = A B + beta * C, float32 products of A with B widened; a row's result does not depend on
// M or the other rows.
void gemm_bf16(int M, const float* A, int lda, const PackedBf16& B, float beta, float* C, int ldc);

// x rounded to bfloat16 (to nearest, ties to even; NaN stays NaN), as its 16 bits.
uint16_t bf16_bits(float x);
// The float32 value nearest to x in bfloat16 (round to nearest even; NaN stays NaN).
float round_bf16(float x);

// One weight matrix op(B) [K, N] of any type, and its product.
class PackedWeights {
 public:
  explicit PackedWeights(PackedMatrix m) : m_(std::move(m)) {}
  // W^T for W [N, K] (ld) as `type`; scales [N] for int8 only.
  PackedWeights(WeightType type, int K, int N, const float* W, int ld, const float* scales);
  int rows() const;
  int cols() const;
  // Bytes of the packed weights (and scales).
  size_t bytes() const;
  // C[M,N] = A B + beta * C (gemm_packed, gemm_int8 or gemm_bf16).
  void product(int M, const float* A, int lda, float beta, float* C, int ldc) const;

 private:
  std::variant<PackedMatrix, PackedInt8, PackedBf16> m_;
};

// Which int8 product this build runs on this CPU: "avx512-vnni", "avx2" or "portable".
const char* int8_kernel();

}  // namespace rnnkit
