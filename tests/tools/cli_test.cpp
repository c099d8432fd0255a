// tessera-cli and tessera-model as a user runs them: real processes, stdin/stdout, exit codes.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/tokenizer/tokenizer.hpp"

namespace {

const std::string kBin = TESSERA_BIN_DIR;
const std::string kData = TESSERA_FETCHED_DATA_DIR;
const std::string kFixtures = TESSERA_FIXTURES_DIR;

struct Proc {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `command` through the shell with `input` on stdin; captures stdout and stderr separately.
Proc run(const std::string& command, const std::string& input = "") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string tag = std::to_string(::getpid());
  const auto in_path = dir / ("tessera_cli_in_" + tag), out_path = dir / ("tessera_cli_out_" + tag),
             err_path = dir / ("tessera_cli_err_" + tag);
  std::ofstream(in_path, std::ios::binary) << input;
  const std::string full = command + " <" + in_path.string() + " >" + out_path.string() + " 2>" + err_path.string();
  const int status = std::system(full.c_str());
  Proc r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  std::filesystem::remove(in_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return r;
}

std::vector<int32_t> split_ids(const std::string& line) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find(',', pos);
    if (end == std::string::npos) end = line.size();
    ids.push_back(std::stoi(line.substr(pos, end - pos)));
    pos = end + 1;
  }
  return ids;
}

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

TEST(CliTokenize, StdinIsTakenVerbatimIncludingTrailingNewlines) {
  const std::string tokenizer_json = kData + "/llama3/tokenizer.json";
  const auto tokenizer = tessera::Tokenizer::load(tokenizer_json, kData + "/llama3/tokenizer_config.json");
  for (const std::string& text : std::vector<std::string>{"Hello world\n", "  two spaces\n\n", "héllo 😀\r\n", std::string("nul\0byte", 8)}) {
    const Proc r = run(kBin + "/tessera-cli tokenize --tokenizer " + tokenizer_json, text);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto ids = nlohmann::json::parse(r.out).get<std::vector<int32_t>>();
    EXPECT_EQ(ids, tokenizer.encode(text, true)) << text;
    EXPECT_EQ(tokenizer.decode(ids, false), text);
  }
}

TEST(CliTokenize, DetokenizeInvertsTokenize) {
  const std::string tokenizer_json = kData + "/llama2/tokenizer.json";
  const std::string text = "Streaming détokenization, 日本語 and emoji 🚀 too.";
  const Proc tok = run(kBin + "/tessera-cli tokenize --no-special-tokens --tokenizer " + tokenizer_json, text);
  ASSERT_EQ(tok.exit_code, 0) << tok.err;
  const Proc detok = run(kBin + "/tessera-cli detokenize --tokenizer " + tokenizer_json, tok.out);
  ASSERT_EQ(detok.exit_code, 0) << detok.err;
  EXPECT_EQ(detok.out, text);
}

TEST(CliTokenize, BadInputIsAClearErrorNotACrash) {
  const Proc missing = run(kBin + "/tessera-cli tokenize --tokenizer /nonexistent/tokenizer.json");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("tokenizer.json"), std::string::npos) << missing.err;
  const Proc bad_ids = run(kBin + "/tessera-cli detokenize --tokenizer " + kData + "/llama3/tokenizer.json", "1,x,3");
  EXPECT_EQ(bad_ids.exit_code, 1);
  EXPECT_NE(bad_ids.err.find("token id"), std::string::npos) << bad_ids.err;
}

TEST(CliGenerate, GreedyIdsMatchTransformersGolden) {
  const auto golden = nlohmann::json::parse(std::ifstream(kFixtures + "/logits_gqa_untied.json"));
  const auto& prompt = golden["prompts"][1];
  std::string ids;
  for (int id : prompt["prompt"]) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const Proc r = run(kBin + "/tessera-cli generate --model " + kFixtures + "/models/gqa_untied --ids " + ids +
                    " --max-tokens 24 --temperature 0 --ignore-eos --print-ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(split_ids(last_line(r.out)), prompt["greedy"].get<std::vector<int32_t>>());
}

TEST(CliGenerate, TinyPresetWithTokenizerStreamsTextAndSeedsRepeat) {
  const auto dir = std::filesystem::temp_directory_path() / ("tessera_cli_model_" + std::to_string(::getpid()));
  const Proc make = run(kBin + "/tessera-model make --preset tiny --dtype f32 --seed 5 --out " + dir.string());
  ASSERT_EQ(make.exit_code, 0) << make.err;
  const std::string cmd = kBin + "/tessera-cli generate --model " + dir.string() +
                          " --prompt 'Once upon a time' --max-tokens 20 --temperature 0.9 --seed 4 --ignore-eos --print-ids";
  const Proc a = run(cmd), b = run(cmd);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  const auto ids = split_ids(last_line(a.out));
  EXPECT_EQ(ids.size(), 20u);
  const auto tokenizer = tessera::Tokenizer::load_dir(dir);
  ASSERT_TRUE(tokenizer.has_value());
  EXPECT_EQ(a.out, tokenizer->decode(ids, true) + "\n" + last_line(a.out) + "\n");
  std::filesystem::remove_all(dir);
}

TEST(CliGenerate, UsageErrorsNameTheProblem) {
  const std::string model = kFixtures + "/models/gqa_untied";
  const Proc no_tokenizer = run(kBin + "/tessera-cli generate --model " + model + " --prompt hi --max-tokens 2");
  EXPECT_NE(no_tokenizer.exit_code, 0);
  EXPECT_NE(no_tokenizer.err.find("--ids"), std::string::npos) << no_tokenizer.err;
  const Proc bad_top_p = run(kBin + "/tessera-cli generate --model " + model + " --ids 1,2 --max-tokens 2 --top-p 1.5");
  EXPECT_NE(bad_top_p.exit_code, 0);
  EXPECT_NE(bad_top_p.err.find("top_p"), std::string::npos) << bad_top_p.err;
  const Proc no_prompt = run(kBin + "/tessera-cli generate --model " + model + " --max-tokens 2");
  EXPECT_NE(no_prompt.exit_code, 0);
  const Proc bad_model = run(kBin + "/tessera-cli generate --model /tmp --ids 1 --max-tokens 2");
  EXPECT_NE(bad_model.exit_code, 0);
  EXPECT_NE(bad_model.err.find("config.json"), std::string::npos) << bad_model.err;
}

}  // namespace
