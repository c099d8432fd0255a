#pragma once
// The plain state behind a tokenizer shard: for each of its requests, prompt encoding and validation, incremental
// detokenization, stop strings, and the one terminal message (final or error) the client gets. Actor-free and
// clock-free (callers pass times), so it is unit-tested directly. Not thread-safe: one per shard actor.
// With a ServingMetrics it records what the shard knows: TTFT, every inter-token gap, generated and prompt tokens,
// and at a request's end its outcome, e2e, prefill and decode time and lengths.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "actors/messages.hpp"
#include "bus/protocol.hpp"
#include "core/metrics/serving_metrics.hpp"
#include "core/sampling/stop_checker.hpp"
#include "core/tokenizer/streaming_detokenizer.hpp"
#include "core/tokenizer/tokenizer.hpp"

namespace tessera {

// A server message for one client; `terminal` marks the request's final or error message.
struct Outbound {
  std::string client;
  bus::ServerMessage message;
  bool terminal = false;
};

// What the scheduler needs of a validated request.
struct PreparedRequest {
  std::vector<int32_t> prompt;
  SamplingParams params;
  int32_t priority = 0;
};

struct ModelLimits {
  int32_t vocab_size = 0;
  int32_t max_model_len = 0;  // prompt + max_tokens must fit
  std::vector<int32_t> eos_token_ids;
};

class ResponseStreams {
 public:
  // `tokenizer` may be null: then only prompt_ids requests are served and text deltas are empty. `metrics` may be
  // null (nothing recorded).
  ResponseStreams(std::shared_ptr<const Tokenizer> tokenizer, ModelLimits limits,
                  std::shared_ptr<ServingMetrics> metrics = nullptr);

  // Encodes and validates the request. Success registers its stream (awaiting admission); failure returns the
  // error reply (nothing registered).
  std::variant<PreparedRequest, bus::ErrorMessage> open(const IncomingRequest& request);

  // Admission decided by the scheduler: an Accepted message, or the terminal error (the stream is closed).
  std::optional<Outbound> admitted(const AdmissionResult& result);

  struct ProgressOutput {
    std::vector<Outbound> messages;
    bool stop_string_hit = false;  // the caller must tell the scheduler to finish this sequence
  };
  // Applies one sequence's step news at time `now_s` (steady clock seconds). Unknown or closed sequences are
  // ignored (e.g. tokens that were in flight when a stop string ended the request).
  ProgressOutput progress(const SequenceProgress& progress, double now_s);

  // Ends an open stream with an error (e.g. shutdown); nullopt when it is not open.
  std::optional<Outbound> fail(uint64_t seq_id, bus::ErrorCode code, const std::string& message);

  size_t num_open() const { return streams_.size(); }
  bool is_open(uint64_t seq_id) const { return streams_.count(seq_id) != 0; }
  std::vector<uint64_t> open_ids() const;

 private:
  struct Stream {
    ClientAddress address;
    bool stream = true;
    int32_t prompt_tokens = 0;
    double arrival_s = 0;
    double first_token_s = -1;
    double last_token_s = -1;
    double queue_s = -1;
    std::optional<StreamingDetokenizer> detokenizer;
    StopChecker stop;
    std::vector<int32_t> ids;  // all generated ids
    std::string text;          // all emitted text (for stream = false)
  };

  std::variant<PreparedRequest, bus::ErrorMessage> open_stream(const IncomingRequest& request);
  Outbound final_message(uint64_t seq_id, Stream& s, bus::FinishReason reason, double now_s);
  void record_outcome(RequestOutcome outcome) {
    if (metrics_) metrics_->record_outcome(outcome);
  }

  std::shared_ptr<const Tokenizer> tokenizer_;
  ModelLimits limits_;
  std::shared_ptr<ServingMetrics> metrics_;
  std::unordered_map<uint64_t, Stream> streams_;
};

}  // namespace tessera
