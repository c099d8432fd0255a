#include "core/tokenizer/streaming_detokenizer.hpp"

#include "core/tokenizer/tokenizer_impl.hpp"
#include "core/tokenizer/utf8.hpp"

namespace tessera {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : impl_(tokenizer.impl_),
      skip_special_tokens_(skip_special_tokens),
      strip_remaining_(impl_->decoder.strip_start()) {}

// Appends fully decoded text, dropping the leading Strip characters of the whole output.
void StreamingDetokenizer::emit(std::string_view text, std::string& out) {
  const std::string& strip = impl_->decoder.strip_char();
  while (strip_remaining_ > 0 && !text.empty()) {
    if (!text.starts_with(strip)) {
      strip_remaining_ = 0;
      break;
    }
    text.remove_prefix(strip.size());
    --strip_remaining_;
  }
  out.append(text);
}

void StreamingDetokenizer::flush_byte_run(std::string& out) {
  if (pending_run_tokens_ == 0) return;
  if (utf8::is_valid(pending_bytes_)) {
    emit(pending_bytes_, out);
  } else {
    // HF's ByteFallback: an invalid run becomes one U+FFFD per byte token.
    std::string replacement;
    for (std::size_t i = 0; i < pending_run_tokens_; ++i) replacement += utf8::kReplacementChar;
    emit(replacement, out);
  }
  pending_bytes_.clear();
  pending_run_tokens_ = 0;
}

std::string StreamingDetokenizer::push(int32_t id) {
  std::string out;
  if (id < 0 || id >= static_cast<int32_t>(impl_->pieces.size())) return out;
  const DecodePiece& piece = impl_->pieces[id];
  if (piece.kind == DecodePiece::Kind::kAbsent) return out;
  if (skip_special_tokens_ && impl_->special[id]) return out;

  if (impl_->decoder.mode() == DecoderPlan::Mode::kByteLevel) {
    pending_bytes_ += piece.bytes;
    const std::size_t consumed = utf8::append_lossy(pending_bytes_, /*final=*/false, out);
    pending_bytes_.erase(0, consumed);
    return out;
  }
  const std::string& separator = impl_->decoder.separator();
  if (!separator.empty() && any_token_) emit(separator, out);
  any_token_ = true;
  if (piece.kind == DecodePiece::Kind::kByte) {
    pending_bytes_ += piece.bytes;
    ++pending_run_tokens_;
    return out;
  }
  flush_byte_run(out);
  emit(piece.bytes, out);
  return out;
}

std::string StreamingDetokenizer::finish() {
  std::string out;
  if (impl_->decoder.mode() == DecoderPlan::Mode::kByteLevel) {
    utf8::append_lossy(pending_bytes_, /*final=*/true, out);
    pending_bytes_.clear();
  } else {
    flush_byte_run(out);
  }
  return out;
}

}  // namespace tessera
