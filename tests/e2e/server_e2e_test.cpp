// End to end over real sockets: a tessera-server process on the tiny model, the C++ client library, the Python
// example client and raw hostile frames.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <msgpack.hpp>
#include <zmq.hpp>
#include <nlohmann/json.hpp>

#include "bus/client.hpp"
#include "core/common/error.hpp"
#include "core/generation/offline_generator.hpp"
#include "core/model/random_checkpoint.hpp"
#include "core/tokenizer/tokenizer.hpp"
#include "tests/e2e/server_process.hpp"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kBin = TESSERA_BIN_DIR;

class ServerE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new fs::path(fs::temp_directory_path() / ("tessera_e2e_model_" + std::to_string(getpid())));
    RandomCheckpointOptions options;
    options.config = model_preset("tiny");
    options.dtype = DType::F32;
    options.seed = 11;
    write_random_checkpoint(*model_dir_, options);
    weights_ = new std::shared_ptr<const LlamaWeights>(std::make_shared<const LlamaWeights>(LlamaWeights::load(*model_dir_)));
    tokenizer_ = new std::shared_ptr<const Tokenizer>(std::make_shared<const Tokenizer>(*Tokenizer::load_dir(*model_dir_)));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*model_dir_);
    delete model_dir_;
    delete weights_;
    delete tokenizer_;
  }

  // Starts a server on a fresh ipc endpoint with extra flags.
  std::unique_ptr<test::ServerProcess> start(std::vector<std::string> extra = {}) {
    const std::string endpoint = "ipc://" + (fs::temp_directory_path() / ("tessera_e2e_" + std::to_string(getpid()) + "_" +
                                                                          std::to_string(counter_++) + ".sock")).string();
    std::vector<std::string> argv = {kBin + "/tessera-server", "--model", model_dir_->string(), "--listen", endpoint,
                                     "--log-level", "warn"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<test::ServerProcess>(argv);
  }

  static std::vector<int32_t> offline(const std::vector<int32_t>& prompt, const SamplingParams& params) {
    OfflineGenerator generator(*weights_, *tokenizer_);
    return generator.generate(prompt, params).token_ids;
  }

  static fs::path* model_dir_;
  static std::shared_ptr<const LlamaWeights>* weights_;
  static std::shared_ptr<const Tokenizer>* tokenizer_;
  static int counter_;
};
fs::path* ServerE2ETest::model_dir_ = nullptr;
std::shared_ptr<const LlamaWeights>* ServerE2ETest::weights_ = nullptr;
std::shared_ptr<const Tokenizer>* ServerE2ETest::tokenizer_ = nullptr;
int ServerE2ETest::counter_ = 0;

struct Outcome {
  int accepted = 0;
  std::vector<int32_t> ids;
  std::string text;
  int finals = 0;
  int errors = 0;
  std::optional<bus::FinalMessage> final;
  std::optional<bus::ErrorMessage> error;
};

// Collects events until every id in `ids` has a terminal message (or the timeout passes).
std::map<std::string, Outcome> collect(bus::Client& client, const std::set<std::string>& ids,
                                       std::chrono::seconds timeout = 120s) {
  std::map<std::string, Outcome> out;
  size_t ended = 0;
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (ended < ids.size() && std::chrono::steady_clock::now() < end) {
    auto event = client.next_event(500ms);
    if (!event) continue;
    const std::string id = bus::event_request_id(*event);
    Outcome& o = out[id];
    if (std::holds_alternative<bus::Accepted>(*event)) {
      ++o.accepted;
    } else if (auto* chunk = std::get_if<bus::TokenChunk>(&*event)) {
      o.ids.insert(o.ids.end(), chunk->ids.begin(), chunk->ids.end());
      o.text += chunk->text;
    } else if (auto* final = std::get_if<bus::FinalMessage>(&*event)) {
      ++o.finals;
      o.final = *final;
      if (ids.count(id)) ++ended;
    } else if (auto* error = std::get_if<bus::ErrorMessage>(&*event)) {
      ++o.errors;
      o.error = *error;
      if (ids.count(id)) ++ended;
    }
  }
  return out;
}

// 200 concurrent requests (greedy and seeded sampling, some ignoring EOS) on a small KV cache (128 blocks = 2048
// tokens): each streams exactly what offline generation gives, and ends once.
void expect_two_hundred_streams_match(test::ServerProcess& server,
                                      const std::function<std::vector<int32_t>(const std::vector<int32_t>&,
                                                                               const SamplingParams&)>& offline) {
  bus::Client client(server.endpoint());
  std::mt19937 rng(5);
  std::map<std::string, std::pair<std::vector<int32_t>, SamplingParams>> requests;
  for (int i = 0; i < 200; ++i) {
    bus::SubmitRequest r;
    r.id = "r" + std::to_string(i);
    std::vector<int32_t> prompt(1 + rng() % 40);
    for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % 500);
    r.prompt_ids = prompt;
    r.params.max_tokens = 1 + static_cast<int32_t>(rng() % 24);
    r.params.temperature = i % 2 == 0 ? 0.0f : 0.8f;  // greedy, and seeded sampling
    r.params.top_p = 0.9f;
    r.params.seed = 1000 + i;
    r.params.ignore_eos = i % 3 == 0;
    requests[r.id] = {prompt, r.params};
    client.submit(r);
  }
  std::set<std::string> ids;
  for (const auto& [id, _] : requests) ids.insert(id);
  const auto outcomes = collect(client, ids);
  for (const auto& [id, request] : requests) {
    ASSERT_TRUE(outcomes.count(id)) << id << " got nothing";
    const Outcome& o = outcomes.at(id);
    EXPECT_EQ(o.accepted, 1) << id;
    EXPECT_EQ(o.finals, 1) << id;
    EXPECT_EQ(o.errors, 0) << id << ": " << (o.error ? o.error->message : "");
    EXPECT_EQ(o.ids, offline(request.first, request.second)) << id;
    if (o.final) {
      EXPECT_EQ(o.final->usage.completion_tokens, static_cast<int32_t>(o.ids.size()));
      EXPECT_EQ(o.final->usage.prompt_tokens, static_cast<int32_t>(request.first.size()));
      EXPECT_GE(o.final->timings.e2e_s, o.final->timings.ttft_s);
    }
  }
}

TEST_F(ServerE2ETest, TwoHundredConcurrentStreamsMatchOfflineGeneration) {
  // The default capacity policy preempts and recomputes on the way.
  auto server = start({"--kv-cache-blocks", "128", "--max-num-seqs", "64"});
  expect_two_hundred_streams_match(*server, offline);
  EXPECT_EQ(server->stop(), 0);
}

TEST_F(ServerE2ETest, TwoHundredStreamsUnderGuaranteedNoEvictMatchOfflineGeneration) {
  // Admission waits until a request fits at its max_tokens; nothing is preempted, nothing is lost.
  auto server = start({"--kv-cache-blocks", "128", "--max-num-seqs", "64", "--capacity-policy", "guaranteed_no_evict"});
  expect_two_hundred_streams_match(*server, offline);
  EXPECT_EQ(server->stop(), 0);
}

TEST_F(ServerE2ETest, TextPromptsStreamTheSameTextAsOfflineGeneration) {
  auto server = start();
  bus::Client client(server->endpoint());
  bus::SubmitRequest r;
  r.id = "text";
  r.prompt = "The quick brown fox";
  r.params.max_tokens = 20;
  r.params.temperature = 0;
  std::string streamed;
  const bus::FinalMessage final = client.generate(r, [&](const bus::TokenChunk& c) { streamed += c.text; });
  const auto prompt = (*tokenizer_)->encode("The quick brown fox", true);
  OfflineGenerator generator(*weights_, *tokenizer_);
  const GenerationResult expected = generator.generate(prompt, r.params);
  EXPECT_EQ(streamed, expected.text);
  EXPECT_EQ(final.usage.completion_tokens, static_cast<int32_t>(expected.token_ids.size()));
  EXPECT_EQ(server->stop(), 0);
}

TEST_F(ServerE2ETest, PythonExampleClientStreams) {
  auto server = start();
  SamplingParams params;
  params.max_tokens = 12;
  params.temperature = 0;
  const auto expected = offline({5, 6, 7, 8}, params);
  const std::string cmd = "/usr/bin/python3 " + std::string(TESSERA_SOURCE_DIR) + "/bus/examples/client.py --server " +
                          server->endpoint() + " --ids 5,6,7,8 --max-tokens 12 --temperature 0 --print-ids";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0) << output;
  while (!output.empty() && output.back() == '\n') output.pop_back();
  const std::string last = output.substr(output.rfind('\n') == std::string::npos ? 0 : output.rfind('\n') + 1);
  std::string want;
  for (size_t i = 0; i < expected.size(); ++i) want += (i ? "," : "") + std::to_string(expected[i]);
  EXPECT_EQ(last, want) << output;
  EXPECT_EQ(server->stop(), 0);
}

std::string run_output(const std::string& cmd, int* exit_code) {
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  *exit_code = WEXITSTATUS(pclose(pipe));
  return output;
}

TEST_F(ServerE2ETest, CliGeneratesThroughTheServerAndReportsInfo) {
  auto server = start();
  SamplingParams params;
  params.max_tokens = 10;
  params.temperature = 0.7f;
  params.seed = 42;
  params.ignore_eos = true;
  const auto expected = offline({9, 8, 7}, params);
  int code = -1;
  const std::string out = run_output(kBin + "/tessera-cli generate --server " + server->endpoint() +
                                         " --ids 9,8,7 --max-tokens 10 --temperature 0.7 --seed 42 --ignore-eos --print-ids",
                                     &code);
  ASSERT_EQ(code, 0) << out;
  std::string want;
  for (size_t i = 0; i < expected.size(); ++i) want += (i ? "," : "") + std::to_string(expected[i]);
  EXPECT_NE(out.find("\n" + want + "\n"), std::string::npos) << out;

  const std::string info = run_output(kBin + "/tessera-cli info --server " + server->endpoint(), &code);
  EXPECT_EQ(code, 0) << info;
  EXPECT_NE(info.find("ready: true"), std::string::npos) << info;
  EXPECT_NE(info.find("kv_capacity_tokens: "), std::string::npos) << info;
  EXPECT_EQ(server->stop(), 0);
  const std::string down = run_output(kBin + "/tessera-cli info --timeout-ms 300 --server " + server->endpoint() + " 2>&1", &code);
  EXPECT_NE(code, 0) << down;
}

// A checkpoint without tokenizer files (written by HF transformers) serves token-id requests, with HF's greedy ids.
TEST_F(ServerE2ETest, CheckpointWithoutTokenizerServesIdsWithTransformersGreedyIds) {
  const std::string fixtures = TESSERA_FIXTURES_DIR;
  const std::string endpoint = "ipc://" + (fs::temp_directory_path() / ("tessera_e2e_ids_" + std::to_string(getpid()) + ".sock")).string();
  test::ServerProcess server({kBin + "/tessera-server", "--model", fixtures + "/models/gqa_untied", "--listen", endpoint,
                              "--log-level", "warn"});
  std::ifstream in(fixtures + "/logits_gqa_untied.json");
  const auto golden = nlohmann::json::parse(in);
  bus::Client client(server.endpoint());
  for (const auto& p : golden["prompts"]) {
    bus::SubmitRequest r;
    r.id = "g" + std::to_string(p["prompt"].size());
    r.prompt_ids = p["prompt"].get<std::vector<int32_t>>();
    r.params.max_tokens = 24;
    r.params.temperature = 0;
    r.params.ignore_eos = true;
    std::vector<int32_t> ids;
    client.generate(r, [&](const bus::TokenChunk& c) {
      ids.insert(ids.end(), c.ids.begin(), c.ids.end());
      EXPECT_EQ(c.text, "");
    });
    EXPECT_EQ(ids, p["greedy"].get<std::vector<int32_t>>());
  }
  bus::SubmitRequest text;
  text.id = "text";
  text.prompt = "no tokenizer here";
  try {
    client.generate(text);
    FAIL() << "a text prompt was accepted without a tokenizer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid_request"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerE2ETest, CancelEndsWithOneCancelledFinalAndFreesKv) {
  auto server = start({"--max-num-batched-tokens", "16"});
  bus::Client client(server->endpoint());
  bus::SubmitRequest r;
  r.id = "long";
  r.prompt_ids = std::vector<int32_t>(1500, 7);  // ~94 prefill chunks of 16 tokens: still running when cancelled
  r.params.max_tokens = 500;
  r.params.ignore_eos = true;
  client.submit(r);
  for (int i = 0; i < 100; ++i) {
    auto e = client.next_event(1000ms);
    if (e && std::holds_alternative<bus::Accepted>(*e)) break;
  }
  client.cancel("long");
  const auto outcomes = collect(client, {"long"}, 30s);
  const Outcome& o = outcomes.at("long");
  EXPECT_EQ(o.finals + o.errors, 1);
  ASSERT_TRUE(o.final.has_value());
  EXPECT_EQ(o.final->finish_reason, bus::FinishReason::Cancelled);
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  bus::InfoReply info;
  do {
    info = client.info(1000ms);
  } while ((info.kv_blocks_used != 0 || info.requests_running != 0) && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(info.kv_blocks_used, 0);
  EXPECT_EQ(info.requests_running, 0);
  EXPECT_EQ(server->stop(), 0);
}

}  // namespace
}  // namespace tessera
