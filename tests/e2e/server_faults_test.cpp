// Faults end to end: hostile frames next to a healthy stream, a killed client, overload, deadlines, shutdown with
// requests in flight, and start-up errors.
#include <algorithm>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>
#include <msgpack.hpp>
#include <zmq.hpp>

#include "bus/client.hpp"
#include "core/common/error.hpp"
#include "core/generation/offline_generator.hpp"
#include "core/model/random_checkpoint.hpp"
#include "tests/e2e/server_process.hpp"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kBin = TESSERA_BIN_DIR;

fs::path make_model(const std::string& name, int hidden, int layers, int intermediate) {
  const fs::path dir = fs::temp_directory_path() / ("tessera_faults_" + name + "_" + std::to_string(getpid()));
  RandomCheckpointOptions options;
  options.config = model_preset("tiny");
  options.config.hidden_size = hidden;
  options.config.num_layers = layers;
  options.config.intermediate_size = intermediate;
  options.config.head_dim = hidden / options.config.num_heads;
  options.dtype = DType::F32;
  options.seed = 3;
  write_random_checkpoint(dir, options);
  return dir;
}

std::string endpoint_for(const std::string& tag) {
  return "ipc://" + (fs::temp_directory_path() / ("tessera_faults_" + tag + "_" + std::to_string(getpid()) + ".sock")).string();
}

test::ServerProcess start(const fs::path& model, const std::string& tag, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {kBin + "/tessera-server", "--model", model.string(), "--log-level", "warn"};
  if (std::find(extra.begin(), extra.end(), "--listen") == extra.end()) {
    argv.push_back("--listen");
    argv.push_back(endpoint_for(tag));
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return test::ServerProcess(argv);
}

// msgpack helpers for hand-made frames.
template <class F>
std::string pack_map(size_t n, F&& body) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  p.pack_map(static_cast<uint32_t>(n));
  body(p);
  return std::string(buffer.data(), buffer.size());
}
template <class V>
std::string one_value(const V& v) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, v);
  return std::string(buffer.data(), buffer.size());
}
using Packer = msgpack::packer<msgpack::sbuffer>;
// A submit whose params map is written by `params` (with `n` entries).
template <class F>
std::string submit_with_params(const std::string& id, size_t n, F&& params) {
  return pack_map(5, [&](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack(id);
    p.pack("prompt_ids"), p.pack(std::vector<int>{1, 2, 3});
    p.pack("params"), p.pack_map(static_cast<uint32_t>(n));
    params(p);
  });
}

std::vector<std::string> hostile_frames() {
  std::vector<std::string> f;
  f.push_back("");
  f.push_back("\xc1");
  f.push_back("definitely not msgpack");
  f.push_back(one_value(std::vector<int>{1, 2, 3}));
  f.push_back(one_value(5));
  f.push_back(pack_map(1, [](Packer& p) { p.pack("type"), p.pack("info"); }));
  f.push_back(pack_map(2, [](Packer& p) { p.pack("v"), p.pack(2), p.pack("type"), p.pack("info"); }));
  f.push_back(pack_map(2, [](Packer& p) { p.pack("v"), p.pack("1"), p.pack("type"), p.pack("info"); }));
  f.push_back(pack_map(1, [](Packer& p) { p.pack("v"), p.pack(1); }));
  f.push_back(pack_map(2, [](Packer& p) { p.pack("v"), p.pack(1), p.pack("type"), p.pack("bogus"); }));
  f.push_back(pack_map(2, [](Packer& p) { p.pack("v"), p.pack(1), p.pack("type"), p.pack(5); }));
  f.push_back(pack_map(3, [](Packer& p) { p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("prompt"), p.pack("x"); }));
  f.push_back(pack_map(4, [](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack(123), p.pack("prompt"), p.pack("x");
  }));
  f.push_back(pack_map(4, [](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack(std::string(300, 'i')), p.pack("prompt"), p.pack("x");
  }));
  f.push_back(pack_map(3, [](Packer& p) { p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("h1"); }));
  f.push_back(pack_map(5, [](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("h2"), p.pack("prompt"), p.pack("x");
    p.pack("prompt_ids"), p.pack(std::vector<int>{1});
  }));
  f.push_back(pack_map(4, [](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("h3"), p.pack("prompt_ids");
    p.pack_array(2), p.pack(1), p.pack("two");
  }));
  f.push_back(pack_map(4, [](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("h4"), p.pack("prompt_ids"), p.pack(std::vector<int>{1, -5});
  }));
  f.push_back(pack_map(4, [](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("h5"), p.pack("prompt_ids");
    p.pack(std::vector<int64_t>{1LL << 40});
  }));
  f.push_back(submit_with_params("h6", 1, [](Packer& p) { p.pack("max_tokens"), p.pack("ten"); }));
  f.push_back(submit_with_params("h7", 1, [](Packer& p) { p.pack("temperature"), p.pack(-1.0); }));
  f.push_back(submit_with_params("h8", 1, [](Packer& p) { p.pack("top_p"), p.pack(std::nan("")); }));
  f.push_back(submit_with_params("h9", 1, [](Packer& p) { p.pack("top_p"), p.pack(1.5); }));
  f.push_back(submit_with_params("h10", 1, [](Packer& p) { p.pack("stop"), p.pack("word"); }));
  f.push_back(submit_with_params("h11", 1, [](Packer& p) { p.pack("stop"), p.pack(std::vector<int>{1}); }));
  f.push_back(submit_with_params("h12", 1, [](Packer& p) { p.pack("stop"), p.pack(std::vector<std::string>(17, "s")); }));
  f.push_back(submit_with_params("h13", 1, [](Packer& p) { p.pack("max_tokens"), p.pack(0); }));
  f.push_back(submit_with_params("h14", 1, [](Packer& p) { p.pack("stop_token_ids"), p.pack(std::vector<int>{999999}); }));
  f.push_back(one_value(std::map<std::string, int>{{"v", 1}}) + "trailing");
  f.push_back(std::string("\xdd\xff\xff\xff\xff", 5));  // array32 declaring 2^32 - 1 elements
  f.push_back(std::string(1000, '\x91') + one_value(1));  // 1000 nested one-element arrays
  f.push_back(pack_map(2, [](Packer& p) { p.pack("v"), p.pack(1), p.pack("type"), p.pack(std::string(100000, 't')); }));
  f.push_back(pack_map(3, [](Packer& p) { p.pack("v"), p.pack(1), p.pack("type"), p.pack("cancel"), p.pack("id"), p.pack("nobody"); }));
  f.push_back(pack_map(4, [](Packer& p) {  // semantic: outside the vocabulary
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("h15"), p.pack("prompt_ids"), p.pack(std::vector<int>{1, 70000});
  }));
  f.push_back(pack_map(4, [](Packer& p) {  // semantic: longer than max_model_len
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("h16"), p.pack("prompt_ids"), p.pack(std::vector<int>(3000, 1));
  }));
  f.push_back(pack_map(5, [](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("h17"), p.pack("prompt_ids"), p.pack(std::vector<int>{1});
    p.pack("priority"), p.pack("high");
  }));
  return f;
}

class ServerFaultsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tiny_ = new fs::path(make_model("tiny", 64, 2, 176)); }
  static void TearDownTestSuite() {
    fs::remove_all(*tiny_);
    delete tiny_;
  }
  static fs::path* tiny_;
};
fs::path* ServerFaultsTest::tiny_ = nullptr;

TEST_F(ServerFaultsTest, HostileFramesGetErrorRepliesWhileAStreamCompletesUntouched) {
  auto server = start(*tiny_, "hostile", {"--max-frame-bytes", "65536"});
  SamplingParams params;
  params.max_tokens = 200;
  params.temperature = 0;
  params.ignore_eos = true;
  OfflineGenerator generator(std::make_shared<const LlamaWeights>(LlamaWeights::load(*tiny_)), nullptr);
  const auto expected = generator.generate(std::vector<int32_t>{3, 1, 4, 1, 5}, params).token_ids;

  bus::Client good(server.endpoint());
  bus::SubmitRequest request;
  request.id = "good";
  request.prompt_ids = std::vector<int32_t>{3, 1, 4, 1, 5};
  request.params = params;
  good.submit(request);

  zmq::context_t context;
  zmq::socket_t raw(context, zmq::socket_type::dealer);
  raw.connect(server.endpoint());
  const auto frames = hostile_frames();
  ASSERT_GE(frames.size(), 30u);
  for (const std::string& frame : frames) raw.send(zmq::buffer(frame), zmq::send_flags::none);
  // A duplicate id: "dup" is long-running, its twin must be refused.
  auto dup = pack_map(5, [](Packer& p) {
    p.pack("v"), p.pack(1), p.pack("type"), p.pack("submit"), p.pack("id"), p.pack("dup"), p.pack("prompt_ids"), p.pack(std::vector<int>{1});
    p.pack("params"), p.pack_map(2), p.pack("max_tokens"), p.pack(1500), p.pack("ignore_eos"), p.pack(true);
  });
  raw.send(zmq::buffer(dup), zmq::send_flags::none);
  raw.send(zmq::buffer(dup), zmq::send_flags::none);

  size_t errors = 0, duplicate_errors = 0, dup_terminal = 0;
  const auto end = std::chrono::steady_clock::now() + 30s;
  while ((errors < frames.size() + 1 || dup_terminal < 1) && std::chrono::steady_clock::now() < end) {
    zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(200));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    zmq::message_t reply;
    ASSERT_TRUE(raw.recv(reply, zmq::recv_flags::none));
    auto decoded = bus::decode_server_message(reply.to_string_view());
    ASSERT_TRUE(std::holds_alternative<bus::ServerMessage>(decoded));
    const auto& message = std::get<bus::ServerMessage>(decoded);
    if (auto* error = std::get_if<bus::ErrorMessage>(&message)) {
      ++errors;
      if (error->code == bus::ErrorCode::DuplicateRequestId) ++duplicate_errors;
    } else if (auto* final = std::get_if<bus::FinalMessage>(&message)) {
      if (final->id == "dup") ++dup_terminal;
    }
  }
  EXPECT_EQ(errors, frames.size() + 1);  // every hostile frame + the duplicate
  EXPECT_EQ(duplicate_errors, 1u);
  EXPECT_EQ(dup_terminal, 1u);

  std::vector<int32_t> got;
  const bus::FinalMessage final =
      good.generate(bus::SubmitRequest{"good2", std::nullopt, request.prompt_ids, params, true, 0, std::nullopt},
                    [&](const bus::TokenChunk& c) { got.insert(got.end(), c.ids.begin(), c.ids.end()); });
  EXPECT_EQ(got, expected);
  EXPECT_EQ(final.finish_reason, bus::FinishReason::Length);
  std::vector<int32_t> first;
  bool first_done = false;
  while (!first_done) {
    auto e = good.next_event(5000ms);
    ASSERT_TRUE(e.has_value());
    if (auto* c = std::get_if<bus::TokenChunk>(&*e)) first.insert(first.end(), c->ids.begin(), c->ids.end());
    if (std::holds_alternative<bus::FinalMessage>(*e)) first_done = true;
    ASSERT_FALSE(std::holds_alternative<bus::ErrorMessage>(*e));
  }
  EXPECT_EQ(first, expected);
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerFaultsTest, KilledClientIsCancelledAndItsKvFreedWithinTwoSeconds) {
  // A model slow enough that 16 requests of 1900 tokens take far longer than the 2 s budget.
  const fs::path model = make_model("slow", 512, 4, 1536);
  auto server = start(model, "killed");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  if (child == 0) {
    bus::Client client(server.endpoint());
    for (int i = 0; i < 16; ++i) {
      bus::SubmitRequest r;
      r.id = "k" + std::to_string(i);
      r.prompt_ids = std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8};
      r.params.max_tokens = 1900;
      r.params.ignore_eos = true;
      client.submit(r);
    }
    while (true) {
      auto e = client.next_event(1000ms);
      if (e && std::holds_alternative<bus::TokenChunk>(*e)) break;
    }
    (void)!write(ready[1], "x", 1);
    std::this_thread::sleep_for(60s);
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  bus::Client observer(server.endpoint());
  EXPECT_GT(observer.info(2000ms).kv_blocks_used, 0);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  const auto killed_at = std::chrono::steady_clock::now();
  bus::InfoReply info;
  do {
    std::this_thread::sleep_for(50ms);
    info = observer.info(2000ms);
  } while ((info.kv_blocks_used != 0 || info.requests_running + info.requests_waiting != 0) &&
           std::chrono::steady_clock::now() - killed_at < 5s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_EQ(info.kv_blocks_used, 0);
  EXPECT_EQ(info.requests_running + info.requests_waiting, 0);
  EXPECT_LT(seconds, 2.0);
  EXPECT_EQ(server.stop(), 0);
  fs::remove_all(model);
}

TEST_F(ServerFaultsTest, OverloadIsRefusedAtOnceAndEveryRequestEndsOnce) {
  auto server = start(*tiny_, "overload", {"--max-num-seqs", "1", "--max-waiting-requests", "2"});
  bus::Client client(server.endpoint());
  for (int i = 0; i < 12; ++i) {
    bus::SubmitRequest r;
    r.id = "o" + std::to_string(i);
    r.prompt_ids = std::vector<int32_t>{1, 2, 3};
    r.params.max_tokens = 400;
    r.params.ignore_eos = true;
    client.submit(r);
  }
  std::map<std::string, int> terminal;
  int overloaded = 0;
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (terminal.size() < 12 && std::chrono::steady_clock::now() < end) {
    auto e = client.next_event(500ms);
    if (!e) continue;
    if (auto* error = std::get_if<bus::ErrorMessage>(&*e)) {
      ++terminal[*error->id];
      if (error->code == bus::ErrorCode::Overloaded) ++overloaded;
    } else if (auto* final = std::get_if<bus::FinalMessage>(&*e)) {
      ++terminal[final->id];
    }
  }
  EXPECT_EQ(terminal.size(), 12u);
  for (const auto& [id, count] : terminal) EXPECT_EQ(count, 1) << id;
  EXPECT_GE(overloaded, 1);
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerFaultsTest, DeadlineExceededIsAnError) {
  const fs::path model = make_model("deadline", 512, 4, 1536);
  auto server = start(model, "deadline");
  bus::Client client(server.endpoint());
  bus::SubmitRequest r;
  r.id = "late";
  r.prompt_ids = std::vector<int32_t>{1, 2, 3};
  r.params.max_tokens = 1900;
  r.params.ignore_eos = true;
  r.deadline_ms = 200;
  try {
    client.generate(r);
    FAIL() << "no deadline error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deadline_exceeded"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.stop(), 0);
  fs::remove_all(model);
}

TEST_F(ServerFaultsTest, SigtermEndsInFlightRequestsAndExitsZero) {
  const fs::path model = make_model("sigterm", 512, 4, 1536);
  auto server = start(model, "sigterm", {"--shutdown-grace-ms", "300"});
  bus::Client client(server.endpoint());
  for (int i = 0; i < 4; ++i) {
    bus::SubmitRequest r;
    r.id = "s" + std::to_string(i);
    r.prompt_ids = std::vector<int32_t>{1, 2, 3};
    r.params.max_tokens = 1900;
    r.params.ignore_eos = true;
    client.submit(r);
  }
  while (true) {
    auto e = client.next_event(5000ms);
    ASSERT_TRUE(e.has_value());
    if (std::holds_alternative<bus::TokenChunk>(*e)) break;
  }
  kill(server.pid(), SIGTERM);
  std::map<std::string, int> terminal;
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (terminal.size() < 4 && std::chrono::steady_clock::now() < end) {
    auto e = client.next_event(200ms);
    if (!e) continue;
    if (auto* error = std::get_if<bus::ErrorMessage>(&*e)) {
      EXPECT_EQ(error->code, bus::ErrorCode::ShuttingDown);
      ++terminal[*error->id];
    } else if (auto* final = std::get_if<bus::FinalMessage>(&*e)) {
      ++terminal[final->id];
    }
  }
  EXPECT_EQ(terminal.size(), 4u);
  EXPECT_EQ(server.stop(SIGTERM), 0);
  fs::remove_all(model);
}

TEST_F(ServerFaultsTest, StartUpErrorsAreClearAndNonZero) {
  auto first = start(*tiny_, "busy", {"--listen", "tcp://127.0.0.1:0"});
  const std::string busy = first.endpoint();
  const std::string cmd = kBin + "/tessera-server --model " + tiny_->string() + " --listen " + busy + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[1024];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  EXPECT_NE(pclose(pipe), 0);
  EXPECT_NE(out.find(busy), std::string::npos) << out;
  FILE* bad_model = popen((kBin + "/tessera-server --model /nonexistent --listen tcp://127.0.0.1:0 2>&1").c_str(), "r");
  out.clear();
  while (size_t n = fread(buf, 1, sizeof buf, bad_model)) out.append(buf, n);
  EXPECT_NE(pclose(bad_model), 0);
  EXPECT_NE(out.find("nonexistent"), std::string::npos) << out;
  EXPECT_EQ(first.stop(), 0);
}

}  // namespace
}  // namespace tessera
