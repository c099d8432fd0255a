#include "actors/kv_manager_actor.hpp"

#include <memory>

#include <spdlog/spdlog.h>

#include "actors/caf_types.hpp"
#include "actors/runtime_gauges.hpp"
#include "core/common/error.hpp"
#include "core/serving/kv_block_manager.hpp"

namespace tessera {

namespace {

caf::behavior kv_manager_behavior(caf::event_based_actor* self, int num_blocks, int block_size, caf::actor executor,
                                  std::shared_ptr<RuntimeGauges> gauges) {
  auto blocks = std::make_shared<KvBlockManager>(num_blocks, block_size);
  gauges->kv_blocks_total = num_blocks;
  spdlog::info("KV cache: {} blocks of {} tokens = {} tokens", num_blocks, block_size,
               static_cast<int64_t>(num_blocks) * block_size);
  return {
      // Fills the block tables, then hands the plan straight to the executor, whose StepResult goes back to the
      // scheduler directly (one hop less on every step).
      [self, blocks, gauges, executor](StepPlan& plan) -> caf::result<StepResult> {
        try {
          blocks->allocate(plan);  // all or nothing
        } catch (const Error& e) {
          // Free what the plan releases anyway, so a failed step never leaks blocks.
          for (uint64_t id : plan.release_kv) blocks->free(id);
          gauges->kv_blocks_used = blocks->num_used_blocks();
          return StepResult{plan.step_id, {}, std::string("KV allocation failed: ") + e.what(), 0};
        }
        gauges->kv_blocks_used = blocks->num_used_blocks();
        auto promise = self->make_response_promise();
        promise.delegate(executor, std::move(plan));
        return promise;
      },
      // In order behind the plans it follows (same sender, same mailbox).
      [self, executor](flush_atom) { self->send(executor, flush_atom::value); },
      [blocks, gauges](const KvFree& request) {
        for (uint64_t id : request.seq_ids) blocks->free(id);
        gauges->kv_blocks_used = blocks->num_used_blocks();
      },
  };
}

}  // namespace

caf::actor spawn_kv_manager_actor(caf::actor_system& system, int num_blocks, int block_size, caf::actor executor,
                                  std::shared_ptr<RuntimeGauges> gauges) {
  return system.spawn(kv_manager_behavior, num_blocks, block_size, std::move(executor), std::move(gauges));
}

}  // namespace tessera
