// tessera-cli tokenize / detokenize.
#include <cctype>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "core/common/error.hpp"
#include "core/tokenizer/tokenizer.hpp"
#include "tools/cli/cli_commands.hpp"
#include "tools/cli/id_list.hpp"

namespace tessera::cli {

namespace {

struct TokenizerOptions {
  std::string tokenizer_json;
  std::string tokenizer_config;  // optional; default: tokenizer_config.json beside tokenizer.json when present
};

Tokenizer load_tokenizer(const TokenizerOptions& options) {
  std::filesystem::path config = options.tokenizer_config;
  if (config.empty()) {
    auto beside = std::filesystem::path(options.tokenizer_json).parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(beside)) config = beside;
  }
  return Tokenizer::load(options.tokenizer_json, config);
}

std::string read_all_stdin() {
  std::ios::sync_with_stdio(false);
  std::cin >> std::noskipws;
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

void add_tokenizer_options(CLI::App& cmd, TokenizerOptions& options) {
  cmd.add_option("--tokenizer", options.tokenizer_json, "Hugging Face tokenizer.json")->required()->check(
      CLI::ExistingFile);
  cmd.add_option("--tokenizer-config", options.tokenizer_config,
                 "tokenizer_config.json (default: the one beside tokenizer.json, if any)")
      ->check(CLI::ExistingFile);
}

}  // namespace

void add_tokenize_commands(CLI::App& app, int& exit_code) {
  auto tokenize_options = std::make_shared<TokenizerOptions>();
  auto no_special = std::make_shared<bool>(false);
  CLI::App* tokenize = app.add_subcommand(
      "tokenize", "Encode stdin (taken verbatim, byte for byte) and print the ids as one JSON array");
  add_tokenizer_options(*tokenize, *tokenize_options);
  tokenize->add_flag("--no-special-tokens", *no_special,
                     "Do not add the post-processor's special tokens (e.g. Llama 2's <s>)");
  tokenize->callback([tokenize_options, no_special, &exit_code] {
    const Tokenizer tokenizer = load_tokenizer(*tokenize_options);
    const std::string text = read_all_stdin();
    std::printf("%s\n", format_json_array(tokenizer.encode(text, !*no_special)).c_str());
    exit_code = 0;
  });

  auto detokenize_options = std::make_shared<TokenizerOptions>();
  auto skip_special = std::make_shared<bool>(false);
  CLI::App* detokenize = app.add_subcommand(
      "detokenize", "Decode ids from stdin (a JSON array, or comma/space separated) and print the text");
  add_tokenizer_options(*detokenize, *detokenize_options);
  detokenize->add_flag("--skip-special-tokens", *skip_special, "Drop special tokens from the text");
  detokenize->callback([detokenize_options, skip_special, &exit_code] {
    const Tokenizer tokenizer = load_tokenizer(*detokenize_options);
    const std::vector<int32_t> ids = parse_id_list(read_all_stdin(), "stdin");
    const std::string text = tokenizer.decode(ids, *skip_special);
    std::fwrite(text.data(), 1, text.size(), stdout);
    exit_code = 0;
  });
}

}  // namespace tessera::cli
