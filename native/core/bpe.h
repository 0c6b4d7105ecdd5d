// Byte-level BPE: the GPT-2-style pre-tokenizer, training (merge learning) and encoding.
//
// Text is a sequence of code points. JS strings come in as UTF-16 and may hold lone surrogates;
// they are kept as the code points U+D800..U+DFFF and written to bytes as WTF-8 (the three-byte
// form UTF-8 would use), so that every JS string has a byte form and round-trips exactly. Corpus
// files are strict UTF-8.
//
// Ids: 0..255 are the bytes; merge k (0-based) makes id 256 + k. A merge is a pair of ids.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rnnkit {

// Unicode classes the pre-tokenizer reads: sorted, disjoint, inclusive code point ranges
// [lo0, hi0, lo1, hi1, ...] of letters (\p{L}), numbers (\p{N}) and whitespace (\s). The caller
// supplies them (from the JS engine's Unicode tables) so that the pre-tokenizer agrees with the
// JS regular expression it mirrors.
struct CharClasses {
  std::vector<uint32_t> letter, number, space;
};

enum class CharClass : uint8_t { Other, Letter, Number, Space };

// Code points -> pre-token boundaries. Mirrors the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// tried in that order at each position. `ends` receives the end index of each piece, so piece i
// is [ends[i-1], ends[i]) with ends[-1] = 0.
class PreTokenizer {
 public:
  explicit PreTokenizer(const CharClasses& classes);
  void split(const uint32_t* cps, size_t n, std::vector<size_t>& ends) const;
  CharClass classify(uint32_t cp) const;

 private:
  size_t match(const uint32_t* cps, size_t n, size_t i) const;
  CharClass lookup(uint32_t cp) const;
  std::vector<uint8_t> table_;  // class per code point below 0x10000
  CharClasses classes_;         // for the rest
};

// UTF-16 (with lone surrogates allowed) -> code points.
void utf16_to_code_points(const char16_t* s, size_t n, std::vector<uint32_t>& out);
// Strict UTF-8 -> code points; throws std::invalid_argument naming the byte offset of the first
// invalid sequence.
void utf8_to_code_points(const char* s, size_t n, std::vector<uint32_t>& out);
// Appends the (WTF-8) bytes of code points [cps, cps + n).
void append_wtf8(const uint32_t* cps, size_t n, std::string& out);

struct BpeTrainConfig {
  int max_merges = 0;         // stop after this many merges
  int64_t min_frequency = 2;  // stop when the most frequent pair occurs fewer times
};

// Called now and then with (merges done, max merges); may throw to stop training.
using BpeProgress = std::function<void(int done, int total)>;

// Pre-tokenized word counts: the bytes of each distinct piece and how often it occurs.
struct WordCounts {
  std::vector<std::string> words;
  std::vector<int64_t> counts;
  std::unordered_map<std::string, size_t> index;  // word -> position in `words`
  void add_text(const PreTokenizer& pre, const uint32_t* cps, size_t n);
};

// Learns merges from word counts. Each step merges the most frequent adjacent pair (counted with
// word multiplicity); ties go to the pair with the smaller left id, then the smaller right id.
// Occurrences in a word are merged left to right without overlap, as encoding does.
std::vector<std::pair<int32_t, int32_t>> bpe_train(const WordCounts& wc, const BpeTrainConfig& cfg,
                                                   const BpeProgress& progress);

// Encodes with learned merges: within each pre-token, the pair of lowest merge rank is merged
// first, the leftmost occurrence first among equals, until no learned pair is left.
class BpeEncoder {
 public:
  explicit BpeEncoder(const std::vector<std::pair<int32_t, int32_t>>& merges);
  // Appends the ids of one pre-token's bytes.
  void encode_word(const uint8_t* bytes, size_t n, std::vector<int32_t>& out) const;
  // Pre-tokenizes code points and appends the ids of every piece; repeated pieces are looked up
  // in a cache local to the call.
  void encode(const PreTokenizer& pre, const uint32_t* cps, size_t n,
              std::vector<int32_t>& out) const;
  size_t merge_count() const { return merge_count_; }

 private:
  size_t merge_count_;
  // (left << 32 | right) -> rank; the merged id is 256 + rank.
  std::unordered_map<uint64_t, int32_t> ranks_;
  int32_t rank(int32_t left, int32_t right) const;
};

}  // namespace rnnkit
