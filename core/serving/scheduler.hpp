#pragma once
// Continuous batching: which requests run in the next engine step, with how many tokens each.
// The Scheduler is a plain, clock-free, single-threaded class (the scheduler actor owns it and adds timestamps).
// It tracks per-sequence KV block COUNTS only; the KvBlockManager turns a plan's counts into block ids.
//
// Contract of one step: schedule() -> StepPlan; the caller applies it to a KvBlockManager (release_kv freed first,
// then allocate) and an executor, then passes the executor's StepResult to update(). schedule() may be called again
// before the previous plan's update() (pipelining: the executor runs step t while step t+1 is planned): a sequence
// whose in-flight step samples its next token is then planned once more as a decode with token_pending (its input
// is that not yet known token), unless the in-flight token must end it (max_tokens, max_model_len); a sequence
// with prompt left continues with its next chunk. At most two plans hold a sequence. When update() shows that the
// in-flight token ended the sequence (a stop token), the later plan's work for it is wasted and its result skipped.
//
// Policy of schedule(), within max_num_batched_tokens tokens and max_num_seqs sequences per step:
// 1. running decodes first (one token each, oldest request first), so a long prompt never starves them;
// 2. then partially prefilled requests (next prompt chunk, capped by the remaining token budget);
// 3. then waiting requests: higher `priority` first, FCFS (arrival order) within a priority; the first prompt chunk
//    is capped by the remaining budget (chunked prefill). A request that does not fit blocks those behind it.
//    No new request is admitted in a step that had to preempt.
// When a running request needs a block and none is free, the running request with the lowest priority, newest
// among equals, is preempted (possibly the one asking): its blocks are freed (release_kv), it goes back to the
// waiting queue at its original arrival position, and later recomputes prompt + generated tokens as a prefill.
// Tokens are conserved: a request never needs more than max_model_len tokens, and add() rejects a request whose
// prompt + max_tokens could not fit in the whole KV cache, so the oldest request always makes progress.
//
// Capacity policy (the names of TensorRT-LLM's batch manager), deciding admission in step 3:
// - MaxUtilization (default): a waiting request is admitted when the blocks of its first chunk are free; running
//   requests that outgrow the cache are preempted as above. Most requests in flight, at the price of recomputation
//   when the cache runs short (e.g. many long outputs at once).
// - GuaranteedNoEvict: a request is admitted only when the blocks of its prompt + max_tokens (capped at
//   max_model_len), added to those of every admitted request, fit the cache. Running requests then never lack a
//   block and are never preempted, at the price of a smaller batch when requests end well before max_tokens.
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <msgpack.hpp>

#include "core/sampling/sampling_params.hpp"
#include "core/serving/request_state.hpp"
#include "core/serving/step.hpp"

namespace tessera {

enum class CapacityPolicy : uint8_t { MaxUtilization, GuaranteedNoEvict };
const char* capacity_policy_name(CapacityPolicy policy);  // "max_utilization", "guaranteed_no_evict"
// The inverse of capacity_policy_name; nullopt for any other text.
std::optional<CapacityPolicy> parse_capacity_policy(std::string_view text);

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;  // tokens (prompt chunks + decodes) per step
  int32_t max_num_seqs = 128;             // running sequences (and so sequences per step)
  int32_t max_waiting_requests = 1024;    // waiting + preempted requests; beyond it add() answers Overloaded
  int32_t max_model_len = 0;              // required: prompt + generated tokens of one request
  int32_t block_size = 16;                // tokens per KV block
  CapacityPolicy capacity_policy = CapacityPolicy::MaxUtilization;
  // Seeds the generator that draws a sampling seed for requests without one; unset: std::random_device.
  std::optional<uint64_t> seed;

  // Throws tessera::Error naming the first field out of range.
  void validate() const;
};

// An accepted, tokenized request, as the tokenizer actor hands it over. `sampling` should be validated against the
// vocabulary already (SamplingParams::validate); stop strings are matched on text by the tokenizer actor.
struct RequestSpec {
  uint64_t seq_id = 0;                    // unique among live requests
  std::vector<int32_t> prompt_token_ids;  // at least one token
  SamplingParams sampling;
  int32_t priority = 0;                   // higher runs first
  MSGPACK_DEFINE_MAP(seq_id, prompt_token_ids, sampling, priority)
};

enum class AddStatus : uint8_t { Accepted, Overloaded, PromptTooLong, Invalid };

struct AddResult {
  AddStatus status = AddStatus::Accepted;
  std::string message;  // why, when not accepted
  bool accepted() const { return status == AddStatus::Accepted; }
};

// How a sequence ended; None while it goes on.
enum class SequenceOutcome : uint8_t { None, Stop, Length, Cancelled, Error };
const char* sequence_outcome_name(SequenceOutcome outcome);  // "none", "stop", "length", "cancelled", "error"

enum class AbortReason : uint8_t { Cancelled, ClientLost, StopString, Error };

// What one step (or an abort) did to one sequence. A Stop outcome with a token: that token is the stop token.
struct SequenceUpdate {
  uint64_t seq_id = 0;
  std::optional<int32_t> token;  // the newly sampled token, if any
  SequenceOutcome outcome = SequenceOutcome::None;
  std::string message;           // error text for SequenceOutcome::Error
  int32_t num_prompt_tokens = 0;
  int32_t num_generated_tokens = 0;  // including `token`
  bool finished() const { return outcome != SequenceOutcome::None; }
  MSGPACK_DEFINE_MAP(seq_id, token, outcome, message, num_prompt_tokens, num_generated_tokens)
};

// Sequences whose KV blocks / executor state can go, when there is no plan to carry them (see take_releases()).
struct Releases {
  std::vector<uint64_t> kv;
  std::vector<uint64_t> state;
  bool empty() const { return kv.empty() && state.empty(); }
};

struct SchedulerStats {
  int32_t num_running = 0;  // prefilling + decoding
  int32_t num_waiting = 0;  // waiting + preempted
  uint64_t num_preemptions = 0;
  uint64_t num_recomputed_tokens = 0;  // KV positions discarded by preemptions (computed again later)
  int32_t kv_blocks_used = 0;          // as the scheduler counts them (planned allocations included)
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_reserved = 0;      // GuaranteedNoEvict: the admitted requests' blocks at max_tokens (else 0)
};

class Scheduler {
 public:
  // `num_kv_blocks`: blocks of config.block_size tokens in the KV cache. `eos_token_ids`: end generation unless a
  // request sets ignore_eos. Throws tessera::Error on a bad config or num_kv_blocks < 1.
  Scheduler(SchedulerConfig config, int num_kv_blocks, std::vector<int32_t> eos_token_ids);

  // Queues a request. Rejects (never throws): Invalid (duplicate id, empty prompt, max_tokens < 1, more KV blocks
  // than the cache holds), PromptTooLong (prompt >= max_model_len), Overloaded (waiting queue full).
  AddResult add(RequestSpec spec);

  // Ends a live request wherever it is (waiting, running, in flight, preempted): Cancelled/ClientLost -> outcome
  // Cancelled, StopString -> Stop, Error -> Error. Its blocks and state go into the next releases. Returns the
  // terminal update, or nullopt if the id is unknown (already ended). Throws tessera::Error for StopString on a
  // request that has not generated anything yet (an illegal transition).
  std::optional<SequenceUpdate> abort(uint64_t seq_id, AbortReason reason, std::string message = {});

  // The next step, or nullopt when nothing can run now (pending releases then stay for take_releases()).
  std::optional<StepPlan> schedule();

  // Releases not yet carried by a plan (call when schedule() returned nullopt).
  Releases take_releases();

  // Applies a step's result: appends sampled tokens, finishes sequences on stop ids, EOS (unless ignore_eos),
  // max_tokens or max_model_len. A result with an error (or another step_id) fails every sequence of the step.
  // Sequences aborted since the plan was made are skipped. One update per sequence that sampled or ended.
  std::vector<SequenceUpdate> update(const StepPlan& plan, const StepResult& result);

  SchedulerStats stats() const;
  // Live requests (not yet finished, cancelled or failed).
  int32_t num_requests() const { return static_cast<int32_t>(seqs_.size()); }
  std::optional<RequestState> state(uint64_t seq_id) const;
  const SchedulerConfig& config() const { return config_; }

 private:
  struct Sequence {
    uint64_t seq_id = 0;
    int32_t priority = 0;
    uint64_t arrival = 0;
    RequestState state = RequestState::Waiting;
    std::vector<int32_t> tokens;  // prompt + generated
    int32_t num_prompt = 0;
    int32_t num_computed = 0;     // tokens in the KV cache (or planned into it)
    int32_t num_blocks = 0;       // KV blocks held (or planned)
    int32_t in_flight = 0;        // plans holding it whose update() has not come yet (0, 1 or 2)
    int32_t max_blocks = 0;       // blocks of prompt + max_tokens (capped at max_model_len), all cached
    bool reserved = false;        // GuaranteedNoEvict: max_blocks counted in reserved_blocks_
    bool ever_scheduled = false;  // the executor may hold sampler state for it
    SamplingParams params;
    SamplingSpec sampling;
    int32_t num_generated() const { return static_cast<int32_t>(tokens.size()) - num_prompt; }
  };
  // Waiting order: higher priority first, then arrival.
  struct WaitingKey {
    int32_t priority;
    uint64_t arrival;
    uint64_t seq_id;
    bool operator<(const WaitingKey& o) const {
      if (priority != o.priority) return priority > o.priority;
      return arrival < o.arrival;
    }
  };

  int32_t blocks_for(int64_t positions) const;
  void emit(Sequence& s, int32_t chunk, StepPlan& plan);
  void emit_pending_decode(Sequence& s, StepPlan& plan);
  // Whether `s` may be planned now (in `phase`): nothing in flight, or (pipelining) one plan in flight after which
  // the sequence surely goes on.
  bool schedulable(const Sequence& s) const;
  void preempt(Sequence& s);
  // Whether the waiting request `s` may be admitted by the capacity policy (besides its first chunk's blocks).
  bool capacity_admits(const Sequence& s) const;
  // GuaranteedNoEvict: count an admitted request's max_blocks (reserve) until it ends or is preempted (release).
  void reserve(Sequence& s);
  void release_reservation(Sequence& s);
  Sequence* pick_victim(const Sequence& asking);
  // Moves `s` to a terminal state, frees its blocks, queues its releases and erases it; returns its last update.
  SequenceUpdate end(Sequence& s, RequestState to, SequenceOutcome outcome, std::string message);
  SequenceOutcome finish_check(const Sequence& s, int32_t token) const;
  void remove_running(uint64_t seq_id);

  SchedulerConfig config_;
  int32_t num_kv_blocks_;
  int32_t free_blocks_;
  int32_t reserved_blocks_ = 0;  // sum of max_blocks of the admitted requests under GuaranteedNoEvict
  std::vector<int32_t> eos_token_ids_;
  std::mt19937_64 seed_generator_;
  std::unordered_map<uint64_t, Sequence> seqs_;
  std::set<WaitingKey> waiting_;
  std::vector<uint64_t> running_;  // sorted by arrival
  Releases pending_;
  uint64_t next_arrival_ = 0;
  uint64_t next_step_id_ = 1;
  uint64_t num_preemptions_ = 0;
  uint64_t num_recomputed_tokens_ = 0;
};

}  // namespace tessera

MSGPACK_ADD_ENUM(tessera::SequenceOutcome);
