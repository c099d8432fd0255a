// The CUDA executor end to end on the GPU: HF transformers' logits (BF16 tolerance) and greedy ids (F32) on the tiny
// fixture checkpoints, chunked prefill and mixed batches, seeded sampling repeatability, and bad plans as errors.
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/cuda/cuda_executor.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera {
namespace {

const std::string kFixtures = TESSERA_FIXTURES_DIR;

struct Golden {
  std::vector<int32_t> prompt;
  std::vector<std::vector<double>> logits;
  std::vector<int32_t> greedy;
};

std::vector<Golden> load_golden(const std::string& name) {
  std::ifstream in(kFixtures + "/logits_" + name + ".json");
  const auto j = nlohmann::json::parse(in);
  std::vector<Golden> out;
  for (const auto& p : j["prompts"]) {
    out.push_back({p["prompt"].get<std::vector<int32_t>>(), p["logits"].get<std::vector<std::vector<double>>>(),
                   p["greedy"].get<std::vector<int32_t>>()});
  }
  return out;
}

CudaExecutorOptions options(DType dtype) {
  CudaExecutorOptions o;
  o.dtype = dtype;
  o.kv_cache_blocks = 64;
  o.max_num_batched_tokens = 256;
  o.max_num_seqs = 16;
  return o;
}

ScheduledSequence step(uint64_t id, std::vector<int32_t> tokens, int num_cached, std::vector<int32_t> blocks,
                       float temperature = 0, uint64_t seed = 0) {
  ScheduledSequence s;
  s.seq_id = id;
  s.tokens = std::move(tokens);
  s.num_cached = num_cached;
  s.block_table = std::move(blocks);
  s.sample = true;
  s.sampling = SamplingSpec{temperature, -1, 1.0f, seed};
  return s;
}

// Greedy generation of `n` tokens through plans: the prompt in chunks of `chunk`, then one decode per step.
std::vector<int32_t> generate(CudaExecutor& executor, uint64_t id, const std::vector<int32_t>& prompt, int n,
                              std::vector<int32_t> blocks, int chunk, float temperature = 0, uint64_t seed = 0) {
  std::vector<int32_t> out;
  int cached = 0;
  uint64_t step_id = 1;
  while (cached < static_cast<int>(prompt.size())) {
    const int len = std::min<int>(chunk, static_cast<int>(prompt.size()) - cached);
    StepPlan plan;
    plan.step_id = step_id++;
    plan.sequences.push_back(step(id, {prompt.begin() + cached, prompt.begin() + cached + len}, cached, blocks, temperature, seed));
    plan.sequences.back().sample = cached + len == static_cast<int>(prompt.size());
    const StepResult r = executor.execute(plan);
    EXPECT_EQ(r.error, "");
    cached += len;
    if (plan.sequences.back().sample) out.push_back(r.tokens.at(0).token);
  }
  while (static_cast<int>(out.size()) < n) {
    StepPlan plan;
    plan.step_id = step_id++;
    plan.sequences.push_back(step(id, {out.back()}, cached++, blocks, temperature, seed));
    const StepResult r = executor.execute(plan);
    EXPECT_EQ(r.error, "");
    if (r.tokens.empty()) break;
    out.push_back(r.tokens[0].token);
  }
  return out;
}

class CudaExecutorGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaExecutorGolden, F32GreedyIdsMatchTransformers) {
  TESSERA_REQUIRE_GPU();
  CudaExecutor executor(kFixtures + "/models/" + GetParam(), options(DType::F32));
  uint64_t id = 1;
  for (const Golden& g : load_golden(GetParam())) {
    const std::vector<int32_t> blocks = {9, 3, 17, 5};  // 64 positions, shuffled
    EXPECT_EQ(generate(executor, id, g.prompt, static_cast<int>(g.greedy.size()), blocks, 5), g.greedy)
        << "prompt of " << g.prompt.size();
    StepPlan release;
    release.release_state = {id++};
    executor.execute(release);
  }
}

TEST_P(CudaExecutorGolden, LogitsMatchTransformersInBf16AndF32) {
  TESSERA_REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    CudaExecutor executor(kFixtures + "/models/" + GetParam(), options(dtype));
    uint64_t step_id = 1;
    for (const Golden& g : load_golden(GetParam())) {
      // Every position's logits: the whole prompt as one step per position would be slow; instead prefill all but
      // the last token, then compare the last position (prefill path) and decode one more (decode path).
      StepPlan plan;
      plan.step_id = step_id++;
      plan.sequences.push_back(step(step_id, g.prompt, 0, {4, 8, 1, 30}));
      ASSERT_EQ(executor.execute(plan).error, "");
      const std::vector<float> logits = executor.copy_last_logits();
      std::vector<float> expected(g.logits.back().begin(), g.logits.back().end());
      EXPECT_LT(test::relative_error(logits, expected), dtype == DType::F32 ? 1e-4 : 3e-2)
          << dtype_name(dtype) << " prompt of " << g.prompt.size();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, CudaExecutorGolden,
                         ::testing::Values("gqa_untied", "mha_tied", "llama3_rope", "mistral_window"));

TEST(CudaExecutor, MixedBatchEqualsSequencesAloneAndSeedsRepeat) {
  TESSERA_REQUIRE_GPU();
  const std::string model = kFixtures + "/models/gqa_untied";
  CudaExecutor executor(model, options(DType::F32));
  const std::vector<int32_t> a = {5, 9, 200, 17, 3, 3, 8}, b = {100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110,
                                                                 111, 112, 113, 114, 115, 116, 117, 118};
  const auto alone_a = generate(executor, 1, a, 10, {0, 1}, 64, 0.8f, 42);
  const auto alone_b = generate(executor, 2, b, 10, {2, 3}, 64, 0.8f, 43);
  StepPlan drop;
  drop.release_state = {1, 2};
  executor.execute(drop);
  // Together: b's prefill in one step with a's prefill, then decodes side by side.
  std::vector<int32_t> got_a, got_b;
  StepPlan first;
  first.step_id = 100;
  first.sequences = {step(1, a, 0, {10, 11}, 0.8f, 42), step(2, b, 0, {12, 13}, 0.8f, 43)};
  StepResult r = executor.execute(first);
  ASSERT_EQ(r.error, "");
  got_a.push_back(r.tokens[0].token);
  got_b.push_back(r.tokens[1].token);
  for (int i = 1; i < 10; ++i) {
    StepPlan plan;
    plan.step_id = 100 + i;
    plan.sequences = {step(2, {got_b.back()}, static_cast<int>(b.size()) + i - 1, {12, 13}, 0.8f, 43),
                      step(1, {got_a.back()}, static_cast<int>(a.size()) + i - 1, {10, 11}, 0.8f, 42)};
    r = executor.execute(plan);
    ASSERT_EQ(r.error, "");
    got_b.push_back(r.tokens[0].token);
    got_a.push_back(r.tokens[1].token);
  }
  EXPECT_EQ(got_a, alone_a);
  EXPECT_EQ(got_b, alone_b);
}

// Decode steps replayed from captured graphs (batch padded to a bucket, padding rows in the scratch block) give the
// eager path's tokens and logits, batch by batch, including a batch padded from 10 to 16 rows.
TEST(CudaExecutor, GraphDecodeEqualsEagerDecode) {
  TESSERA_REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    CudaExecutorOptions eager_options = options(dtype);
    eager_options.cuda_graphs = false;
    CudaExecutor eager(kFixtures + "/models/gqa_untied", eager_options);
    CudaExecutor graphed(kFixtures + "/models/gqa_untied", options(dtype));
    for (int batch : {1, 3, 10}) {
      std::vector<std::vector<int32_t>> last(batch);
      StepPlan prefill;
      prefill.step_id = 1;
      for (int i = 0; i < batch; ++i) {
        prefill.sequences.push_back(step(i + 1, {3 + i, 50, 7, 9 + i, 11}, 0, {i * 2, i * 2 + 1}, i % 2 ? 0.9f : 0.0f, 5 + i));
      }
      const StepResult a0 = eager.execute(prefill), b0 = graphed.execute(prefill);
      ASSERT_EQ(a0.error, "");
      ASSERT_EQ(b0.error, "");
      std::vector<int32_t> next(batch);
      for (int i = 0; i < batch; ++i) next[i] = a0.tokens[i].token;
      for (int t = 0; t < 12; ++t) {
        StepPlan decode;
        decode.step_id = 2 + t;
        for (int i = 0; i < batch; ++i) {
          decode.sequences.push_back(step(i + 1, {next[i]}, 5 + t, {i * 2, i * 2 + 1}, i % 2 ? 0.9f : 0.0f, 5 + i));
        }
        const StepResult a = eager.execute(decode);
        const std::vector<float> logits_a = eager.copy_last_logits();
        const StepResult b = graphed.execute(decode);
        const std::vector<float> logits_b = graphed.copy_last_logits();
        ASSERT_EQ(a.error, "");
        ASSERT_EQ(b.error, "");
        ASSERT_EQ(a.tokens.size(), static_cast<size_t>(batch));
        ASSERT_EQ(b.tokens.size(), static_cast<size_t>(batch));
        ASSERT_EQ(logits_a.size(), logits_b.size());
        EXPECT_LT(test::relative_error(logits_b, logits_a), dtype == DType::F32 ? 1e-5 : 2e-2) << "batch " << batch;
        for (int i = 0; i < batch; ++i) {
          EXPECT_EQ(b.tokens[i].seq_id, a.tokens[i].seq_id);
          if (dtype == DType::F32) {
            EXPECT_EQ(b.tokens[i].token, a.tokens[i].token) << "batch " << batch << " step " << t;
          }
          next[i] = a.tokens[i].token;
        }
      }
      StepPlan drop;
      for (int i = 0; i < batch; ++i) drop.release_state.push_back(i + 1);
      eager.execute(drop);
      graphed.execute(drop);
    }
  }
}

// Pipelined submission: each decode is submitted before the previous step is collected, its input the token that
// step samples (token_pending, filled in on the GPU). Same tokens as one step at a time, in F32 and BF16, eager and
// graph steps; a pending token of a sequence the previous step did not sample is a step error.
TEST(CudaExecutor, PipelinedPendingDecodesEqualStepByStep) {
  TESSERA_REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (bool graphs : {false, true}) {
      CudaExecutorOptions o = options(dtype);
      o.cuda_graphs = graphs;
      CudaExecutor executor(kFixtures + "/models/gqa_untied", o);
      const std::vector<int32_t> a = {5, 9, 200, 17, 3}, b = {100, 101, 102, 103, 104, 105, 106};
      const auto alone_a = generate(executor, 1, a, 8, {0, 1}, 64, 0.8f, 42);
      const auto alone_b = generate(executor, 2, b, 8, {2, 3}, 64, 0.0f, 0);
      StepPlan drop;
      drop.release_state = {1, 2};
      executor.execute(drop);
      StepPlan prefill;
      prefill.step_id = 1;
      prefill.sequences = {step(1, a, 0, {10, 11}, 0.8f, 42), step(2, b, 0, {12, 13}, 0.0f, 0)};
      executor.submit(prefill);
      std::vector<int32_t> got_a, got_b;
      for (int i = 0; i < 8; ++i) {
        if (i < 7) {
          StepPlan next;
          next.step_id = 2 + i;
          next.sequences = {step(1, {0}, static_cast<int>(a.size()) + i, {10, 11}, 0.8f, 42),
                            step(2, {0}, static_cast<int>(b.size()) + i, {12, 13}, 0.0f, 0)};
          for (ScheduledSequence& seq : next.sequences) seq.token_pending = true;
          executor.submit(next);
          EXPECT_EQ(executor.steps_outstanding(), 2);
        }
        const StepResult r = executor.collect();
        ASSERT_EQ(r.error, "") << "step " << i;
        ASSERT_EQ(r.tokens.size(), 2u);
        got_a.push_back(r.tokens[0].token);
        got_b.push_back(r.tokens[1].token);
      }
      EXPECT_EQ(executor.steps_outstanding(), 0);
      EXPECT_EQ(got_a, alone_a) << "graphs " << graphs;
      EXPECT_EQ(got_b, alone_b) << "graphs " << graphs;
      StepPlan orphan;
      orphan.step_id = 50;
      orphan.sequences = {step(3, {0}, 4, {20})};
      orphan.sequences[0].token_pending = true;
      EXPECT_NE(executor.execute(orphan).error.find("pending input token"), std::string::npos);
    }
  }
}

TEST(CudaExecutor, BadPlansAreErrorsAndTheExecutorKeepsWorking) {
  TESSERA_REQUIRE_GPU();
  CudaExecutor executor(kFixtures + "/models/gqa_untied", options(DType::BF16));
  StepPlan bad;
  bad.step_id = 1;
  bad.sequences = {step(1, {1, 2, 99999}, 0, {0})};
  EXPECT_NE(executor.execute(bad).error.find("vocabulary"), std::string::npos);
  bad.sequences = {step(1, {1, 2}, 0, {999})};
  EXPECT_NE(executor.execute(bad).error.find("outside the KV cache"), std::string::npos);
  StepPlan too_big;
  too_big.sequences = {step(1, std::vector<int32_t>(300, 1), 0, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19})};
  EXPECT_NE(executor.execute(too_big).error, "");
  const auto golden = load_golden("gqa_untied");
  const auto ids = generate(executor, 7, golden[1].prompt, 4, {0, 1}, 64);
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_GT(executor.info().capacity_tokens, 0);
}

}  // namespace
}  // namespace tessera
