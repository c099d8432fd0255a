// Randomized soak (seeded): many requests of random lengths and priorities, random cancels / stop strings / errors,
// failing steps, a KV pool small enough to force preemptions, and sometimes two plans in flight at once. A fake
// executor answers random tokens. Checked: every request ends exactly once, every plan feeds exactly the tokens
// the request has (prompt + generated, recompute included), the budgets hold (harness), and all blocks end free.
// Under the GuaranteedNoEvict capacity policy the same traffic runs without a single preemption, the blocks in use
// staying within the admitted requests' reservations.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>

#include "core/serving/scheduler.hpp"
#include "tests/serving/scheduler_harness.hpp"

namespace tessera {
namespace {

using testing::Harness;

constexpr int32_t kEos = 2;

struct Track {
  std::vector<int32_t> tokens;  // prompt + generated, as seen through updates
  int32_t num_prompt = 0;
  int32_t max_tokens = 0;
  bool ignore_eos = false;
  bool ended = false;
  int32_t generated() const { return static_cast<int32_t>(tokens.size()) - num_prompt; }
};

void soak(uint64_t seed, bool pipelined, CapacityPolicy policy = CapacityPolicy::MaxUtilization) {
  SCOPED_TRACE("seed " + std::to_string(seed) + (pipelined ? " pipelined " : " ") + capacity_policy_name(policy));
  std::mt19937_64 rng(seed);
  auto uniform = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  SchedulerConfig config = testing::small_config(/*budget=*/24, /*max_seqs=*/6, /*block_size=*/4,
                                                 /*max_model_len=*/48);
  config.max_waiting_requests = 24;
  config.seed = seed;
  config.capacity_policy = policy;
  const bool no_evict = policy == CapacityPolicy::GuaranteedNoEvict;
  Harness h(config, /*num_blocks=*/14, {kEos});

  std::map<uint64_t, Track> tracks;
  int accepted = 0, overloaded = 0, ended = 0, pending_decodes = 0;
  auto on_update = [&](const SequenceUpdate& u) {
    Track& t = tracks.at(u.seq_id);
    ASSERT_FALSE(t.ended) << "sequence " << u.seq_id << " updated after its end";
    if (u.token) t.tokens.push_back(*u.token);
    EXPECT_EQ(u.num_prompt_tokens, t.num_prompt);
    EXPECT_EQ(u.num_generated_tokens, t.generated());
    EXPECT_LE(t.generated(), t.max_tokens);
    EXPECT_LE(static_cast<int32_t>(t.tokens.size()), config.max_model_len);
    if (u.outcome == SequenceOutcome::Length) {
      EXPECT_TRUE(t.generated() == t.max_tokens || static_cast<int32_t>(t.tokens.size()) == config.max_model_len);
    }
    if (u.outcome == SequenceOutcome::Stop && u.token) {
      EXPECT_EQ(*u.token, kEos);
      EXPECT_FALSE(t.ignore_eos);
    }
    if (u.finished()) {
      t.ended = true;
      ++ended;
    }
  };

  const int total = 400;
  uint64_t next_id = 1;
  std::deque<StepPlan> in_flight;
  int idle = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    if (static_cast<int>(next_id) > total && h.scheduler.num_requests() == 0 && in_flight.empty()) break;
    for (int i = uniform(0, 3) == 0 ? uniform(1, 3) : 0; i > 0 && static_cast<int>(next_id) <= total; --i) {
      RequestSpec spec;
      spec.seq_id = next_id++;
      for (int n = uniform(1, 30); n > 0; --n) spec.prompt_token_ids.push_back(uniform(3, 49));
      spec.sampling.max_tokens = uniform(1, 20);
      spec.sampling.ignore_eos = uniform(0, 3) == 0;
      spec.priority = uniform(0, 2);
      Track t{spec.prompt_token_ids, static_cast<int32_t>(spec.prompt_token_ids.size()), spec.sampling.max_tokens,
              spec.sampling.ignore_eos};
      const uint64_t id = spec.seq_id;
      AddResult r = h.scheduler.add(std::move(spec));
      if (r.accepted()) {
        tracks.emplace(id, std::move(t));
        ++accepted;
      } else {
        ASSERT_EQ(r.status, AddStatus::Overloaded) << r.message;
        ++overloaded;
      }
    }
    for (auto& [id, t] : tracks) {
      if (t.ended || uniform(0, 199) != 0) continue;
      AbortReason reason = t.generated() > 0 && uniform(0, 1) ? AbortReason::StopString
                           : uniform(0, 1)                    ? AbortReason::Cancelled
                                                              : AbortReason::Error;
      std::optional<SequenceUpdate> u = h.scheduler.abort(id, reason, "soak");
      ASSERT_TRUE(u);
      on_update(*u);
    }

    std::optional<StepPlan> plan = h.plan();
    const SchedulerStats stats = h.scheduler.stats();
    if (no_evict) {
      EXPECT_LE(stats.kv_blocks_used, stats.kv_blocks_reserved);
      EXPECT_LE(stats.kv_blocks_reserved, stats.kv_blocks_total);
    } else {
      EXPECT_EQ(stats.kv_blocks_reserved, 0);
    }
    if (plan) {
      for (const ScheduledSequence& s : plan->sequences) {
        const Track& t = tracks.at(s.seq_id);
        ASSERT_FALSE(t.ended);
        if (s.token_pending) {
          // A decode of the token the plan in flight samples: it goes right after the known tokens.
          ASSERT_TRUE(pipelined);
          EXPECT_EQ(static_cast<size_t>(s.num_cached), t.tokens.size());
          EXPECT_EQ(s.tokens.size(), 1u);
          EXPECT_TRUE(s.sample);
          ++pending_decodes;
          continue;
        }
        const size_t end = static_cast<size_t>(s.num_cached) + s.tokens.size();
        ASSERT_LE(end, t.tokens.size());
        EXPECT_TRUE(std::equal(s.tokens.begin(), s.tokens.end(), t.tokens.begin() + s.num_cached))
            << "sequence " << s.seq_id << " fed tokens it does not have";
        EXPECT_EQ(s.sample, end == t.tokens.size());
      }
      in_flight.push_back(std::move(*plan));
    }
    const size_t keep = pipelined && plan ? 1 : 0;
    if (in_flight.size() > keep) {
      const StepPlan done = std::move(in_flight.front());
      in_flight.pop_front();
      StepResult result = Harness::answer(done, [&](uint64_t) { return uniform(0, 49); });
      if (uniform(0, 99) == 0) result = {done.step_id, {}, "injected executor failure", 0};
      for (const SequenceUpdate& u : h.scheduler.update(done, result)) on_update(u);
    }
    idle = (plan || !in_flight.empty()) ? 0 : idle + 1;
    ASSERT_LT(idle, 50) << "no progress with " << h.scheduler.num_requests() << " requests left";
  }
  EXPECT_TRUE(in_flight.empty());
  EXPECT_EQ(ended, accepted);
  for (const auto& [id, t] : tracks) EXPECT_TRUE(t.ended) << "sequence " << id << " never ended";
  // (GuaranteedNoEvict runs fewer requests at once on this small pool, so its queue overflows more often.)
  EXPECT_GT(accepted, no_evict ? total / 4 : total / 2);
  EXPECT_EQ(accepted + overloaded, total);
  if (no_evict) {
    EXPECT_EQ(h.scheduler.stats().num_preemptions, 0u);
    EXPECT_EQ(h.scheduler.stats().kv_blocks_reserved, 0);
  } else {
    EXPECT_GT(h.scheduler.stats().num_preemptions, 0u);
  }
  if (pipelined) {
    EXPECT_GT(pending_decodes, 100);  // the second plan in flight decodes ahead
  }
  h.expect_all_free();
}

TEST(SchedulerSoak, OnePlanAtATime) {
  for (uint64_t seed : {1, 2, 3}) soak(seed, false);
}

TEST(SchedulerSoak, TwoPlansInFlight) {
  for (uint64_t seed : {4, 5, 6}) soak(seed, true);
}

TEST(SchedulerSoak, GuaranteedNoEvictNeverPreempts) {
  for (uint64_t seed : {7, 8}) soak(seed, false, CapacityPolicy::GuaranteedNoEvict);
  for (uint64_t seed : {9, 10}) soak(seed, true, CapacityPolicy::GuaranteedNoEvict);
}

}  // namespace
}  // namespace tessera
