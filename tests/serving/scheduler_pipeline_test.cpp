// Pipelined scheduling: schedule() called while the previous plan is still running plans the decode of the token
// that plan samples (token_pending), except when that token must end the request; a stop token in flight wastes the
// later step's work for that request only; blocks are accounted across both plans and all end free.
#include <gtest/gtest.h>

#include "core/serving/scheduler.hpp"
#include "tests/serving/scheduler_harness.hpp"

namespace tessera {
namespace {

using testing::find_seq;
using testing::find_update;
using testing::Harness;
using testing::request;
using testing::small_config;

constexpr int32_t kEos = 2;

StepResult tokens(const StepPlan& plan, int32_t token) { return Harness::answer(plan, [&](uint64_t) { return token; }); }

TEST(SchedulerPipeline, PlansTheInFlightTokensDecodeUntilMaxTokens) {
  Harness h(small_config(/*budget=*/64, /*max_seqs=*/4, /*block_size=*/4), /*num_blocks=*/16, {kEos});
  h.add_ok(request(1, /*prompt_len=*/4, /*max_tokens=*/3));
  const StepPlan p1 = *h.plan();  // the prompt; samples token 1
  const StepPlan p2 = *h.plan();  // planned while p1 runs
  const ScheduledSequence* d = find_seq(p2, 1);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->token_pending);
  EXPECT_EQ(d->num_cached, 4);
  EXPECT_EQ(d->tokens.size(), 1u);
  EXPECT_TRUE(d->sample);
  EXPECT_EQ(d->new_blocks, 1);  // position 4 opens the second block of 4
  EXPECT_FALSE(h.scheduler.schedule());  // two plans hold it already
  auto u1 = h.scheduler.update(p1, tokens(p1, 70));
  ASSERT_EQ(u1.size(), 1u);
  EXPECT_EQ(*u1[0].token, 70);
  EXPECT_FALSE(u1[0].finished());
  const StepPlan p3 = *h.plan();  // p2 samples token 2 of 3, which cannot be the last: decode it ahead too
  ASSERT_NE(find_seq(p3, 1), nullptr);
  EXPECT_TRUE(find_seq(p3, 1)->token_pending);
  EXPECT_EQ(find_seq(p3, 1)->num_cached, 5);
  auto u2 = h.scheduler.update(p2, tokens(p2, 71));
  ASSERT_EQ(u2.size(), 1u);
  EXPECT_EQ(u2[0].num_generated_tokens, 2);
  // p3 samples the third and last token: nothing may be planned behind it.
  EXPECT_FALSE(h.plan());
  auto u3 = h.scheduler.update(p3, tokens(p3, 72));
  ASSERT_EQ(u3.size(), 1u);
  EXPECT_EQ(u3[0].outcome, SequenceOutcome::Length);
  EXPECT_EQ(u3[0].num_generated_tokens, 3);
  h.expect_all_free();
}

TEST(SchedulerPipeline, NoDecodeAheadOfTheLastToken) {
  Harness h(small_config(), /*num_blocks=*/16, {kEos});
  h.add_ok(request(1, 3, /*max_tokens=*/1));
  const StepPlan p1 = *h.plan();
  EXPECT_FALSE(h.plan());  // the prompt's sampled token is the only one
  auto u = h.scheduler.update(p1, tokens(p1, 9));
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].outcome, SequenceOutcome::Length);
  h.expect_all_free();
}

TEST(SchedulerPipeline, StopTokenInFlightWastesOnlyThatRequestsNextStep) {
  Harness h(small_config(/*budget=*/64, /*max_seqs=*/4, /*block_size=*/4), /*num_blocks=*/16, {kEos});
  h.add_ok(request(1, 4, 10));
  h.add_ok(request(2, 4, 10));
  const StepPlan p1 = *h.plan();
  const StepPlan p2 = *h.plan();
  ASSERT_EQ(p2.sequences.size(), 2u);
  // Request 1 samples EOS in p1; request 2 goes on.
  StepResult r1 = Harness::answer(p1, [](uint64_t id) { return id == 1 ? kEos : 50; });
  auto u1 = h.scheduler.update(p1, r1);
  ASSERT_NE(find_update(u1, 1), nullptr);
  EXPECT_EQ(find_update(u1, 1)->outcome, SequenceOutcome::Stop);
  EXPECT_FALSE(find_update(u1, 2)->finished());
  const StepPlan p3 = *h.plan();
  EXPECT_EQ(find_seq(p3, 1), nullptr);
  ASSERT_NE(find_seq(p3, 2), nullptr);
  EXPECT_EQ(p3.release_kv, std::vector<uint64_t>{1});  // its blocks (p2's included) go before p3's allocations
  auto u2 = h.scheduler.update(p2, tokens(p2, 51));
  EXPECT_EQ(find_update(u2, 1), nullptr);  // p2's token for the ended request is dropped
  ASSERT_NE(find_update(u2, 2), nullptr);
  EXPECT_EQ(*find_update(u2, 2)->token, 51);
  h.scheduler.abort(2, AbortReason::Cancelled, "done");
  h.scheduler.update(p3, tokens(p3, 52));
  h.expect_all_free();
}

TEST(SchedulerPipeline, PromptChunksFollowEachOtherWhileInFlight) {
  Harness h(small_config(/*budget=*/8, /*max_seqs=*/4, /*block_size=*/4), /*num_blocks=*/16, {kEos});
  h.add_ok(request(1, /*prompt_len=*/20, 4));
  const StepPlan p1 = *h.plan();
  const StepPlan p2 = *h.plan();
  ASSERT_NE(find_seq(p2, 1), nullptr);
  EXPECT_FALSE(find_seq(p2, 1)->token_pending);
  EXPECT_EQ(find_seq(p2, 1)->num_cached, 8);
  EXPECT_EQ(find_seq(p2, 1)->tokens.size(), 8u);
  EXPECT_FALSE(h.scheduler.schedule());  // in two plans already
  EXPECT_TRUE(h.scheduler.update(p1, tokens(p1, 1)).empty());  // a chunk without sampling
  const StepPlan p3 = *h.plan();  // the last 4 prompt tokens, sampling
  EXPECT_TRUE(find_seq(p3, 1)->sample);
  h.scheduler.update(p2, tokens(p2, 1));
  const StepPlan p4 = *h.plan();
  EXPECT_TRUE(find_seq(p4, 1)->token_pending);
  h.scheduler.abort(1, AbortReason::Cancelled, "done");
  h.scheduler.update(p3, tokens(p3, 5));
  h.scheduler.update(p4, tokens(p4, 6));
  h.expect_all_free();
}

TEST(SchedulerPipeline, FailedStepEndsItsRequestsAndTheLaterPlanIsSkipped) {
  Harness h(small_config(), /*num_blocks=*/16, {kEos});
  h.add_ok(request(1, 4, 10));
  const StepPlan p1 = *h.plan();
  const StepPlan p2 = *h.plan();
  auto u1 = h.scheduler.update(p1, StepResult{p1.step_id, {}, "device lost", 0});
  ASSERT_EQ(u1.size(), 1u);
  EXPECT_EQ(u1[0].outcome, SequenceOutcome::Error);
  EXPECT_TRUE(h.scheduler.update(p2, tokens(p2, 3)).empty());
  h.expect_all_free();
}

}  // namespace
}  // namespace tessera
