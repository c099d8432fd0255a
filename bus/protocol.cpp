// Protocol names and the model-independent request checks (no msgpack here; see protocol_decode/encode.cpp).
#include "bus/protocol.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "bus/protocol_detail.hpp"

namespace tessera::bus {
namespace {

constexpr std::array<std::pair<ErrorCode, const char*>, 13> kErrorNames = {{
    {ErrorCode::Malformed, "malformed"},
    {ErrorCode::UnsupportedVersion, "unsupported_version"},
    {ErrorCode::UnknownType, "unknown_type"},
    {ErrorCode::InvalidRequest, "invalid_request"},
    {ErrorCode::InvalidParameter, "invalid_parameter"},
    {ErrorCode::PromptTooLong, "prompt_too_long"},
    {ErrorCode::DuplicateRequestId, "duplicate_request_id"},
    {ErrorCode::UnknownRequestId, "unknown_request_id"},
    {ErrorCode::Overloaded, "overloaded"},
    {ErrorCode::FrameTooLarge, "frame_too_large"},
    {ErrorCode::DeadlineExceeded, "deadline_exceeded"},
    {ErrorCode::Internal, "internal"},
    {ErrorCode::ShuttingDown, "shutting_down"},
}};

ProtocolError bad(ErrorCode code, std::string message, const std::string& id) {
  return ProtocolError{id, code, std::move(message)};
}

}  // namespace

const char* error_code_name(ErrorCode code) {
  for (const auto& [c, name] : kErrorNames)
    if (c == code) return name;
  return "internal";
}

std::optional<ErrorCode> parse_error_code(std::string_view name) {
  for (const auto& [c, n] : kErrorNames)
    if (name == n) return c;
  return std::nullopt;
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "stop";
}

namespace detail {

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Reject overlong forms, surrogates and code points beyond U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

std::string show_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = std::to_string(v);
  return s;
}

}  // namespace detail

std::optional<ProtocolError> check_submit(const SubmitRequest& r, const ProtocolLimits& limits) {
  const std::string& id = r.id;
  if (r.id.empty() || r.id.size() > limits.max_request_id_bytes || !detail::is_valid_utf8(r.id))
    return ProtocolError{std::nullopt, ErrorCode::InvalidRequest,
                         "id must be a UTF-8 string of 1.." + std::to_string(limits.max_request_id_bytes) + " bytes"};
  if (r.prompt.has_value() == r.prompt_ids.has_value())
    return bad(ErrorCode::InvalidRequest, "exactly one of prompt and prompt_ids must be given", id);
  if (r.prompt && !detail::is_valid_utf8(*r.prompt))
    return bad(ErrorCode::InvalidRequest, "prompt must be valid UTF-8", id);
  if (r.prompt_ids) {
    if (r.prompt_ids->empty()) return bad(ErrorCode::InvalidParameter, "prompt_ids must not be empty", id);
    if (r.prompt_ids->size() > limits.max_prompt_ids)
      return bad(ErrorCode::PromptTooLong,
                 "prompt_ids holds " + std::to_string(r.prompt_ids->size()) + " tokens, the limit is " +
                     std::to_string(limits.max_prompt_ids), id);
    for (size_t i = 0; i < r.prompt_ids->size(); ++i)
      if ((*r.prompt_ids)[i] < 0)
        return bad(ErrorCode::InvalidParameter,
                   "prompt_ids[" + std::to_string(i) + "] must be >= 0 (got " +
                       std::to_string((*r.prompt_ids)[i]) + ")", id);
  }
  const SamplingParams& p = r.params;
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f)
    return bad(ErrorCode::InvalidParameter,
               "params.temperature must be a finite number >= 0 (got " + detail::show_number(p.temperature) + ")", id);
  if (p.top_k < -1)
    return bad(ErrorCode::InvalidParameter,
               "params.top_k must be >= 1, or 0 / -1 to disable it (got " + std::to_string(p.top_k) + ")", id);
  if (!std::isfinite(p.top_p) || p.top_p <= 0.0f || p.top_p > 1.0f)
    return bad(ErrorCode::InvalidParameter, "params.top_p must be in (0, 1] (got " + detail::show_number(p.top_p) + ")",
               id);
  if (p.max_tokens < 1 || p.max_tokens > limits.max_tokens_cap)
    return bad(ErrorCode::InvalidParameter,
               "params.max_tokens must be in [1, " + std::to_string(limits.max_tokens_cap) + "] (got " +
                   std::to_string(p.max_tokens) + ")", id);
  if (p.stop.size() > SamplingParams::kMaxStopStrings)
    return bad(ErrorCode::InvalidParameter,
               "params.stop must hold at most " + std::to_string(SamplingParams::kMaxStopStrings) + " strings (got " +
                   std::to_string(p.stop.size()) + ")", id);
  for (size_t i = 0; i < p.stop.size(); ++i) {
    const std::string& s = p.stop[i];
    if (s.empty() || s.size() > limits.max_stop_string_bytes || !detail::is_valid_utf8(s))
      return bad(ErrorCode::InvalidParameter,
                 "params.stop[" + std::to_string(i) + "] must be a UTF-8 string of 1.." +
                     std::to_string(limits.max_stop_string_bytes) + " bytes", id);
  }
  if (p.stop_token_ids.size() > limits.max_stop_token_ids)
    return bad(ErrorCode::InvalidParameter,
               "params.stop_token_ids must hold at most " + std::to_string(limits.max_stop_token_ids) + " ids", id);
  for (size_t i = 0; i < p.stop_token_ids.size(); ++i)
    if (p.stop_token_ids[i] < 0)
      return bad(ErrorCode::InvalidParameter,
                 "params.stop_token_ids[" + std::to_string(i) + "] must be >= 0 (got " +
                     std::to_string(p.stop_token_ids[i]) + ")", id);
  if (r.deadline_ms && (*r.deadline_ms < 1 || *r.deadline_ms > limits.max_deadline_ms))
    return bad(ErrorCode::InvalidParameter,
               "deadline_ms must be in [1, " + std::to_string(limits.max_deadline_ms) + "] (got " +
                   std::to_string(*r.deadline_ms) + ")", id);
  return std::nullopt;
}

}  // namespace tessera::bus
