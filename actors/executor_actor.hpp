#pragma once
// The executor actor: a thin shell over an Executor (the CPU one today, a CUDA one per GPU later). It blocks while a
// step runs, so it is spawned detached (its own thread). Message: StepPlan → StepResult.
#include <memory>

#include <caf/fwd.hpp>

#include "core/serving/executor.hpp"

namespace tessera {

caf::actor spawn_executor_actor(caf::actor_system& system, std::shared_ptr<Executor> executor);

}  // namespace tessera
