// Llama 2 / Mistral style (SentencePiece BPE: Prepend+Replace normalizer, byte_fallback,
// TemplateProcessing <s>) on the real files in .testdata/llama2.
#include <gtest/gtest.h>

#include "core/tokenizer/tokenizer.hpp"
#include "tests/tokenizer/test_util.hpp"

namespace tessera {
namespace {

class Llama2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tokenizer_ = new Tokenizer(*Tokenizer::load_dir(test::kLlama2Dir));
    json_ = new nlohmann::json(test::read_json_file(test::kLlama2Dir / "tokenizer.json"));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete json_;
  }
  static int32_t id(const std::string& token) { return test::vocab_id(*json_, token); }
  static std::vector<int32_t> byte_ids(std::string_view bytes) {
    std::vector<int32_t> ids;
    for (const char c : bytes) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned char>(c));
      ids.push_back(id(name));
    }
    return ids;
  }
  static Tokenizer* tokenizer_;
  static nlohmann::json* json_;
};
Tokenizer* Llama2Test::tokenizer_ = nullptr;
nlohmann::json* Llama2Test::json_ = nullptr;

TEST_F(Llama2Test, KnownTokenizations) {
  // The normalizer turns "Hello world" into "▁Hello▁world"; both words are vocabulary entries.
  const std::vector<int32_t> expected = {id("▁Hello"), id("▁world")};
  EXPECT_EQ(tokenizer_->encode("Hello world", false), expected);
  std::vector<int32_t> with_bos = {id("<s>")};
  with_bos.insert(with_bos.end(), expected.begin(), expected.end());
  EXPECT_EQ(tokenizer_->encode("Hello world", true), with_bos);
  EXPECT_EQ(tokenizer_->encode("", true), (std::vector<int32_t>{id("<s>")}));
  EXPECT_TRUE(tokenizer_->encode("", false).empty());
}

TEST_F(Llama2Test, AddedTokensSplitBeforeNormalization) {
  // "<s>" is cut out of the raw text first; each remaining segment gets its own "▁" prefix.
  EXPECT_EQ(tokenizer_->encode("<s>hi</s> there", false),
            (std::vector<int32_t>{id("<s>"), id("▁hi"), id("</s>"), id("▁"), id("▁there")}));
}

TEST_F(Llama2Test, ByteFallbackForCharactersOutsideTheVocab) {
  const std::string emoji = "\U0001F916";  // robot face
  ASSERT_FALSE(json_->at("model").at("vocab").contains(emoji));
  std::vector<int32_t> expected = {id("▁")};
  const auto bytes = byte_ids(emoji);
  expected.insert(expected.end(), bytes.begin(), bytes.end());
  EXPECT_EQ(tokenizer_->encode(emoji, false), expected);
  EXPECT_EQ(tokenizer_->decode(expected, false), emoji);
  EXPECT_EQ(tokenizer_->token_bytes(bytes[0]), "\xF0");
}

TEST_F(Llama2Test, DecodeStripsOneLeadingSpaceAndHandlesInvalidByteRuns) {
  EXPECT_EQ(tokenizer_->decode(std::vector<int32_t>{id("▁Hello"), id("▁world")}, false), "Hello world");
  // A run of byte tokens that is not valid UTF-8 becomes one U+FFFD per byte token.
  auto ids = byte_ids("\xF0\x9F");
  ids.push_back(id("▁world"));
  EXPECT_EQ(tokenizer_->decode(ids, false), "\uFFFD\uFFFD world");
  // Special tokens are kept or skipped; skipping makes the next token the first one (stripped).
  const std::vector<int32_t> with_bos = {id("<s>"), id("▁Hello")};
  EXPECT_EQ(tokenizer_->decode(with_bos, false), "<s> Hello");
  EXPECT_EQ(tokenizer_->decode(with_bos, true), "Hello");
}

TEST_F(Llama2Test, RoundTripsTextWithoutAddedTokens) {
  const std::vector<std::string> texts = {
      "Hello world", " leading space", "two  spaces", "trailing ", "café naïve", "日本語のテキスト", "emoji 😀🎉 done",
      "def f(x):\n    return x**2\n", "1234567890", "tabs\tand\r\nCRLF", "\n\n", "Ελληνικά и русский", "🤖🤖🤖"};
  for (const std::string& text : texts) {
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, false), false), text) << text;
  }
}

TEST_F(Llama2Test, ConfigAndVocabulary) {
  EXPECT_EQ(tokenizer_->vocab_size(), 32000);
  EXPECT_EQ(tokenizer_->bos_id(), id("<s>"));
  EXPECT_EQ(tokenizer_->eos_ids(), (std::vector<int32_t>{id("</s>")}));
  EXPECT_TRUE(tokenizer_->is_special(id("<unk>")));
  EXPECT_EQ(tokenizer_->token_bytes(id("▁Hello")), " Hello");
}

}  // namespace
}  // namespace tessera
