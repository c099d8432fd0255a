#pragma once
// The life cycle of one request inside the scheduler. Every state change goes through transition(), the single
// place that knows which changes are legal:
//   Waiting    -> Prefilling (first prompt chunk scheduled) | Cancelled | Failed
//   Prefilling -> Decoding (prompt done, first token sampled) | Preempted | Finished | Cancelled | Failed
//   Decoding   -> Preempted | Finished | Cancelled | Failed
//   Preempted  -> Prefilling (recompute of prompt + generated tokens) | Finished | Cancelled | Failed
//   Finished, Cancelled, Failed: terminal.
// Preempted -> Finished happens when a stop string in already generated text is reported after the preemption.
// A Waiting request has generated nothing, so it cannot finish; it can only be cancelled or fail.
#include <cstdint>

namespace tessera {

enum class RequestState : uint8_t { Waiting, Prefilling, Decoding, Preempted, Finished, Cancelled, Failed };

const char* request_state_name(RequestState state);  // "waiting", "prefilling", ...
bool is_terminal(RequestState state);
bool is_legal_transition(RequestState from, RequestState to);
// Returns `to`; throws tessera::Error "illegal request state transition <from> -> <to> (sequence <id>)" otherwise.
// An illegal transition is a bug in the caller, reported as an error so the owning actor fails the request
// instead of crashing the server.
RequestState transition(RequestState from, RequestState to, uint64_t seq_id);

}  // namespace tessera
