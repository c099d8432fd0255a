#include "actors/executor_actor.hpp"

#include "actors/caf_types.hpp"

namespace tessera {

namespace {

caf::behavior executor_behavior(caf::event_based_actor*, std::shared_ptr<Executor> executor) {
  return {
      [executor](const StepPlan& plan) -> StepResult { return executor->execute(plan); },
  };
}

}  // namespace

caf::actor spawn_executor_actor(caf::actor_system& system, std::shared_ptr<Executor> executor) {
  return system.spawn<caf::detached>(executor_behavior, std::move(executor));
}

}  // namespace tessera
