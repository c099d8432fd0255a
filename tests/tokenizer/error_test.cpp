// Loading failures are tessera::Error naming the file and, for unsupported parts, the component.
#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/tokenizer/tokenizer.hpp"
#include "tests/tokenizer/test_util.hpp"

namespace tessera {
namespace {

// Expects `fn` to throw tessera::Error whose message contains every string of `parts`.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no tessera::Error thrown";
  } catch (const Error& e) {
    for (const std::string& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

std::string minimal_json(const std::string& model, const std::string& normalizer = "null",
                         const std::string& pre_tokenizer = "null", const std::string& decoder = "null") {
  return R"({"added_tokens":[],"normalizer":)" + normalizer + R"(,"pre_tokenizer":)" + pre_tokenizer +
         R"(,"post_processor":null,"decoder":)" + decoder + R"(,"model":)" + model + "}";
}
const std::string kBpe = R"({"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]})";

TEST(TokenizerErrorTest, MissingFile) {
  test::TempDir dir;
  const auto missing = dir.path() / "nope.json";
  expect_error([&] { Tokenizer::load(missing, {}); }, {missing.string()});
  EXPECT_FALSE(Tokenizer::load_dir(dir.path()).has_value());
}

TEST(TokenizerErrorTest, MalformedJson) {
  test::TempDir dir;
  const auto file = dir.write("tokenizer.json", "{\"model\": [1, 2");
  expect_error([&] { Tokenizer::load(file, {}); }, {file.string(), "malformed JSON"});
  expect_error([&] { Tokenizer::load_dir(dir.path()); }, {file.string()});
}

TEST(TokenizerErrorTest, UnsupportedComponentsAreNamed) {
  test::TempDir dir;
  const auto wordpiece = dir.write("wp.json", minimal_json(R"({"type":"WordPiece","vocab":{"a":0}})"));
  expect_error([&] { Tokenizer::load(wordpiece, {}); }, {wordpiece.string(), "WordPiece"});
  const auto nfkc = dir.write("nfkc.json", minimal_json(kBpe, R"({"type":"NFKC"})"));
  expect_error([&] { Tokenizer::load(nfkc, {}); }, {nfkc.string(), "normalizer", "NFKC"});
  const auto ws = dir.write("ws.json", minimal_json(kBpe, "null", R"({"type":"Whitespace"})"));
  expect_error([&] { Tokenizer::load(ws, {}); }, {ws.string(), "pre_tokenizer", "Whitespace"});
  const auto wpd = dir.write("wpd.json", minimal_json(kBpe, "null", "null", R"({"type":"WordPiece"})"));
  expect_error([&] { Tokenizer::load(wpd, {}); }, {wpd.string(), "decoder", "WordPiece"});
  const auto regex = dir.write("re.json", minimal_json(kBpe, "null", R"({"type":"Split","pattern":{"Regex":"(["},"behavior":"Isolated"})"));
  expect_error([&] { Tokenizer::load(regex, {}); }, {regex.string(), "regex"});
}

TEST(TokenizerErrorTest, InconsistentModel) {
  test::TempDir dir;
  const auto bad_merge = dir.write("m.json", minimal_json(R"({"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]})"));
  expect_error([&] { Tokenizer::load(bad_merge, {}); }, {bad_merge.string(), "merge #0"});
  const auto wrong_type = dir.write("t.json", minimal_json(R"({"type":"BPE","vocab":{"a":"zero"},"merges":[]})"));
  expect_error([&] { Tokenizer::load(wrong_type, {}); }, {wrong_type.string()});
}

TEST(TokenizerErrorTest, ConfigTokensMustExist) {
  test::TempDir dir;
  const auto json = dir.write("tokenizer.json", minimal_json(kBpe));
  const auto config = dir.write("tokenizer_config.json", R"({"bos_token": {"content": "<missing>"}})");
  expect_error([&] { Tokenizer::load(json, config); }, {config.string(), "<missing>"});
  const auto ok = dir.write("ok_config.json", R"({"bos_token": {"content": "a"}, "eos_token": "ab"})");
  const Tokenizer tok = Tokenizer::load(json, ok);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_ids(), (std::vector<int32_t>{2}));
  EXPECT_EQ(tok.encode("ab", false), (std::vector<int32_t>{2}));
}

}  // namespace
}  // namespace tessera
