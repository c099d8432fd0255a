#pragma once
// Internal state of a loaded Tokenizer (shared, immutable). Not part of the public API.
#include <optional>
#include <string>
#include <vector>

#include "core/tokenizer/added_vocabulary.hpp"
#include "core/tokenizer/bpe_model.hpp"
#include "core/tokenizer/decoder.hpp"
#include "core/tokenizer/normalizer.hpp"
#include "core/tokenizer/pre_tokenizer.hpp"
#include "core/tokenizer/tokenizer.hpp"

namespace tessera {

struct Tokenizer::Impl {
  std::string source;  // tokenizer.json path, for messages
  BpeModel model;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::vector<AddedToken> added_tokens;
  AddedTokenMatcher raw_added;         // added tokens with normalized=false, matched in the raw text
  AddedTokenMatcher normalized_added;  // normalized=true, matched in each normalized segment
  StringMap<int32_t> added_by_content;
  // TemplateProcessing "single": ids around the sequence when add_special_tokens is set.
  std::vector<int32_t> template_prefix;
  std::vector<int32_t> template_suffix;
  DecoderPlan decoder;
  // Indexed by id, size vocab_size.
  std::vector<std::string> id_to_token;
  std::vector<bool> id_present;
  std::vector<bool> special;
  std::vector<DecodePiece> pieces;
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;

  // Appends the ids of one plain-text segment (between added tokens).
  void encode_segment(std::string_view text, std::vector<int32_t>& out) const;
};

}  // namespace tessera
