// Merge-priority semantics on a hand-written byte-level tokenizer.json, with expectations derived
// by hand from the merge ranks (lowest rank first, leftmost first on ties).
#include <gtest/gtest.h>

#include "core/tokenizer/tokenizer.hpp"
#include "tests/tokenizer/test_util.hpp"

namespace tessera {
namespace {

// Vocabulary ids: a=0 b=1 c=2 Ġ=3 ab=4 bc=5 abc=6 Ġa=7 bb=8 cab=9, added <|end|>=10.
std::string tiny_json(const std::string& merges, bool ignore_merges) {
  return R"({"version":"1.0","added_tokens":[{"id":10,"content":"<|end|>","single_word":false,"lstrip":false,
    "rstrip":false,"normalized":false,"special":true}],"normalizer":null,
    "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
    "post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
    "model":{"type":"BPE","dropout":null,"unk_token":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":)" +
         std::string(ignore_merges ? "true" : "false") +
         R"(,"vocab":{"a":0,"b":1,"c":2,"Ġ":3,"ab":4,"bc":5,"abc":6,"Ġa":7,"bb":8,"cab":9},"merges":)" + merges + "}}";
}

Tokenizer load_tiny(const test::TempDir& dir, const std::string& merges, bool ignore_merges = false) {
  return Tokenizer::load(dir.write("tokenizer.json", tiny_json(merges, ignore_merges)), {});
}

using Ids = std::vector<int32_t>;

TEST(TinyBpeTest, LowestRankMergesFirst) {
  test::TempDir dir;
  // ranks: (b,c)=0 (a,b)=1 (a,bc)=2 (Ġ,a)=3 (b,b)=4
  const Tokenizer tok = load_tiny(dir, R"([["b","c"],["a","b"],["a","bc"],["Ġ","a"],["b","b"]])");
  EXPECT_EQ(tok.encode("abc", false), (Ids{6}));      // b+c, then a+bc
  EXPECT_EQ(tok.encode(" abc", false), (Ids{3, 6}));  // (Ġ,a) has the worst rank, so "a" goes to "abc"
  EXPECT_EQ(tok.encode(" a", false), (Ids{7}));
  EXPECT_EQ(tok.encode("cab", false), (Ids{2, 4}));   // "cab" is in the vocab but no merge builds it
  EXPECT_EQ(tok.encode("abcab<|end|>bb", false), (Ids{6, 4, 10, 8}));
  EXPECT_EQ(tok.decode(Ids{6, 4, 10, 8}, false), "abcab<|end|>bb");
  EXPECT_EQ(tok.decode(Ids{6, 4, 10, 8}, true), "abcabbb");
  EXPECT_EQ(tok.vocab_size(), 11);
}

TEST(TinyBpeTest, SwappedRanksChangeTheResult) {
  test::TempDir dir;
  // ranks: (a,b)=0 (b,c)=1 ...: "abc" -> ab c, and (ab,c) has no merge.
  const Tokenizer tok = load_tiny(dir, R"([["a","b"],["b","c"],["a","bc"],["Ġ","a"],["b","b"]])");
  EXPECT_EQ(tok.encode("abc", false), (Ids{4, 2}));
  EXPECT_EQ(tok.encode(" abc", false), (Ids{3, 4, 2}));
}

TEST(TinyBpeTest, TiesMergeLeftmostFirst) {
  test::TempDir dir;
  const Tokenizer tok = load_tiny(dir, R"([["b","b"]])");
  EXPECT_EQ(tok.encode("bbb", false), (Ids{8, 1}));
  EXPECT_EQ(tok.encode("bbbb", false), (Ids{8, 8}));
}

TEST(TinyBpeTest, LegacyStringMergesAndIgnoreMerges) {
  test::TempDir dir;
  const Tokenizer tok = load_tiny(dir, R"(["b c","a b","a bc","Ġ a","b b"])", /*ignore_merges=*/true);
  EXPECT_EQ(tok.encode("abc", false), (Ids{6}));
  EXPECT_EQ(tok.encode("cab", false), (Ids{9}));  // whole word found in the vocab: emitted directly
  EXPECT_EQ(tok.encode("bbb", false), (Ids{8, 1}));
}

}  // namespace
}  // namespace tessera
