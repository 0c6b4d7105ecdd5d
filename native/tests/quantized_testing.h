// Weights held as a quantized model holds them (qgemm.h): each row of a matrix rounded in place to
// q * scale (int8, with the row's scale kept) or to the nearest bfloat16, for the tests that run
// quantized products against float32 ones on the same weights (test_qgemm.cpp, test_seq2seq.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "qgemm.h"

namespace quantized_testing {

using namespace rnnkit;

// Rounds W [rows, cols] (row r at W + r * ld) in place; int8 writes each row's scale to
// scales[r], bf16 leaves scales alone (it may be null).
inline void hold(WeightType type, float* W, int rows, int cols, int ld, float* scales) {
  std::vector<int8_t> q(cols);
  for (int r = 0; r < rows; ++r) {
    float* row = W + size_t(r) * ld;
    if (type == WeightType::Bf16) {
      for (int k = 0; k < cols; ++k) row[k] = round_bf16(row[k]);
      continue;
    }
    const float s = quantize_row(row, cols, q.data());
    scales[r] = s;
    for (int k = 0; k < cols; ++k) row[k] = float(q[k]) * s;
  }
}

}  // namespace quantized_testing
