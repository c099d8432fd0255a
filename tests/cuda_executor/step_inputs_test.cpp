// Host-side preparation of CUDA steps (no GPU needed): graph buckets, and the packed input arrays of eager and
// padded graph steps, checked field by field against the plan.
#include <gtest/gtest.h>

#include <cstring>

#include "core/common/error.hpp"
#include "core/cuda/step_inputs.hpp"
#include "kernels/sampling.hpp"

namespace tessera::cuda {
namespace {

ScheduledSequence sequence(uint64_t id, std::vector<int32_t> tokens, int num_cached, std::vector<int32_t> blocks,
                           bool sample = true) {
  ScheduledSequence s;
  s.seq_id = id;
  s.tokens = std::move(tokens);
  s.num_cached = num_cached;
  s.block_table = std::move(blocks);
  s.sample = sample;
  s.sampling = SamplingSpec{0.7f, 5, 0.9f, 1234};
  return s;
}

template <class T>
const T* at(const std::vector<std::byte>& buffer, size_t offset) {
  return reinterpret_cast<const T*>(buffer.data() + offset);
}

TEST(StepInputs, MeasureStepTakesMaximaAndCountsSamplers) {
  StepPlan plan;
  plan.sequences = {sequence(1, {1, 2, 3}, 30, {0, 1, 2}), sequence(2, {4}, 3, {5}, false)};
  const StepShape s = measure_step(plan, 16);
  EXPECT_EQ(s.num_tokens, 4);
  EXPECT_EQ(s.num_seqs, 2);
  EXPECT_EQ(s.num_logits, 1);
  EXPECT_EQ(s.max_query_len, 3);
  EXPECT_EQ(s.max_context_len, 33);
  EXPECT_EQ(s.blocks_per_seq, 3);  // ceil(33 / 16)
  EXPECT_FALSE(s.graph);
}

TEST(StepInputs, GraphShapesPadBatchAndContextToBuckets) {
  const GraphBuckets buckets{256, 512, 8192, 16};
  StepShape actual;
  actual.max_query_len = 1;
  actual.max_context_len = 100;
  for (const auto& [seqs, padded] : std::vector<std::pair<int, int>>{{1, 1}, {7, 7}, {8, 8}, {9, 16}, {17, 24},
                                                                        {250, 256}, {256, 256}}) {
    actual.num_seqs = seqs;
    actual.num_tokens = seqs;
    const auto g = graph_shape(actual, buckets);
    ASSERT_TRUE(g) << seqs;
    EXPECT_TRUE(g->graph);
    EXPECT_EQ(g->num_seqs, padded) << seqs;
    EXPECT_EQ(g->num_tokens, padded);
    EXPECT_EQ(g->num_logits, padded);
    EXPECT_EQ(g->max_context_len, 512);  // never below min_context
    EXPECT_EQ(g->blocks_per_seq, 32);
  }
  actual.num_seqs = 3;
  actual.max_context_len = 513;
  EXPECT_EQ(graph_shape(actual, buckets)->max_context_len, 1024);
  actual.max_context_len = 8192;
  EXPECT_EQ(graph_shape(actual, buckets)->max_context_len, 8192);
  actual.max_context_len = 5000;
  EXPECT_EQ(graph_shape(actual, GraphBuckets{256, 512, 6000, 16})->max_context_len, 6000);  // capped at the limit
  actual.max_context_len = 8193;
  EXPECT_FALSE(graph_shape(actual, buckets));  // beyond the model's limit
  actual.max_context_len = 100;
  actual.max_query_len = 2;
  EXPECT_FALSE(graph_shape(actual, buckets));  // prefill tokens: eager
  actual.max_query_len = 1;
  actual.num_seqs = 257;
  EXPECT_FALSE(graph_shape(actual, buckets));  // more than the largest graph
}

TEST(StepInputs, EagerPackingFollowsThePlan) {
  StepPlan plan;
  plan.sequences = {sequence(1, {11, 12, 13}, 15, {4, 7}), sequence(2, {21}, 0, {9}, false),
                    sequence(3, {31}, 40, {1, 2, 3})};
  const StepShape shape = measure_step(plan, 16);
  const StepInputLayout layout = StepInputLayout::make(16, 4, 8);
  std::vector<std::byte> host(layout.total);
  const std::unordered_map<uint64_t, uint64_t> draws{{3, 17}};
  const std::vector<int32_t> rows = pack_step_inputs(plan, shape, layout, 16, 99, draws, {}, host.data());
  EXPECT_EQ(rows, (std::vector<int32_t>{0, -1, 1}));
  const auto* ids = at<int32_t>(host, layout.token_ids);
  const auto* positions = at<int32_t>(host, layout.positions);
  const auto* slots = at<int64_t>(host, layout.slot_mapping);
  EXPECT_EQ(std::vector<int32_t>(ids, ids + 5), (std::vector<int32_t>{11, 12, 13, 21, 31}));
  EXPECT_EQ(std::vector<int32_t>(positions, positions + 5), (std::vector<int32_t>{15, 16, 17, 0, 40}));
  // position 15 -> block 4 offset 15; 16 -> block 7 offset 0; 40 -> third block (3) offset 8
  EXPECT_EQ(std::vector<int64_t>(slots, slots + 5), (std::vector<int64_t>{4 * 16 + 15, 7 * 16, 7 * 16 + 1, 9 * 16, 3 * 16 + 8}));
  EXPECT_EQ(std::vector<int32_t>(at<int32_t>(host, layout.query_start), at<int32_t>(host, layout.query_start) + 3),
            (std::vector<int32_t>{0, 3, 4}));
  EXPECT_EQ(std::vector<int32_t>(at<int32_t>(host, layout.context_len), at<int32_t>(host, layout.context_len) + 3),
            (std::vector<int32_t>{18, 1, 41}));
  EXPECT_EQ(std::vector<int32_t>(at<int32_t>(host, layout.logit_rows), at<int32_t>(host, layout.logit_rows) + 2),
            (std::vector<int32_t>{2, 4}));  // the last token row of each sampling sequence
  const auto* sampling = at<kernels::SamplingRow>(host, layout.sampling_rows);
  EXPECT_EQ(sampling[0].offset, 0u);
  EXPECT_EQ(sampling[1].offset, 17u);
  EXPECT_EQ(sampling[1].seed, 1234u);
  EXPECT_EQ(sampling[1].top_k, 5);
  // Block tables with the step's stride (3), unused entries pointing at the scratch block.
  const auto* tables = at<int32_t>(host, layout.block_tables);
  EXPECT_EQ(std::vector<int32_t>(tables, tables + 9), (std::vector<int32_t>{4, 7, 99, 9, 99, 99, 1, 2, 3}));
  EXPECT_EQ(layout.bytes_used(3, 3), layout.block_tables + 9 * 4);
}

TEST(StepInputs, GraphPackingPadsWithScratchRowsAndSamplesEveryRow) {
  StepPlan plan;
  plan.sequences = {sequence(1, {5}, 20, {2, 6}), sequence(2, {6}, 3, {8}, false)};
  for (int i = 3; i <= 9; ++i) plan.sequences.push_back(sequence(i, {i}, 0, {10 + i}));
  const auto shape = graph_shape(measure_step(plan, 16), GraphBuckets{16, 64, 1024, 16});
  ASSERT_TRUE(shape);
  ASSERT_EQ(shape->num_seqs, 16);
  ASSERT_EQ(shape->blocks_per_seq, 4);
  const StepInputLayout layout = StepInputLayout::make(32, 16, 64);
  std::vector<std::byte> host(layout.total);
  const std::vector<int32_t> rows = pack_step_inputs(plan, *shape, layout, 16, 77, {}, {}, host.data());
  ASSERT_EQ(rows.size(), 9u);
  EXPECT_EQ(rows[0], 0);
  EXPECT_EQ(rows[1], -1);  // row 1 is sampled by the graph but the plan does not want it
  EXPECT_EQ(rows[2], 2);
  const auto* logit_rows = at<int32_t>(host, layout.logit_rows);
  const auto* slots = at<int64_t>(host, layout.slot_mapping);
  const auto* context = at<int32_t>(host, layout.context_len);
  const auto* tables = at<int32_t>(host, layout.block_tables);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(logit_rows[i], i);
  EXPECT_EQ(slots[0], 6 * 16 + 4);
  for (int i = 9; i < 16; ++i) {
    EXPECT_EQ(slots[i], 77 * 16) << i;
    EXPECT_EQ(context[i], 1);
    EXPECT_EQ(at<int32_t>(host, layout.query_len)[i], 1);
    EXPECT_EQ(at<int32_t>(host, layout.query_start)[i], i);
    for (int b = 0; b < 4; ++b) EXPECT_EQ(tables[i * 4 + b], 77);
    EXPECT_EQ(at<kernels::SamplingRow>(host, layout.sampling_rows)[i].temperature, 0.0f);  // greedy
  }
  EXPECT_EQ(std::vector<int32_t>(tables, tables + 4), (std::vector<int32_t>{2, 6, 77, 77}));
}

TEST(StepInputs, PendingTokensPointAtThePreviousStepsRows) {
  StepPlan plan;
  plan.sequences = {sequence(1, {0}, 9, {3}), sequence(2, {42}, 4, {5}), sequence(3, {0}, 20, {1, 2})};
  plan.sequences[0].token_pending = true;
  plan.sequences[2].token_pending = true;
  const StepShape shape = measure_step(plan, 16);
  const StepInputLayout layout = StepInputLayout::make(8, 4, 4);
  std::vector<std::byte> host(layout.total);
  const std::unordered_map<uint64_t, int32_t> previous{{1, 6}, {3, 0}, {7, 2}};
  pack_step_inputs(plan, shape, layout, 16, 9, {}, previous, host.data());
  const auto* pending = at<int32_t>(host, layout.pending_rows);
  EXPECT_EQ(std::vector<int32_t>(pending, pending + 3), (std::vector<int32_t>{6, -1, 0}));
  EXPECT_EQ(at<int32_t>(host, layout.token_ids)[1], 42);
  // A pending token of a sequence the previous step did not sample is an error, not a guess.
  EXPECT_THROW(pack_step_inputs(plan, shape, layout, 16, 9, {}, {{1, 6}}, host.data()), Error);
}

}  // namespace
}  // namespace tessera::cuda
