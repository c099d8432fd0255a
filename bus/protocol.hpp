#pragma once
// The Tessera bus wire protocol (bus/PROTOCOL.md) as plain C++ structs, plus its encoders and decoders.
// Every message is one ZeroMQ frame holding one msgpack map with "v": 1 and "type". msgpack stays inside
// protocol.cpp: this header exposes plain structs only. All functions are pure and thread-safe.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/sampling/sampling_params.hpp"

namespace tessera::bus {

inline constexpr int kProtocolVersion = 1;

// Error codes carried by "error" messages (wire names in snake_case, see error_code_name()).
enum class ErrorCode {
  Malformed,           // not msgpack / not one map / trailing bytes / duplicate or non-string keys / too deep
  UnsupportedVersion,  // "v" is not 1
  UnknownType,         // "type" is not a known client message type
  InvalidRequest,      // a field is missing, has the wrong msgpack type, or is unknown
  InvalidParameter,    // a well-typed field has a value out of range (sampling params, priority, deadline, ...)
  PromptTooLong,       // prompt longer than the model's max_model_len (or the frame's token cap)
  DuplicateRequestId,  // a live request of this client already uses this id
  UnknownRequestId,    // cancel for an id with no live request
  Overloaded,          // waiting queue is full; retry later
  FrameTooLarge,       // frame bigger than ProtocolLimits::max_frame_bytes
  DeadlineExceeded,    // deadline_ms elapsed before the request finished
  Internal,            // server bug or engine failure
  ShuttingDown,        // server is stopping and accepts no new work
};
const char* error_code_name(ErrorCode code);
std::optional<ErrorCode> parse_error_code(std::string_view name);

// Bounds a decoder enforces before and while parsing. The defaults are what PROTOCOL.md documents.
struct ProtocolLimits {
  size_t max_frame_bytes = 4u << 20;       // whole frame, bytes
  size_t max_request_id_bytes = 256;       // "id" string, bytes
  size_t max_prompt_ids = 1u << 20;        // "prompt_ids" elements (and "ids" in server messages)
  size_t max_stop_string_bytes = 1024;     // each "stop" string, bytes
  size_t max_stop_token_ids = 1024;        // "stop_token_ids" elements
  int32_t max_tokens_cap = 1 << 20;        // protocol-level bound for params.max_tokens (the model bounds it further)
  int64_t max_deadline_ms = 24LL * 3600 * 1000;
};

// ---- client -> server --------------------------------------------------------------------------------------

struct SubmitRequest {
  std::string id;                     // client-chosen, unique among this client's live requests, 1..256 bytes
  std::optional<std::string> prompt;  // exactly one of prompt / prompt_ids is set
  std::optional<std::vector<int32_t>> prompt_ids;
  SamplingParams params;              // validated here except the vocab-dependent stop_token_ids bound
  bool stream = true;                 // false: no "tokens" messages, the final carries the whole output
  int32_t priority = 0;               // higher is scheduled first; FCFS within a priority
  std::optional<int64_t> deadline_ms; // relative to arrival; > 0
};
struct CancelRequest {
  std::string id;
};
struct InfoRequest {};
using ClientMessage = std::variant<SubmitRequest, CancelRequest, InfoRequest>;

// ---- server -> client --------------------------------------------------------------------------------------

struct Accepted {
  std::string id;
  int32_t prompt_tokens = 0;
};
struct TokenChunk {
  std::string id;
  std::vector<int32_t> ids;
  std::string text;  // UTF-8 delta since the previous chunk; "" when the server has no tokenizer
};
enum class FinishReason { Stop, Length, Cancelled };
const char* finish_reason_name(FinishReason reason);
struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
};
struct Timings {  // seconds, measured by the server from the frame's arrival
  double queue_s = 0;  // arrival -> first scheduled
  double ttft_s = 0;   // arrival -> first token
  double e2e_s = 0;    // arrival -> final
};
struct FinalMessage {
  std::string id;
  FinishReason finish_reason = FinishReason::Stop;
  Usage usage;
  Timings timings;
  std::optional<std::vector<int32_t>> ids;  // only for stream=false: the whole completion
  std::optional<std::string> text;          // only for stream=false
};
struct ErrorMessage {
  std::optional<std::string> id;  // nullopt (nil on the wire) when the frame had no usable id
  ErrorCode code = ErrorCode::Internal;
  std::string message;
};
// What decode_client_message() returns for a bad frame: the error reply to send, as is.
using ProtocolError = ErrorMessage;
struct InfoReply {
  std::string model;
  int32_t vocab_size = 0;
  int32_t max_model_len = 0;
  int32_t kv_blocks = 0;
  int32_t block_size = 0;
  int64_t kv_capacity_tokens = 0;
  int32_t max_num_seqs = 0;
  bool ready = false;
  int32_t protocol_version = kProtocolVersion;
  // Live load at the time of the reply.
  int32_t kv_blocks_used = 0;
  int32_t requests_running = 0;
  int32_t requests_waiting = 0;
};
struct Heartbeat {};  // liveness probe; clients ignore it
using ServerMessage = std::variant<Accepted, TokenChunk, FinalMessage, ErrorMessage, InfoReply, Heartbeat>;

// ---- decoding (never throws, memory use bounded by a small multiple of the frame size) -------------------

std::variant<ClientMessage, ProtocolError> decode_client_message(std::string_view frame,
                                                                 const ProtocolLimits& limits) noexcept;
// Client side. A frame that is not a valid server message yields ErrorMessage{nullopt, Malformed, why}.
std::variant<ServerMessage, ErrorMessage> decode_server_message(std::string_view frame,
                                                                const ProtocolLimits& limits = {}) noexcept;

// Checks a SubmitRequest built in memory (e.g. by a C++ client) with the same rules the decoder applies.
// Returns the error the server would send, or nullopt.
std::optional<ProtocolError> check_submit(const SubmitRequest& request, const ProtocolLimits& limits);

// ---- encoding (one msgpack map per call; throw only std::bad_alloc) --------------------------------------

std::string encode(const SubmitRequest& m);
std::string encode(const CancelRequest& m);
std::string encode(const InfoRequest& m);
std::string encode(const ClientMessage& m);
std::string encode(const Accepted& m);
std::string encode(const TokenChunk& m);
std::string encode(const FinalMessage& m);
std::string encode(const ErrorMessage& m);
std::string encode(const InfoReply& m);
std::string encode(const Heartbeat& m);
std::string encode(const ServerMessage& m);

}  // namespace tessera::bus
