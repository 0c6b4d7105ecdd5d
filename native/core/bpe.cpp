#include "bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <stdexcept>
#include <tuple>

namespace rnnkit {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}

bool in_ranges(const std::vector<uint32_t>& r, uint32_t cp) {
  // First range whose hi >= cp; ranges are [lo, hi] pairs flattened.
  size_t lo = 0, hi = r.size() / 2;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (r[2 * mid + 1] < cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < r.size() / 2 && r[2 * lo] <= cp;
}

}  // namespace

PreTokenizer::PreTokenizer(const CharClasses& classes) : table_(0x10000), classes_(classes) {
  for (const auto* r : {&classes.letter, &classes.number, &classes.space}) {
    if (r->size() % 2 != 0)
      throw std::invalid_argument("character class ranges must come in [lo, hi] pairs");
    for (size_t i = 0; i < r->size(); ++i)
      if ((*r)[i] > 0x10FFFF || (i > 0 && (*r)[i] < (*r)[i - 1] + (i % 2 == 0 ? 1 : 0)))
        throw std::invalid_argument("character class ranges must be sorted, disjoint code points");
  }
  for (uint32_t cp = 0; cp < 0x10000; ++cp) table_[cp] = static_cast<uint8_t>(lookup(cp));
}

CharClass PreTokenizer::lookup(uint32_t cp) const {
  if (in_ranges(classes_.letter, cp)) return CharClass::Letter;
  if (in_ranges(classes_.number, cp)) return CharClass::Number;
  if (in_ranges(classes_.space, cp)) return CharClass::Space;
  return CharClass::Other;
}

CharClass PreTokenizer::classify(uint32_t cp) const {
  return cp < 0x10000 ? static_cast<CharClass>(table_[cp]) : lookup(cp);
}

size_t PreTokenizer::match(const uint32_t* cps, size_t n, size_t i) const {
  const uint32_t c = cps[i];
  if (c == '\'' && i + 1 < n) {
    const uint32_t d = cps[i + 1];
    if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
    if (i + 2 < n) {
      const uint32_t e = cps[i + 2];
      if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return i + 3;
    }
  }
  // ' ?X+' for the letter, number and other classes: a space joins the run that follows it.
  size_t start = i;
  CharClass k = classify(c);
  if (c == ' ' && i + 1 < n && classify(cps[i + 1]) != CharClass::Space) {
    start = i + 1;
    k = classify(cps[start]);
  }
  if (k != CharClass::Space) {
    size_t j = start + 1;
    while (j < n && classify(cps[j]) == k) ++j;
    return j;
  }
  // '\s+(?!\S)' then '\s+': a whitespace run, less its last character when a non-space follows
  // and the run is longer than one (that character then goes with the next piece).
  size_t j = i + 1;
  while (j < n && classify(cps[j]) == CharClass::Space) ++j;
  return (j < n && j - i >= 2) ? j - 1 : j;
}

void PreTokenizer::split(const uint32_t* cps, size_t n, std::vector<size_t>& ends) const {
  ends.clear();
  for (size_t i = 0; i < n;) {
    i = match(cps, n, i);
    ends.push_back(i);
  }
}

void utf16_to_code_points(const char16_t* s, size_t n, std::vector<uint32_t>& out) {
  out.clear();
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = s[i];
    if (u >= 0xD800 && u < 0xDC00 && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] < 0xE000) {
      out.push_back(0x10000 + ((u - 0xD800) << 10) + (uint32_t(s[i + 1]) - 0xDC00));
      ++i;
    } else {
      out.push_back(u);  // lone surrogates stay as they are
    }
  }
}

void utf8_to_code_points(const char* s, size_t n, std::vector<uint32_t>& out) {
  out.clear();
  out.reserve(n);
  const auto* b = reinterpret_cast<const uint8_t*>(s);
  auto bad = [&](size_t at) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", b[at]);
    throw std::invalid_argument("the text is not valid UTF-8: the sequence at offset " +
                                std::to_string(at) + " (byte " + byte + ", line " +
                                std::to_string(1 + std::count(b, b + at, '\n')) +
                                ") is not a character");
  };
  for (size_t i = 0; i < n;) {
    const uint8_t c = b[i];
    uint32_t cp;
    size_t len;
    uint32_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      cp = c, len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F, len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F, len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07, len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      bad(i);
    }
    if (i + len > n) bad(i);
    for (size_t k = 1; k < len; ++k) {
      const uint8_t x = b[i + k];
      if (x < (k == 1 ? lo : 0x80) || x > (k == 1 ? hi : 0xBF)) bad(i);
      cp = (cp << 6) | (x & 0x3F);
    }
    out.push_back(cp);
    i += len;
  }
}

void append_wtf8(const uint32_t* cps, size_t n, std::string& out) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t c = cps[i];
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xC0 | (c >> 6));
      out += char(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += char(0xE0 | (c >> 12));
      out += char(0x80 | ((c >> 6) & 0x3F));
      out += char(0x80 | (c & 0x3F));
    } else {
      out += char(0xF0 | (c >> 18));
      out += char(0x80 | ((c >> 12) & 0x3F));
      out += char(0x80 | ((c >> 6) & 0x3F));
      out += char(0x80 | (c & 0x3F));
    }
  }
}

namespace {

// Calls f(bytes) with the WTF-8 bytes of each pre-token of the code points, in order.
template <typename F>
void for_each_piece(const PreTokenizer& pre, const uint32_t* cps, size_t n, F&& f) {
  std::vector<size_t> ends;
  pre.split(cps, n, ends);
  std::string word;
  size_t start = 0;
  for (size_t end : ends) {
    word.clear();
    append_wtf8(cps + start, end - start, word);
    start = end;
    f(word);
  }
}

}  // namespace

void WordCounts::add_text(const PreTokenizer& pre, const uint32_t* cps, size_t n) {
  for_each_piece(pre, cps, n, [&](const std::string& word) {
    auto it = index.find(word);
    if (it != index.end()) {
      ++counts[it->second];
    } else {
      index.emplace(word, words.size());
      words.push_back(word);
      counts.push_back(1);
    }
  });
}

std::vector<std::pair<int32_t, int32_t>> bpe_train(const WordCounts& wc, const BpeTrainConfig& cfg,
                                                   const BpeProgress& progress) {
  const size_t W = wc.words.size();
  std::vector<std::vector<int32_t>> words(W);
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // may list a word more than once
  for (size_t w = 0; w < W; ++w) {
    const std::string& s = wc.words[w];
    words[w].assign(s.begin(), s.end());
    for (int32_t& id : words[w]) id &= 0xFF;
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t k = pair_key(words[w][i], words[w][i + 1]);
      count[k] += wc.counts[w];
      where[k].push_back(int32_t(w));
    }
  }
  // Max-heap on (count, then the smaller key); entries go stale when a count changes and are
  // dropped when they reach the top with a count that is no longer the pair's.
  using Entry = std::pair<int64_t, uint64_t>;
  auto lower = [](const Entry& a, const Entry& b) {
    return a.first < b.first || (a.first == b.first && a.second > b.second);
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(lower)> heap(lower);
  for (const auto& [k, c] : count) heap.push({c, k});

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<int32_t> stamp(W, -1), merged;
  std::vector<uint64_t> touched;
  const int report_every = std::max(1, cfg.max_merges / 100);
  int reported = -1;
  while (int(merges.size()) < cfg.max_merges && !heap.empty()) {
    const auto [c, key] = heap.top();
    heap.pop();
    auto found = count.find(key);
    if (found == count.end() || found->second != c) continue;
    if (c < cfg.min_frequency) break;
    const int32_t a = int32_t(key >> 32), b = int32_t(key & 0xFFFFFFFFu);
    const int32_t id = 256 + int32_t(merges.size());
    merges.emplace_back(a, b);
    const int32_t m = int32_t(merges.size());
    touched.clear();
    std::vector<int32_t> list = std::move(where[key]);
    where.erase(key);
    for (int32_t w : list) {
      if (stamp[w] == m) continue;
      stamp[w] = m;
      std::vector<int32_t>& s = words[w];
      const int64_t n = wc.counts[w];
      merged.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(id);
          ++i;
        } else {
          merged.push_back(s[i]);
        }
      }
      if (merged.size() == s.size()) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = pair_key(s[i], s[i + 1]);
        count[k] -= n;
        touched.push_back(k);
      }
      for (size_t i = 0; i + 1 < merged.size(); ++i) {
        const uint64_t k = pair_key(merged[i], merged[i + 1]);
        count[k] += n;
        touched.push_back(k);
        if (merged[i] == id || merged[i + 1] == id) where[k].push_back(w);
      }
      s.swap(merged);
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) {
      auto it = count.find(k);
      if (it->second == 0)
        count.erase(it);
      else
        heap.push({it->second, k});
    }
    if (progress && m % report_every == 0) progress(reported = m, cfg.max_merges);
  }
  if (progress && reported != int(merges.size())) progress(int(merges.size()), cfg.max_merges);
  return merges;
}

BpeEncoder::BpeEncoder(const std::vector<std::pair<int32_t, int32_t>>& merges)
    : merge_count_(merges.size()) {
  ranks_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto [a, b] = merges[r];
    const int32_t limit = 256 + int32_t(r);
    if (a < 0 || b < 0 || a >= limit || b >= limit)
      throw std::invalid_argument("merge " + std::to_string(r) + " (" + std::to_string(a) + ", " +
                                  std::to_string(b) + ") refers to an id not defined before it");
    if (!ranks_.emplace(pair_key(a, b), int32_t(r)).second)
      throw std::invalid_argument("merge " + std::to_string(r) + " (" + std::to_string(a) + ", " +
                                  std::to_string(b) + ") repeats an earlier merge");
  }
}

int32_t BpeEncoder::rank(int32_t left, int32_t right) const {
  auto it = ranks_.find(pair_key(left, right));
  return it == ranks_.end() ? -1 : it->second;
}

void BpeEncoder::encode_word(const uint8_t* bytes, size_t n, std::vector<int32_t>& out) const {
  if (n == 0) return;
  struct Sym {
    int32_t id, prev, next;
  };
  std::vector<Sym> sym(n);
  for (size_t i = 0; i < n; ++i)
    sym[i] = {bytes[i], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1};
  // (rank, left position, left id, right id), smallest first.
  using Cand = std::tuple<int32_t, int32_t, int32_t, int32_t>;
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](int32_t i) {
    if (i < 0 || sym[i].next < 0) return;
    const int32_t r = rank(sym[i].id, sym[sym[i].next].id);
    if (r >= 0) heap.push({r, i, sym[i].id, sym[sym[i].next].id});
  };
  for (int32_t i = 0; i + 1 < int32_t(n); ++i) consider(i);
  while (!heap.empty()) {
    const auto [r, i, left, right] = heap.top();
    heap.pop();
    const int32_t j = sym[i].next;
    if (sym[i].id != left || j < 0 || sym[j].id != right) continue;
    sym[i].id = 256 + r;
    sym[i].next = sym[j].next;
    if (sym[j].next >= 0) sym[sym[j].next].prev = i;
    sym[j].id = -1;
    consider(sym[i].prev);
    consider(i);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void BpeEncoder::encode(const PreTokenizer& pre, const uint32_t* cps, size_t n,
                        std::vector<int32_t>& out) const {
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  for_each_piece(pre, cps, n, [&](const std::string& word) {
    auto it = cache.find(word);
    if (it == cache.end()) {
      std::vector<int32_t> ids;
      encode_word(reinterpret_cast<const uint8_t*>(word.data()), word.size(), ids);
      it = cache.emplace(word, std::move(ids)).first;
    }
    out.insert(out.end(), it->second.begin(), it->second.end());
  });
}

}  // namespace rnnkit
