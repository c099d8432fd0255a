#pragma once
// What the client saw of one request, timestamped with a monotonic clock (std::chrono::steady_clock) in seconds
// since the start of its phase, and the latencies derived from it.
//
// Times:
//   send     just before the submit frame is encoded and handed to ZeroMQ
//   chunk k  the k-th "tokens" message was read from the socket; it carries n_k >= 1 tokens
//   end      the "final" (or "error") was read
// Derived (milliseconds):
//   TTFT  = chunk 1 - send
//   E2E   = end - send
//   TPOT  = (last chunk - chunk 1) / (output tokens - 1), for requests with >= 2 output tokens
//   ITL   one gap per output token position p = 1 .. n-1 (position 0 is the first token, measured by TTFT):
//         a chunk that arrives dt after the previous chunk and carries n tokens gives each of its n tokens the gap
//         dt / n (the wait is shared evenly by the tokens it delivered); tokens that arrive in the first chunk
//         together with token 0 get gap 0. So a request's gaps add up to (last chunk - chunk 1) and their mean is
//         its TPOT. (Tessera's server sends one chunk per request per step, so chunks normally carry one token.)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/bench/workload.hpp"

namespace tessera::bench {

struct ChunkArrival {
  double time_s = 0;   // when the chunk was read
  int32_t tokens = 0;  // ids it carried
};

struct RequestRecord {
  std::string id;      // the request id on the wire
  RequestPlan plan;    // what was asked for
  double send_s = 0;
  std::optional<int32_t> prompt_tokens;  // the server's count, from "accepted"
  std::vector<ChunkArrival> chunks;
  std::optional<double> end_s;           // set once "final" or "error" arrived
  std::string finish_reason;             // "stop", "length", "cancelled"; empty on error
  std::optional<int32_t> usage_completion_tokens;  // the server's count, from "final"
  std::string error_code;                // the server's error code ("overloaded", ...); empty when none
  std::string error_message;

  // Ended with a "final" (not an error).
  bool ok() const { return end_s.has_value() && error_code.empty(); }
  // Token ids received in "tokens" messages.
  int32_t output_tokens() const;
  std::optional<double> ttft_ms() const;
  std::optional<double> e2e_ms() const;
  std::optional<double> tpot_ms() const;
  // itl_ms()[i] is the gap of output token position i + 1 (see above); empty for fewer than 2 tokens.
  std::vector<double> itl_ms() const;
  // Open loop and trace replay: how late the request went out against its schedule (send - arrival), >= 0.
  std::optional<double> send_lag_ms() const;
};

}  // namespace tessera::bench
