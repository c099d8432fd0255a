#pragma once
// Drives a Scheduler through a real KvBlockManager without actors: every plan is allocated (release_kv freed first),
// checked against the budgets and the block accounting, then answered by a fake executor.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <vector>

#include "core/serving/kv_block_manager.hpp"
#include "core/serving/scheduler.hpp"

namespace tessera::testing {

inline SchedulerConfig small_config(int32_t budget = 64, int32_t max_seqs = 8, int32_t block_size = 4,
                                    int32_t max_model_len = 256) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.max_waiting_requests = 64;
  c.max_model_len = max_model_len;
  c.block_size = block_size;
  c.seed = 1234;
  return c;
}

inline RequestSpec request(uint64_t id, int32_t prompt_len, int32_t max_tokens, int32_t priority = 0) {
  RequestSpec r;
  r.seq_id = id;
  for (int32_t i = 0; i < prompt_len; ++i) r.prompt_token_ids.push_back(1000 + static_cast<int32_t>(id) * 100 + i);
  r.sampling.max_tokens = max_tokens;
  r.priority = priority;
  return r;
}

class Harness {
 public:
  using TokenFor = std::function<int32_t(uint64_t seq_id)>;

  Harness(SchedulerConfig config, int num_blocks, std::vector<int32_t> eos = {})
      : scheduler(config, num_blocks, std::move(eos)), kv(num_blocks, config.block_size), config_(config) {}

  void add_ok(RequestSpec spec) {
    AddResult r = scheduler.add(std::move(spec));
    ASSERT_TRUE(r.accepted()) << r.message;
  }

  // schedule() + KV allocation + invariants; nullopt when nothing ran (pending releases are then applied).
  std::optional<StepPlan> plan() {
    std::optional<StepPlan> p = scheduler.schedule();
    if (!p) {
      drain_releases();
      return p;
    }
    int32_t tokens = 0;
    for (const ScheduledSequence& s : p->sequences) {
      EXPECT_FALSE(s.tokens.empty());
      tokens += static_cast<int32_t>(s.tokens.size());
    }
    EXPECT_LE(tokens, config_.max_num_batched_tokens) << "step " << p->step_id;
    EXPECT_LE(static_cast<int32_t>(p->sequences.size()), config_.max_num_seqs) << "step " << p->step_id;
    EXPECT_TRUE(kv.can_allocate(*p));
    kv.allocate(*p);
    for (const ScheduledSequence& s : p->sequences) {
      EXPECT_GE(static_cast<int64_t>(s.block_table.size()) * config_.block_size,
                static_cast<int64_t>(s.num_cached) + static_cast<int64_t>(s.tokens.size()));
    }
    EXPECT_EQ(scheduler.stats().kv_blocks_used, kv.num_used_blocks()) << "step " << p->step_id;
    return p;
  }

  // A fake executor's answer: a token for every sequence with sample = true, in plan order.
  static StepResult answer(const StepPlan& p, const TokenFor& token_for) {
    StepResult r;
    r.step_id = p.step_id;
    for (const ScheduledSequence& s : p.sequences) {
      if (s.sample) r.tokens.push_back({s.seq_id, token_for(s.seq_id)});
    }
    return r;
  }

  std::vector<SequenceUpdate> step(const TokenFor& token_for) {
    std::optional<StepPlan> p = plan();
    if (!p) return {};
    last_plan = *p;
    return scheduler.update(*p, answer(*p, token_for));
  }

  void drain_releases() {
    Releases r = scheduler.take_releases();
    for (uint64_t id : r.kv) kv.free(id);
  }

  // The invariant after every scenario: no request left and every KV block free again.
  void expect_all_free() {
    drain_releases();
    EXPECT_EQ(scheduler.num_requests(), 0);
    EXPECT_EQ(kv.num_free_blocks(), kv.num_blocks());
    EXPECT_EQ(kv.num_sequences(), 0);
    EXPECT_EQ(scheduler.stats().kv_blocks_used, 0);
  }

  Scheduler scheduler;
  KvBlockManager kv;
  StepPlan last_plan;

 private:
  SchedulerConfig config_;
};

inline const ScheduledSequence* find_seq(const StepPlan& p, uint64_t id) {
  for (const ScheduledSequence& s : p.sequences) {
    if (s.seq_id == id) return &s;
  }
  return nullptr;
}

inline const SequenceUpdate* find_update(const std::vector<SequenceUpdate>& updates, uint64_t id) {
  for (const SequenceUpdate& u : updates) {
    if (u.seq_id == id) return &u;
  }
  return nullptr;
}

}  // namespace tessera::testing
