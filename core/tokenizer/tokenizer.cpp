// Tokenizer: encode / decode and lookups over the loaded Tokenizer::Impl.
#include "core/tokenizer/tokenizer.hpp"

#include "core/tokenizer/tokenizer_impl.hpp"
#include "core/tokenizer/utf8.hpp"

namespace tessera {

void Tokenizer::Impl::encode_segment(std::string_view text, std::vector<int32_t>& out) const {
  const std::string normalized = normalizer.normalize(text);
  std::vector<TextSegment> segments;
  if (normalized_added.empty()) {
    segments.push_back({std::nullopt, normalized});
  } else {
    normalized_added.split(normalized, segments);
  }
  for (const TextSegment& segment : segments) {
    if (segment.token_id) {
      out.push_back(*segment.token_id);
      continue;
    }
    for (const std::string& word : pre_tokenizer.split(segment.text)) model.tokenize(word, out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  // HF only accepts valid strings; we substitute U+FFFD for invalid bytes instead of failing. Validating
  // once here also lets the regexes skip PCRE2's per-call UTF-8 check.
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::to_valid_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids = impl_->template_prefix;
  std::vector<TextSegment> segments;
  impl_->raw_added.split(text, segments);
  for (const TextSegment& segment : segments) {
    if (segment.token_id) {
      ids.push_back(*segment.token_id);
    } else {
      impl_->encode_segment(segment.text, ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), impl_->template_suffix.begin(), impl_->template_suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  // Batch form of the decoder chain, structured like the Rust crate (tokens -> decoders -> join);
  // StreamingDetokenizer is the incremental equivalent and is tested against this.
  const Impl& impl = *impl_;
  std::vector<const DecodePiece*> pieces;
  pieces.reserve(ids.size());
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab_size() || impl.pieces[id].kind == DecodePiece::Kind::kAbsent) continue;
    if (skip_special_tokens && impl.special[id]) continue;
    pieces.push_back(&impl.pieces[id]);
  }
  if (impl.decoder.mode() == DecoderPlan::Mode::kByteLevel) {
    std::string bytes;
    for (const DecodePiece* piece : pieces) bytes += piece->bytes;
    return utf8::to_valid_lossy(bytes);
  }
  std::vector<std::string> strings;
  std::string run;
  std::size_t run_tokens = 0;
  auto end_run = [&] {
    if (run_tokens == 0) return;
    if (utf8::is_valid(run)) {
      strings.push_back(run);
    } else {
      for (std::size_t i = 0; i < run_tokens; ++i) strings.emplace_back(utf8::kReplacementChar);
    }
    run.clear();
    run_tokens = 0;
  };
  for (const DecodePiece* piece : pieces) {
    if (piece->kind == DecodePiece::Kind::kByte) {
      run += piece->bytes;
      ++run_tokens;
    } else {
      end_run();
      strings.push_back(piece->bytes);
    }
  }
  end_run();
  std::string text;
  for (std::size_t i = 0; i < strings.size(); ++i) {
    if (i > 0) text += impl.decoder.separator();
    text += strings[i];
  }
  const std::string& strip = impl.decoder.strip_char();
  std::size_t cut = 0;
  for (int n = 0; n < impl.decoder.strip_start() && text.compare(cut, strip.size(), strip) == 0; ++n) cut += strip.size();
  return text.substr(cut);
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_token.size()); }

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }

std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special[id];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
  return impl_->model.token_to_id(token);
}

std::optional<std::string_view> Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size() || !impl_->id_present[id]) return std::nullopt;
  return std::string_view(impl_->id_to_token[id]);
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return impl_->pieces[id].bytes;
}

const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace tessera
