#pragma once
// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}): vocabulary,
// ranked merges and the per-word merge loop, with byte_fallback, unk_token/fuse_unk and
// ignore_merges semantics identical to the Rust `tokenizers` crate. Immutable after loading;
// tokenize() is safe to call from several threads at once.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/tokenizer/string_map.hpp"

namespace tessera {

using TokenIdMap = StringMap<int32_t>;

class BpeModel {
 public:
  // `model` is the "model" object of tokenizer.json; `file` names it in error messages.
  static BpeModel from_json(const nlohmann::json& model, const std::string& file);

  // Appends the ids of one pre-tokenized word (already normalized / byte-level mapped).
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // Vocabulary string of `id`, or nullptr when the model has no such id.
  const std::string* id_to_token(int32_t id) const;
  // Max vocabulary id + 1.
  int32_t id_bound() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct MergeTarget {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  // Merges the initial symbols of a word in rank order (lowest first, leftmost on ties).
  void merge_symbols(std::vector<int32_t>& ids) const;

  TokenIdMap vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  std::unordered_map<uint64_t, MergeTarget> merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_token_ids_[256] = {};
  bool has_all_byte_tokens_ = false;
};

}  // namespace tessera
