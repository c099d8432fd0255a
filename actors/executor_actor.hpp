#pragma once
// The executor actor: a thin shell over an Executor (CPU, or CUDA per GPU). It blocks while it waits for a step, so it
// is spawned detached (its own thread). Messages: StepPlan → StepResult, in order. An asynchronous executor's
// results come one plan late (the plan is submitted first, then the step before it is collected and answered: the
// GPU always has the next step queued); flush_atom answers the held-back step when no plan follows.
#include <memory>

#include <caf/fwd.hpp>

#include "core/serving/executor.hpp"

namespace tessera {

caf::actor spawn_executor_actor(caf::actor_system& system, std::shared_ptr<Executor> executor);

}  // namespace tessera
