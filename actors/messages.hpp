#pragma once
// Messages between Tessera's actors that are not step structs (those are in core/serving/step.hpp). Plain structs,
// defined once: each is a CAF message (actors/caf_types.hpp) and packs with msgpack, so an actor can later move to
// another process behind the bus.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "core/sampling/sampling_params.hpp"
#include "core/serving/scheduler.hpp"  // SequenceOutcome

namespace tessera {

// Who to answer: the ZeroMQ routing id of the client connection and the client's request id.
struct ClientAddress {
  std::string client;
  std::string request_id;
  MSGPACK_DEFINE_MAP(client, request_id)
};

// ingress → tokenizer shard: a decoded, protocol-valid submit with its server-side id and arrival time.
struct IncomingRequest {
  uint64_t seq_id = 0;
  ClientAddress address;
  std::optional<std::string> prompt;
  std::vector<int32_t> prompt_ids;  // used when prompt is absent
  SamplingParams params;
  bool stream = true;
  int32_t priority = 0;
  std::optional<int64_t> deadline_ms;
  double arrival_s = 0;  // steady clock, seconds
  MSGPACK_DEFINE_MAP(seq_id, address, prompt, prompt_ids, params, stream, priority, deadline_ms, arrival_s)
};

// tokenizer shard → scheduler: a validated, tokenized request.
struct AdmitRequest {
  uint64_t seq_id = 0;
  uint32_t shard = 0;  // which tokenizer shard streams its output
  std::vector<int32_t> prompt;
  SamplingParams params;
  int32_t priority = 0;
  double arrival_s = 0;                // steady clock, seconds
  std::optional<double> deadline_s;    // absolute steady-clock time, seconds
  MSGPACK_DEFINE_MAP(seq_id, shard, prompt, params, priority, arrival_s, deadline_s)
};

// scheduler → tokenizer shard: one sequence's news of one step.
struct SequenceProgress {
  uint64_t seq_id = 0;
  std::vector<int32_t> tokens;  // newly sampled ids (usually one)
  uint8_t outcome = 0;          // SequenceOutcome
  std::string error_code;       // bus error code name when outcome is Error (e.g. "internal", "overloaded")
  std::string error_message;
  double queue_s = -1;          // arrival → first scheduled, once known
  MSGPACK_DEFINE_MAP(seq_id, tokens, outcome, error_code, error_message, queue_s)
};

// scheduler → tokenizer shard: everything of one step for this shard, in one message.
struct ShardProgress {
  std::vector<SequenceProgress> sequences;
  MSGPACK_DEFINE_MAP(sequences)
};

// scheduler → tokenizer shard: admission decided.
struct AdmissionResult {
  uint64_t seq_id = 0;
  bool accepted = false;
  std::string error_code;  // when rejected
  std::string error_message;
  MSGPACK_DEFINE_MAP(seq_id, accepted, error_code, error_message)
};

// ingress / tokenizer shard → scheduler: end a sequence early.
struct AbortSequence {
  uint64_t seq_id = 0;
  uint8_t outcome = 0;  // SequenceOutcome: Stop (stop string, already answered), Cancelled, Error
  std::string error_code;
  std::string error_message;
  bool already_answered = false;  // true when the client already got its terminal message
  MSGPACK_DEFINE_MAP(seq_id, outcome, error_code, error_message, already_answered)
};

}  // namespace tessera
