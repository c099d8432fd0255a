#pragma once
// Hugging Face tokenizer.json support: BPE models with byte-level (GPT-2 / Llama 3 / Qwen2) or
// SentencePiece-style (Llama 2 / Mistral: Prepend/Replace normalizer, byte_fallback) configurations,
// added/special tokens and TemplateProcessing post-processing, following the Rust `tokenizers` crate.
//
// Deliberate choices:
//  - encode() accepts arbitrary bytes; invalid UTF-8 is first replaced by U+FFFD (one per maximal
//    invalid subpart, like Rust's from_utf8_lossy), since HF itself only accepts valid strings.
//  - add_special_tokens follows tokenizer.json's post_processor only (tokenizers semantics), not
//    transformers' add_bos_token flag; decode() does not apply transformers' clean_up_tokenization_spaces.
//  - Unknown ids are ignored by decode(), as in the Rust crate.
// A Tokenizer is immutable after load, cheap to copy (shared state), and all const methods are
// safe to call from several threads at once.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {


class Tokenizer {
 public:
  // Loads tokenizer.json and, when the path is non-empty, tokenizer_config.json (bos/eos tokens).
  // Throws tessera::Error naming the file for missing files, malformed JSON and unsupported components.
  static Tokenizer load(const std::filesystem::path& tokenizer_json,
                        const std::filesystem::path& tokenizer_config_json_or_empty);
  // Loads `dir`/tokenizer.json (+ tokenizer_config.json when present); std::nullopt when the folder
  // has no tokenizer.json. Throws like load() when the files are malformed.
  static std::optional<Tokenizer> load_dir(const std::filesystem::path& dir);

  // Token ids of `text` (any bytes; see above). With add_special_tokens, the post-processor's
  // template is applied (e.g. Llama 2 prepends <s>).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Text of `ids`; with skip_special_tokens, added tokens marked special are dropped first.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // Max id + 1 over the model vocabulary and the added tokens.
  int32_t vocab_size() const;
  // From tokenizer_config.json's bos_token / eos_token (string or {"content": ...}).
  std::optional<int32_t> bos_id() const;
  std::vector<int32_t> eos_ids() const;
  // True for added tokens flagged "special".
  bool is_special(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // Vocabulary string of `id` (added token content first), std::nullopt for unknown ids.
  std::optional<std::string_view> id_to_token(int32_t id) const;
  // Bytes `id` contributes to decoded text in isolation (byte-level tokens mapped back to bytes,
  // "▁" replaced, <0xXX> as its byte); may be partial UTF-8. Empty for unknown ids.
  std::string_view token_bytes(int32_t id) const;
  // The file the tokenizer was loaded from (for messages).
  const std::string& source() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
  friend class StreamingDetokenizer;
};

}  // namespace tessera
