// Decoding of bus frames. Hostile input is the norm here: every size is bounded before msgpack allocates,
// every field is type-checked, and nothing escapes as an exception.
#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include "bus/protocol.hpp"
#include "bus/protocol_detail.hpp"

namespace tessera::bus {
namespace {

// Internal control flow of the decoder only; never leaves this file.
struct DecodeFailure {
  ErrorCode code;
  std::string message;
};
[[noreturn]] void fail(ErrorCode code, std::string message) { throw DecodeFailure{code, std::move(message)}; }

// Top map -> params map -> stop array is the deepest legal nesting.
constexpr uint32_t kMaxDepth = 3;
constexpr uint32_t kMaxMapEntries = 32;

const char* type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return "map";
    case msgpack::type::EXT: return "ext";
  }
  return "?";
}

[[noreturn]] void wrong_type(std::string_view field, const char* expected, const msgpack::object& o) {
  fail(ErrorCode::InvalidRequest,
       std::string(field) + " must be " + expected + " (got " + type_name(o) + ")");
}

// Parses the frame into `handle`, bounding every allocation by the frame size: an array or map header may
// not declare more elements than there are bytes left, so a 5-byte frame cannot reserve gigabytes.
msgpack::object_handle unpack_bounded(std::string_view frame) {
  const auto n = static_cast<uint32_t>(std::min<size_t>(frame.size(), std::numeric_limits<uint32_t>::max()));
  // Every element takes at least one byte, so n bounds each container; with kMaxDepth open containers
  // the object tree stays within a small multiple of the frame size.
  msgpack::unpack_limit limit(n, std::min(n / 2 + 1, kMaxMapEntries), n, n, n, kMaxDepth);
  std::size_t offset = 0;
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(frame.data(), frame.size(), offset, nullptr, nullptr, limit);
  } catch (const msgpack::size_overflow& e) {
    fail(ErrorCode::Malformed, std::string("frame exceeds a size or nesting limit (") + e.what() + ")");
  } catch (const msgpack::insufficient_bytes&) {
    fail(ErrorCode::Malformed, "frame is truncated msgpack");
  } catch (const std::bad_alloc&) {
    fail(ErrorCode::Malformed, "frame declares more data than can be held");
  } catch (const std::exception& e) {
    fail(ErrorCode::Malformed, std::string("frame is not valid msgpack (") + e.what() + ")");
  }
  if (offset != frame.size())
    fail(ErrorCode::Malformed, "frame holds " + std::to_string(frame.size() - offset) +
                                   " trailing bytes after the msgpack map (one map per frame)");
  return handle;
}

// A msgpack map whose keys are unique strings.
class MapView {
 public:
  MapView(const msgpack::object& o, std::string_view where, ErrorCode not_a_map_code) {
    if (o.type != msgpack::type::MAP) fail(not_a_map_code, std::string(where) + " must be a map (got " + type_name(o) + ")");
    map_ = &o.via.map;
    for (uint32_t i = 0; i < map_->size; ++i) {
      const msgpack::object& key = map_->ptr[i].key;
      if (key.type != msgpack::type::STR) fail(ErrorCode::Malformed, std::string(where) + " has a non-string key");
      for (uint32_t j = 0; j < i; ++j)
        if (key_of(j) == key_of(i))
          fail(ErrorCode::Malformed, std::string(where) + " has the key \"" + std::string(key_of(i)) + "\" twice");
    }
  }
  // nil counts as absent.
  const msgpack::object* find(std::string_view key) const {
    for (uint32_t i = 0; i < map_->size; ++i)
      if (key_of(i) == key) return map_->ptr[i].val.type == msgpack::type::NIL ? nullptr : &map_->ptr[i].val;
    return nullptr;
  }
  void reject_unknown(std::string_view where, std::initializer_list<std::string_view> allowed) const {
    for (uint32_t i = 0; i < map_->size; ++i)
      if (std::find(allowed.begin(), allowed.end(), key_of(i)) == allowed.end())
        fail(ErrorCode::InvalidRequest,
             std::string(where) + " has an unknown field \"" + printable(key_of(i)) + "\"");
  }

 private:
  std::string_view key_of(uint32_t i) const {
    const auto& k = map_->ptr[i].key.via.str;
    return {k.ptr, k.size};
  }
  static std::string printable(std::string_view s) {
    std::string out(s.substr(0, 64));
    if (!detail::is_valid_utf8(out)) return "<non-UTF-8 key>";
    return out;
  }
  const msgpack::object_map* map_;
};

std::string get_string(const msgpack::object& o, std::string_view field) {
  if (o.type != msgpack::type::STR) wrong_type(field, "a string", o);
  std::string s(o.via.str.ptr, o.via.str.size);
  if (!detail::is_valid_utf8(s)) fail(ErrorCode::InvalidRequest, std::string(field) + " must be valid UTF-8");
  return s;
}

// An integer in [lo, hi]; other integers are out of range (invalid_parameter), other types invalid_request.
int64_t get_int(const msgpack::object& o, std::string_view field, int64_t lo, int64_t hi) {
  bool in_range;
  std::string shown;
  int64_t value = 0;
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    in_range = o.via.u64 <= static_cast<uint64_t>(hi) && static_cast<int64_t>(o.via.u64) >= lo;
    value = static_cast<int64_t>(o.via.u64);
    shown = std::to_string(o.via.u64);
  } else if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    in_range = o.via.i64 >= lo && o.via.i64 <= hi;
    value = o.via.i64;
    shown = std::to_string(o.via.i64);
  } else {
    wrong_type(field, "an integer", o);
  }
  if (!in_range)
    fail(ErrorCode::InvalidParameter, std::string(field) + " must be in [" + std::to_string(lo) + ", " +
                                          std::to_string(hi) + "] (got " + shown + ")");
  return value;
}

double get_number(const msgpack::object& o, std::string_view field) {
  switch (o.type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::POSITIVE_INTEGER: return static_cast<double>(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return static_cast<double>(o.via.i64);
    default: wrong_type(field, "a number", o);
  }
}

// Doubles outside float range become +-inf, NaN stays NaN: check_submit() rejects both.
float to_float(double v) {
  if (std::isnan(v)) return std::numeric_limits<float>::quiet_NaN();
  if (v > std::numeric_limits<float>::max()) return std::numeric_limits<float>::infinity();
  if (v < -std::numeric_limits<float>::max()) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(v);
}

bool get_bool(const msgpack::object& o, std::string_view field) {
  if (o.type != msgpack::type::BOOLEAN) wrong_type(field, "a bool", o);
  return o.via.boolean;
}

const msgpack::object_array& get_array(const msgpack::object& o, std::string_view field) {
  if (o.type != msgpack::type::ARRAY) wrong_type(field, "an array", o);
  return o.via.array;
}

std::vector<int32_t> get_int32_array(const msgpack::object& o, std::string_view field, int64_t lo) {
  const auto& a = get_array(o, field);
  std::vector<int32_t> out;
  out.reserve(a.size);
  for (uint32_t i = 0; i < a.size; ++i)
    out.push_back(static_cast<int32_t>(
        get_int(a.ptr[i], std::string(field) + "[" + std::to_string(i) + "]", lo, INT32_MAX)));
  return out;
}

const msgpack::object& require(const MapView& map, std::string_view key) {
  const msgpack::object* o = map.find(key);
  if (!o) fail(ErrorCode::InvalidRequest, "missing required field \"" + std::string(key) + "\"");
  return *o;
}

void parse_params(const msgpack::object& o, SamplingParams& p, const ProtocolLimits& limits) {
  if (o.type != msgpack::type::MAP) wrong_type("params", "a map", o);
  MapView m(o, "params", ErrorCode::InvalidRequest);
  m.reject_unknown("params", {"max_tokens", "temperature", "top_k", "top_p", "seed", "stop", "stop_token_ids",
                              "ignore_eos"});
  if (auto* v = m.find("max_tokens"))
    p.max_tokens = static_cast<int32_t>(get_int(*v, "params.max_tokens", 1, limits.max_tokens_cap));
  if (auto* v = m.find("temperature")) p.temperature = to_float(get_number(*v, "params.temperature"));
  if (auto* v = m.find("top_k")) p.top_k = static_cast<int32_t>(get_int(*v, "params.top_k", -1, INT32_MAX));
  if (auto* v = m.find("top_p")) p.top_p = to_float(get_number(*v, "params.top_p"));
  if (auto* v = m.find("seed")) {
    if (v->type == msgpack::type::NEGATIVE_INTEGER)
      fail(ErrorCode::InvalidParameter, "params.seed must be in [0, 2^64) (got " + std::to_string(v->via.i64) + ")");
    if (v->type != msgpack::type::POSITIVE_INTEGER) wrong_type("params.seed", "an integer", *v);
    p.seed = v->via.u64;
  }
  if (auto* v = m.find("stop")) {
    const auto& a = get_array(*v, "params.stop");
    p.stop.clear();
    for (uint32_t i = 0; i < a.size; ++i) p.stop.push_back(get_string(a.ptr[i], "params.stop[" + std::to_string(i) + "]"));
  }
  if (auto* v = m.find("stop_token_ids")) p.stop_token_ids = get_int32_array(*v, "params.stop_token_ids", 0);
  if (auto* v = m.find("ignore_eos")) p.ignore_eos = get_bool(*v, "params.ignore_eos");
}

SubmitRequest parse_submit(const MapView& m, std::string id, const ProtocolLimits& limits) {
  m.reject_unknown("submit", {"v", "type", "id", "prompt", "prompt_ids", "params", "stream", "priority",
                              "deadline_ms"});
  SubmitRequest r;
  r.id = std::move(id);
  if (auto* v = m.find("prompt")) r.prompt = get_string(*v, "prompt");
  if (auto* v = m.find("prompt_ids")) {
    if (v->type == msgpack::type::ARRAY && v->via.array.size > limits.max_prompt_ids)
      fail(ErrorCode::PromptTooLong, "prompt_ids holds " + std::to_string(v->via.array.size) +
                                         " tokens, the limit is " + std::to_string(limits.max_prompt_ids));
    r.prompt_ids = get_int32_array(*v, "prompt_ids", 0);
  }
  if (auto* v = m.find("params")) parse_params(*v, r.params, limits);
  if (auto* v = m.find("stream")) r.stream = get_bool(*v, "stream");
  if (auto* v = m.find("priority")) r.priority = static_cast<int32_t>(get_int(*v, "priority", INT32_MIN, INT32_MAX));
  if (auto* v = m.find("deadline_ms")) r.deadline_ms = get_int(*v, "deadline_ms", 1, limits.max_deadline_ms);
  if (auto err = check_submit(r, limits)) fail(err->code, std::move(err->message));
  return r;
}

// The request id of a frame, when it is a usable one (so errors can name the request).
std::optional<std::string> usable_id(const MapView& m, const ProtocolLimits& limits) {
  const msgpack::object* o = m.find("id");
  if (!o || o->type != msgpack::type::STR || o->via.str.size == 0 || o->via.str.size > limits.max_request_id_bytes)
    return std::nullopt;
  std::string id(o->via.str.ptr, o->via.str.size);
  if (!detail::is_valid_utf8(id)) return std::nullopt;
  return id;
}

std::string require_id(const MapView& m, const ProtocolLimits& limits) {
  const msgpack::object& o = require(m, "id");
  std::string id = get_string(o, "id");
  if (id.empty() || id.size() > limits.max_request_id_bytes)
    fail(ErrorCode::InvalidRequest, "id must be 1.." + std::to_string(limits.max_request_id_bytes) +
                                        " bytes (got " + std::to_string(id.size()) + ")");
  return id;
}

// "v" then "type"; returns the type.
std::string check_header(const MapView& m) {
  const msgpack::object* v = m.find("v");
  if (!v) fail(ErrorCode::InvalidRequest, "missing required field \"v\" (protocol version, 1)");
  if (v->type != msgpack::type::POSITIVE_INTEGER || v->via.u64 != static_cast<uint64_t>(kProtocolVersion))
    fail(ErrorCode::UnsupportedVersion, "unsupported protocol version; this server speaks \"v\": 1");
  return get_string(require(m, "type"), "type");
}

}  // namespace

std::variant<ClientMessage, ProtocolError> decode_client_message(std::string_view frame,
                                                                 const ProtocolLimits& limits) noexcept {
  std::optional<std::string> id;
  try {
    if (frame.size() > limits.max_frame_bytes)
      return ProtocolError{std::nullopt, ErrorCode::FrameTooLarge,
                           "frame of " + std::to_string(frame.size()) + " bytes exceeds the limit of " +
                               std::to_string(limits.max_frame_bytes) + " bytes"};
    msgpack::object_handle handle = unpack_bounded(frame);
    MapView m(handle.get(), "frame", ErrorCode::Malformed);
    id = usable_id(m, limits);
    const std::string type = check_header(m);
    if (type == "submit") return ClientMessage{parse_submit(m, require_id(m, limits), limits)};
    if (type == "cancel") {
      m.reject_unknown("cancel", {"v", "type", "id"});
      return ClientMessage{CancelRequest{require_id(m, limits)}};
    }
    if (type == "info") {
      m.reject_unknown("info", {"v", "type"});
      return ClientMessage{InfoRequest{}};
    }
    fail(ErrorCode::UnknownType, "unknown message type \"" + (detail::is_valid_utf8(type) ? type.substr(0, 64) : "?") +
                                     "\" (expected submit, cancel or info)");
  } catch (DecodeFailure& f) {
    return ProtocolError{std::move(id), f.code, std::move(f.message)};
  } catch (const std::bad_alloc&) {
    return ProtocolError{std::nullopt, ErrorCode::Internal, "out of memory while decoding a frame"};
  } catch (...) {
    return ProtocolError{std::nullopt, ErrorCode::Malformed, "frame could not be decoded"};
  }
}

// ---- client side ----------------------------------------------------------------------------------------

namespace {

FinishReason parse_finish_reason(const std::string& s) {
  if (s == "stop") return FinishReason::Stop;
  if (s == "length") return FinishReason::Length;
  if (s == "cancelled") return FinishReason::Cancelled;
  fail(ErrorCode::Malformed, "unknown finish_reason \"" + s + "\"");
}

int32_t get_i32(const MapView& m, std::string_view key) {
  return static_cast<int32_t>(get_int(require(m, key), key, INT32_MIN, INT32_MAX));
}

ServerMessage parse_server(const MapView& m, const std::string& type, const ProtocolLimits& limits) {
  if (type == "heartbeat") return Heartbeat{};
  if (type == "accepted") return Accepted{get_string(require(m, "id"), "id"), get_i32(m, "prompt_tokens")};
  if (type == "tokens") {
    TokenChunk t;
    t.id = get_string(require(m, "id"), "id");
    t.ids = get_int32_array(require(m, "ids"), "ids", INT32_MIN);
    if (auto* v = m.find("text")) t.text = get_string(*v, "text");
    return t;
  }
  if (type == "final") {
    FinalMessage f;
    f.id = get_string(require(m, "id"), "id");
    f.finish_reason = parse_finish_reason(get_string(require(m, "finish_reason"), "finish_reason"));
    MapView usage(require(m, "usage"), "usage", ErrorCode::Malformed);
    f.usage = Usage{get_i32(usage, "prompt_tokens"), get_i32(usage, "completion_tokens")};
    MapView timings(require(m, "timings"), "timings", ErrorCode::Malformed);
    f.timings = Timings{get_number(require(timings, "queue_s"), "queue_s"),
                        get_number(require(timings, "ttft_s"), "ttft_s"),
                        get_number(require(timings, "e2e_s"), "e2e_s")};
    if (auto* v = m.find("ids")) f.ids = get_int32_array(*v, "ids", INT32_MIN);
    if (auto* v = m.find("text")) f.text = get_string(*v, "text");
    return f;
  }
  if (type == "error") {
    ErrorMessage e;
    if (auto* v = m.find("id")) e.id = get_string(*v, "id");
    const std::string code = get_string(require(m, "code"), "code");
    e.message = m.find("message") ? get_string(*m.find("message"), "message") : "";
    if (auto parsed = parse_error_code(code)) {
      e.code = *parsed;
    } else {  // a code from a newer server: keep it readable
      e.code = ErrorCode::Internal;
      e.message = "[" + code + "] " + e.message;
    }
    return e;
  }
  if (type == "info") {
    InfoReply i;
    if (auto* v = m.find("model")) i.model = get_string(*v, "model");
    i.vocab_size = get_i32(m, "vocab_size");
    i.max_model_len = get_i32(m, "max_model_len");
    i.kv_blocks = get_i32(m, "kv_blocks");
    i.block_size = get_i32(m, "block_size");
    i.kv_capacity_tokens = get_int(require(m, "kv_capacity_tokens"), "kv_capacity_tokens", 0, INT64_MAX);
    i.max_num_seqs = get_i32(m, "max_num_seqs");
    i.ready = get_bool(require(m, "ready"), "ready");
    i.protocol_version = get_i32(m, "protocol_version");
    // Live load, optional so that older servers' replies still decode.
    if (m.find("kv_blocks_used")) i.kv_blocks_used = get_i32(m, "kv_blocks_used");
    if (m.find("requests_running")) i.requests_running = get_i32(m, "requests_running");
    if (m.find("requests_waiting")) i.requests_waiting = get_i32(m, "requests_waiting");
    return i;
  }
  (void)limits;
  fail(ErrorCode::Malformed, "unknown server message type \"" + type.substr(0, 64) + "\"");
}

}  // namespace

std::variant<ServerMessage, ErrorMessage> decode_server_message(std::string_view frame,
                                                                const ProtocolLimits& limits) noexcept {
  try {
    if (frame.size() > limits.max_frame_bytes)
      return ErrorMessage{std::nullopt, ErrorCode::Malformed, "server frame exceeds max_frame_bytes"};
    msgpack::object_handle handle = unpack_bounded(frame);
    MapView m(handle.get(), "frame", ErrorCode::Malformed);
    const std::string type = check_header(m);
    return parse_server(m, type, limits);
  } catch (DecodeFailure& f) {
    return ErrorMessage{std::nullopt, ErrorCode::Malformed, "bad server frame: " + std::move(f.message)};
  } catch (...) {
    return ErrorMessage{std::nullopt, ErrorCode::Malformed, "bad server frame"};
  }
}

}  // namespace tessera::bus
