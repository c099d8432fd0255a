#include "core/serving/request_state.hpp"

#include <string>

#include "core/common/error.hpp"

namespace tessera {

const char* request_state_name(RequestState state) {
  switch (state) {
    case RequestState::Waiting: return "waiting";
    case RequestState::Prefilling: return "prefilling";
    case RequestState::Decoding: return "decoding";
    case RequestState::Preempted: return "preempted";
    case RequestState::Finished: return "finished";
    case RequestState::Cancelled: return "cancelled";
    case RequestState::Failed: return "failed";
  }
  return "?";
}

bool is_terminal(RequestState state) {
  return state == RequestState::Finished || state == RequestState::Cancelled || state == RequestState::Failed;
}

bool is_legal_transition(RequestState from, RequestState to) {
  using S = RequestState;
  if (is_terminal(from)) return false;
  if (to == S::Cancelled || to == S::Failed) return true;  // any live request can be cancelled or fail
  switch (from) {
    case S::Waiting: return to == S::Prefilling;
    case S::Prefilling: return to == S::Decoding || to == S::Preempted || to == S::Finished;
    case S::Decoding: return to == S::Preempted || to == S::Finished;
    case S::Preempted: return to == S::Prefilling || to == S::Finished;
    default: return false;
  }
}

RequestState transition(RequestState from, RequestState to, uint64_t seq_id) {
  if (!is_legal_transition(from, to)) {
    throw Error(std::string("illegal request state transition ") + request_state_name(from) + " -> " +
                request_state_name(to) + " (sequence " + std::to_string(seq_id) + ")");
  }
  return to;
}

}  // namespace tessera
