// The token loop of batched generation apart from the model that computes the logits: the rows
// being generated (each with its prompt, sampler, random stream, stop sequences and token limit),
// their recurrent state, what each row is fed next, and the sampling, stop matching, finishing
// and retiring of rows with their state. lm_generate (generate.h) drives it with the packed native
// stack; the addon hands it to JS, where an onnxruntime session or the serving engine drives it,
// so every backend samples, stops and finishes alike (as BeamSearch does for seq2seq).
//
// One round: plan() chooses what each row reads next (prompt tokens in chunks, or the token it
// sampled last), the model advances the planned rows' state over those tokens (read_state /
// write_state, or h() and c() in place) and computes the logits after the rows that want them,
// sample() turns those into tokens, and retire() lets the ended rows go.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "sampling.h"

namespace rnnkit {

// B token sequences laid end to end: sequence b is tokens[offsets[b], offsets[b + 1]).
struct TokenSpans {
  const int32_t* tokens;
  const int32_t* offsets;  // [count + 1], offsets[0] = 0, non-decreasing
  int count;
};

// kFinishError: no logit of the row's last step was finite (sample_token's kNoFiniteLogit), so
// nothing could be sampled; the row keeps the tokens it had.
enum FinishReason : int32_t {
  kFinishLength = 0,
  kFinishStop = 1,
  kFinishCancelled = 2,
  kFinishError = 3
};

// A set of stop sequences (each non-empty), copied; the rows of one request share one.
class StopSequences {
 public:
  explicit StopSequences(const TokenSpans& stops);
  bool empty() const { return offsets_.size() < 2; }
  // Length of the longest stop sequence that gen[0, n) ends with; 0 for none. The longest,
  // because when "b" and "ab" both match the user produced all of "ab".
  int match(const int32_t* gen, int n) const;

 private:
  std::vector<int32_t> tokens_, offsets_;
};

struct LoopRowConfig {
  int max_tokens;  // >= 1
  SamplerConfig sampler;
  Rng rng;
  std::shared_ptr<const StopSequences> stops;  // null for none
  // The rows of one request share a group, and with it plan()'s budget of prompt tokens.
  int group;
};

// What one round feeds: rows[k] (row indices, increasing) read tokens[offsets[k], offsets[k+1])
// (at least one each) from their state; the logits after the last token are wanted for the fed
// rows at positions want[i] (indices into rows), in that order.
struct Feed {
  std::vector<int32_t> rows, tokens, offsets, want;
  int size() const { return static_cast<int>(rows.size()); }
  int length(int k) const { return offsets[k + 1] - offsets[k]; }
};

// A row as it leaves the loop: its generated tokens, of which the first `length` are kept (a
// matched stop sequence is dropped), and why it ended.
struct RetiredRow {
  int32_t id;
  const int32_t* tokens;
  int length;
  FinishReason finish;
};

class TokenLoop {
 public:
  // V tokens; a state of L layers of H floats per row, and as much again for the LSTM's c.
  TokenLoop(int V, int L, int H, bool lstm);

  int vocab_size() const { return V_; }
  int layers() const { return L_; }
  int hidden_size() const { return H_; }
  bool lstm() const { return lstm_; }
  int rows() const { return static_cast<int>(rows_.size()); }
  // Each row's id, as add() gave it, in row order.
  const int32_t* ids() const { return ids_.data(); }
  // The state of every row, h [L, rows(), H] (and for LSTM c, else null), for a model that
  // advances rows in place.
  float* h();
  float* c();

  // Appends a row with a zero state that reads prompt[0, length) (length >= 1, ids in [0, V))
  // before it samples. Its index is rows() before the call; indices hold until retire().
  void add(int32_t id, const int32_t* prompt, int length, const LoopRowConfig& cfg);

  // Plans one round into `feed`: each row that sampled reads its token; each row still priming
  // reads up to `chunk` prompt tokens, or up to `shared_chunk` when some row reads a sampled
  // token this round (every prompt token past the first then costs the generating rows a
  // recurrent step), its group reading at most `budget` prompt tokens in all (rows earlier in
  // the loop first; a row left nothing waits for the next round). Rows that read their last
  // prompt token or their sampled token want logits. Ended rows, and rows that wait to sample
  // from the logits of a round already fed, read nothing.
  void plan(int chunk, int shared_chunk, int budget, Feed& feed);

  // Copies the state of rows[0, k) to h [L, k, H] (and c, for LSTM); write_state copies it back.
  void read_state(const int32_t* rows, int k, float* h, float* c);
  void write_state(const int32_t* rows, int k, const float* h, const float* c);

  // For each wanted row of `feed` (the last plan) samples its next token from its logits row
  // (logits [want, V], overwritten); a row ends when its generated tokens end with one of its
  // stop sequences, or number max_tokens, or with kFinishError when none of its logits is finite
  // (its token is then kNoFiniteLogit, -1). Rows that ended since the plan (cancelled) are passed
  // over; the n sampled rows' ids and tokens go to ids[0, n) and tokens[0, n). Returns n.
  int sample(const Feed& feed, float* logits, int32_t* ids, int32_t* tokens);
  // Ends row i as cancelled (no effect on a row that has ended).
  void cancel(int i);
  bool ended(int i) const { return rows_[i].finish >= 0; }

  // Removes the ended rows, the state of the others moving up over theirs (their order kept),
  // and gives each to out(const RetiredRow&) before it goes. Returns how many went.
  template <typename Out>
  int retire(Out&& out) {
    int gone = 0;
    for (const Row& r : rows_)
      if (r.finish >= 0)
        ++gone, out(RetiredRow{r.id, r.seq.data() + r.prompt, r.generated - r.stop,
                               static_cast<FinishReason>(r.finish)});
    if (gone > 0) drop_ended();
    return gone;
  }

 private:
  struct Row {
    int32_t id;
    int prompt;
    int fed = 0;  // tokens of seq read so far
    int generated = 0, stop = 0;
    int32_t finish = -1;  // a FinishReason once ended
    LoopRowConfig cfg;
    std::vector<int32_t> seq;  // prompt, then the generated tokens
  };
  void drop_ended();
  // Grows the state to rows() rows: the rows added since hold zeros.
  void sync_state();

  const int V_, L_, H_;
  const bool lstm_;
  std::vector<Row> rows_;
  std::vector<int32_t> ids_;
  std::vector<float> h_, c_;
  int state_rows_ = 0;
  std::vector<int32_t> keep_;
  std::unordered_map<int, int> spent_;  // plan's prompt tokens per group
  SamplerScratch scratch_;
};

}  // namespace rnnkit
