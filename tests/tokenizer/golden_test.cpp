// Golden fixtures produced with Hugging Face `tokenizers` (tests/fixtures/tokenizer_<name>.jsonl,
// one {"text", "ids", "ids_with_special"} object per line; an optional "decoded" field overrides the
// round-trip expectation). Fails, rather than skips, while a fixture file is missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/tokenizer/tokenizer.hpp"

namespace tessera {
namespace {

struct GoldenCase {
  std::string name;           // fixture and .testdata folder name
  bool byte_level_round_trip; // decode(encode(text)) == text for every valid text
};

// SentencePiece-style tokenizers round-trip unless the text contains added-token strings (each
// segment gets its own "▁" prefix) or a literal "▁" (decoded as a space).
bool sentencepiece_round_trips(const Tokenizer& tok, const std::string& text) {
  if (text.find("\u2581") != std::string::npos) return false;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (!tok.is_special(id)) continue;
    const auto content = tok.id_to_token(id);
    if (content && !content->empty() && text.find(*content) != std::string::npos) return false;
  }
  return true;
}

void check_fixture(const GoldenCase& golden) {
  const std::filesystem::path fixture =
      std::filesystem::path(TESSERA_FIXTURES_DIR) / ("tokenizer_" + golden.name + ".jsonl");
  ASSERT_TRUE(std::filesystem::exists(fixture))
      << "golden fixture " << fixture << " is missing: generate it with HF tokenizers (tests/fixtures/make_fixtures.py)";
  const auto tok = Tokenizer::load_dir(std::filesystem::path(TESSERA_FETCHED_DATA_DIR) / golden.name);
  ASSERT_TRUE(tok.has_value()) << "no tokenizer.json in " << TESSERA_FETCHED_DATA_DIR << "/" << golden.name;

  std::ifstream in(fixture);
  std::string line;
  int line_number = 0, checked = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    const nlohmann::json entry = nlohmann::json::parse(line);
    const std::string text = entry.at("text").get<std::string>();
    const auto ids = entry.at("ids").get<std::vector<int32_t>>();
    const auto ids_with_special = entry.at("ids_with_special").get<std::vector<int32_t>>();
    const std::string where = fixture.filename().string() + ":" + std::to_string(line_number) + " " +
                              nlohmann::json(text).dump();
    EXPECT_EQ(tok->encode(text, false), ids) << where;
    EXPECT_EQ(tok->encode(text, true), ids_with_special) << where;
    if (entry.contains("decoded")) {
      EXPECT_EQ(tok->decode(ids, false), entry["decoded"].get<std::string>()) << where;
    } else if (golden.byte_level_round_trip || sentencepiece_round_trips(*tok, text)) {
      EXPECT_EQ(tok->decode(ids, false), text) << where;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0) << fixture << " has no cases";
}

TEST(TokenizerGoldenTest, Llama3) { check_fixture({"llama3", true}); }
TEST(TokenizerGoldenTest, Llama2) { check_fixture({"llama2", false}); }

}  // namespace
}  // namespace tessera
