#pragma once
// The executor boundary of the server: something that runs StepPlans (one forward + sampling per step) and
// answers StepResults. The CPU reference executor implements it now; the CUDA executor plugs in later.
#include <cstdint>
#include <deque>
#include <string>

#include <msgpack.hpp>

#include "core/serving/step.hpp"

namespace tessera {

// What the server reports about its executor (info requests, logs, metrics).
struct ExecutorInfo {
  std::string device;             // "cpu", later "cuda:0"
  std::string dtype;              // compute / KV cache element type, e.g. "F32"
  std::string model_name;         // the model directory's name (or what the caller passed)
  int32_t num_blocks = 0;         // KV cache blocks
  int32_t block_size = 0;         // tokens per block
  int64_t capacity_tokens = 0;    // num_blocks * block_size: tokens the KV cache holds over all sequences
  int32_t vocab_size = 0;
  int32_t max_position_embeddings = 0;
  MSGPACK_DEFINE_MAP(device, dtype, model_name, num_blocks, block_size, capacity_tokens, vocab_size,
                     max_position_embeddings)
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Runs one step (submit + collect, with no other step outstanding). Never throws: any failure (bad plan, model
  // error) is reported in StepResult::error, in which case no tokens are returned. A sequence with token_pending
  // feeds the token it sampled in the previous step (unknown to the planner); none sampled there is a step error.
  // Threading: one caller at a time, for every member.
  virtual StepResult execute(const StepPlan& plan) = 0;

  // Pipelined use (the server's): submit() starts a step and may return before it ran, so the caller can plan the
  // next step meanwhile; collect() returns the oldest submitted step's result, waiting for it. Results come back in
  // submission order; at most kMaxStepsInFlight steps are submitted and not collected (more: the extra submit's
  // result is an error). token_pending refers to the step submitted just before. Never throw. The default
  // implementation runs the step synchronously inside submit().
  static constexpr int kMaxStepsInFlight = 2;
  virtual void submit(const StepPlan& plan) {
    if (static_cast<int>(done_.size()) >= kMaxStepsInFlight) {
      done_.push_back(StepResult{plan.step_id, {}, "step " + std::to_string(plan.step_id) + " submitted while " +
                                                       std::to_string(done_.size()) + " steps are outstanding"});
      return;
    }
    done_.push_back(execute(plan));
  }
  virtual StepResult collect() {
    if (done_.empty()) return StepResult{0, {}, "collect() without a submitted step"};
    StepResult result = std::move(done_.front());
    done_.pop_front();
    return result;
  }
  virtual int steps_outstanding() const { return static_cast<int>(done_.size()); }
  // Whether submit() returns before the step ran (then holding a result back one plan pays off).
  virtual bool runs_asynchronously() const { return false; }

  // Constant over the executor's life; safe to call from the executing thread.
  virtual ExecutorInfo info() const = 0;

 private:
  std::deque<StepResult> done_;  // results of the default, synchronous submit()
};

}  // namespace tessera
