// CpuExecutor on a tiny random checkpoint: batched steps (prefill chunks + decodes, shuffled block tables) give
// exactly the tokens of OfflineGenerator run per request with the same seeds; dropping a sequence's KV and
// recomputing it (preemption) keeps its continuation; bad plans answer StepResult::error and leave the executor
// usable; KV sizing.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/engine/paged_kv_cache.hpp"
#include "core/generation/offline_generator.hpp"
#include "core/model/random_checkpoint.hpp"
#include "core/serving/cpu_executor.hpp"
#include "core/serving/kv_block_manager.hpp"
#include "core/serving/scheduler.hpp"

namespace tessera {
namespace {

constexpr int kBlockSize = 4;
constexpr int kNumBlocks = 96;

struct Request {
  uint64_t seq_id = 0;
  std::vector<int32_t> prompt;
  SamplingSpec sampling;
  int max_tokens = 0;
  int start_step = 0;  // first step the request is scheduled in (staggers prefills among decodes)
};

// A minimal stand-in for the scheduler + KV-block manager: every step runs each live request once (a prefill
// chunk of up to `chunk` tokens, or its one decode token), hands out blocks from a shuffled free list, and
// releases finished requests in the next plan.
class PlanDriver {
 public:
  PlanDriver(CpuExecutor& executor, std::vector<Request> requests, int chunk, uint32_t shuffle_seed)
      : executor_(executor), chunk_(chunk) {
    for (int b = 0; b < kNumBlocks; ++b) free_.push_back(b);
    std::mt19937 rng(shuffle_seed);
    std::shuffle(free_.begin(), free_.end(), rng);
    for (Request& r : requests) {
      Live live;
      live.known = r.prompt;
      live.request = std::move(r);
      live_.push_back(std::move(live));
    }
  }

  // Runs steps until every request has max_tokens tokens. `before_step(step)` may call drop_kv().
  template <class Hook>
  void run_all(Hook before_step) {
    for (uint64_t step = 0; !all_done(); ++step) {
      ASSERT_LT(step, 1000u) << "driver does not terminate";
      before_step(step);
      StepPlan plan;
      plan.step_id = step;
      plan.release_state = std::move(pending_release_);
      pending_release_.clear();
      std::vector<size_t> order;
      for (size_t i = 0; i < live_.size(); ++i) {
        Live& l = live_[i];
        if (l.done || static_cast<int>(step) < l.request.start_step) continue;
        ScheduledSequence seq;
        seq.seq_id = l.request.seq_id;
        seq.num_cached = l.num_cached;
        const size_t len = std::min<size_t>(chunk_, l.known.size() - l.num_cached);
        seq.tokens.assign(l.known.begin() + l.num_cached, l.known.begin() + l.num_cached + len);
        seq.sample = l.num_cached + len == l.known.size();
        const size_t blocks = (l.num_cached + len + kBlockSize - 1) / kBlockSize;
        while (l.blocks.size() < blocks) {
          ASSERT_FALSE(free_.empty());
          l.blocks.push_back(free_.back());
          free_.pop_back();
        }
        seq.block_table = l.blocks;
        seq.sampling = l.request.sampling;
        plan.sequences.push_back(std::move(seq));
        order.push_back(i);
      }
      // Plan order differs from request order on alternate steps.
      if (step % 2 == 1) {
        std::reverse(plan.sequences.begin(), plan.sequences.end());
        std::reverse(order.begin(), order.end());
      }
      const StepResult result = executor_.execute(plan);
      ASSERT_EQ(result.error, "");
      ASSERT_EQ(result.step_id, step);
      size_t next = 0;
      for (size_t k = 0; k < plan.sequences.size(); ++k) {
        Live& l = live_[order[k]];
        l.num_cached += static_cast<int32_t>(plan.sequences[k].tokens.size());
        if (!plan.sequences[k].sample) continue;
        ASSERT_LT(next, result.tokens.size());
        ASSERT_EQ(result.tokens[next].seq_id, l.request.seq_id);
        l.output.push_back(result.tokens[next++].token);
        l.known.push_back(l.output.back());
        if (static_cast<int>(l.output.size()) == l.request.max_tokens) finish(l);
      }
      ASSERT_EQ(next, result.tokens.size());
    }
    // Deliver the last releases.
    StepPlan last;
    last.step_id = 9999;
    last.release_state = std::move(pending_release_);
    ASSERT_EQ(executor_.execute(last).error, "");
  }

  // Preemption: frees the request's blocks and makes it recompute prompt + generated tokens from position 0.
  void drop_kv(uint64_t seq_id) {
    Live& l = find(seq_id);
    free_.insert(free_.begin(), l.blocks.begin(), l.blocks.end());  // reused last: new blocks differ
    l.blocks.clear();
    l.num_cached = 0;
  }

  size_t generated(uint64_t seq_id) { return find(seq_id).output.size(); }
  const std::vector<int32_t>& output(uint64_t seq_id) { return find(seq_id).output; }

 private:
  struct Live {
    Request request;
    std::vector<int32_t> known;  // prompt + generated
    int32_t num_cached = 0;
    std::vector<int32_t> blocks;
    std::vector<int32_t> output;
    bool done = false;
  };

  Live& find(uint64_t seq_id) {
    for (Live& l : live_) {
      if (l.request.seq_id == seq_id) return l;
    }
    throw Error("no request " + std::to_string(seq_id));
  }
  void finish(Live& l) {
    l.done = true;
    free_.insert(free_.end(), l.blocks.begin(), l.blocks.end());
    l.blocks.clear();
    pending_release_.push_back(l.request.seq_id);
  }
  bool all_done() const {
    return std::all_of(live_.begin(), live_.end(), [](const Live& l) { return l.done; });
  }

  CpuExecutor& executor_;
  int chunk_;
  std::vector<int32_t> free_;
  std::vector<Live> live_;
  std::vector<uint64_t> pending_release_;
};

class CpuExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("tessera_executor_test_" + std::to_string(::getpid())));
    RandomCheckpointOptions options;
    options.config = model_preset("tiny");
    options.dtype = DType::F32;
    options.seed = 7;
    write_random_checkpoint(*dir_, options);
    weights_ = new std::shared_ptr<const LlamaWeights>(std::make_shared<const LlamaWeights>(LlamaWeights::load(*dir_)));
  }
  static void TearDownTestSuite() {
    delete weights_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  const LlamaConfig& config() const { return (*weights_)->config; }

  // The reference: the request alone through OfflineGenerator, EOS ignored so it runs max_tokens.
  std::vector<int32_t> offline(const Request& r) const {
    OfflineGenerator generator(*weights_, nullptr, 16, 512);
    SamplingParams params;
    params.temperature = r.sampling.temperature;
    params.top_k = r.sampling.top_k;
    params.top_p = r.sampling.top_p;
    params.seed = r.sampling.seed;
    params.max_tokens = r.max_tokens;
    params.ignore_eos = true;
    return generator.generate(r.prompt, params).token_ids;
  }

  std::vector<int32_t> prompt(int length, uint32_t seed) const {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> dist(0, config().vocab_size - 1);
    std::vector<int32_t> p(static_cast<size_t>(length));
    for (int32_t& t : p) t = dist(rng);
    return p;
  }

  std::vector<Request> mixed_requests() const {
    auto spec = [](float temperature, int32_t top_k, float top_p, uint64_t seed) {
      SamplingSpec s;
      s.temperature = temperature;
      s.top_k = top_k;
      s.top_p = top_p;
      s.seed = seed;
      return s;
    };
    return {
        {11, prompt(9, 1), spec(0.0f, -1, 1.0f, 0), 12, 0},    // greedy
        {12, prompt(1, 2), spec(1.0f, -1, 1.0f, 5), 10, 0},    // plain sampling, one-token prompt
        {13, prompt(14, 3), spec(0.8f, 40, 0.9f, 6), 8, 2},    // top-k + top-p, joins while others decode
        {14, prompt(6, 4), spec(1.3f, 5, 1.0f, 7), 9, 5},      // top-k only
        {15, prompt(10, 5), spec(0.0f, -1, 1.0f, 0), 6, 3},    // greedy, another prompt
    };
  }

  static std::filesystem::path* dir_;
  static std::shared_ptr<const LlamaWeights>* weights_;
};
std::filesystem::path* CpuExecutorTest::dir_ = nullptr;
std::shared_ptr<const LlamaWeights>* CpuExecutorTest::weights_ = nullptr;

TEST_F(CpuExecutorTest, BatchedStepsMatchOfflineGeneratorPerRequest) {
  const std::vector<Request> requests = mixed_requests();
  for (int chunk : {3, 64}) {
    CpuExecutor executor(*weights_, kNumBlocks, kBlockSize, "tiny");
    PlanDriver driver(executor, requests, chunk, /*shuffle_seed=*/chunk);
    driver.run_all([](uint64_t) {});
    for (const Request& r : requests) {
      EXPECT_EQ(driver.output(r.seq_id), offline(r)) << "seq " << r.seq_id << ", chunk " << chunk;
    }
    EXPECT_EQ(executor.num_sampler_states(), 0u) << "released samplers must be dropped";
  }
}

// The server's pipeline without actors: the Scheduler plans step t+1 while step t is submitted and not collected
// (decodes of not yet known tokens as token_pending), the KV-block manager allocates, the executor runs submit /
// collect with two steps in flight. Every request still gets exactly its offline tokens.
TEST_F(CpuExecutorTest, PipelinedSchedulingMatchesOfflineGeneratorPerRequest) {
  const std::vector<Request> requests = mixed_requests();
  SchedulerConfig config;
  config.max_num_batched_tokens = 8;  // prompts go in chunks, beside decodes
  config.max_num_seqs = 8;
  config.max_model_len = 256;
  config.block_size = kBlockSize;
  config.seed = 1;
  Scheduler scheduler(config, kNumBlocks, {});
  KvBlockManager blocks(kNumBlocks, kBlockSize);
  CpuExecutor executor(*weights_, kNumBlocks, kBlockSize, "tiny");
  std::map<uint64_t, std::vector<int32_t>> output;
  for (const Request& r : requests) {
    RequestSpec spec;
    spec.seq_id = r.seq_id;
    spec.prompt_token_ids = r.prompt;
    spec.sampling.temperature = r.sampling.temperature;
    spec.sampling.top_k = r.sampling.top_k;
    spec.sampling.top_p = r.sampling.top_p;
    spec.sampling.seed = r.sampling.seed;
    spec.sampling.max_tokens = r.max_tokens;
    spec.sampling.ignore_eos = true;
    ASSERT_TRUE(scheduler.add(std::move(spec)).accepted());
  }
  std::deque<StepPlan> in_flight;
  int pending_decodes = 0;
  for (int iteration = 0; scheduler.num_requests() > 0 || !in_flight.empty(); ++iteration) {
    ASSERT_LT(iteration, 2000);
    while (in_flight.size() < static_cast<size_t>(Executor::kMaxStepsInFlight)) {
      std::optional<StepPlan> plan = scheduler.schedule();
      if (!plan) {
        for (uint64_t id : scheduler.take_releases().kv) blocks.free(id);
        break;
      }
      ASSERT_TRUE(blocks.can_allocate(*plan));
      blocks.allocate(*plan);
      for (const ScheduledSequence& seq : plan->sequences) pending_decodes += seq.token_pending ? 1 : 0;
      executor.submit(*plan);
      in_flight.push_back(std::move(*plan));
    }
    ASSERT_FALSE(in_flight.empty());
    const StepResult result = executor.collect();
    ASSERT_EQ(result.error, "");
    for (const SequenceUpdate& u : scheduler.update(in_flight.front(), result)) {
      if (u.token) output[u.seq_id].push_back(*u.token);
    }
    in_flight.pop_front();
  }
  EXPECT_GT(pending_decodes, 20);
  for (const Request& r : requests) EXPECT_EQ(output[r.seq_id], offline(r)) << "seq " << r.seq_id;
}

TEST_F(CpuExecutorTest, DroppingKvAndRecomputingKeepsTheContinuation) {
  const std::vector<Request> requests = mixed_requests();
  CpuExecutor executor(*weights_, kNumBlocks, kBlockSize);
  PlanDriver driver(executor, requests, 5, 99);
  bool dropped_sampled = false, dropped_greedy = false;
  driver.run_all([&](uint64_t) {
    // Preempt a sampled request and a greedy one mid-decode; they recompute prompt + generated tokens.
    if (!dropped_sampled && driver.generated(13) == 3) {
      driver.drop_kv(13);
      dropped_sampled = true;
    }
    if (!dropped_greedy && driver.generated(11) == 5) {
      driver.drop_kv(11);
      dropped_greedy = true;
    }
  });
  ASSERT_TRUE(dropped_sampled && dropped_greedy);
  for (const Request& r : requests) EXPECT_EQ(driver.output(r.seq_id), offline(r)) << "seq " << r.seq_id;
}

TEST_F(CpuExecutorTest, ReleasedStateRestartsTheSeedButKeptStateContinuesIt) {
  Request r{21, prompt(5, 9), {}, 6, 0};
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 1234;
  CpuExecutor executor(*weights_, kNumBlocks, kBlockSize);
  auto one_token = [&](uint64_t step, bool release) {
    StepPlan plan;
    plan.step_id = step;
    if (release) plan.release_state = {r.seq_id};
    ScheduledSequence seq{r.seq_id, r.prompt, 0, 0, {0, 1}, true, r.sampling};
    plan.sequences.push_back(seq);
    StepResult result = executor.execute(plan);
    EXPECT_EQ(result.error, "");
    return result.tokens.at(0).token;
  };
  // The same logits each time (same prompt from position 0): the draws follow the one RNG stream.
  const int32_t first = one_token(0, false);
  std::vector<int32_t> continued{first};
  for (int i = 1; i < 8; ++i) continued.push_back(one_token(i, false));
  EXPECT_EQ(executor.num_sampler_states(), 1u);
  // Releasing restarts the stream from the seed (a new request that reuses the id), so the first draw repeats;
  // a release together with scheduling the same id in one plan is a plan error instead.
  StepPlan release_only;
  release_only.release_state = {r.seq_id};
  EXPECT_EQ(executor.execute(release_only).error, "");
  EXPECT_EQ(executor.num_sampler_states(), 0u);
  EXPECT_EQ(one_token(10, false), first);
  StepPlan both;
  both.release_state = {r.seq_id};
  both.sequences.push_back(ScheduledSequence{r.seq_id, r.prompt, 0, 0, {0, 1}, true, r.sampling});
  EXPECT_NE(executor.execute(both).error, "");
  // The draws of the RNG stream are not all equal (otherwise this test would prove nothing).
  EXPECT_NE(std::count(continued.begin(), continued.end(), first), static_cast<long>(continued.size()));
}

TEST_F(CpuExecutorTest, BadPlansReportErrorsAndLeaveTheExecutorUsable) {
  CpuExecutor executor(*weights_, 8, kBlockSize);
  const Request good{31, prompt(6, 11), {0.0f, -1, 1.0f, 0}, 1, 0};
  auto valid = [&] { return ScheduledSequence{good.seq_id, good.prompt, 0, 0, {3, 5}, true, good.sampling}; };
  struct Case {
    std::string name;
    std::string expected;  // a fragment of the error message
    std::function<void(StepPlan&)> corrupt;
  };
  const int vocab = config().vocab_size;
  const std::vector<Case> cases = {
      {"token out of vocab", "outside the vocabulary", [&](StepPlan& p) { p.sequences[0].tokens[2] = vocab; }},
      {"negative token", "outside the vocabulary", [&](StepPlan& p) { p.sequences[0].tokens[0] = -1; }},
      {"no tokens", "no tokens", [&](StepPlan& p) { p.sequences[0].tokens.clear(); }},
      {"short block table", "block table has 1 blocks, 2 needed",
       [&](StepPlan& p) { p.sequences[0].block_table = {3}; }},
      {"no block table", "block table has 0 blocks", [&](StepPlan& p) { p.sequences[0].block_table.clear(); }},
      {"block outside cache", "block id 8 is outside", [&](StepPlan& p) { p.sequences[0].block_table[1] = 8; }},
      {"negative block", "block id -2 is outside", [&](StepPlan& p) { p.sequences[0].block_table[0] = -2; }},
      {"negative num_cached", "num_cached", [&](StepPlan& p) { p.sequences[0].num_cached = -1; }},
      {"beyond context", "exceed the model's context",
       [&](StepPlan& p) { p.sequences[0].num_cached = config().max_position_embeddings - 2; }},
      {"duplicate sequence", "scheduled twice", [&](StepPlan& p) { p.sequences.push_back(p.sequences[0]); }},
      {"negative temperature", "temperature", [&](StepPlan& p) { p.sequences[0].sampling.temperature = -1.0f; }},
      {"top_p above one", "top_p", [&](StepPlan& p) { p.sequences[0].sampling.top_p = 1.5f; }},
      {"top_k below -1", "top_k", [&](StepPlan& p) { p.sequences[0].sampling.top_k = -7; }},
  };
  for (const Case& c : cases) {
    StepPlan plan;
    plan.step_id = 77;
    plan.sequences.push_back(valid());
    c.corrupt(plan);
    const StepResult result = executor.execute(plan);
    EXPECT_NE(result.error.find(c.expected), std::string::npos) << c.name << ": " << result.error;
    EXPECT_NE(result.error.find("sequence 31"), std::string::npos) << c.name << ": " << result.error;
    EXPECT_TRUE(result.tokens.empty()) << c.name;
    EXPECT_EQ(result.step_id, 77u) << c.name;
    EXPECT_EQ(executor.num_sampler_states(), 0u) << c.name << ": a failed step must not create sampler state";
  }
  // Still usable, and correct.
  StepPlan plan;
  plan.sequences.push_back(valid());
  const StepResult result = executor.execute(plan);
  ASSERT_EQ(result.error, "");
  ASSERT_EQ(result.tokens.size(), 1u);
  EXPECT_EQ(std::vector<int32_t>{result.tokens[0].token}, offline(good));
  EXPECT_GE(result.execute_seconds, 0.0);
}

TEST_F(CpuExecutorTest, PlansWithoutSamplingOrSequences) {
  CpuExecutor executor(*weights_, 8, kBlockSize);
  StepPlan empty;
  empty.step_id = 3;
  const StepResult r0 = executor.execute(empty);
  EXPECT_EQ(r0.error, "");
  EXPECT_TRUE(r0.tokens.empty());
  EXPECT_EQ(r0.step_id, 3u);
  // A prefill chunk that does not reach the end of the prompt samples nothing.
  StepPlan chunk;
  chunk.sequences.push_back(ScheduledSequence{41, prompt(3, 12), 0, 0, {2}, false, {}});
  const StepResult r1 = executor.execute(chunk);
  EXPECT_EQ(r1.error, "");
  EXPECT_TRUE(r1.tokens.empty());
}

TEST_F(CpuExecutorTest, SizingAndInfo) {
  KvCacheShape one{config().num_layers, 1, 16, config().num_kv_heads, config().head_dim};
  const int64_t per_block = int64_t{config().num_layers} * 2 * 16 * config().num_kv_heads * config().head_dim * 4;
  ASSERT_EQ(PagedKvCache::bytes_per_block(one), per_block);
  EXPECT_EQ(CpuExecutor::num_blocks_for_budget(config(), 16, 10 * per_block + per_block / 2), 10);
  EXPECT_EQ(CpuExecutor::num_blocks_for_budget(config(), 16, per_block), 1);
  EXPECT_THROW(CpuExecutor::num_blocks_for_budget(config(), 16, per_block - 1), Error);
  EXPECT_THROW(CpuExecutor::num_blocks_for_budget(config(), 0, 1 << 20), Error);
  EXPECT_THROW(CpuExecutor(*weights_, 0, 16), Error);
  EXPECT_THROW(CpuExecutor(*weights_, 4, 0), Error);
  EXPECT_THROW(CpuExecutor(nullptr, 4, 16), Error);

  CpuExecutor executor(*weights_, 12, 8, "tiny-model");
  EXPECT_EQ(executor.capacity_tokens(), 96);
  const ExecutorInfo info = executor.info();
  EXPECT_EQ(info.device, "cpu");
  EXPECT_EQ(info.dtype, "F32");
  EXPECT_EQ(info.model_name, "tiny-model");
  EXPECT_EQ(info.num_blocks, 12);
  EXPECT_EQ(info.block_size, 8);
  EXPECT_EQ(info.capacity_tokens, 96);
  EXPECT_EQ(info.vocab_size, config().vocab_size);
  EXPECT_EQ(info.max_position_embeddings, config().max_position_embeddings);
}

}  // namespace
}  // namespace tessera
