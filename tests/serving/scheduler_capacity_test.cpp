// The Scheduler's capacity policies (scheduler.hpp), on one KV pool too small for every request at its max_tokens:
// MaxUtilization admits by first chunk and preempts later, GuaranteedNoEvict admits only what fits at max_tokens and
// never preempts. Block size 4; the numbers are worked out by hand.
#include <gtest/gtest.h>

#include <set>

#include "core/serving/scheduler.hpp"
#include "tests/serving/scheduler_harness.hpp"

namespace tessera {
namespace {

using testing::find_seq;
using testing::Harness;
using testing::request;
using testing::small_config;

int32_t token7(uint64_t) { return 7; }

SchedulerConfig config_with(CapacityPolicy policy) {
  SchedulerConfig c = small_config();
  c.capacity_policy = policy;
  return c;
}

// Four requests of an 8-token prompt (2 blocks) and max_tokens 9: 16 cached positions at most, 4 blocks each.
void add_four(Harness& h) {
  for (uint64_t id = 1; id <= 4; ++id) h.add_ok(request(id, 8, 9));
}

// Under GuaranteedNoEvict on 12 blocks, the first step of add_four: requests 1-3 (3 x 4 blocks reserved), request 4
// waits.
StepPlan admit_three_of_four(Harness& h) {
  add_four(h);
  std::optional<StepPlan> first = h.plan();
  EXPECT_TRUE(first);
  if (!first) return {};
  EXPECT_EQ(first->sequences.size(), 3u);
  EXPECT_EQ(find_seq(*first, 4), nullptr);
  EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 12);
  return *first;
}

TEST(SchedulerCapacity, PolicyNamesRoundTrip) {
  for (CapacityPolicy p : {CapacityPolicy::MaxUtilization, CapacityPolicy::GuaranteedNoEvict})
    EXPECT_EQ(parse_capacity_policy(capacity_policy_name(p)), p);
  EXPECT_EQ(std::string(capacity_policy_name(CapacityPolicy::GuaranteedNoEvict)), "guaranteed_no_evict");
  for (const char* bad : {"", "no_evict", "MAX_UTILIZATION", "max_utilization "})
    EXPECT_FALSE(parse_capacity_policy(bad).has_value()) << bad;
  EXPECT_EQ(SchedulerConfig{}.capacity_policy, CapacityPolicy::MaxUtilization);
}

TEST(SchedulerCapacity, MaxUtilizationAdmitsAllAndPreemptsWhenTheyGrow) {
  Harness h(config_with(CapacityPolicy::MaxUtilization), 12);
  add_four(h);
  std::optional<StepPlan> first = h.plan();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->sequences.size(), 4u);  // 4 x 2 blocks of prompt fit the 12
  h.scheduler.update(*first, Harness::answer(*first, token7));
  int finished = 0;
  for (int step = 0; step < 100 && h.scheduler.num_requests() > 0; ++step) {
    for (const SequenceUpdate& u : h.step(token7)) finished += u.finished();
  }
  EXPECT_EQ(finished, 4);
  EXPECT_GT(h.scheduler.stats().num_preemptions, 0u);  // 4 x 4 blocks at the end do not fit 12
  EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 0);
  h.expect_all_free();
}

TEST(SchedulerCapacity, GuaranteedNoEvictAdmitsWhatFitsAtMaxTokensAndNeverPreempts) {
  Harness h(config_with(CapacityPolicy::GuaranteedNoEvict), 12);
  const StepPlan first = admit_three_of_four(h);
  ASSERT_EQ(first.sequences.size(), 3u);
  EXPECT_EQ(h.scheduler.stats().kv_blocks_used, 6);  // their prompts: 3 x 2 blocks
  EXPECT_EQ(h.scheduler.state(4), RequestState::Waiting);
  h.scheduler.update(first, Harness::answer(first, token7));

  // Requests 1-3 decode to max_tokens together; request 4 is admitted in the step after they end.
  std::set<uint64_t> done;
  int steps = 0;
  for (; steps < 100 && h.scheduler.num_requests() > 0; ++steps) {
    std::optional<StepPlan> plan = h.plan();
    ASSERT_TRUE(plan);
    if (find_seq(*plan, 4)) {
      EXPECT_EQ(done.size(), 3u) << "request 4 admitted while the others still hold their reservations";
    }
    EXPECT_LE(h.scheduler.stats().kv_blocks_reserved, 12);
    for (const SequenceUpdate& u : h.scheduler.update(*plan, Harness::answer(*plan, token7)))
      if (u.finished()) done.insert(u.seq_id);
  }
  EXPECT_EQ(done.size(), 4u);
  EXPECT_EQ(h.scheduler.stats().num_preemptions, 0u);
  EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 0);
  h.expect_all_free();
}

TEST(SchedulerCapacity, GuaranteedNoEvictFreesAReservationWhenARequestEndsEarly) {
  constexpr int32_t kEos = 2;
  Harness h(config_with(CapacityPolicy::GuaranteedNoEvict), 12, {kEos});
  const StepPlan first = admit_three_of_four(h);
  ASSERT_EQ(first.sequences.size(), 3u);
  // Request 2 samples EOS as its first token: it ends, and its 4 reserved blocks go back.
  auto updates = h.scheduler.update(first, Harness::answer(first, [](uint64_t id) { return id == 2 ? kEos : 7; }));
  ASSERT_NE(testing::find_update(updates, 2), nullptr);
  EXPECT_EQ(testing::find_update(updates, 2)->outcome, SequenceOutcome::Stop);
  EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 8);
  std::optional<StepPlan> second = h.plan();
  ASSERT_TRUE(second);
  const ScheduledSequence* admitted = find_seq(*second, 4);
  ASSERT_NE(admitted, nullptr);
  EXPECT_EQ(admitted->tokens.size(), 8u);  // its whole prompt
  EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 12);
  h.scheduler.update(*second, Harness::answer(*second, token7));
  for (int step = 0; step < 100 && h.scheduler.num_requests() > 0; ++step) h.step(token7);
  EXPECT_EQ(h.scheduler.stats().num_preemptions, 0u);
  h.expect_all_free();
}

TEST(SchedulerCapacity, GuaranteedNoEvictReleasesReservationsOfCancelledAndWaitingRequests) {
  Harness h(config_with(CapacityPolicy::GuaranteedNoEvict), 12);
  const StepPlan first = admit_three_of_four(h);
  ASSERT_EQ(first.sequences.size(), 3u);
  // Cancelling the still waiting request 4 changes nothing reserved; cancelling running request 1 frees its 4.
  ASSERT_TRUE(h.scheduler.abort(4, AbortReason::Cancelled));
  EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 12);
  ASSERT_TRUE(h.scheduler.abort(1, AbortReason::Cancelled));
  EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 8);
  // A failed step ends the others and returns every reservation.
  auto updates = h.scheduler.update(first, StepResult{first.step_id, {}, "injected failure", 0});
  EXPECT_EQ(updates.size(), 2u);
  EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 0);
  EXPECT_FALSE(h.plan());
  h.expect_all_free();
}

}  // namespace
}  // namespace tessera
