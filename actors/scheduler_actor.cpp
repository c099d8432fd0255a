#include "actors/scheduler_actor.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "actors/caf_types.hpp"
#include "actors/runtime_gauges.hpp"
#include "core/common/error.hpp"
#include "core/metrics/serving_metrics.hpp"
#include "core/serving/executor.hpp"

namespace tessera {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr auto kDeadlineTick = std::chrono::milliseconds(20);

struct LiveRequest {
  uint32_t shard = 0;
  double arrival_s = 0;
  std::optional<double> deadline_s;
  double queue_s = -1;  // set when first scheduled
};

// Everything the behaviour's handlers share; owned by the actor (one thread at a time).
struct SchedulerState {
  SchedulerState(SchedulerConfig config, int num_kv_blocks, std::vector<int32_t> eos)
      : scheduler(std::move(config), num_kv_blocks, std::move(eos)) {}

  Scheduler scheduler;
  caf::actor kv_manager;
  std::vector<caf::actor> shards;
  std::shared_ptr<RuntimeGauges> gauges;
  std::shared_ptr<ServingMetrics> metrics;  // may be null
  uint64_t preemptions_recorded = 0;
  std::unordered_map<uint64_t, LiveRequest> live;
  std::vector<uint64_t> pending_state_release;  // executor state to drop with the next plan
  int steps_in_flight = 0;  // plans sent whose results have not come back (at most Executor::kMaxStepsInFlight)
  bool flush_sent = false;  // the executor was told that no plan follows the last one sent
  bool tick_armed = false;
  bool shutting_down = false;
};

const char* add_status_code(AddStatus status) {
  switch (status) {
    case AddStatus::Overloaded: return "overloaded";
    case AddStatus::PromptTooLong: return "prompt_too_long";
    default: return "invalid_request";
  }
}

class SchedulerShell {
 public:
  SchedulerShell(caf::event_based_actor* self, std::shared_ptr<SchedulerState> state)
      : self_(self), s_(std::move(state)) {}

  void admit(AdmitRequest& request) {
    AdmissionResult reply;
    reply.seq_id = request.seq_id;
    if (s_->shutting_down) {
      reply.error_code = "shutting_down";
      reply.error_message = "the server is shutting down";
    } else {
      RequestSpec spec{request.seq_id, std::move(request.prompt), std::move(request.params), request.priority};
      const AddResult added = s_->scheduler.add(std::move(spec));
      reply.accepted = added.accepted();
      if (!reply.accepted) {
        reply.error_code = add_status_code(added.status);
        reply.error_message = added.message;
      } else {
        s_->live[request.seq_id] = LiveRequest{request.shard, request.arrival_s, request.deadline_s, -1};
        if (request.deadline_s) arm_tick();
      }
    }
    self_->send(s_->shards.at(request.shard % s_->shards.size()), reply);
    publish();
    try_step();
  }

  void abort(const AbortSequence& request) {
    AbortReason reason = AbortReason::Cancelled;
    switch (static_cast<SequenceOutcome>(request.outcome)) {
      case SequenceOutcome::Stop: reason = AbortReason::StopString; break;
      case SequenceOutcome::Error: reason = AbortReason::Error; break;
      default: reason = request.error_code == "client_lost" ? AbortReason::ClientLost : AbortReason::Cancelled;
    }
    end(request.seq_id, reason, request.error_code, request.error_message, request.already_answered);
    try_step();
  }

  void tick() {
    s_->tick_armed = false;
    const double now = now_seconds();
    std::vector<uint64_t> expired;
    bool any_deadline = false;
    for (const auto& [id, live] : s_->live) {
      if (!live.deadline_s) continue;
      if (*live.deadline_s <= now) expired.push_back(id);
      else any_deadline = true;
    }
    for (uint64_t id : expired) end(id, AbortReason::Error, "deadline_exceeded", "the request's deadline passed", false);
    if (any_deadline) arm_tick();
    if (!expired.empty()) try_step();
  }

  void shutdown() {
    s_->shutting_down = true;
    std::vector<uint64_t> ids;
    for (const auto& [id, live] : s_->live) ids.push_back(id);
    for (uint64_t id : ids) end(id, AbortReason::Error, "shutting_down", "the server is shutting down", false);
    for (const caf::actor& shard : s_->shards) self_->send(shard, shutdown_atom::value);
    try_step();
  }

  // Keeps up to two steps in flight: while the executor runs step t, step t+1 is planned and sent (its decodes of
  // tokens step t samples are token_pending), so the GPU finds the next step queued when it finishes one. When
  // nothing follows the last plan sent, a flush tells the executor not to hold that step's result back.
  void try_step() {
    while (s_->steps_in_flight < Executor::kMaxStepsInFlight) {
      if (!send_next_plan()) {
        if (s_->steps_in_flight > 0 && !s_->flush_sent) {
          self_->send(s_->kv_manager, flush_atom::value);
          s_->flush_sent = true;
        }
        return;
      }
    }
  }

  // Plans and sends one step; false when nothing can run now.
  bool send_next_plan() {
    std::optional<StepPlan> plan = s_->scheduler.schedule();
    if (!plan) {
      Releases releases = s_->scheduler.take_releases();
      if (!releases.kv.empty()) self_->send(s_->kv_manager, KvFree{std::move(releases.kv)});
      s_->pending_state_release.insert(s_->pending_state_release.end(), releases.state.begin(), releases.state.end());
      publish();
      return false;
    }
    plan->release_state.insert(plan->release_state.end(), s_->pending_state_release.begin(),
                               s_->pending_state_release.end());
    s_->pending_state_release.clear();
    const double now = now_seconds();
    for (const ScheduledSequence& seq : plan->sequences) {
      auto it = s_->live.find(seq.seq_id);
      if (it != s_->live.end() && it->second.queue_s < 0) {
        it->second.queue_s = now - it->second.arrival_s;
        if (s_->metrics) s_->metrics->record_queue_time(it->second.queue_s);
      }
    }
    ++s_->steps_in_flight;
    s_->flush_sent = false;
    publish();  // the plan may have admitted or preempted requests
    auto self = self_;
    auto state = s_;
    auto sent = std::make_shared<const StepPlan>(*plan);  // update() needs the plan when the result comes back
    self_->request(s_->kv_manager, caf::infinite, std::move(*plan))
        .then(
            [self, state, sent, now](StepResult& result) {
              SchedulerShell(self, state).finish_step(*sent, result, now);
            },
            [self, state, sent, now](caf::error& error) {
              StepResult failed{sent->step_id, {}, "step failed: " + caf::to_string(error), 0};
              SchedulerShell(self, state).finish_step(*sent, failed, now);
            });
    return true;
  }

  // `sent_s`: when the plan was sent (steady clock seconds).
  void finish_step(const StepPlan& plan, const StepResult& result, double sent_s) {
    --s_->steps_in_flight;
    if (s_->metrics) {
      int64_t tokens = 0;
      for (const ScheduledSequence& seq : plan.sequences) tokens += static_cast<int64_t>(seq.tokens.size());
      // The executor's own time of the step: with two steps in flight, send-to-result also spans the step before.
      const double seconds = result.execute_seconds > 0 ? result.execute_seconds : now_seconds() - sent_s;
      s_->metrics->record_step(seconds, static_cast<int64_t>(plan.sequences.size()), tokens);
    }
    if (!result.error.empty()) spdlog::error("step {} failed: {}", plan.step_id, result.error);
    if (result.fatal && !s_->gauges->executor_failed.exchange(true)) {
      // The executor cannot run another step: end every request with an error and stop the process the same way
      // SIGTERM does (tessera-server then exits non-zero).
      spdlog::critical("the executor failed for good ({}); shutting down", result.error);
      ::kill(::getpid(), SIGTERM);
    }
    ++s_->gauges->steps;
    std::vector<ShardProgress> per_shard(s_->shards.size());
    for (SequenceUpdate& update : s_->scheduler.update(plan, result)) {
      auto it = s_->live.find(update.seq_id);
      if (it == s_->live.end()) continue;
      SequenceProgress progress;
      progress.seq_id = update.seq_id;
      if (update.token) progress.tokens.push_back(*update.token);
      progress.outcome = static_cast<uint8_t>(update.outcome);
      if (update.outcome == SequenceOutcome::Error) {
        progress.error_code = "internal";
        progress.error_message = update.message;
      }
      progress.queue_s = it->second.queue_s;
      per_shard[it->second.shard % per_shard.size()].sequences.push_back(std::move(progress));
      if (update.finished()) s_->live.erase(it);
    }
    for (size_t i = 0; i < per_shard.size(); ++i) {
      if (!per_shard[i].sequences.empty()) self_->send(s_->shards[i], std::move(per_shard[i]));
    }
    try_step();
  }

 private:
  // Ends one sequence early and, unless the client already has its terminal message, tells its shard.
  void end(uint64_t seq_id, AbortReason reason, const std::string& code, const std::string& message,
           bool already_answered) {
    std::optional<SequenceUpdate> update;
    try {
      update = s_->scheduler.abort(seq_id, reason, message);
    } catch (const Error& e) {  // e.g. a stop string before any token: treat as a plain cancel
      update = s_->scheduler.abort(seq_id, AbortReason::Cancelled, e.what());
    }
    auto it = s_->live.find(seq_id);
    if (!update || it == s_->live.end()) return;
    if (!already_answered) {
      SequenceProgress progress;
      progress.seq_id = seq_id;
      progress.outcome = static_cast<uint8_t>(update->outcome);
      progress.error_code = code;
      progress.error_message = message;
      progress.queue_s = it->second.queue_s;
      self_->send(s_->shards[it->second.shard % s_->shards.size()], ShardProgress{{std::move(progress)}});
    }
    s_->live.erase(it);
    publish();
  }

  void arm_tick() {
    if (s_->tick_armed) return;
    s_->tick_armed = true;
    self_->delayed_send(self_, kDeadlineTick, tick_atom::value);
  }

  void publish() {
    const SchedulerStats stats = s_->scheduler.stats();
    s_->gauges->requests_running = stats.num_running;
    s_->gauges->requests_waiting = stats.num_waiting;
    s_->gauges->preemptions = stats.num_preemptions;
    s_->gauges->kv_blocks_reserved = stats.kv_blocks_reserved;
    if (s_->metrics && stats.num_preemptions > s_->preemptions_recorded) {
      s_->metrics->record_preemptions(stats.num_preemptions - s_->preemptions_recorded);
      s_->preemptions_recorded = stats.num_preemptions;
    }
  }

  caf::event_based_actor* self_;
  std::shared_ptr<SchedulerState> s_;
};

caf::behavior scheduler_behavior(caf::event_based_actor* self, std::shared_ptr<SchedulerState> state) {
  return {
      [self, state](const ShardList& list) { state->shards = list.shards; },
      [self, state](AdmitRequest& request) { SchedulerShell(self, state).admit(request); },
      [self, state](const AbortSequence& request) { SchedulerShell(self, state).abort(request); },
      [self, state](tick_atom) { SchedulerShell(self, state).tick(); },
      [self, state](shutdown_atom) { SchedulerShell(self, state).shutdown(); },
  };
}

}  // namespace

caf::actor spawn_scheduler_actor(caf::actor_system& system, SchedulerConfig config, int num_kv_blocks,
                                 std::vector<int32_t> eos_token_ids, caf::actor kv_manager,
                                 std::shared_ptr<RuntimeGauges> gauges, std::shared_ptr<ServingMetrics> metrics) {
  auto state = std::make_shared<SchedulerState>(std::move(config), num_kv_blocks, std::move(eos_token_ids));
  state->kv_manager = std::move(kv_manager);
  state->gauges = std::move(gauges);
  state->metrics = std::move(metrics);
  return system.spawn(scheduler_behavior, std::move(state));
}

}  // namespace tessera
