#include "actors/executor_actor.hpp"

#include <deque>

#include "actors/caf_types.hpp"

namespace tessera {

namespace {

// Pipelining (asynchronous executors, e.g. CUDA): a plan is submitted at once, and the step before it is only then collected and answered, so the GPU
// already has the next step queued while the scheduler digests a result and plans again. The last step is answered
// when the next plan or a flush arrives; the scheduler sends a flush whenever it has no plan to follow a step.
struct ExecutorState {
  std::shared_ptr<Executor> executor;
  std::deque<caf::response_promise> unanswered;  // one per submitted, not yet collected step, in order
};

void answer_oldest(ExecutorState& state) {
  StepResult result = state.executor->collect();
  state.unanswered.front().deliver(std::move(result));
  state.unanswered.pop_front();
}

caf::behavior executor_behavior(caf::event_based_actor* self, std::shared_ptr<Executor> executor) {
  auto state = std::make_shared<ExecutorState>();
  state->executor = std::move(executor);
  return {
      [self, state](const StepPlan& plan) -> caf::result<StepResult> {
        if (!state->executor->runs_asynchronously()) {
          state->executor->submit(plan);  // ran already: holding its result back would only delay it
          return state->executor->collect();
        }
        auto promise = self->make_response_promise();
        state->executor->submit(plan);
        state->unanswered.push_back(promise);
        while (state->unanswered.size() > 1) answer_oldest(*state);
        return promise;
      },
      [state](flush_atom) {
        while (!state->unanswered.empty()) answer_oldest(*state);
      },
  };
}

}  // namespace

caf::actor spawn_executor_actor(caf::actor_system& system, std::shared_ptr<Executor> executor) {
  return system.spawn<caf::detached>(executor_behavior, std::move(executor));
}

}  // namespace tessera
