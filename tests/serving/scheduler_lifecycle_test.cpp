// Ending requests: cancel/abort in every state, finish by max_tokens / EOS / stop ids / max_model_len, admission
// rejections, failed steps, seeds. Every scenario ends with all KV blocks free.
#include <gtest/gtest.h>

#include <msgpack.hpp>

#include "core/common/error.hpp"
#include "core/serving/scheduler.hpp"
#include "tests/serving/scheduler_harness.hpp"

namespace tessera {
namespace {

using testing::find_seq;
using testing::find_update;
using testing::Harness;
using testing::request;
using testing::small_config;

int32_t token7(uint64_t) { return 7; }

TEST(SchedulerAbort, WaitingRequestLeavesNoReleases) {
  Harness h(small_config(), 8);
  h.add_ok(request(1, 4, 4));
  std::optional<SequenceUpdate> u = h.scheduler.abort(1, AbortReason::Cancelled);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->outcome, SequenceOutcome::Cancelled);
  EXPECT_EQ(u->num_prompt_tokens, 4);
  EXPECT_EQ(u->num_generated_tokens, 0);
  EXPECT_FALSE(h.scheduler.state(1));
  EXPECT_FALSE(h.scheduler.abort(1, AbortReason::Cancelled));  // ends exactly once
  EXPECT_TRUE(h.scheduler.take_releases().empty());
  EXPECT_FALSE(h.plan());
  h.expect_all_free();
}

TEST(SchedulerAbort, PartiallyPrefilledRequestReleasesBlocksAndState) {
  Harness h(small_config(/*budget=*/4), 8);
  h.add_ok(request(1, 10, 4));
  h.step(token7);
  EXPECT_EQ(h.scheduler.state(1), RequestState::Prefilling);
  EXPECT_EQ(h.kv.num_used_blocks(), 1);
  ASSERT_TRUE(h.scheduler.abort(1, AbortReason::ClientLost));
  Releases r = h.scheduler.take_releases();
  EXPECT_EQ(r.kv, std::vector<uint64_t>{1});
  EXPECT_EQ(r.state, std::vector<uint64_t>{1});
  for (uint64_t id : r.kv) h.kv.free(id);
  h.expect_all_free();
}

TEST(SchedulerAbort, InFlightRequestIsSkippedByUpdateAndReleasedByTheNextPlan) {
  Harness h(small_config(), 8);
  h.add_ok(request(1, 4, 4));
  h.add_ok(request(2, 4, 4));
  std::optional<StepPlan> plan = h.plan();
  ASSERT_TRUE(plan);
  std::optional<SequenceUpdate> u = h.scheduler.abort(1, AbortReason::Cancelled);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->outcome, SequenceOutcome::Cancelled);
  auto updates = h.scheduler.update(*plan, Harness::answer(*plan, token7));
  EXPECT_EQ(find_update(updates, 1), nullptr);
  ASSERT_NE(find_update(updates, 2), nullptr);
  plan = h.plan();
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->release_kv, std::vector<uint64_t>{1});
  EXPECT_EQ(plan->release_state, std::vector<uint64_t>{1});
  EXPECT_EQ(find_seq(*plan, 1), nullptr);
  h.scheduler.update(*plan, Harness::answer(*plan, token7));
  while (h.scheduler.num_requests() > 0) h.step(token7);
  h.expect_all_free();
}

TEST(SchedulerAbort, DecodingRequestByStopStringAndByError) {
  Harness h(small_config(), 8);
  h.add_ok(request(1, 4, 10));
  h.add_ok(request(2, 4, 10));
  h.step(token7);
  h.step(token7);
  EXPECT_EQ(h.scheduler.state(1), RequestState::Decoding);
  std::optional<SequenceUpdate> stop = h.scheduler.abort(1, AbortReason::StopString);
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->outcome, SequenceOutcome::Stop);
  EXPECT_EQ(stop->num_generated_tokens, 2);
  std::optional<SequenceUpdate> error = h.scheduler.abort(2, AbortReason::Error, "detokenizer failed");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->outcome, SequenceOutcome::Error);
  EXPECT_EQ(error->message, "detokenizer failed");
  h.expect_all_free();
}

TEST(SchedulerAbort, StopStringOnAWaitingRequestIsAnIllegalTransition) {
  Harness h(small_config(), 8);
  h.add_ok(request(1, 4, 4));
  EXPECT_THROW(h.scheduler.abort(1, AbortReason::StopString), Error);
  EXPECT_EQ(h.scheduler.state(1), RequestState::Waiting);  // nothing changed
  ASSERT_TRUE(h.scheduler.abort(1, AbortReason::Cancelled));
  h.expect_all_free();
}

TEST(SchedulerAbort, PreemptedRequest) {
  Harness h(small_config(), 3);  // as in PreemptsAndRecomputesPromptPlusGeneratedTokens: B preempts itself
  h.add_ok(request(1, 4, 8));
  h.add_ok(request(2, 4, 8));
  h.step(token7);
  h.step(token7);
  ASSERT_EQ(h.scheduler.state(2), RequestState::Preempted);
  std::optional<SequenceUpdate> u = h.scheduler.abort(2, AbortReason::Cancelled);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->num_generated_tokens, 1);
  Releases r = h.scheduler.take_releases();
  EXPECT_TRUE(r.kv.empty());  // its blocks went with the preemption
  EXPECT_EQ(r.state, std::vector<uint64_t>{2});
  while (h.scheduler.num_requests() > 0) h.step(token7);
  h.expect_all_free();
}

TEST(SchedulerFinish, EosStopsUnlessIgnored) {
  Harness h(small_config(), 16, /*eos=*/{2});
  h.add_ok(request(1, 3, 10));
  RequestSpec ignoring = request(2, 3, 4);
  ignoring.sampling.ignore_eos = true;
  h.add_ok(ignoring);
  int step = 0;
  auto token_for = [&](uint64_t) { return step == 1 ? 2 : 7; };  // EOS at the second step
  h.step(token_for);
  ++step;
  auto updates = h.step(token_for);
  ASSERT_NE(find_update(updates, 1), nullptr);
  EXPECT_EQ(find_update(updates, 1)->outcome, SequenceOutcome::Stop);
  EXPECT_EQ(find_update(updates, 1)->token, 2);
  EXPECT_EQ(find_update(updates, 1)->num_generated_tokens, 2);
  EXPECT_EQ(find_update(updates, 2)->outcome, SequenceOutcome::None);
  ++step;
  h.step(token_for);
  updates = h.step(token_for);
  ASSERT_NE(find_update(updates, 2), nullptr);
  EXPECT_EQ(find_update(updates, 2)->outcome, SequenceOutcome::Length);
  EXPECT_EQ(find_update(updates, 2)->num_generated_tokens, 4);
  h.expect_all_free();
}

TEST(SchedulerFinish, StopTokenIdsStopEvenWithIgnoreEos) {
  Harness h(small_config(), 16, /*eos=*/{2});
  RequestSpec r = request(1, 3, 10);
  r.sampling.ignore_eos = true;
  r.sampling.stop_token_ids = {9};
  h.add_ok(r);
  int32_t calls = 0;
  auto token_for = [&](uint64_t) { return ++calls == 3 ? 9 : 2; };
  std::vector<SequenceUpdate> updates;
  for (int i = 0; i < 3; ++i) updates = h.step(token_for);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].outcome, SequenceOutcome::Stop);
  EXPECT_EQ(updates[0].token, 9);
  EXPECT_EQ(updates[0].num_generated_tokens, 3);
  h.expect_all_free();
}

TEST(SchedulerFinish, FirstTokenCanFinishAndMaxModelLenCapsLength) {
  Harness h(small_config(64, 8, 4, /*max_model_len=*/8), 16);
  h.add_ok(request(1, 3, 1));    // ends with its first token
  h.add_ok(request(2, 5, 100));  // 5 prompt + 3 generated = max_model_len 8
  auto updates = h.step(token7);
  ASSERT_NE(find_update(updates, 1), nullptr);
  EXPECT_EQ(find_update(updates, 1)->outcome, SequenceOutcome::Length);
  EXPECT_EQ(find_update(updates, 1)->token, 7);
  updates = h.step(token7);
  EXPECT_EQ(find_update(updates, 2)->outcome, SequenceOutcome::None);
  updates = h.step(token7);
  EXPECT_EQ(find_update(updates, 2)->outcome, SequenceOutcome::Length);
  EXPECT_EQ(find_update(updates, 2)->num_generated_tokens, 3);
  h.expect_all_free();
}

TEST(SchedulerAdd, RejectsWithoutSideEffects) {
  SchedulerConfig config = small_config(64, 8, 4, /*max_model_len=*/16);
  config.max_waiting_requests = 2;
  Harness h(config, 3);
  h.add_ok(request(1, 4, 2));
  EXPECT_EQ(h.scheduler.add(request(1, 4, 2)).status, AddStatus::Invalid);  // duplicate
  EXPECT_EQ(h.scheduler.add(request(5, 0, 2)).status, AddStatus::Invalid);  // empty prompt
  EXPECT_EQ(h.scheduler.add(request(6, 4, 0)).status, AddStatus::Invalid);  // max_tokens 0
  AddResult too_long = h.scheduler.add(request(7, 16, 1));
  EXPECT_EQ(too_long.status, AddStatus::PromptTooLong);
  EXPECT_NE(too_long.message.find("max_model_len is 16"), std::string::npos) << too_long.message;
  // 8 + 8 tokens: 15 cached positions need 4 blocks; the cache has 3.
  AddResult too_big = h.scheduler.add(request(8, 8, 8));
  EXPECT_EQ(too_big.status, AddStatus::Invalid);
  EXPECT_NE(too_big.message.find("KV blocks"), std::string::npos) << too_big.message;
  h.add_ok(request(2, 4, 2));
  AddResult overloaded = h.scheduler.add(request(3, 4, 2));
  EXPECT_EQ(overloaded.status, AddStatus::Overloaded);
  EXPECT_FALSE(h.scheduler.state(3));
  EXPECT_EQ(h.scheduler.num_requests(), 2);
  h.step(token7);  // both admitted: the waiting queue is empty again
  h.add_ok(request(3, 4, 2));
  while (h.scheduler.num_requests() > 0) h.step(token7);
  h.expect_all_free();
}

TEST(SchedulerStep, AnErrorFailsEverySequenceOfTheStepOnly) {
  Harness h(small_config(64, /*max_seqs=*/2), 16);
  for (uint64_t id = 1; id <= 3; ++id) h.add_ok(request(id, 3, 3));
  std::optional<StepPlan> plan = h.plan();
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->sequences.size(), 2u);
  StepResult failed;
  failed.step_id = plan->step_id;
  failed.error = "executor: out of memory";
  auto updates = h.scheduler.update(*plan, failed);
  ASSERT_EQ(updates.size(), 2u);
  for (const SequenceUpdate& u : updates) {
    EXPECT_EQ(u.outcome, SequenceOutcome::Error);
    EXPECT_EQ(u.message, "executor: out of memory");
    EXPECT_FALSE(u.token);
  }
  EXPECT_EQ(h.scheduler.state(3), RequestState::Waiting);
  plan = h.plan();  // releases 1 and 2, runs 3
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->release_kv.size(), 2u);
  StepResult wrong_step = Harness::answer(*plan, token7);
  wrong_step.step_id = plan->step_id + 7;
  updates = h.scheduler.update(*plan, wrong_step);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].outcome, SequenceOutcome::Error);
  EXPECT_NE(updates[0].message.find("does not match"), std::string::npos);
  h.expect_all_free();
}

TEST(SchedulerStep, AMissingTokenFailsThatSequence) {
  Harness h(small_config(), 16);
  h.add_ok(request(1, 3, 3));
  h.add_ok(request(2, 3, 3));
  std::optional<StepPlan> plan = h.plan();
  StepResult result = Harness::answer(*plan, token7);
  result.tokens.erase(result.tokens.begin());  // sequence 1 gets nothing
  auto updates = h.scheduler.update(*plan, result);
  EXPECT_EQ(find_update(updates, 1)->outcome, SequenceOutcome::Error);
  EXPECT_EQ(find_update(updates, 2)->outcome, SequenceOutcome::None);
  while (h.scheduler.num_requests() > 0) h.step(token7);
  h.expect_all_free();
}

TEST(SchedulerSeeds, ClientSeedIsKeptOtherwiseDrawnFromTheSchedulerSeed) {
  auto seeds = [](uint64_t scheduler_seed) {
    SchedulerConfig config = small_config();
    config.seed = scheduler_seed;
    Scheduler s(config, 16, {});
    RequestSpec with_seed = request(1, 2, 1);
    with_seed.sampling.seed = 77;
    with_seed.sampling.temperature = 0.5f;
    with_seed.sampling.top_k = 3;
    with_seed.sampling.top_p = 0.9f;
    EXPECT_TRUE(s.add(with_seed).accepted());
    EXPECT_TRUE(s.add(request(2, 2, 1)).accepted());
    EXPECT_TRUE(s.add(request(3, 2, 1)).accepted());
    StepPlan plan = *s.schedule();
    EXPECT_EQ(plan.sequences[0].sampling.seed, 77u);
    EXPECT_FLOAT_EQ(plan.sequences[0].sampling.temperature, 0.5f);
    EXPECT_EQ(plan.sequences[0].sampling.top_k, 3);
    EXPECT_FLOAT_EQ(plan.sequences[0].sampling.top_p, 0.9f);
    return std::vector<uint64_t>{plan.sequences[1].sampling.seed, plan.sequences[2].sampling.seed};
  };
  std::vector<uint64_t> a = seeds(5), b = seeds(5), c = seeds(6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a[0], a[1]);
  EXPECT_NE(a, c);
}

TEST(SchedulerConfigTest, RejectsOutOfRangeFields) {
  SchedulerConfig config = small_config();
  EXPECT_NO_THROW(Scheduler(config, 4, {}));
  EXPECT_THROW(Scheduler(config, 0, {}), Error);
  config.max_model_len = 0;
  EXPECT_THROW(Scheduler(config, 4, {}), Error);
  config = small_config();
  config.max_num_batched_tokens = 0;
  EXPECT_THROW(Scheduler(config, 4, {}), Error);
}

TEST(SchedulerMessages, SequenceUpdateRoundTripsThroughMsgpack) {
  SequenceUpdate u;
  u.seq_id = 9;
  u.token = 42;
  u.outcome = SequenceOutcome::Stop;
  u.num_prompt_tokens = 3;
  u.num_generated_tokens = 4;
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, u);
  SequenceUpdate back = msgpack::unpack(buffer.data(), buffer.size()).get().as<SequenceUpdate>();
  EXPECT_EQ(back.seq_id, 9u);
  EXPECT_EQ(back.token, 42);
  EXPECT_EQ(back.outcome, SequenceOutcome::Stop);
  EXPECT_EQ(back.num_generated_tokens, 4);
}

}  // namespace
}  // namespace tessera
