#pragma once
// A tokenizer shard actor: encodes and validates its requests' prompts, then streams their tokens back as text
// (ResponseStreams does the work; this actor only translates messages). Requests are sharded by seq_id, so each
// request's detokenizer state lives in exactly one shard and its messages stay in order.
// Messages: IncomingRequest and AbortSequence (from the ingress), AdmissionResult and ShardProgress (from the scheduler),
// shutdown_atom (fail every open request with shutting_down).
#include <cstdint>
#include <memory>

#include <caf/fwd.hpp>

#include "actors/response_streams.hpp"

namespace tessera {

class ClientSink;

// `metrics` may be null.
caf::actor spawn_tokenizer_actor(caf::actor_system& system, uint32_t shard, std::shared_ptr<const Tokenizer> tokenizer,
                                 ModelLimits limits, caf::actor scheduler, std::shared_ptr<ClientSink> sink,
                                 std::shared_ptr<ServingMetrics> metrics);

}  // namespace tessera
