#include "core/serving/cpu_executor.hpp"
#include "core/serving/plan_validation.hpp"

#include <chrono>
#include <exception>
#include <span>
#include <string>
#include <unordered_set>
#include <utility>

#include "core/common/error.hpp"

namespace tessera {

namespace {

KvCacheShape cache_shape(const LlamaWeights* weights, int num_blocks, int block_size) {
  if (!weights) throw Error("CpuExecutor: no model weights");
  if (num_blocks <= 0) throw Error("CpuExecutor: num_blocks must be positive (got " + std::to_string(num_blocks) + ")");
  if (block_size <= 0) throw Error("CpuExecutor: block_size must be positive (got " + std::to_string(block_size) + ")");
  const LlamaConfig& c = weights->config;
  return KvCacheShape{c.num_layers, num_blocks, block_size, c.num_kv_heads, c.head_dim};
}

SamplingParams to_sampling_params(const SamplingSpec& spec) {
  SamplingParams params;
  params.temperature = spec.temperature;
  params.top_k = spec.top_k;
  params.top_p = spec.top_p;
  params.seed = spec.seed;
  return params;  // max_tokens / stop conditions are the scheduler's business
}



}  // namespace

CpuExecutor::CpuExecutor(std::shared_ptr<const LlamaWeights> weights, int num_blocks, int block_size,
                         std::string model_name)
    : weights_(std::move(weights)),
      model_name_(std::move(model_name)),
      cache_(cache_shape(weights_.get(), num_blocks, block_size)),
      runner_(weights_, cache_) {}

int CpuExecutor::num_blocks_for_budget(const LlamaConfig& config, int block_size, int64_t bytes) {
  return KvCacheShape::for_budget(config, block_size, bytes).num_blocks;
}

int64_t CpuExecutor::capacity_tokens() const {
  return int64_t{cache_.shape().num_blocks} * cache_.shape().block_size;
}

ExecutorInfo CpuExecutor::info() const {
  ExecutorInfo info;
  info.device = "cpu";
  info.dtype = "F32";
  info.model_name = model_name_;
  info.num_blocks = cache_.shape().num_blocks;
  info.block_size = cache_.shape().block_size;
  info.capacity_tokens = capacity_tokens();
  info.vocab_size = weights_->config.vocab_size;
  info.max_position_embeddings = weights_->config.max_position_embeddings;
  return info;
}

StepResult CpuExecutor::execute(const StepPlan& plan) {
  const auto start = std::chrono::steady_clock::now();
  StepResult result;
  result.step_id = plan.step_id;
  try {
    // Finished requests are gone whatever happens to this step.
    for (uint64_t seq_id : plan.release_state) samplers_.erase(seq_id);
    validate(plan);
    // Pending inputs are the tokens of the step before; those are forgotten now whatever this step does.
    std::unordered_map<uint64_t, int32_t> previous;
    previous.swap(last_sampled_);
    const StepPlan* to_run = &plan;
    StepPlan resolved;
    for (size_t i = 0; i < plan.sequences.size(); ++i) {
      if (!plan.sequences[i].token_pending) continue;
      if (to_run == &plan) {
        resolved = plan;
        to_run = &resolved;
      }
      auto it = previous.find(plan.sequences[i].seq_id);
      if (it == previous.end()) {
        throw Error(sequence_name(plan.sequences[i].seq_id) + ": its pending input token was not sampled in the "
                    "previous step");
      }
      resolved.sequences[i].tokens[0] = it->second;
    }
    const std::vector<int32_t> tokens = run(*to_run);
    size_t next = 0;
    for (const ScheduledSequence& seq : plan.sequences) {
      if (!seq.sample) continue;
      result.tokens.push_back({seq.seq_id, tokens[next]});
      last_sampled_[seq.seq_id] = tokens[next++];
    }
  } catch (const std::exception& e) {
    result.tokens.clear();
    result.error = std::string("step ") + std::to_string(plan.step_id) + ": " + e.what();
  } catch (...) {
    result.tokens.clear();
    result.error = "step " + std::to_string(plan.step_id) + ": unknown error";
  }
  result.execute_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void CpuExecutor::validate(const StepPlan& plan) const {
  const LlamaConfig& config = weights_->config;
  validate_plan(plan, PlanLimits{config.vocab_size, config.max_position_embeddings, cache_.shape().block_size,
                                 cache_.shape().num_blocks});
}

std::vector<int32_t> CpuExecutor::run(const StepPlan& plan) {
  const int32_t vocab = weights_->config.vocab_size;
  // Samplers of sequences seen for the first time; committed only once the forward pass succeeded, so a failed
  // step leaves no state behind. Constructing them here also validates the sampling parameters before compute.
  std::vector<std::pair<uint64_t, Sampler>> created;
  for (const ScheduledSequence& seq : plan.sequences) {
    if (samplers_.count(seq.seq_id)) continue;
    try {
      created.emplace_back(seq.seq_id, Sampler(to_sampling_params(seq.sampling), vocab));
    } catch (const Error& e) {
      throw Error(sequence_name(seq.seq_id) + ": " + e.what());
    }
  }

  std::vector<int32_t> sampled;
  if (plan.sequences.empty()) return sampled;
  steps_.clear();
  for (const ScheduledSequence& seq : plan.sequences) {
    steps_.push_back(SequenceStep{seq.tokens, seq.num_cached, seq.block_table, seq.sample});
  }
  runner_.forward(steps_, logits_);

  for (auto& [seq_id, sampler] : created) samplers_.emplace(seq_id, std::move(sampler));
  size_t row = 0;
  for (const ScheduledSequence& seq : plan.sequences) {
    if (!seq.sample) continue;
    const std::span<const float> logits(logits_.data() + row * static_cast<size_t>(vocab), static_cast<size_t>(vocab));
    ++row;
    try {
      sampled.push_back(samplers_.at(seq.seq_id).sample(logits));
    } catch (const Error& e) {
      throw Error(sequence_name(seq.seq_id) + ": " + e.what());
    }
  }
  return sampled;
}

}  // namespace tessera
