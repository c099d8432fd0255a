// Scenario tables for the Scheduler, driven through a real KvBlockManager (see scheduler_harness.hpp). The expected
// numbers are worked out by hand from the policy in scheduler.hpp (block_size 4 unless noted: a sequence holding n
// cached positions owns ceil(n / 4) blocks).
#include "core/serving/scheduler.hpp"

#include <gtest/gtest.h>

#include <map>

#include "core/common/error.hpp"
#include "tests/serving/scheduler_harness.hpp"

namespace tessera {
namespace {

using testing::find_seq;
using testing::find_update;
using testing::Harness;
using testing::request;
using testing::small_config;

int32_t token7(uint64_t) { return 7; }

struct Expected {
  uint64_t seq_id;
  size_t num_tokens;
  int32_t num_cached;
  int32_t new_blocks;
  bool sample;
};

void expect_plan(const StepPlan& plan, const std::vector<Expected>& expected) {
  ASSERT_EQ(plan.sequences.size(), expected.size()) << "step " << plan.step_id;
  for (size_t i = 0; i < expected.size(); ++i) {
    const ScheduledSequence& s = plan.sequences[i];
    SCOPED_TRACE("step " + std::to_string(plan.step_id) + " sequence " + std::to_string(i));
    EXPECT_EQ(s.seq_id, expected[i].seq_id);
    EXPECT_EQ(s.tokens.size(), expected[i].num_tokens);
    EXPECT_EQ(s.num_cached, expected[i].num_cached);
    EXPECT_EQ(s.new_blocks, expected[i].new_blocks);
    EXPECT_EQ(s.sample, expected[i].sample);
  }
}

TEST(Scheduler, AdmitsWaitingRequestsAndDecodesToMaxTokens) {
  Harness h(small_config(), 16);
  h.add_ok(request(1, 5, 3));
  h.add_ok(request(2, 3, 3));
  EXPECT_EQ(h.scheduler.stats().num_waiting, 2);
  EXPECT_EQ(h.scheduler.state(1), RequestState::Waiting);

  const std::vector<std::vector<Expected>> table = {
      {{1, 5, 0, 2, true}, {2, 3, 0, 1, true}},  // whole prompts
      {{1, 1, 5, 0, true}, {2, 1, 3, 0, true}},  // decodes: 6 and 4 positions
      {{1, 1, 6, 0, true}, {2, 1, 4, 1, true}},  // seq 2 crosses into its 2nd block
  };
  for (size_t step = 0; step < table.size(); ++step) {
    std::optional<StepPlan> plan = h.plan();
    ASSERT_TRUE(plan);
    expect_plan(*plan, table[step]);
    if (step == 0) {
      EXPECT_EQ(plan->sequences[0].tokens, request(1, 5, 3).prompt_token_ids);
      EXPECT_EQ(h.scheduler.state(1), RequestState::Prefilling);
    } else {
      EXPECT_EQ(plan->sequences[0].tokens, std::vector<int32_t>{7});
    }
    auto updates = h.scheduler.update(*plan, Harness::answer(*plan, token7));
    ASSERT_EQ(updates.size(), 2u);
    for (const SequenceUpdate& u : updates) {
      EXPECT_EQ(u.token, 7);
      EXPECT_EQ(u.num_generated_tokens, static_cast<int32_t>(step) + 1);
      EXPECT_EQ(u.outcome, step == 2 ? SequenceOutcome::Length : SequenceOutcome::None);
    }
    if (step == 0) {
      EXPECT_EQ(h.scheduler.state(1), RequestState::Decoding);
    }
  }
  EXPECT_EQ(find_update(h.scheduler.update(h.last_plan, {}), 1), nullptr);  // a stale plan changes nothing
  EXPECT_FALSE(h.plan());
  h.expect_all_free();
}

TEST(Scheduler, ChunkedPrefillSplitsTheTokenBudget) {
  Harness h(small_config(/*budget=*/8), 16);
  h.add_ok(request(1, 10, 2));
  h.add_ok(request(2, 10, 2));
  const std::vector<std::vector<Expected>> table = {
      {{1, 8, 0, 2, false}},                      // A's first chunk takes the whole budget
      {{1, 2, 8, 1, true}, {2, 6, 0, 2, false}},  // A finishes its prompt, B starts with the rest
      {{1, 1, 10, 0, true}, {2, 4, 6, 1, true}},  // A decodes (and ends at max_tokens 2), B's last chunk
      {{2, 1, 10, 0, true}},                      // B decodes, ends
  };
  for (const auto& expected : table) {
    std::optional<StepPlan> plan = h.plan();
    ASSERT_TRUE(plan);
    expect_plan(*plan, expected);
    if (plan->step_id == 2) {
      const auto prompt = request(1, 10, 2).prompt_token_ids;
      EXPECT_EQ(plan->sequences[0].tokens, std::vector<int32_t>(prompt.begin() + 8, prompt.end()));
    }
    if (plan->step_id == 4) {
      EXPECT_EQ(plan->release_kv, std::vector<uint64_t>{1});
      EXPECT_EQ(plan->release_state, std::vector<uint64_t>{1});
    }
    h.scheduler.update(*plan, Harness::answer(*plan, token7));
  }
  EXPECT_FALSE(h.plan());
  h.expect_all_free();
}

TEST(Scheduler, DecodesAreNeverStarvedByALongPrompt) {
  Harness h(small_config(/*budget=*/16), 64);
  h.add_ok(request(1, 4, 6));
  h.step(token7);  // A's prompt + first token
  h.add_ok(request(2, 100, 1));
  int a_tokens = 1, b_computed = 0;
  while (a_tokens < 6) {
    std::optional<StepPlan> plan = h.plan();
    ASSERT_TRUE(plan);
    ASSERT_EQ(plan->sequences.size(), 2u);
    EXPECT_EQ(plan->sequences[0].seq_id, 1u);
    EXPECT_EQ(plan->sequences[0].tokens.size(), 1u);
    EXPECT_EQ(plan->sequences[1].seq_id, 2u);
    EXPECT_EQ(plan->sequences[1].tokens.size(), 15u);
    EXPECT_EQ(plan->sequences[1].num_cached, b_computed);
    b_computed += 15;
    auto updates = h.scheduler.update(*plan, Harness::answer(*plan, token7));
    ++a_tokens;
    ASSERT_NE(find_update(updates, 1), nullptr);
    EXPECT_EQ(find_update(updates, 1)->num_generated_tokens, a_tokens);
  }
  // A ended at its 6th token; B now gets the whole budget: 75 + 16 = 91, then the last 9 tokens.
  std::optional<StepPlan> plan = h.plan();
  ASSERT_TRUE(plan);
  expect_plan(*plan, {{2, 16, 75, 4, false}});
  h.scheduler.update(*plan, Harness::answer(*plan, token7));
  plan = h.plan();
  ASSERT_TRUE(plan);
  expect_plan(*plan, {{2, 9, 91, 2, true}});
  auto updates = h.scheduler.update(*plan, Harness::answer(*plan, token7));
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].outcome, SequenceOutcome::Length);
  h.expect_all_free();
}

TEST(Scheduler, HigherPriorityFirstThenArrivalOrder) {
  Harness h(small_config(64, /*max_seqs=*/1), 16);
  h.add_ok(request(1, 2, 1, 0));
  h.add_ok(request(2, 2, 1, 5));
  h.add_ok(request(3, 2, 1, 0));
  h.add_ok(request(4, 2, 1, 5));
  std::vector<uint64_t> order;
  auto run_one = [&] {
    std::optional<StepPlan> plan = h.plan();
    ASSERT_TRUE(plan);
    ASSERT_EQ(plan->sequences.size(), 1u);
    order.push_back(plan->sequences[0].seq_id);
    auto updates = h.scheduler.update(*plan, Harness::answer(*plan, token7));
    ASSERT_EQ(updates.size(), 1u);
    EXPECT_EQ(updates[0].outcome, SequenceOutcome::Length);
  };
  run_one();
  h.add_ok(request(5, 2, 1, 9));  // arrives late, jumps the queue
  for (int i = 0; i < 4; ++i) run_one();
  EXPECT_EQ(order, (std::vector<uint64_t>{2, 5, 4, 1, 3}));
  h.expect_all_free();
}

TEST(Scheduler, MaxNumSeqsCapsRunningSequences) {
  Harness h(small_config(64, /*max_seqs=*/2), 32);
  for (uint64_t id = 1; id <= 5; ++id) h.add_ok(request(id, 3, 4));
  int steps = 0;
  while (h.scheduler.num_requests() > 0) {
    ASSERT_LT(++steps, 100);
    EXPECT_LE(h.scheduler.stats().num_running, 2);
    h.step(token7);  // the harness checks <= 2 sequences per plan
  }
  EXPECT_EQ(steps, 12);  // pairs (1,2), (3,4) and then 5 alone: 4 steps each
  h.expect_all_free();
}

// A and B both prefill one block each out of 3; B's first decode finds no block (A took the last one), so B preempts
// itself. It recomputes prompt + its first token only once A has ended and freed its blocks.
TEST(Scheduler, PreemptsAndRecomputesPromptPlusGeneratedTokens) {
  Harness h(small_config(), 3);
  h.add_ok(request(1, 4, 8));
  h.add_ok(request(2, 4, 8));
  std::map<uint64_t, std::vector<int32_t>> emitted;
  int32_t next_token = 10;
  auto token_for = [&](uint64_t) { return next_token++; };
  auto apply = [&](const StepPlan& plan) {
    auto updates = h.scheduler.update(plan, Harness::answer(plan, token_for));
    for (const SequenceUpdate& u : updates) {
      if (u.token) emitted[u.seq_id].push_back(*u.token);
    }
    return updates;
  };

  std::optional<StepPlan> plan = h.plan();
  expect_plan(*plan, {{1, 4, 0, 1, true}, {2, 4, 0, 1, true}});
  apply(*plan);
  plan = h.plan();
  expect_plan(*plan, {{1, 1, 4, 1, true}});
  EXPECT_EQ(plan->release_kv, std::vector<uint64_t>{2});
  EXPECT_TRUE(plan->release_state.empty());  // the executor keeps B's sampler
  EXPECT_EQ(h.scheduler.state(2), RequestState::Preempted);
  EXPECT_EQ(h.scheduler.stats().num_preemptions, 1u);
  EXPECT_EQ(h.scheduler.stats().num_recomputed_tokens, 4u);
  EXPECT_EQ(h.scheduler.stats().num_waiting, 1);
  apply(*plan);

  // A runs alone to its 8th token; B (needing 2 blocks for 5 tokens) waits.
  while (h.scheduler.state(1)) {
    plan = h.plan();
    ASSERT_TRUE(plan);
    expect_plan(*plan, {{1, 1, plan->sequences[0].num_cached, plan->sequences[0].new_blocks, true}});
    apply(*plan);
  }
  EXPECT_EQ(emitted[1].size(), 8u);

  plan = h.plan();
  ASSERT_TRUE(plan);
  expect_plan(*plan, {{2, 5, 0, 2, true}});
  std::vector<int32_t> recompute = request(2, 4, 8).prompt_token_ids;
  recompute.push_back(emitted[2].at(0));
  EXPECT_EQ(plan->sequences[0].tokens, recompute);
  EXPECT_EQ(plan->release_kv, std::vector<uint64_t>{1});
  apply(*plan);
  while (h.scheduler.state(2)) {
    plan = h.plan();
    ASSERT_TRUE(plan);
    auto updates = apply(*plan);
    ASSERT_EQ(updates.size(), 1u);
    if (updates[0].finished()) {
      EXPECT_EQ(updates[0].outcome, SequenceOutcome::Length);
      EXPECT_EQ(updates[0].num_generated_tokens, 8);
    }
  }
  EXPECT_EQ(emitted[2].size(), 8u);
  EXPECT_EQ(h.scheduler.stats().num_preemptions, 1u);
  h.expect_all_free();
}

// block_size 2, 5 blocks: A (2 tokens) holds 1 block, B and C (3 tokens) 2 each. A's first decode needs a 2nd block.
void preemption_victim_case(int32_t priority_c, uint64_t expected_victim) {
  SchedulerConfig config = small_config(64, 8, /*block_size=*/2);
  Harness h(config, 5);
  h.add_ok(request(1, 2, 4, 0));
  h.add_ok(request(2, 3, 4, 0));
  h.add_ok(request(3, 3, 4, priority_c));
  h.step(token7);
  std::optional<StepPlan> plan = h.plan();
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->release_kv, std::vector<uint64_t>{expected_victim});
  EXPECT_EQ(h.scheduler.state(expected_victim), RequestState::Preempted);
  ASSERT_NE(find_seq(*plan, 1), nullptr);
  EXPECT_EQ(find_seq(*plan, 1)->new_blocks, 1);
  EXPECT_EQ(find_seq(*plan, expected_victim), nullptr);
  h.scheduler.update(*plan, Harness::answer(*plan, token7));
  for (int i = 0; i < 50 && h.scheduler.num_requests() > 0; ++i) h.step(token7);
  EXPECT_EQ(h.scheduler.num_requests(), 0);
  h.expect_all_free();
}

TEST(Scheduler, PreemptsTheNewestRequest) { preemption_victim_case(0, 3); }
TEST(Scheduler, PreemptsTheLowestPriorityBeforeTheNewest) { preemption_victim_case(1, 2); }

}  // namespace
}  // namespace tessera
