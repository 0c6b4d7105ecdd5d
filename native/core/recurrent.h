// Recurrent layer stacks (vanilla RNN, LSTM, GRU): the whole sequence forward, and the whole
// sequence backward, each in one call.
//
// Layout (time-major, row-major, float32):
//   x  [T, B, I]      input sequence
//   y  [T, B, H]      output of the last layer
//   h0, hT, c0, cT    [L, B, H] initial / final hidden (and LSTM cell) state of every layer
//   lengths [B]       valid steps of each row (1..T), or null for all T. Steps t >= lengths[b]
//                     leave row b's state unchanged and write zeros to its output, so a padded
//                     batch gives each row the result it gets alone (PyTorch's packed sequences).
//
// Parameters: one flat buffer, layer after layer, each layer
//   w_ih [G*H, I_l], w_hh [G*H, H], b_ih [G*H], b_hh [G*H]     (I_0 = I, I_l = H for l >= 1)
// with G gates stacked along the rows in PyTorch's order:
//   RNN  G=1: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu
//   LSTM G=4 (i, f, g, o): i,f,o = sigmoid, g = tanh; c' = f*c + i*g; h' = o*tanh(c')
//   GRU  G=3 (r, z, n): r,z = sigmoid(W_i* x + b_i* + W_h* h + b_h*);
//        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h
//        (ONNX's linear_before_reset=1)
//
// Between layers (training only): dropout with probability p on the output of layers 0..L-2,
// with the keep mask a pure function of (seed, layer, element) so backward regenerates it.
// Residual (when set): for layers l >= 1 the layer's input is added to its output before dropout.
//   out_l = rnn_l(in_l) (+ in_l if residual and l >= 1);  in_{l+1} = dropout(out_l)
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gemm.h"
#include "mixed.h"
#include "qgemm.h"

namespace rnnkit {

enum class CellType : int { RnnTanh = 0, RnnRelu = 1, Lstm = 2, Gru = 3 };

// Gates per cell: 1 (RNN), 4 (LSTM), 3 (GRU).
int gate_count(CellType cell);

// The cell's name as the JS API spells it: "rnn_tanh", "rnn_relu", "lstm", "gru".
inline const char* cell_name(CellType cell) {
  switch (cell) {
    case CellType::RnnTanh:
      return "rnn_tanh";
    case CellType::RnnRelu:
      return "rnn_relu";
    case CellType::Lstm:
      return "lstm";
    case CellType::Gru:
      return "gru";
  }
  return "?";
}

struct StackShape {
  CellType cell;
  int T, B, I, H, L;
  float dropout;  // 0 <= p < 1, used only when training
  bool residual;  // add each layer's input to its output for layers l >= 1
  bool training;  // keep in the workspace what backward needs
  uint64_t seed;  // dropout masks
  // The matrix products' precision (mixed.h), forward and backward; the cells, the state and the
  // gradients stay float32 whatever it is.
  Precision precision = Precision::F32;
};

// Floats in the flat parameter buffer.
size_t stack_param_count(CellType cell, int I, int H, int L);
// Offset (in floats) of layer l's w_ih in the flat buffer; w_hh, b_ih and b_hh follow it.
size_t stack_layer_offset(CellType cell, int I, int H, int l);
// Floats the workspace must hold. In training the workspace keeps what backward needs between
// forward and backward, and also holds backward's scratch; in inference it is scratch only.
size_t stack_workspace_size(const StackShape& s);

// h0/c0 null: zero initial state. cT/c0/dcT/dc0 are for LSTM only (null otherwise).
void stack_forward(const StackShape& s, const float* params, const float* x, const int32_t* lengths,
                   const float* h0, const float* c0, float* y, float* hT, float* cT, float* ws);

// Takes the same params, x, lengths, h0, c0 and ws that forward got (training=true).
// dy [T,B,H]; dhT/dcT [L,B,H] or null for zero. Writes dx [T,B,I] (null: not needed),
// dh0/dc0 [L,B,H] (null: not needed); ADDS the parameter gradients into dparams.
// ws is modified (backward uses its scratch part).
void stack_backward(const StackShape& s, const float* params, const float* x,
                    const int32_t* lengths, const float* h0, const float* c0, float* ws,
                    const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0,
                    float* dc0, float* dparams);

// An embedding and the stack it feeds, packed once for inference one step at a time, which a
// generation loop runs hundreds of times with the same weights. In float32, per layer the input and
// recurrent weights sit side by side, so a step is one product [x, h] [w_ih, w_hh]^T per layer
// (GRU: three, as its n gate keeps W_in x and W_hn h apart), in gemm_packed's layout, followed by
// the cell. int8 and bfloat16 weights (qgemm.h) multiply x and h apart, as each weight row of w_ih
// and of w_hh has a scale of its own. With a small vocabulary (V <= 2I) the embedding is folded
// into layer 0's input weights: a table holds each token's layer-0 input pre-activations (float32,
// from the weights as given), and layer 0 multiplies h alone. No dropout. With feed > 0, layer 0's
// input is the token's embedding beside `feed` more floats per row that the caller gives at every
// step (a seq2seq decoder's previous attentional state); the embedding is not folded then. Copies
// all it needs from embedding, params and scales.
class PackedStack {
 public:
  // embedding [V, I - feed]; params as stack_forward takes them. For int8 weights, scales holds one
  // per row of each layer's w_ih then w_hh ([L, 2, G*H]), and params the weights as q * scale.
  PackedStack(CellType cell, int V, int I, int H, int L, bool residual, const float* embedding,
              const float* params, WeightType type = WeightType::F32, const float* scales = nullptr,
              int feed = 0);
  // Floats of workspace that step needs for B rows.
  size_t workspace_size(int B) const;
  // Bytes of the packed weights, the table of the folded (or plain) embedding and the biases.
  size_t bytes() const;
  // One time step of B rows fed tokens [B] (ids in [0, V)): y [B, H], and the state h (and, for
  // LSTM, c) of each layer l, rows [B, H] at l * layer_stride (B * H for a whole [L, B, H] state;
  // more to step the first B rows of a larger batch), advanced in place; feed [B, feed] the
  // rest of layer 0's input (null without feed). Equals embedding_forward then stack_forward at
  // T = 1 up to float rounding (float32 weights); a row's result does not depend on B or on the
  // other rows.
  void step(int B, const int32_t* tokens, float* h, float* c, size_t layer_stride, float* y,
            float* ws, const float* feed = nullptr) const;

  // Columns [c_col, c_col + m.cols()) of a layer's pre-activations are columns
  // [a_col, a_col + m.rows()) of [x, h] times m, added to what they hold when `accumulate`.
  struct Product {
    int a_col, c_col;
    bool accumulate;
    PackedWeights m;
  };
  // What Cell::products packs a layer from.
  struct LayerWeights {
    WeightType type;
    int I, H;
    const float *w_ih, *w_hh;
    const float *s_ih, *s_hh;  // int8 only
  };

 private:
  struct Layer {
    std::vector<Product> products;
    int width;                // pre-activations per row
    std::vector<float> bias;  // what the cell adds: b_ih (+ b_hh), then GRU's b_hn
  };
  // Columns of [x, h] that layer l multiplies before h: none for a folded layer 0.
  int input_width(int l) const { return l > 0 ? H_ : folded_ ? 0 : I_; }

  CellType cell_;
  int I_, H_, feed_;
  bool residual_, folded_;
  // Folded: each token's layer-0 pre-activations from its input, [V, layers_[0].width]; else the
  // embedding [V, I - feed].
  std::vector<float> table_;
  std::vector<Layer> layers_;
};

}  // namespace rnnkit
