#pragma once
// Helpers for tokenizer tests: temporary folders and direct (independent) vocabulary lookups.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

namespace tessera::test {

inline const std::filesystem::path kLlama3Dir = TESSERA_FETCHED_DATA_DIR "/llama3";
inline const std::filesystem::path kLlama2Dir = TESSERA_FETCHED_DATA_DIR "/llama2";

// A fresh folder under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("tessera_tok_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    const auto file = path_ / name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

 private:
  std::filesystem::path path_;
};

// The raw tokenizer.json, parsed with nlohmann directly (not through Tokenizer), so tests can
// look ids up independently of the code under test.
inline nlohmann::json read_json_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in);
}

inline int32_t vocab_id(const nlohmann::json& tokenizer_json, const std::string& token) {
  const auto& vocab = tokenizer_json.at("model").at("vocab");
  if (vocab.contains(token)) return vocab.at(token).get<int32_t>();
  for (const auto& added : tokenizer_json.at("added_tokens")) {
    if (added.at("content") == token) return added.at("id").get<int32_t>();
  }
  ADD_FAILURE() << "token not in vocab: " << token;
  return -1;
}

}  // namespace tessera::test
