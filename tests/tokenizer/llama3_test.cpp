// Llama 3 (byte-level BPE, Split regex + ByteLevel pre-tokenizer, ignore_merges) on the real files.
#include <gtest/gtest.h>

#include <chrono>

#include "core/tokenizer/tokenizer.hpp"
#include "tests/tokenizer/test_util.hpp"

namespace tessera {
namespace {

class Llama3Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tokenizer_ = new Tokenizer(*Tokenizer::load_dir(test::kLlama3Dir));
    json_ = new nlohmann::json(test::read_json_file(test::kLlama3Dir / "tokenizer.json"));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete json_;
  }
  static int32_t id(const std::string& token) { return test::vocab_id(*json_, token); }
  static Tokenizer* tokenizer_;
  static nlohmann::json* json_;
};
Tokenizer* Llama3Test::tokenizer_ = nullptr;
nlohmann::json* Llama3Test::json_ = nullptr;

TEST_F(Llama3Test, KnownTokenizations) {
  // "Hello" and "Ġworld" (Ġ = the byte-level form of a space) are single vocabulary entries.
  EXPECT_EQ(id("Hello"), 9906);
  EXPECT_EQ(id("Ġworld"), 1917);
  EXPECT_EQ(tokenizer_->encode("Hello world", false), (std::vector<int32_t>{id("Hello"), id("Ġworld")}));
  // The regex keeps digits in groups of at most three: "1234567" -> "123" "456" "7".
  EXPECT_EQ(tokenizer_->encode("1234567", false), (std::vector<int32_t>{id("123"), id("456"), id("7")}));
  // Newline runs: "\n\n" is one pre-token, byte-level "ĊĊ".
  EXPECT_EQ(tokenizer_->encode("\n\n", false), (std::vector<int32_t>{id("ĊĊ")}));
  // Case-insensitive contraction alternative: "'S" is split off "IT".
  EXPECT_EQ(tokenizer_->encode("IT'S", false), (std::vector<int32_t>{id("IT"), id("'S")}));
}

TEST_F(Llama3Test, SpecialTokensAreMatchedInRawText) {
  const int32_t bot = id("<|begin_of_text|>"), eot = id("<|eot_id|>");
  EXPECT_EQ(tokenizer_->encode("<|begin_of_text|>Hello<|eot_id|>", false),
            (std::vector<int32_t>{bot, id("Hello"), eot}));
  EXPECT_TRUE(tokenizer_->is_special(bot));
  EXPECT_FALSE(tokenizer_->is_special(id("Hello")));
  EXPECT_EQ(tokenizer_->decode(std::vector<int32_t>{bot, id("Hello"), eot}, false), "<|begin_of_text|>Hello<|eot_id|>");
  EXPECT_EQ(tokenizer_->decode(std::vector<int32_t>{bot, id("Hello"), eot}, true), "Hello");
}

TEST_F(Llama3Test, ByteLevelPostProcessorAddsNothing) {
  EXPECT_EQ(tokenizer_->encode("Hello world", true), tokenizer_->encode("Hello world", false));
  EXPECT_TRUE(tokenizer_->encode("", true).empty());
}

TEST_F(Llama3Test, ConfigAndVocabulary) {
  EXPECT_EQ(tokenizer_->vocab_size(), 128256);  // 128000 BPE entries + 256 added tokens
  EXPECT_EQ(tokenizer_->bos_id(), id("<|begin_of_text|>"));
  EXPECT_EQ(tokenizer_->eos_ids(), (std::vector<int32_t>{id("<|end_of_text|>")}));
  EXPECT_EQ(tokenizer_->token_to_id("Hello"), id("Hello"));
  EXPECT_FALSE(tokenizer_->token_to_id("definitely not a token").has_value());
  EXPECT_EQ(tokenizer_->id_to_token(id("Ġworld")), "Ġworld");
  EXPECT_FALSE(tokenizer_->id_to_token(tokenizer_->vocab_size()).has_value());
  EXPECT_EQ(tokenizer_->token_bytes(id("Ġworld")), " world");
}

TEST_F(Llama3Test, RoundTripsVariedText) {
  const std::vector<std::string> texts = {
      "Hello world", "", " ", "   leading and trailing   ", "café naïve résumé", "日本語のテキストです。",
      "emoji 😀🎉👨‍👩‍👧 done", "def f(x):\n    return x**2  # comment\n", "1234567890 12 123 1234",
      "tabs\tand\r\nCRLF\r\n", "\n\n\n  \n", "a\u00a0b\u2003c\u3000d", "Ελληνικά и русский", "مرحبا",
      "<|begin_of_text|>system<|eot_id|>", "I'm you're he'll IT'S", "$$$ ### !!!", "x\u0085y a\u2028b"};
  for (const std::string& text : texts) {
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, false), false), text) << text;
  }
}

TEST_F(Llama3Test, InvalidUtf8IsReplacedNotRejected) {
  // Documented choice: each maximal invalid subpart becomes U+FFFD before tokenization.
  EXPECT_EQ(tokenizer_->encode("a\xFF b\xE2\x82", false), tokenizer_->encode("a\uFFFD b\uFFFD", false));
}

TEST_F(Llama3Test, Encodes100KBQuickly) {
  std::string text;
  const std::string paragraph =
      "The quick brown fox jumps over the lazy dog. Numbers 12345 and symbols #@! appear; "
      "日本語 and émojis 😀 too.\n    indented code(x, y) { return x + y; }\n\n";
  while (text.size() < 100 * 1024) text += paragraph;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tokenizer_->encode(text, false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0);
  EXPECT_GT(ids.size(), text.size() / 8);
  EXPECT_EQ(tokenizer_->decode(ids, false), text);
}

}  // namespace
}  // namespace tessera
