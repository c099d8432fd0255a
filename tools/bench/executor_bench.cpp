// tessera-executor-bench: the executor alone, without scheduler, actors or sockets. N sequences of L random prompt
// tokens are prefilled in one step, then decoded together for M - 1 steps (M output tokens each, the first one
// sampled after the prefill), with fabricated plans and a trivial block assignment. Prints one JSON object; the
// server benchmark compares against it to show the serving overhead.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/common/error.hpp"
#include "tools/bench/bench_stats.hpp"
#include "core/model/llama_weights.hpp"
#include "core/serving/cpu_executor.hpp"
#if TESSERA_WITH_CUDA
#include <cuda_profiler_api.h>

#include "core/cuda/cuda_executor.hpp"
#endif

namespace {

using tessera::Error;

struct Options {
  std::string model;
  int batch = 1;
  int input_len = 128;
  int output_len = 128;
  int repeat = 1;
  int warmup = 0;
  int block_size = 16;
  float temperature = 0.0f;
  uint64_t seed = 0;
  std::string device = "cpu";
  bool cuda_graphs = true;
  int max_step_tokens = 2048;  // like the scheduler's max_num_batched_tokens: larger prefills go in chunks
  bool profile_last_step = false;  // cuda: profiler range (cudaProfilerStart/Stop) around the last decode step only
};

using tessera::bench::median;

struct RunTimes {
  double prefill_s = 0;
  std::vector<double> decode_steps_s;
};

// Prefill of `batch` sequences (one step when it fits in max_step_tokens, else each sequence in chunks) and
// output_len - 1 decode steps of all of them together, ids starting at first_seq_id. profile_step: the last decode
// step runs inside a CUDA profiler range.
RunTimes run_once(tessera::Executor& executor, const Options& o, const std::vector<std::vector<int32_t>>& prompts,
                  uint64_t first_seq_id, uint64_t& step_id, bool profile_step) {
  const int blocks_per_seq = (o.input_len + o.output_len + o.block_size - 1) / o.block_size;
  std::vector<tessera::ScheduledSequence> sequences(static_cast<size_t>(o.batch));
  for (int i = 0; i < o.batch; ++i) {
    tessera::ScheduledSequence& s = sequences[static_cast<size_t>(i)];
    s.seq_id = first_seq_id + static_cast<uint64_t>(i);
    s.tokens = prompts[static_cast<size_t>(i)];
    s.num_cached = 0;
    for (int b = 0; b < blocks_per_seq; ++b) s.block_table.push_back(i * blocks_per_seq + b);
    s.sample = true;
    s.sampling.temperature = o.temperature;
    s.sampling.seed = o.seed + s.seq_id;
  }
  auto step = [&](tessera::StepPlan& plan) {
    plan.step_id = step_id++;
    const auto start = std::chrono::steady_clock::now();
    tessera::StepResult result = executor.execute(plan);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!result.error.empty()) throw Error(result.error);
    if (result.tokens.size() != plan.sequences.size()) throw Error("executor returned a wrong number of tokens");
    for (size_t i = 0; i < plan.sequences.size(); ++i) {
      tessera::ScheduledSequence& s = plan.sequences[i];
      s.num_cached += static_cast<int32_t>(s.tokens.size());
      s.tokens.assign(1, result.tokens[i].token);
    }
    return seconds;
  };
  RunTimes times;
  tessera::StepPlan plan;
  if (int64_t{o.batch} * o.input_len <= o.max_step_tokens) {
    plan.sequences = std::move(sequences);
    times.prefill_s = step(plan);
  } else {
    for (tessera::ScheduledSequence& whole : sequences) {
      tessera::StepPlan chunk_plan;
      chunk_plan.sequences.push_back(whole);
      tessera::ScheduledSequence& s = chunk_plan.sequences[0];
      const std::vector<int32_t> prompt = whole.tokens;
      while (true) {
        const int done = s.num_cached, len = std::min<int>(o.max_step_tokens, o.input_len - done);
        s.tokens.assign(prompt.begin() + done, prompt.begin() + done + len);
        s.sample = done + len == o.input_len;
        chunk_plan.step_id = step_id++;
        const auto start = std::chrono::steady_clock::now();
        const tessera::StepResult result = executor.execute(chunk_plan);
        times.prefill_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!result.error.empty()) throw Error(result.error);
        s.num_cached += len;
        if (s.sample) {
          s.tokens.assign(1, result.tokens.at(0).token);
          break;
        }
      }
      plan.sequences.push_back(s);
    }
  }
  for (int t = 1; t < o.output_len; ++t) {
    // `ncu --profile-from-start off` then profiles one decode step, not the (long, serialized) prefill before it.
    [[maybe_unused]] const bool profiled = profile_step && t == o.output_len - 1;
#if TESSERA_WITH_CUDA
    if (profiled) cudaProfilerStart();
#endif
    times.decode_steps_s.push_back(step(plan));
#if TESSERA_WITH_CUDA
    if (profiled) cudaProfilerStop();
#endif
  }
  // Drop the samplers of this round's sequences.
  tessera::StepPlan release;
  release.step_id = step_id++;
  for (const auto& s : plan.sequences) release.release_state.push_back(s.seq_id);
  executor.execute(release);
  return times;
}

int run(const Options& o) {
  if (o.batch < 1 || o.input_len < 1 || o.output_len < 1 || o.repeat < 1 || o.warmup < 0 || o.block_size < 1) {
    throw Error("--batch, --input-len, --output-len, --repeat and --block-size must be >= 1, --warmup >= 0");
  }
  const tessera::LlamaConfig config = tessera::LlamaConfig::load(o.model);
  if (o.input_len + o.output_len > config.max_position_embeddings) {
    throw Error("--input-len + --output-len exceeds the model's context of " +
                std::to_string(config.max_position_embeddings) + " tokens");
  }
  const int blocks_per_seq = (o.input_len + o.output_len + o.block_size - 1) / o.block_size;
  std::unique_ptr<tessera::Executor> executor_owner;
  if (o.device == "cpu") {
    auto weights = std::make_shared<const tessera::LlamaWeights>(tessera::LlamaWeights::load(o.model));
    executor_owner = std::make_unique<tessera::CpuExecutor>(weights, blocks_per_seq * o.batch, o.block_size);
  } else if (o.device == "cuda") {
#if TESSERA_WITH_CUDA
    tessera::CudaExecutorOptions options;
    options.block_size = o.block_size;
    options.kv_cache_blocks = blocks_per_seq * o.batch;
    options.max_num_batched_tokens = std::max(o.max_step_tokens, o.batch);
    options.max_num_seqs = o.batch;
    options.cuda_graphs = o.cuda_graphs;
    executor_owner = std::make_unique<tessera::CudaExecutor>(o.model, options);
#else
    throw Error("--device cuda: this build has no CUDA support");
#endif
  } else {
    throw Error("--device must be cpu or cuda");
  }
  tessera::Executor& executor = *executor_owner;

  std::mt19937 rng(static_cast<uint32_t>(o.seed));
  std::uniform_int_distribution<int32_t> token(0, config.vocab_size - 1);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(o.batch));
  for (auto& p : prompts) {
    p.resize(static_cast<size_t>(o.input_len));
    for (int32_t& t : p) t = token(rng);
  }

  uint64_t step_id = 0, seq_id = 0;
  for (int w = 0; w < o.warmup; ++w, seq_id += static_cast<uint64_t>(o.batch)) {
    run_once(executor, o, prompts, seq_id, step_id, false);
  }
  std::vector<double> prefill_s, decode_s;
  double total_s = 0;
  for (int r = 0; r < o.repeat; ++r, seq_id += static_cast<uint64_t>(o.batch)) {
    const RunTimes t =
        run_once(executor, o, prompts, seq_id, step_id, o.profile_last_step && r == o.repeat - 1);
    prefill_s.push_back(t.prefill_s);
    decode_s.insert(decode_s.end(), t.decode_steps_s.begin(), t.decode_steps_s.end());
    total_s += t.prefill_s;
    for (double d : t.decode_steps_s) total_s += d;
  }
  double decode_total_s = 0;
  for (double d : decode_s) decode_total_s += d;
  const double output_tokens = double(o.batch) * o.output_len * o.repeat;
  const double decode_tokens = double(o.batch) * (o.output_len - 1) * o.repeat;

  nlohmann::json out;
  out["model"] = o.model;
  out["device"] = executor.info().device;
  out["cuda_graphs"] = o.device == "cuda" && o.cuda_graphs;
  out["batch"] = o.batch;
  out["input_len"] = o.input_len;
  out["output_len"] = o.output_len;
  out["repeat"] = o.repeat;
  out["num_blocks"] = executor.info().num_blocks;
  out["tokens_per_s"] = output_tokens / total_s;  // output tokens over prefill + decode time
  out["decode_tokens_per_s"] = decode_total_s > 0 ? decode_tokens / decode_total_s : 0.0;
  out["prefill_ms"] = 1e3 * median(prefill_s);
  out["decode_step_median_ms"] = 1e3 * median(decode_s);
  out["total_s"] = total_s;
  std::cout << out.dump(2) << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("tessera-executor-bench: prefill + decode through an executor alone (no scheduler, actors or sockets)");
  Options o;
  app.add_option("--model", o.model, "Model directory")->required();
  app.add_option("--batch", o.batch, "Sequences decoded together");
  app.add_option("--input-len", o.input_len, "Prompt tokens per sequence (random ids)");
  app.add_option("--output-len", o.output_len, "Output tokens per sequence");
  app.add_option("--repeat", o.repeat, "Measured rounds (prefill + decode)");
  app.add_option("--warmup", o.warmup, "Unmeasured rounds before the measured ones");
  app.add_option("--block-size", o.block_size, "Tokens per KV block");
  app.add_option("--temperature", o.temperature, "0 = greedy");
  app.add_option("--seed", o.seed, "Prompt and sampling seed");
  app.add_option("--device", o.device, "cpu or cuda");
  app.add_flag("!--no-cuda-graphs", o.cuda_graphs, "cuda: run decode steps eagerly instead of replaying graphs");
  app.add_option("--max-step-tokens", o.max_step_tokens, "Largest step (prefill chunk) in tokens");
  app.add_flag("--profile-last-step", o.profile_last_step,
               "cuda: only the last decode step runs inside a profiler range (ncu --profile-from-start off)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "tessera-executor-bench: " << e.what() << "\n";
    return 1;
  }
}
