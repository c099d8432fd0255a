#pragma once
// The scheduler actor: a thin shell over the plain Scheduler. It admits requests, runs the step loop
// (schedule → KV-block manager fills block tables → executor → update) with one step in flight, sends each
// tokenizer shard one message per step with its sequences' news, enforces deadlines, and aborts on request.
// Messages: ShardList (wiring, once), AdmitRequest, AbortSequence, tick_atom (deadlines), shutdown_atom.
// Metrics it records (never blocking the step loop): step duration, batch size and tokens, queue time, preemptions.
#include <memory>

#include <caf/fwd.hpp>

#include "core/serving/scheduler.hpp"

namespace tessera {

struct RuntimeGauges;
class ServingMetrics;

// `metrics` may be null.
caf::actor spawn_scheduler_actor(caf::actor_system& system, SchedulerConfig config, int num_kv_blocks,
                                 std::vector<int32_t> eos_token_ids, caf::actor kv_manager,
                                 std::shared_ptr<RuntimeGauges> gauges, std::shared_ptr<ServingMetrics> metrics);

}  // namespace tessera
