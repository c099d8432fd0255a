#include "core/serving/scheduler.hpp"

#include <algorithm>
#include <unordered_set>

#include "core/common/error.hpp"

namespace tessera {

namespace {

void require_at_least(const char* name, int64_t value, int64_t minimum) {
  if (value < minimum) {
    throw Error(std::string("scheduler: ") + name + " must be >= " + std::to_string(minimum) + " (got " +
                std::to_string(value) + ")");
  }
}

bool contains(const std::vector<int32_t>& ids, int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

}  // namespace

const char* sequence_outcome_name(SequenceOutcome outcome) {
  switch (outcome) {
    case SequenceOutcome::None: return "none";
    case SequenceOutcome::Stop: return "stop";
    case SequenceOutcome::Length: return "length";
    case SequenceOutcome::Cancelled: return "cancelled";
    case SequenceOutcome::Error: return "error";
  }
  return "?";
}

const char* capacity_policy_name(CapacityPolicy policy) {
  switch (policy) {
    case CapacityPolicy::MaxUtilization: return "max_utilization";
    case CapacityPolicy::GuaranteedNoEvict: return "guaranteed_no_evict";
  }
  return "?";
}

std::optional<CapacityPolicy> parse_capacity_policy(std::string_view text) {
  for (CapacityPolicy policy : {CapacityPolicy::MaxUtilization, CapacityPolicy::GuaranteedNoEvict})
    if (text == capacity_policy_name(policy)) return policy;
  return std::nullopt;
}

void SchedulerConfig::validate() const {
  require_at_least("max_num_batched_tokens", max_num_batched_tokens, 1);
  require_at_least("max_num_seqs", max_num_seqs, 1);
  require_at_least("max_waiting_requests", max_waiting_requests, 1);
  require_at_least("max_model_len", max_model_len, 2);  // one prompt token + one generated token
  require_at_least("block_size", block_size, 1);
}

Scheduler::Scheduler(SchedulerConfig config, int num_kv_blocks, std::vector<int32_t> eos_token_ids)
    : config_(std::move(config)),
      num_kv_blocks_(num_kv_blocks),
      free_blocks_(num_kv_blocks),
      eos_token_ids_(std::move(eos_token_ids)) {
  config_.validate();
  require_at_least("num_kv_blocks", num_kv_blocks, 1);
  seed_generator_.seed(config_.seed ? *config_.seed : std::random_device{}());
}

int32_t Scheduler::blocks_for(int64_t positions) const {
  return static_cast<int32_t>((positions + config_.block_size - 1) / config_.block_size);
}

AddResult Scheduler::add(RequestSpec spec) {
  const std::string name = "request " + std::to_string(spec.seq_id);
  if (seqs_.count(spec.seq_id)) return {AddStatus::Invalid, name + ": duplicate sequence id"};
  if (spec.prompt_token_ids.empty()) return {AddStatus::Invalid, name + ": the prompt must have at least one token"};
  if (spec.sampling.max_tokens < 1) {
    return {AddStatus::Invalid,
            name + ": max_tokens must be >= 1 (got " + std::to_string(spec.sampling.max_tokens) + ")"};
  }
  const int64_t prompt_len = static_cast<int64_t>(spec.prompt_token_ids.size());
  if (prompt_len >= config_.max_model_len) {
    return {AddStatus::PromptTooLong, name + ": the prompt has " + std::to_string(prompt_len) +
                                          " tokens; max_model_len is " + std::to_string(config_.max_model_len) +
                                          " and at least one token must be generated"};
  }
  // The last generated token is never fed back, so at most total - 1 positions are ever cached.
  const int64_t max_total = std::min<int64_t>(prompt_len + spec.sampling.max_tokens, config_.max_model_len);
  if (blocks_for(max_total - 1) > num_kv_blocks_) {
    return {AddStatus::Invalid, name + ": prompt + max_tokens need " + std::to_string(blocks_for(max_total - 1)) +
                                    " KV blocks but the cache holds " + std::to_string(num_kv_blocks_)};
  }
  if (static_cast<int64_t>(waiting_.size()) >= config_.max_waiting_requests) {
    return {AddStatus::Overloaded, name + ": the waiting queue is full (" +
                                       std::to_string(config_.max_waiting_requests) + " requests)"};
  }
  Sequence s;
  s.seq_id = spec.seq_id;
  s.priority = spec.priority;
  s.arrival = next_arrival_++;
  s.num_prompt = static_cast<int32_t>(prompt_len);
  s.max_blocks = blocks_for(max_total - 1);
  s.tokens = std::move(spec.prompt_token_ids);
  s.sampling.temperature = spec.sampling.temperature;
  s.sampling.top_k = spec.sampling.top_k;
  s.sampling.top_p = spec.sampling.top_p;
  s.sampling.seed = spec.sampling.seed ? *spec.sampling.seed : seed_generator_();
  s.params = std::move(spec.sampling);
  waiting_.insert({s.priority, s.arrival, s.seq_id});
  seqs_.emplace(s.seq_id, std::move(s));
  return {};
}

void Scheduler::remove_running(uint64_t seq_id) {
  running_.erase(std::remove(running_.begin(), running_.end(), seq_id), running_.end());
}

SequenceUpdate Scheduler::end(Sequence& s, RequestState to, SequenceOutcome outcome, std::string message) {
  s.state = transition(s.state, to, s.seq_id);
  SequenceUpdate update;
  update.seq_id = s.seq_id;
  update.outcome = outcome;
  update.message = std::move(message);
  update.num_prompt_tokens = s.num_prompt;
  update.num_generated_tokens = s.num_generated();
  waiting_.erase({s.priority, s.arrival, s.seq_id});
  remove_running(s.seq_id);
  if (s.num_blocks > 0) pending_.kv.push_back(s.seq_id);
  if (s.ever_scheduled) pending_.state.push_back(s.seq_id);
  free_blocks_ += s.num_blocks;
  release_reservation(s);
  seqs_.erase(s.seq_id);  // `s` dangles from here on
  return update;
}

std::optional<SequenceUpdate> Scheduler::abort(uint64_t seq_id, AbortReason reason, std::string message) {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return std::nullopt;
  switch (reason) {
    case AbortReason::Cancelled:
    case AbortReason::ClientLost:
      return end(it->second, RequestState::Cancelled, SequenceOutcome::Cancelled, std::move(message));
    case AbortReason::StopString:
      return end(it->second, RequestState::Finished, SequenceOutcome::Stop, std::move(message));
    case AbortReason::Error:
      return end(it->second, RequestState::Failed, SequenceOutcome::Error, std::move(message));
  }
  return std::nullopt;
}

void Scheduler::preempt(Sequence& s) {
  s.state = transition(s.state, RequestState::Preempted, s.seq_id);
  remove_running(s.seq_id);
  pending_.kv.push_back(s.seq_id);  // before this step's allocations, which may reuse the blocks
  free_blocks_ += s.num_blocks;
  num_recomputed_tokens_ += static_cast<uint64_t>(s.num_computed);
  s.num_blocks = 0;
  s.num_computed = 0;
  release_reservation(s);  // (GuaranteedNoEvict never preempts: its reservations keep every block available)
  waiting_.insert({s.priority, s.arrival, s.seq_id});
  ++num_preemptions_;
}

bool Scheduler::capacity_admits(const Sequence& s) const {
  switch (config_.capacity_policy) {
    case CapacityPolicy::MaxUtilization: return true;
    case CapacityPolicy::GuaranteedNoEvict: return reserved_blocks_ + s.max_blocks <= num_kv_blocks_;
  }
  return false;
}

void Scheduler::reserve(Sequence& s) {
  if (config_.capacity_policy != CapacityPolicy::GuaranteedNoEvict) return;
  reserved_blocks_ += s.max_blocks;
  s.reserved = true;
}

void Scheduler::release_reservation(Sequence& s) {
  if (!s.reserved) return;
  reserved_blocks_ -= s.max_blocks;
  s.reserved = false;
}

Scheduler::Sequence* Scheduler::pick_victim(const Sequence& asking) {
  Sequence* victim = nullptr;
  for (uint64_t id : running_) {
    Sequence& c = seqs_.at(id);
    // In-flight sequences keep their blocks until their step is back; `asking` is not in flight yet.
    if (c.in_flight > 0 || (c.num_blocks == 0 && &c != &asking)) continue;
    if (!victim || c.priority < victim->priority ||
        (c.priority == victim->priority && c.arrival > victim->arrival)) {
      victim = &c;
    }
  }
  return victim;
}

void Scheduler::emit(Sequence& s, int32_t chunk, StepPlan& plan) {
  ScheduledSequence x;
  x.seq_id = s.seq_id;
  x.tokens.assign(s.tokens.begin() + s.num_computed, s.tokens.begin() + s.num_computed + chunk);
  x.num_cached = s.num_computed;
  x.new_blocks = blocks_for(static_cast<int64_t>(s.num_computed) + chunk) - s.num_blocks;
  x.sample = s.num_computed + chunk == static_cast<int32_t>(s.tokens.size());
  x.sampling = s.sampling;
  s.num_computed += chunk;
  s.num_blocks += x.new_blocks;
  free_blocks_ -= x.new_blocks;
  ++s.in_flight;
  s.ever_scheduled = true;
  plan.sequences.push_back(std::move(x));
}

void Scheduler::emit_pending_decode(Sequence& s, StepPlan& plan) {
  ScheduledSequence x;
  x.seq_id = s.seq_id;
  x.tokens = {0};  // placeholder: the executor feeds the token the in-flight step samples
  x.token_pending = true;
  x.num_cached = s.num_computed;
  x.new_blocks = blocks_for(static_cast<int64_t>(s.num_computed) + 1) - s.num_blocks;
  x.sample = true;
  x.sampling = s.sampling;
  s.num_computed += 1;
  s.num_blocks += x.new_blocks;
  free_blocks_ -= x.new_blocks;
  ++s.in_flight;
  plan.sequences.push_back(std::move(x));
}

bool Scheduler::schedulable(const Sequence& s) const {
  if (s.in_flight == 0) return true;
  if (s.in_flight > 1) return false;
  if (s.num_computed < static_cast<int32_t>(s.tokens.size())) return true;  // more prompt behind the chunk in flight
  // The in-flight step samples the next token: plan a decode of it only if that token cannot end the sequence by
  // length (a stop token can still end it; that step's work is then wasted).
  return s.num_generated() + 1 < s.params.max_tokens &&
         static_cast<int64_t>(s.tokens.size()) + 1 < config_.max_model_len;
}

std::optional<StepPlan> Scheduler::schedule() {
  StepPlan plan;
  int32_t budget = config_.max_num_batched_tokens;
  const size_t max_seqs = static_cast<size_t>(config_.max_num_seqs);
  bool preempted = false;

  // Running requests: decodes, then partial prefills; oldest first.
  for (RequestState phase : {RequestState::Decoding, RequestState::Prefilling}) {
    const std::vector<uint64_t> order = running_;  // preemption edits running_
    for (uint64_t id : order) {
      if (budget == 0 || plan.sequences.size() >= max_seqs) break;
      auto it = seqs_.find(id);
      if (it == seqs_.end()) continue;
      Sequence& s = it->second;
      // A sequence whose in-flight step samples its next token decodes that token next (token_pending).
      const bool pending_decode = s.in_flight > 0 && s.num_computed == static_cast<int32_t>(s.tokens.size());
      const RequestState its_phase = pending_decode ? RequestState::Decoding : s.state;
      if (its_phase != phase || !schedulable(s)) continue;  // preempted meanwhile, or already planned
      const int32_t chunk =
          pending_decode ? 1 : std::min<int32_t>(static_cast<int32_t>(s.tokens.size()) - s.num_computed, budget);
      const int32_t need = blocks_for(static_cast<int64_t>(s.num_computed) + chunk) - s.num_blocks;
      while (need > free_blocks_) {
        Sequence* victim = pick_victim(s);
        if (!victim) break;
        preempt(*victim);
        preempted = true;
        if (victim == &s) break;
      }
      if (s.state == RequestState::Preempted || need > free_blocks_) continue;
      if (pending_decode) {
        emit_pending_decode(s, plan);
      } else {
        emit(s, chunk, plan);
      }
      budget -= chunk;
    }
  }

  // Waiting requests (new and preempted): priority, then arrival. The head that does not fit blocks the rest.
  while (!preempted && !waiting_.empty() && budget > 0 && plan.sequences.size() < max_seqs &&
         running_.size() < max_seqs) {
    Sequence& s = seqs_.at(waiting_.begin()->seq_id);
    const int32_t chunk = std::min<int32_t>(static_cast<int32_t>(s.tokens.size()), budget);
    if (blocks_for(chunk) > free_blocks_ || !capacity_admits(s)) break;
    waiting_.erase(waiting_.begin());
    reserve(s);
    s.state = transition(s.state, RequestState::Prefilling, s.seq_id);
    running_.insert(std::lower_bound(running_.begin(), running_.end(), s.arrival,
                                     [this](uint64_t id, uint64_t arrival) { return seqs_.at(id).arrival < arrival; }),
                    s.seq_id);
    emit(s, chunk, plan);
    budget -= chunk;
  }

  if (plan.sequences.empty()) return std::nullopt;
  plan.step_id = next_step_id_++;
  plan.release_kv = std::move(pending_.kv);
  plan.release_state = std::move(pending_.state);
  pending_ = {};
  return plan;
}

Releases Scheduler::take_releases() {
  Releases out = std::move(pending_);
  pending_ = {};
  return out;
}

SequenceOutcome Scheduler::finish_check(const Sequence& s, int32_t token) const {
  if (contains(s.params.stop_token_ids, token)) return SequenceOutcome::Stop;
  if (!s.params.ignore_eos && contains(eos_token_ids_, token)) return SequenceOutcome::Stop;
  if (s.num_generated() >= s.params.max_tokens) return SequenceOutcome::Length;
  if (static_cast<int64_t>(s.tokens.size()) >= config_.max_model_len) return SequenceOutcome::Length;
  return SequenceOutcome::None;
}

std::vector<SequenceUpdate> Scheduler::update(const StepPlan& plan, const StepResult& result) {
  std::string step_error = result.error;
  if (step_error.empty() && result.step_id != plan.step_id) {
    step_error = "step result " + std::to_string(result.step_id) + " does not match plan " +
                 std::to_string(plan.step_id);
  }
  std::unordered_map<uint64_t, int32_t> sampled;
  for (const SampledToken& t : result.tokens) sampled.emplace(t.seq_id, t.token);

  std::vector<SequenceUpdate> updates;
  for (const ScheduledSequence& x : plan.sequences) {
    auto it = seqs_.find(x.seq_id);
    if (it == seqs_.end()) continue;  // aborted while the step ran
    Sequence& s = it->second;
    if (s.in_flight == 0) continue;  // not from this plan (a stale or repeated result)
    --s.in_flight;
    if (!step_error.empty()) {
      updates.push_back(end(s, RequestState::Failed, SequenceOutcome::Error, step_error));
      continue;
    }
    if (!x.sample) continue;  // an intermediate prompt chunk
    auto token = sampled.find(x.seq_id);
    // num_computed is one ahead when a later plan already decodes this token (token_pending).
    const int32_t ahead = s.num_computed - static_cast<int32_t>(s.tokens.size());
    if (token == sampled.end() || ahead < 0 || ahead > 1) {
      updates.push_back(end(s, RequestState::Failed, SequenceOutcome::Error,
                            "step " + std::to_string(plan.step_id) + " returned no token for sequence " +
                                std::to_string(x.seq_id)));
      continue;
    }
    s.tokens.push_back(token->second);
    const SequenceOutcome outcome = finish_check(s, token->second);
    if (outcome == SequenceOutcome::None) {
      if (s.state != RequestState::Decoding) s.state = transition(s.state, RequestState::Decoding, s.seq_id);
      SequenceUpdate u;
      u.seq_id = s.seq_id;
      u.token = token->second;
      u.num_prompt_tokens = s.num_prompt;
      u.num_generated_tokens = s.num_generated();
      updates.push_back(std::move(u));
    } else {
      SequenceUpdate u = end(s, RequestState::Finished, outcome, {});
      u.token = token->second;
      updates.push_back(std::move(u));
    }
  }
  return updates;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats st;
  st.num_running = static_cast<int32_t>(running_.size());
  st.num_waiting = static_cast<int32_t>(waiting_.size());
  st.num_preemptions = num_preemptions_;
  st.num_recomputed_tokens = num_recomputed_tokens_;
  st.kv_blocks_used = num_kv_blocks_ - free_blocks_;
  st.kv_blocks_total = num_kv_blocks_;
  st.kv_blocks_reserved = reserved_blocks_;
  return st;
}

std::optional<RequestState> Scheduler::state(uint64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return std::nullopt;
  return it->second.state;
}

}  // namespace tessera
