// int8 and bfloat16 weights for the products of inference. Both pack B in slivers of kQN = 16
// columns and run one driver (sliver_products): the columns split over threads as gemm_packed's do,
// each sliver times tiles of up to kQR rows of A, a tile's 16 columns finished in floats before
// they are written to C.
//
// int8: a sliver holds, for each group of 4 consecutive k, its 16 columns' 4 weights side by side
// (64 bytes), the layout of vpdpbusd, which sums 4 products of an unsigned and a signed byte into
// each int32 lane. A is quantized per row into int8 [M, K rounded up to 4] (zero-padded).
//  - vpdpbusd (AVX512-VNNI's EVEX form, AVX-VNNI's VEX form) takes A's bytes as unsigned by adding
//    128 (a ^ 0x80); the product subtracts 128 times the column sum of q afterwards.
//  - AVX2 has no such instruction; vpmaddubsw multiplies unsigned by signed bytes into int16 pairs
//    that saturate at 32767. With A's magnitudes |a| (unsigned) and the weights given a's signs
//    (vpsignb), each pair is at most 2 * 127 * 127 = 32258 < 32767, as both sides stay in
//    [-127, 127]: no saturation. vpmaddwd by ones widens the pairs into the int32 lanes.
//  - Armv8.2's SDOT (arm64 CPUs with the dot-product extension, found at run time) multiplies
//    signed by signed bytes, 4 per int32 lane: no offset and no sign trick.
//  - The portable loop sums the same products in int32.
// Every path gives the same int32 sums, so the same floats.
#include "qgemm.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "cpu.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace rnnkit {
namespace {

constexpr int kQN = 16;  // columns per sliver
constexpr int kQR = 4;   // rows per tile
constexpr int kGroup = 4;

int slivers_of(int N) { return (N + kQN - 1) / kQN; }

void check_scale(float s, int n) {
  if (!(s > 0.0f) || !std::isfinite(s))
    throw std::invalid_argument("rnnkit int8 weights: the scale of row " + std::to_string(n) +
                                " must be a finite number > 0, got " + std::to_string(s));
}

// The driver: C[M, N] = tile products + beta * C. tile(s, i0, mr, out) writes rows [i0, i0 + mr)
// of sliver s's 16 columns into out [kQR][kQN].
template <class Tile>
void sliver_products(int M, int N, int K, float beta, float* C, int ldc, const Tile& tile) {
  const int slivers = slivers_of(N);
  auto columns = [&](int s0, int s1) {
    float out[kQR][kQN];
    for (int s = s0; s < s1; ++s) {
      const int n0 = s * kQN, nr = std::min(kQN, N - n0);
      for (int i0 = 0; i0 < M; i0 += kQR) {
        const int mr = std::min(kQR, M - i0);
        tile(s, i0, mr, out);
        for (int i = 0; i < mr; ++i) {
          float* c = C + static_cast<ptrdiff_t>(i0 + i) * ldc + n0;
          if (beta == 0.0f)
            std::copy(out[i], out[i] + nr, c);
          else
            for (int j = 0; j < nr; ++j) c[j] = out[i][j] + beta * c[j];
        }
      }
    }
  };
  const int chunks = product_chunks(double(M) * N * K, slivers);
  parallel_for(chunks, [&](int i) { columns(i * slivers / chunks, (i + 1) * slivers / chunks); });
}

// int32 sums of a tile (Int8Tile): acc[i][j] = sum over k of a[i][k] * q[k][j], for MR rows of A
// (lda bytes apart) and one sliver b over `groups` groups of 4.
template <int MR>
void int8_tile_portable(int groups, const int8_t* a, int lda, const int8_t* b, int32_t* acc) {
  int32_t sum[MR][kQN] = {};
  for (int g = 0; g < groups; ++g, b += kQN * kGroup)
    for (int i = 0; i < MR; ++i) {
      const int8_t* ai = a + static_cast<ptrdiff_t>(i) * lda + g * kGroup;
      for (int j = 0; j < kQN; ++j)
        for (int t = 0; t < kGroup; ++t) sum[i][j] += int32_t(ai[t]) * int32_t(b[j * kGroup + t]);
    }
  std::memcpy(acc, sum, sizeof(int32_t) * MR * kQN);
}

#if defined(__AVX2__)
// What the AVX2 and VNNI tiles share: MR rows of 16 int32 sums in two registers each; a group's
// 64 bytes of the sliver; row i's 4 bytes of group g in every int32 lane.
template <int MR>
struct Int8Sums {
  __m256i v[MR][2];
  Int8Sums() {
    for (int i = 0; i < MR; ++i) v[i][0] = v[i][1] = _mm256_setzero_si256();
  }
  void store(int32_t* acc) const {
    for (int i = 0; i < MR; ++i)
      for (int h = 0; h < 2; ++h)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + i * kQN + h * 8), v[i][h]);
  }
};

inline __m256i sliver_half(const int8_t* b, int h) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 * h));
}

inline __m256i group_bytes(const int8_t* a, int lda, int i, int g) {
  int32_t four;
  std::memcpy(&four, a + static_cast<ptrdiff_t>(i) * lda + g * kGroup, sizeof four);
  return _mm256_set1_epi32(four);
}

template <int MR>
void int8_tile_avx2(int groups, const int8_t* a, int lda, const int8_t* b, int32_t* acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  Int8Sums<MR> sum;
  for (int g = 0; g < groups; ++g, b += kQN * kGroup) {
    const __m256i half[2] = {sliver_half(b, 0), sliver_half(b, 1)};
    for (int i = 0; i < MR; ++i) {
      const __m256i av = group_bytes(a, lda, i, g), mag = _mm256_abs_epi8(av);
      for (int h = 0; h < 2; ++h)
        sum.v[i][h] = _mm256_add_epi32(
            sum.v[i][h],
            _mm256_madd_epi16(_mm256_maddubs_epi16(mag, _mm256_sign_epi8(half[h], av)), ones));
    }
  }
  sum.store(acc);
}

// vpdpbusd s, u, b: each int32 lane of s plus the 4 products of u's unsigned bytes with b's signed
// bytes in that lane (no saturation). Written in assembly, so that one tile body serves both forms
// in builds whose compiler target has neither; a tile runs only on a CPU that has its form.
struct EvexDot {  // AVX512-VNNI (with AVX512VL)
  static __m256i dot(__m256i s, __m256i u, __m256i b) {
    asm("%{evex%} vpdpbusd %2, %1, %0" : "+x"(s) : "x"(u), "x"(b));
    return s;
  }
};
struct VexDot {  // AVX-VNNI
  static __m256i dot(__m256i s, __m256i u, __m256i b) {
    asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(s) : "x"(u), "x"(b));
    return s;
  }
};
// The same sums in AVX2 instructions: u's even and odd bytes zero-extended and b's sign-extended to
// 16 bits, each pair of products summed by vpmaddwd (at most 2 * 255 * 128: no overflow).
struct EmulatedDot {
  static __m256i dot(__m256i s, __m256i u, __m256i b) {
    const __m256i even = _mm256_set1_epi16(0x00ff);
    const __m256i u0 = _mm256_and_si256(u, even), u1 = _mm256_srli_epi16(u, 8);
    const __m256i b0 = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8), b1 = _mm256_srai_epi16(b, 8);
    return _mm256_add_epi32(s,
                            _mm256_add_epi32(_mm256_madd_epi16(u0, b0), _mm256_madd_epi16(u1, b1)));
  }
};

// (a + 128) . q on vpdpbusd, from which the product subtracts 128 * sum(q).
template <int MR, class Dot>
void int8_tile_vnni(int groups, const int8_t* a, int lda, const int8_t* b, int32_t* acc) {
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  Int8Sums<MR> sum;
  for (int g = 0; g < groups; ++g, b += kQN * kGroup) {
    const __m256i half[2] = {sliver_half(b, 0), sliver_half(b, 1)};
    for (int i = 0; i < MR; ++i) {
      const __m256i au = _mm256_xor_si256(group_bytes(a, lda, i, g), flip);
      for (int h = 0; h < 2; ++h) sum.v[i][h] = Dot::dot(sum.v[i][h], au, half[h]);
    }
  }
  sum.store(acc);
}

template <class Dot>
constexpr Int8Tiles vnni_tiles(const char* name) {
  return {name,
          {int8_tile_vnni<1, Dot>, int8_tile_vnni<2, Dot>, int8_tile_vnni<3, Dot>,
           int8_tile_vnni<4, Dot>},
          true};
}
#endif

#if defined(__aarch64__)
// A group's 64 bytes are four registers of 4 columns' lanes; row i's 4 bytes in every lane.
template <int MR>
__attribute__((target("arch=armv8.2-a+dotprod"))) void int8_tile_sdot(int groups, const int8_t* a,
                                                                      int lda, const int8_t* b,
                                                                      int32_t* acc) {
  int32x4_t sum[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < 4; ++h) sum[i][h] = vdupq_n_s32(0);
  for (int g = 0; g < groups; ++g, b += kQN * kGroup) {
    int8x16_t quarter[4];
    for (int h = 0; h < 4; ++h) quarter[h] = vld1q_s8(b + 16 * h);
    for (int i = 0; i < MR; ++i) {
      int32_t four;
      std::memcpy(&four, a + static_cast<ptrdiff_t>(i) * lda + g * kGroup, sizeof four);
      const int8x16_t av = vreinterpretq_s8_s32(vdupq_n_s32(four));
      for (int h = 0; h < 4; ++h) sum[i][h] = vdotq_s32(sum[i][h], quarter[h], av);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < 4; ++h) vst1q_s32(acc + i * kQN + 4 * h, sum[i][h]);
}
#endif

static_assert(kQR == 4, "Int8Tiles holds 4 tiles");

// The int8 tiles of this build and CPU.
Int8Tiles pick_int8() {
#if defined(__AVX512F__)
  if (__builtin_cpu_supports("avx512vnni")) return vnni_tiles<EvexDot>("avx512-vnni");
#endif
#if defined(__AVX2__)
  if (cpu_avx_vnni()) return vnni_tiles<VexDot>("avx-vnni");
#endif
#if defined(__aarch64__)
  if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)
    return {"arm64-sdot",
            {int8_tile_sdot<1>, int8_tile_sdot<2>, int8_tile_sdot<3>, int8_tile_sdot<4>},
            false};
#endif
#if defined(__AVX2__)
  return {
      "avx2", {int8_tile_avx2<1>, int8_tile_avx2<2>, int8_tile_avx2<3>, int8_tile_avx2<4>}, false};
#else
  return {
      "portable",
      {int8_tile_portable<1>, int8_tile_portable<2>, int8_tile_portable<3>, int8_tile_portable<4>},
      false};
#endif
}

const Int8Tiles& int8() {
  static const Int8Tiles kernel = pick_int8();
  return kernel;
}

// The calling thread's quantized rows of A and their scales, grown on demand.
struct QuantizedRows {
  std::vector<int8_t> q;
  std::vector<float> scale;
};
QuantizedRows& quantized_rows() {
  thread_local QuantizedRows rows;
  return rows;
}

float bf16_float(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// bfloat16 tile: out[i][j] = sum over k of a[i][k] * widened b[k][j], in float32 vector types (the
// build's widest: vpmovzxwd, a shift and FMA on AVX2). B is the sliver's bf16 rows, widened as the
// tile reads them, or the same rows widened beforehand into floats: the sums are the same.
typedef float F8 __attribute__((vector_size(32)));
typedef uint32_t U8 __attribute__((vector_size(32)));
typedef uint16_t H8 __attribute__((vector_size(16)));

// (Through a reference: a 32-byte vector returned by value has no stable ABI without AVX.)
void widen(const uint16_t* p, F8& f) {
  H8 h;
  std::memcpy(&h, p, sizeof h);
  const U8 u = __builtin_convertvector(h, U8) << 16;
  std::memcpy(&f, &u, sizeof f);
}
void widen(const float* p, F8& f) { std::memcpy(&f, p, sizeof f); }

// out[i][j] += sum over k of a[i][k] * widened b[k][j] for MR rows, each sum continued from out
// and taken over k in order: K split into blocks gives the same bits as K in one call.
template <int MR, class B>
void bf16_tile(int K, const float* a, int lda, const B* b, float (*out)[kQN]) {
  F8 sum[MR][2];
  for (int i = 0; i < MR; ++i) std::memcpy(sum[i], out[i], sizeof(float) * kQN);
  for (int k = 0; k < K; ++k, b += kQN) {
    F8 b0, b1;
    widen(b, b0);
    widen(b + 8, b1);
    for (int i = 0; i < MR; ++i) {
      const float x = a[static_cast<ptrdiff_t>(i) * lda + k];
      sum[i][0] += x * b0;
      sum[i][1] += x * b1;
    }
  }
  for (int i = 0; i < MR; ++i) std::memcpy(out[i], sum[i], sizeof(float) * kQN);
}

template <class B>
using Bf16Tile = void (*)(int, const float*, int, const B*, float (*)[kQN]);
template <class B, size_t... R>
constexpr std::array<Bf16Tile<B>, sizeof...(R)> bf16_tiles(std::index_sequence<R...>) {
  return {bf16_tile<int(R) + 1, B>...};
}
// Tiles of up to kQR rows that widen the sliver's bf16 rows as they read them, and tiles of up to
// kWideRows rows over rows widened beforehand: 12 sums in flight, enough independent FMAs to keep
// two FMA pipes busy through their latency (on Zen 2, 8 chains of FMA ran 5.3 G a second, 12
// chains 6.7 G).
constexpr int kWideRows = 6;
constexpr auto kStreamTiles = bf16_tiles<uint16_t>(std::make_index_sequence<kQR>());
constexpr auto kWideTiles = bf16_tiles<float>(std::make_index_sequence<kWideRows>());
// k per block of the widened tiles: a block of the sliver (16 KiB) stays in L1 across its rows.
constexpr int kWideBlock = 256;

}  // namespace

const char* weight_type_name(WeightType type) {
  switch (type) {
    case WeightType::F32:
      return "float32";
    case WeightType::Int8:
      return "int8";
    case WeightType::Bf16:
      return "bf16";
  }
  return "?";
}

float quantize_row(const float* x, int n, int8_t* q) {
  // The largest magnitude, 8 lanes at a time (a float max reduction is not vectorised for us, and
  // one chain of scalar maxima waits on each other's latency); probe: NaN once x holds a NaN or an
  // infinity. The maximum is exact in any order.
  F8 max8 = {}, probe8 = {};
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    F8 v;
    std::memcpy(&v, x + k, sizeof v);
    const F8 a = v < 0.0f ? -v : v;
    max8 = max8 > a ? max8 : a;
    probe8 += v * 0.0f;
  }
  float max = 0.0f, probe = 0.0f;
  for (int j = 0; j < 8; ++j) max = std::max(max, max8[j]), probe += probe8[j];
  for (; k < n; ++k) max = std::max(max, std::fabs(x[k])), probe += x[k] * 0.0f;
  if (probe != 0.0f) {
    std::fill(q, q + n, int8_t(0));
    return std::numeric_limits<float>::quiet_NaN();
  }
  const float scale = max > 0.0f ? max / 127.0f : 1.0f, inv = 1.0f / scale;
  for (int k = 0; k < n; ++k)
    q[k] = int8_t(std::clamp(std::nearbyint(x[k] * inv), -127.0f, 127.0f));
  return scale;
}

const char* int8_kernel() { return int8().name; }

PackedInt8::PackedInt8(int K, int N, const float* W, int ld, const float* scales)
    : K_(K),
      N_(N),
      groups_((K + kGroup - 1) / kGroup),
      q_(size_t(slivers_of(N)) * groups_ * kQN * kGroup, 0),
      scales_(scales, scales + N),
      sums_(size_t(slivers_of(N)) * kQN, 0) {
  for (int n = 0; n < N; ++n) {
    check_scale(scales[n], n);
    int8_t* sliver = q_.data() + size_t(n / kQN) * groups_ * kQN * kGroup + (n % kQN) * kGroup;
    for (int k = 0; k < K; ++k) {
      // In double: a float quotient may round onto a tie (77.4999963 to 77.5) and then away.
      const double v = std::nearbyint(double(W[size_t(n) * ld + k]) / scales[n]);
      const int8_t q = std::isnan(v) ? 0 : int8_t(std::clamp(v, -127.0, 127.0));
      sliver[size_t(k / kGroup) * kQN * kGroup + k % kGroup] = q;
      sums_[n] += q;
    }
  }
}

const Int8Tiles* int8_vnni_tiles_emulated() {
#if defined(__AVX2__)
  static const Int8Tiles tiles = vnni_tiles<EmulatedDot>("vnni-emulated");
  return &tiles;
#else
  return nullptr;
#endif
}

void gemm_int8(int M, const float* A, int lda, const PackedInt8& B, float beta, float* C, int ldc,
               const Int8Tiles* tiles) {
  if (M <= 0 || B.N_ <= 0) return;
  const int K = B.K_, ldq = B.groups_ * kGroup;
  QuantizedRows& rows = quantized_rows();
  rows.q.assign(size_t(M) * ldq, 0);
  rows.scale.resize(M);
  for (int i = 0; i < M; ++i)
    rows.scale[i] =
        quantize_row(A + static_cast<ptrdiff_t>(i) * lda, K, rows.q.data() + size_t(i) * ldq);
  const int8_t* q = rows.q.data();
  const float* sa = rows.scale.data();
  const Int8Tiles& kernel = tiles ? *tiles : int8();
  sliver_products(M, B.N_, K, beta, C, ldc, [&](int s, int i0, int mr, float(*out)[kQN]) {
    int32_t acc[kQR * kQN];
    kernel.tiles[mr - 1](B.groups_, q + size_t(i0) * ldq, ldq,
                         B.q_.data() + size_t(s) * B.groups_ * kQN * kGroup, acc);
    const int n0 = s * kQN, nr = std::min(kQN, B.N_ - n0);
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < nr; ++j) {
        const int32_t sum = acc[i * kQN + j] - (kernel.offset ? 128 * B.sums_[n0 + j] : 0);
        out[i][j] = sa[i0 + i] * B.scales_[n0 + j] * float(sum);
      }
  });
}

uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if (std::isnan(x)) return uint16_t((u >> 16) | 0x40);
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

float round_bf16(float x) { return bf16_float(bf16_bits(x)); }

PackedBf16::PackedBf16(int K, int N, const float* W, int ld)
    : K_(K), N_(N), b_(size_t(slivers_of(N)) * K * kQN, 0) {
  for (int n = 0; n < N; ++n) {
    uint16_t* sliver = b_.data() + size_t(n / kQN) * K * kQN + n % kQN;
    for (int k = 0; k < K; ++k) sliver[size_t(k) * kQN] = bf16_bits(W[size_t(n) * ld + k]);
  }
}

void gemm_bf16(int M, const float* A, int lda, const PackedBf16& B, float beta, float* C, int ldc) {
  if (M <= 0 || B.N_ <= 0) return;
  const int K = B.K_;
  // A product of one tile streams the bf16 sliver (half float32's bytes: what batch-1 generation
  // is bound by). A product of more tiles widens each sliver once, on the thread that takes it, and
  // at its first tile computes all of its rows, K in blocks (kWideBlock) that stay in L1 while
  // tiles of kWideRows rows carry their sums from block to block; the later tiles copy theirs.
  sliver_products(M, B.N_, K, beta, C, ldc, [&](int s, int i0, int mr, float(*out)[kQN]) {
    const uint16_t* sliver = B.b_.data() + size_t(s) * K * kQN;
    if (M <= kQR) {
      std::fill_n(&out[0][0], kQR * kQN, 0.0f);
      return kStreamTiles[mr - 1](K, A, lda, sliver, out);
    }
    thread_local std::vector<float> wide, sums;
    if (i0 == 0) {  // the tiles of a sliver run in order on one thread, from row 0
      wide.resize(size_t(K) * kQN);
      for (size_t j = 0; j < wide.size(); j += 8) {  // K * kQN: whole vectors of 8
        F8 f;
        widen(sliver + j, f);
        std::memcpy(&wide[j], &f, sizeof f);
      }
      sums.assign(size_t(M) * kQN, 0.0f);
      for (int k0 = 0; k0 < K; k0 += kWideBlock)
        for (int r0 = 0; r0 < M; r0 += kWideRows)
          kWideTiles[std::min(kWideRows, M - r0) - 1](
              std::min(kWideBlock, K - k0), A + static_cast<ptrdiff_t>(r0) * lda + k0, lda,
              wide.data() + size_t(k0) * kQN,
              reinterpret_cast<float(*)[kQN]>(sums.data() + size_t(r0) * kQN));
    }
    std::memcpy(out, sums.data() + size_t(i0) * kQN, sizeof(float) * kQN * mr);
  });
}

namespace {

std::variant<PackedMatrix, PackedInt8, PackedBf16> pack(WeightType type, int K, int N,
                                                        const float* W, int ld,
                                                        const float* scales) {
  if (type == WeightType::Int8) {
    if (!scales) throw std::invalid_argument("rnnkit int8 weights: no scales given");
    return PackedInt8(K, N, W, ld, scales);
  }
  if (type == WeightType::Bf16) return PackedBf16(K, N, W, ld);
  PackedMatrix m(K, N);
  m.set(0, 0, K, N, true, W, ld);
  return m;
}

}  // namespace

PackedWeights::PackedWeights(WeightType type, int K, int N, const float* W, int ld,
                             const float* scales)
    : m_(pack(type, K, N, W, ld, scales)) {}

int PackedWeights::rows() const {
  return std::visit([](const auto& m) { return m.rows(); }, m_);
}

int PackedWeights::cols() const {
  return std::visit([](const auto& m) { return m.cols(); }, m_);
}

size_t PackedWeights::bytes() const {
  return std::visit([](const auto& m) { return m.bytes(); }, m_);
}

void PackedWeights::product(int M, const float* A, int lda, float beta, float* C, int ldc) const {
  if (const auto* m = std::get_if<PackedMatrix>(&m_))
    gemm_packed(M, A, lda, *m, beta, C, ldc);
  else if (const auto* q = std::get_if<PackedInt8>(&m_))
    gemm_int8(M, A, lda, *q, beta, C, ldc);
  else
    gemm_bf16(M, A, lda, std::get<PackedBf16>(m_), beta, C, ldc);
}

}  // namespace rnnkit
