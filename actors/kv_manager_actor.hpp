#pragma once
// The KV-block-manager actor: owns the block pool (KvBlockManager) — the only place that knows which block is free.
// Messages: StepPlan → StepResult (frees the plan's release_kv, fills every block table all or nothing, then
// delegates the plan to the executor, which answers the scheduler directly; a failed allocation answers with an
// error result); KvFree → frees those sequences' blocks now.
#include <memory>

#include <caf/fwd.hpp>

namespace tessera {

struct RuntimeGauges;

// Logs the capacity (blocks and tokens) at start; publishes blocks used into `gauges` after every change.
caf::actor spawn_kv_manager_actor(caf::actor_system& system, int num_blocks, int block_size, caf::actor executor,
                                  std::shared_ptr<RuntimeGauges> gauges);

}  // namespace tessera
