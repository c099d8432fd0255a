#pragma once
// Incremental decode for one request: push() returns only newly completed text and never ends in
// a broken UTF-8 sequence; finish() flushes the rest. The concatenation of all push() results and
// finish() equals Tokenizer::decode(all ids, skip_special_tokens) exactly. Cost per push is O(bytes of the new token + held-back bytes).
//
// Held-back text: for byte-level tokenizers only an incomplete trailing UTF-8 sequence (<= 3 bytes);
// for byte-fallback (SentencePiece) tokenizers the whole current run of <0xXX> tokens, because HF
// turns a run into U+FFFDs if any of it is invalid. Not thread-safe: one instance per request.
#include <cstdint>
#include <memory>
#include <string>

#include "core/tokenizer/tokenizer.hpp"

namespace tessera {

class StreamingDetokenizer {
 public:
  // Shares `tokenizer`'s immutable state (the Tokenizer object itself need not outlive this).
  StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);

  // Newly decodable text after `id` (possibly empty). Unknown ids are ignored, as in decode().
  std::string push(int32_t id);
  // Everything still held back, incomplete bytes replaced by U+FFFD. Call once at the end.
  std::string finish();

 private:
  void emit(std::string_view text, std::string& out);
  void flush_byte_run(std::string& out);

  std::shared_ptr<const Tokenizer::Impl> impl_;
  bool skip_special_tokens_;
  bool any_token_ = false;        // a token was decoded already (for the " " separator)
  std::string pending_bytes_;     // byte-level: undecoded tail; pieces: current <0xXX> run
  std::size_t pending_run_tokens_ = 0;
  int strip_remaining_ = 0;       // leading strip characters still to drop
};

}  // namespace tessera
