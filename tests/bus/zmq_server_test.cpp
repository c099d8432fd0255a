// ZmqServerLoop and Client over real ipc:// and tcp loopback sockets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "bus/client.hpp"
#include "bus/zmq_server.hpp"
#include "core/common/error.hpp"

namespace tessera::bus {
namespace {

using namespace std::chrono_literals;

std::string unique_ipc_endpoint(const char* tag) {
  return "ipc:///tmp/tessera-bus-test-" + std::to_string(::getpid()) + "-" + tag;
}

ZmqServerConfig small_config(const std::string& endpoint) {
  ZmqServerConfig c;
  c.endpoint = endpoint;
  c.limits.max_frame_bytes = 4096;
  c.hard_max_frame_bytes = 16384;
  return c;
}

// Answers submit with accepted + one tokens chunk (the prompt's bytes as ids) + final; info with an InfoReply;
// cancel with unknown_request_id.
ZmqServerCallbacks echo_callbacks(ZmqServerLoop*& loop) {
  ZmqServerCallbacks cb;
  cb.on_message = [&loop](const ClientId& client, ClientMessage message) {
    if (auto* s = std::get_if<SubmitRequest>(&message)) {
      const std::string prompt = s->prompt.value_or("");
      std::vector<int32_t> ids(prompt.begin(), prompt.end());
      loop->send(client, encode(Accepted{s->id, static_cast<int32_t>(ids.size())}));
      loop->send(client, encode(TokenChunk{s->id, ids, prompt}));
      loop->send(client, encode(FinalMessage{s->id, FinishReason::Length,
                                             {static_cast<int32_t>(ids.size()), static_cast<int32_t>(ids.size())},
                                             {}, std::nullopt, std::nullopt}));
    } else if (std::holds_alternative<InfoRequest>(message)) {
      loop->send(client, encode(InfoReply{"echo", 256, 64, 8, 16, 128, 4, true, 1}));
    } else if (auto* c = std::get_if<CancelRequest>(&message)) {
      loop->send(client, encode(ErrorMessage{c->id, ErrorCode::UnknownRequestId, "no such request"}));
    }
  };
  return cb;
}

std::optional<ServerMessage> receive_raw(zmq::socket_t& socket, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
  zmq::message_t m;
  if (!socket.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
  auto decoded = decode_server_message(std::string_view(static_cast<const char*>(m.data()), m.size()));
  if (!std::holds_alternative<ServerMessage>(decoded)) return std::nullopt;
  return std::get<ServerMessage>(decoded);
}

ErrorCode expect_error_reply(zmq::socket_t& socket) {
  auto reply = receive_raw(socket, 2000ms);
  if (!reply || !std::holds_alternative<ErrorMessage>(*reply)) {
    ADD_FAILURE() << "expected an error reply";
    return ErrorCode::Internal;
  }
  return std::get<ErrorMessage>(*reply).code;
}

TEST(ZmqServerLoop, BadOrUsedEndpointThrowsError) {
  for (const char* bad : {"not-an-endpoint", "tcp://127.0.0.1:notaport", "carrier-pigeon://home"}) {
    ZmqServerConfig config;
    config.endpoint = bad;
    EXPECT_THROW(ZmqServerLoop(config, {}), Error) << bad;
  }
  ZmqServerConfig first;
  first.endpoint = "tcp://127.0.0.1:0";
  ZmqServerLoop server(first, {});
  ASSERT_NE(server.endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  ZmqServerConfig second;
  second.endpoint = server.endpoint();
  try {
    ZmqServerLoop clash(second, {});
    FAIL() << "second bind of " << server.endpoint() << " succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(server.endpoint()), std::string::npos) << e.what();
  }
}

TEST(ZmqServerLoop, HostileFramesGetErrorRepliesAndServingContinues) {
  ZmqServerLoop* loop = nullptr;
  ZmqServerLoop server(small_config(unique_ipc_endpoint("hostile")), echo_callbacks(loop));
  loop = &server;
  zmq::context_t ctx;
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(server.endpoint());

  dealer.send(zmq::buffer(std::string("definitely not msgpack")), zmq::send_flags::none);
  EXPECT_EQ(expect_error_reply(dealer), ErrorCode::Malformed);
  dealer.send(zmq::buffer(std::string("\xdd\xff\xff\xff\xff", 5)), zmq::send_flags::none);
  EXPECT_EQ(expect_error_reply(dealer), ErrorCode::Malformed);
  dealer.send(zmq::buffer(std::string("\x82\xa1v\x02\xa4type\xa4info", 14)), zmq::send_flags::none);
  EXPECT_EQ(expect_error_reply(dealer), ErrorCode::UnsupportedVersion);
  // Two frames in one message.
  dealer.send(zmq::buffer(encode(InfoRequest{})), zmq::send_flags::sndmore);
  dealer.send(zmq::buffer(encode(InfoRequest{})), zmq::send_flags::none);
  EXPECT_EQ(expect_error_reply(dealer), ErrorCode::Malformed);
  // Between the protocol limit (4 KiB) and the hard cap (16 KiB).
  dealer.send(zmq::buffer(std::string(8000, 'x')), zmq::send_flags::none);
  EXPECT_EQ(expect_error_reply(dealer), ErrorCode::FrameTooLarge);
  dealer.send(zmq::buffer(encode(CancelRequest{"nope"})), zmq::send_flags::none);
  EXPECT_EQ(expect_error_reply(dealer), ErrorCode::UnknownRequestId);

  // After all that, a valid request on the same connection is served.
  SubmitRequest r;
  r.id = "ok-1";
  r.prompt = "hey";
  dealer.send(zmq::buffer(encode(r)), zmq::send_flags::none);
  auto accepted = receive_raw(dealer, 2000ms);
  ASSERT_TRUE(accepted && std::holds_alternative<Accepted>(*accepted));
  EXPECT_EQ(std::get<Accepted>(*accepted).prompt_tokens, 3);

  // Beyond the hard cap ZeroMQ drops the connection: no reply; the server keeps serving others.
  zmq::socket_t rogue(ctx, zmq::socket_type::dealer);
  rogue.set(zmq::sockopt::linger, 0);
  rogue.connect(server.endpoint());
  rogue.send(zmq::buffer(std::string(32768, 'x')), zmq::send_flags::none);
  EXPECT_FALSE(receive_raw(rogue, 300ms).has_value());
  Client fresh(server.endpoint());
  EXPECT_EQ(fresh.info(2000ms).model, "echo");
}

TEST(ZmqServerLoop, ClientLibraryStreamsManyRequestsOnOneSocket) {
  ZmqServerLoop* loop = nullptr;
  ZmqServerConfig config;
  config.endpoint = "tcp://127.0.0.1:0";
  ZmqServerLoop server(config, echo_callbacks(loop));
  loop = &server;
  Client client(server.endpoint());

  InfoReply info = client.info(2000ms);
  EXPECT_EQ(info.vocab_size, 256);
  EXPECT_TRUE(info.ready);

  for (const char* id : {"a", "b", "c"}) {
    SubmitRequest r;
    r.id = id;
    r.prompt = std::string("prompt-") + id;
    client.submit(r);
  }
  std::vector<std::string> finals;
  while (finals.size() < 3) {
    auto event = client.next_event(2000ms);
    ASSERT_TRUE(event.has_value());
    if (auto* f = std::get_if<FinalMessage>(&*event)) {
      finals.push_back(f->id);
      EXPECT_EQ(f->usage.completion_tokens, 8);
    }
  }
  EXPECT_EQ(finals, (std::vector<std::string>{"a", "b", "c"}));

  SubmitRequest g;
  g.id = "gen";
  g.prompt = "xyz";
  std::string streamed;
  FinalMessage final = client.generate(g, [&](const TokenChunk& t) { streamed += t.text; }, 2000ms);
  EXPECT_EQ(final.id, "gen");
  EXPECT_EQ(final.finish_reason, FinishReason::Length);
  EXPECT_EQ(streamed, "xyz");

  SubmitRequest bad = g;
  bad.params.temperature = -1.0f;
  EXPECT_THROW(client.submit(bad), Error);
}

TEST(ZmqServerLoop, LostClientIsReportedWithinTwoSeconds) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<ClientId> submitter;
  std::vector<ClientId> lost;
  ZmqServerLoop* loop = nullptr;
  ZmqServerCallbacks cb;
  cb.on_message = [&](const ClientId& client, ClientMessage message) {
    if (auto* s = std::get_if<SubmitRequest>(&message)) {
      loop->set_probe(client, true);  // a live request: probe until it ends
      loop->send(client, encode(Accepted{s->id, 1}));
      std::lock_guard lock(mu);
      submitter = client;
      cv.notify_all();
    }
  };
  cb.on_client_lost = [&](const ClientId& client) {
    std::lock_guard lock(mu);
    lost.push_back(client);
    cv.notify_all();
  };
  ZmqServerLoop server(small_config(unique_ipc_endpoint("lost")), cb);
  loop = &server;
  {
    Client client(server.endpoint());
    SubmitRequest r;
    r.id = "doomed";
    r.prompt = "p";
    client.submit(r);
    auto accepted = client.next_event(2000ms);
    ASSERT_TRUE(accepted && std::holds_alternative<Accepted>(*accepted));
    // Heartbeats are swallowed by the client: nothing else arrives.
    EXPECT_FALSE(client.next_event(600ms).has_value());
    EXPECT_TRUE(lost.empty());
  }  // the client socket closes here, its request still live
  const auto closed_at = std::chrono::steady_clock::now();
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return !lost.empty(); })) << "on_client_lost did not fire";
  EXPECT_LT(std::chrono::steady_clock::now() - closed_at, 2s);
  ASSERT_TRUE(submitter.has_value());
  EXPECT_EQ(lost.front(), *submitter);
}

TEST(ZmqServerLoop, SendIsSafeFromManyThreadsAndKeepsPerThreadOrder) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<ClientId> peer;
  ZmqServerCallbacks cb;
  cb.on_message = [&](const ClientId& client, ClientMessage) {
    std::lock_guard lock(mu);
    peer = client;
    cv.notify_all();
  };
  ZmqServerLoop server(small_config(unique_ipc_endpoint("threads")), cb);
  Client client(server.endpoint());
  client.cancel("hello");  // any message tells the server who we are
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return peer.has_value(); }));
  }
  constexpr int kThreads = 4, kPerThread = 250;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t)
    senders.emplace_back([&, t] {
      const std::string id = std::string(1, 't').append(std::to_string(t));  // (GCC 12 -Wrestrict false positive on "t" + s)
      for (int i = 0; i < kPerThread; ++i) server.send(*peer, encode(TokenChunk{id, {i}, ""}));
    });
  for (auto& s : senders) s.join();
  std::vector<int> next(kThreads, 0);
  int received = 0;
  while (received < kThreads * kPerThread) {
    auto event = client.next_event(2000ms);
    ASSERT_TRUE(event.has_value()) << "received " << received;
    const auto& chunk = std::get<TokenChunk>(*event);
    const int t = std::stoi(chunk.id.substr(1));
    ASSERT_EQ(chunk.ids.at(0), next[t]) << "thread " << t << " out of order";
    ++next[t];
    ++received;
  }
  server.stop();
  server.send(*peer, encode(Heartbeat{}));  // ignored after stop, no crash
}

}  // namespace
}  // namespace tessera::bus

namespace tessera::bus {
namespace {

struct ProcessResult {
  int exit_code;
  std::string output;  // stdout and stderr
};
ProcessResult run_command(const std::string& command) {
  ProcessResult r{-1, {}};
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(ZmqServerLoop, PythonExampleClientStreamsAndReportsErrors) {
  // Debian's python3-zmq / python3-msgpack live in /usr/bin/python3 (a pyenv python3 may lack them).
  std::string python;
  for (const char* candidate : {"/usr/bin/python3", "python3"})
    if (run_command(std::string(candidate) + " -c 'import zmq, msgpack'").exit_code == 0) {
      python = candidate;
      break;
    }
  if (python.empty()) GTEST_SKIP() << "no python3 with zmq and msgpack";
  ZmqServerLoop* loop = nullptr;
  ZmqServerLoop server(small_config(unique_ipc_endpoint("python")), echo_callbacks(loop));
  loop = &server;
  const std::string client = python + " " + TESSERA_SOURCE_DIR + "/bus/examples/client.py --server " +
                             server.endpoint() + " --timeout 3";

  auto ok = run_command(client + " --prompt 'hello bus' --temperature 0 --seed 7");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("hello bus"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("[length] prompt=9 completion=9"), std::string::npos) << ok.output;

  auto ids = run_command(client + " --ids 1,2,3 --print-ids");
  EXPECT_EQ(ids.exit_code, 0) << ids.output;

  auto info = run_command(client + " --info");
  EXPECT_EQ(info.exit_code, 0) << info.output;
  EXPECT_NE(info.output.find("model: echo"), std::string::npos) << info.output;

  auto bad = run_command(client + " --prompt x --temperature -1");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("invalid_parameter"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace tessera::bus
