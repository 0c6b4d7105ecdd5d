// Byte-level BPE tests: the pre-tokenizer on the GPT-2 pattern's cases, UTF-8/UTF-16/WTF-8
// conversions, and training and encoding against a brute-force reference that recounts every pair
// at every step and rescans every word for the lowest-ranked pair.
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bpe.h"
#include "check.h"

using rnnkit::BpeEncoder;
using rnnkit::BpeTrainConfig;
using rnnkit::CharClasses;
using rnnkit::PreTokenizer;
using rnnkit::WordCounts;

namespace {

// ASCII letters and digits, ASCII whitespace, plus a few non-ASCII ranges to cover the lookup.
CharClasses test_classes() {
  CharClasses c;
  c.letter = {'A', 'Z', 'a', 'z', 0xE0, 0xFF, 0x4E00, 0x9FFF, 0x1D400, 0x1D7CB};
  c.number = {'0', '9', 0x1D7CE, 0x1D7FF};
  c.space = {'\t', '\r', ' ', ' ', 0x3000, 0x3000};
  return c;
}

std::vector<uint32_t> cps(const std::string& utf8) {
  std::vector<uint32_t> out;
  rnnkit::utf8_to_code_points(utf8.data(), utf8.size(), out);
  return out;
}

std::vector<std::string> split(const PreTokenizer& pre, const std::string& text) {
  std::vector<uint32_t> c = cps(text);
  std::vector<size_t> ends;
  pre.split(c.data(), c.size(), ends);
  std::vector<std::string> pieces;
  size_t start = 0;
  for (size_t e : ends) {
    std::string s;
    rnnkit::append_wtf8(c.data() + start, e - start, s);
    pieces.push_back(s);
    start = e;
  }
  return pieces;
}

using Merges = std::vector<std::pair<int32_t, int32_t>>;

// Recounts all pairs each step; the most frequent wins, ties to the smaller (left, right).
Merges reference_train(const WordCounts& wc, int max_merges, int64_t min_frequency) {
  std::vector<std::vector<int32_t>> words;
  for (const std::string& w : wc.words) {
    std::vector<int32_t> ids;
    for (unsigned char b : w) ids.push_back(b);
    words.push_back(ids);
  }
  Merges merges;
  while (int(merges.size()) < max_merges) {
    std::map<std::pair<int32_t, int32_t>, int64_t> count;
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t i = 0; i + 1 < words[w].size(); ++i)
        count[{words[w][i], words[w][i + 1]}] += wc.counts[w];
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [p, c] : count)  // map order: smaller pair first, so '>' keeps the tie rule
      if (c > best_count) best = p, best_count = c;
    if (best_count == 0 || best_count < min_frequency) break;
    const int32_t id = 256 + int32_t(merges.size());
    merges.push_back(best);
    for (auto& w : words) {
      std::vector<int32_t> out;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == best.first && w[i + 1] == best.second) {
          out.push_back(id);
          ++i;
        } else {
          out.push_back(w[i]);
        }
      }
      w = out;
    }
  }
  return merges;
}

// Repeatedly merges the leftmost occurrence of the lowest-ranked pair present.
std::vector<int32_t> reference_encode(const Merges& merges, const std::string& word) {
  std::vector<int32_t> ids;
  for (unsigned char b : word) ids.push_back(b);
  for (;;) {
    size_t best_rank = merges.size(), at = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i)
      for (size_t r = 0; r < best_rank; ++r)
        if (merges[r].first == ids[i] && merges[r].second == ids[i + 1]) best_rank = r, at = i;
    if (best_rank == merges.size()) return ids;
    ids[at] = 256 + int32_t(best_rank);
    ids.erase(ids.begin() + long(at) + 1);
  }
}

const char* kCorpus =
    "The quick brown fox jumps over the lazy dog. The dog didn't care; the fox's jump was "
    "low.\n\n  Numbers: 12345 and 678, 90.   Spaces   before words.\tTabs\there.\n"
    "Ünïcödé wörds ànd 漢字漢字 mixed with 𝐀𝐁𝐂 and 𝟏𝟐 digits!!! ... ??? the the the end\n";

// The word counts of kCorpus and a training configuration.
WordCounts corpus_counts() {
  PreTokenizer pre(test_classes());
  std::vector<uint32_t> text = cps(kCorpus);
  WordCounts wc;
  wc.add_text(pre, text.data(), text.size());
  return wc;
}

BpeTrainConfig config(int max_merges, int64_t min_frequency) {
  BpeTrainConfig cfg;
  cfg.max_merges = max_merges;
  cfg.min_frequency = min_frequency;
  return cfg;
}

}  // namespace

TEST(pretokenizer_follows_gpt2_pattern) {
  PreTokenizer pre(test_classes());
  using V = std::vector<std::string>;
  CHECK(split(pre, "Hello world") == (V{"Hello", " world"}));
  CHECK(split(pre, "don't you're I'll we've he'd 's") ==
        (V{"don", "'t", " you", "'re", " I", "'ll", " we", "'ve", " he", "'d", " '", "s"}));
  CHECK(split(pre, "a  b") == (V{"a", " ", " b"}));
  CHECK(split(pre, "a   \n b") == (V{"a", "   \n", " b"}));
  CHECK(split(pre, "end.  ") == (V{"end", ".", "  "}));
  CHECK(split(pre, "x\ny") == (V{"x", "\n", "y"}));
  CHECK(split(pre, "abc123!!? def") == (V{"abc", "123", "!!?", " def"}));
  CHECK(split(pre, " 42 ...") == (V{" 42", " ..."}));
  CHECK(split(pre, "漢字 𝐀𝐁 𝟏𝟐") == (V{"漢字", " 𝐀𝐁", " 𝟏𝟐"}));
  CHECK(split(pre, "") == V{});
}

TEST(utf8_is_strict_and_utf16_keeps_lone_surrogates) {
  bool threw = false;
  std::vector<uint32_t> out;
  for (const std::string& bad :
       {std::string("\xC0\xAF"), std::string("\xED\xA0\x80"), std::string("ab\xE2\x82"),
        std::string("\xF4\x90\x80\x80"), std::string("\x80")}) {
    threw = false;
    try {
      rnnkit::utf8_to_code_points(bad.data(), bad.size(), out);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    CHECK(threw);
  }
  const char16_t s[] = {u'a', 0xD83D, 0xDE00, 0xD800, u'b', 0xDC00};
  rnnkit::utf16_to_code_points(s, 6, out);
  CHECK(out == (std::vector<uint32_t>{'a', 0x1F600, 0xD800, 'b', 0xDC00}));
  std::string w;
  rnnkit::append_wtf8(out.data(), out.size(), w);
  CHECK(w ==
        "a\xF0\x9F\x98\x80\xED\xA0\x80"
        "b\xED\xB0\x80");
}

TEST(training_matches_brute_force_reference) {
  const WordCounts wc = corpus_counts();
  for (int64_t min_frequency : {1, 2, 3}) {
    Merges got = rnnkit::bpe_train(wc, config(200, min_frequency), nullptr);
    Merges want = reference_train(wc, 200, min_frequency);
    CHECK(!got.empty());
    CHECK(got == want);
  }
}

TEST(training_reports_progress_and_stops_when_asked) {
  const WordCounts wc = corpus_counts();
  const BpeTrainConfig cfg = config(50, 1);
  int last = -1;
  rnnkit::bpe_train(wc, cfg, [&](int done, int total) {
    CHECK(total == 50 && done > last);
    last = done;
  });
  CHECK(last == 50);
  bool stopped = false;
  try {
    rnnkit::bpe_train(wc, cfg, [](int done, int) {
      if (done >= 10) throw std::runtime_error("stop");
    });
  } catch (const std::runtime_error&) {
    stopped = true;
  }
  CHECK(stopped);
}

TEST(encoding_matches_reference_and_round_trips) {
  PreTokenizer pre(test_classes());
  Merges merges = rnnkit::bpe_train(corpus_counts(), config(120, 1), nullptr);
  BpeEncoder enc(merges);
  // Each id's bytes, to decode.
  std::vector<std::string> bytes(256 + merges.size());
  for (int b = 0; b < 256; ++b) bytes[b] = std::string(1, char(b));
  for (size_t r = 0; r < merges.size(); ++r)
    bytes[256 + r] = bytes[merges[r].first] + bytes[merges[r].second];
  const std::string held_out = "The lazy fox jumps again, doesn't it? 漢字 aaaa  the end!!!\n";
  std::vector<uint32_t> c = cps(held_out);
  std::vector<int32_t> ids;
  enc.encode(pre, c.data(), c.size(), ids);
  std::vector<int32_t> want;
  for (const std::string& piece : split(pre, held_out)) {
    std::vector<int32_t> r = reference_encode(merges, piece);
    want.insert(want.end(), r.begin(), r.end());
  }
  CHECK(ids == want);
  std::string decoded;
  for (int32_t id : ids) decoded += bytes[id];
  CHECK(decoded == held_out);
  CHECK(ids.size() < held_out.size());
}

TEST(encoder_rejects_bad_merges) {
  for (const Merges& bad : {Merges{{0, 256}}, Merges{{-1, 3}}, Merges{{1, 2}, {1, 2}}}) {
    bool threw = false;
    try {
      BpeEncoder enc(bad);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    CHECK(threw);
  }
}

TEST_MAIN()
