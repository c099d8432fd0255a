#include "bus/zmq_server.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_set>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "core/common/error.hpp"

namespace tessera::bus {

struct ZmqServerLoop::State {
  ZmqServerConfig config;
  ZmqServerCallbacks callbacks;
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::router};
  int wake_fd = -1;  // eventfd: written by send()/stop(), polled by the loop next to the socket
  std::atomic<bool> stopping{false};
  std::string heartbeat_frame = encode(Heartbeat{});

  std::mutex mutex;  // guards outbox and probed
  std::deque<std::pair<ClientId, std::string>> outbox;
  std::unordered_set<ClientId> probed;

  ~State() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);  // fails only if the counter saturates
  }

  // Sends one frame now (loop thread only). Returns false and reports the client lost when it is unreachable.
  bool send_now(const ClientId& client, const std::string& frame) {
    bool sent = false;
    try {
      if (socket.send(zmq::buffer(client), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        sent = socket.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
      }
    } catch (const zmq::error_t&) {
      sent = false;  // EHOSTUNREACH (router_mandatory): the client is gone
    }
    if (!sent) lost(client);
    return sent;
  }

  void lost(const ClientId& client) {
    {
      std::lock_guard lock(mutex);
      probed.erase(client);
    }
    if (callbacks.on_client_lost) callbacks.on_client_lost(client);
  }

  void reply_error(const ClientId& client, ErrorMessage error) {
    if (callbacks.on_protocol_error) callbacks.on_protocol_error(client, error);
    send_now(client, encode(error));
  }

  // Reads one multipart message; false when none is waiting.
  bool receive_one() {
    zmq::message_t identity;
    if (!socket.recv(identity, zmq::recv_flags::dontwait)) return false;
    ClientId client(static_cast<const char*>(identity.data()), identity.size());
    std::vector<zmq::message_t> parts;
    while (true) {
      zmq::message_t part;
      // The rest of a multipart message is already here once its first part arrived.
      if (!socket.recv(part, zmq::recv_flags::dontwait)) break;
      const bool more = part.more();
      parts.push_back(std::move(part));
      if (!more) break;
    }
    if (parts.size() != 1) {
      reply_error(client, ErrorMessage{std::nullopt, ErrorCode::Malformed,
                                       "a message must be exactly one frame (got " + std::to_string(parts.size()) +
                                           ")"});
      return true;
    }
    auto decoded = decode_client_message(
        std::string_view(static_cast<const char*>(parts[0].data()), parts[0].size()), config.limits);
    if (auto* error = std::get_if<ProtocolError>(&decoded)) {
      reply_error(client, std::move(*error));
      return true;
    }
    if (!callbacks.on_message) return true;
    try {
      callbacks.on_message(client, std::move(std::get<ClientMessage>(decoded)));
    } catch (const std::exception& e) {
      reply_error(client, ErrorMessage{std::nullopt, ErrorCode::Internal, e.what()});
    }
    return true;
  }

  void flush_outbox() {
    std::deque<std::pair<ClientId, std::string>> batch;
    {
      std::lock_guard lock(mutex);
      batch.swap(outbox);
    }
    std::unordered_set<ClientId> lost_now;  // report each vanished client once per batch
    for (auto& [client, frame] : batch) {
      if (lost_now.count(client)) continue;
      if (!send_now(client, frame)) lost_now.insert(client);
    }
  }

  void probe_all() {
    std::vector<ClientId> targets;
    {
      std::lock_guard lock(mutex);
      targets.assign(probed.begin(), probed.end());
    }
    for (const ClientId& client : targets) send_now(client, heartbeat_frame);
  }
};

ZmqServerLoop::ZmqServerLoop(ZmqServerConfig config, ZmqServerCallbacks callbacks)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.config = std::move(config);
  s.callbacks = std::move(callbacks);
  const int64_t hard_cap = s.config.hard_max_frame_bytes > 0
                               ? s.config.hard_max_frame_bytes
                               : static_cast<int64_t>(4 * s.config.limits.max_frame_bytes);
  s.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.wake_fd < 0) throw Error(std::string("bus: cannot create an eventfd: ") + std::strerror(errno));
  try {
    s.socket.set(zmq::sockopt::router_mandatory, 1);
    s.socket.set(zmq::sockopt::maxmsgsize, hard_cap);
    s.socket.set(zmq::sockopt::heartbeat_ivl, s.config.zmtp_heartbeat_ivl_ms);
    s.socket.set(zmq::sockopt::heartbeat_timeout, s.config.zmtp_heartbeat_timeout_ms);
    s.socket.set(zmq::sockopt::sndhwm, s.config.send_high_water_mark);
    s.socket.set(zmq::sockopt::linger, 200);
    s.socket.bind(s.config.endpoint);
    bound_endpoint_ = s.socket.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    throw Error("bus: cannot bind endpoint '" + s.config.endpoint + "': " + e.what());
  }
  thread_ = std::thread([this] { run(); });
}

ZmqServerLoop::~ZmqServerLoop() { stop(); }

void ZmqServerLoop::send(const ClientId& client, std::string frame) {
  State& s = *state_;
  if (s.stopping.load(std::memory_order_acquire)) return;
  bool was_empty;
  {
    std::lock_guard lock(s.mutex);
    was_empty = s.outbox.empty();
    s.outbox.emplace_back(client, std::move(frame));
  }
  // The loop drains the eventfd before it takes the outbox, so one wake per non-empty outbox suffices.
  if (was_empty) s.wake();
}

void ZmqServerLoop::set_probe(const ClientId& client, bool probe) {
  std::lock_guard lock(state_->mutex);
  if (probe) state_->probed.insert(client);
  else state_->probed.erase(client);
}

void ZmqServerLoop::stop() {
  if (!thread_.joinable()) return;
  state_->stopping.store(true, std::memory_order_release);
  state_->wake();
  thread_.join();
}

void ZmqServerLoop::run() {
  using Clock = std::chrono::steady_clock;
  State& s = *state_;
  const auto interval = std::chrono::milliseconds(std::max(1, s.config.probe_interval_ms));
  auto next_probe = Clock::now() + interval;
  while (!s.stopping.load(std::memory_order_acquire)) {
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_probe - Clock::now());
    zmq::pollitem_t items[2] = {{s.socket.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, s.wake_fd, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::max(wait, std::chrono::milliseconds(0)));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      break;  // the socket or context is unusable: nothing more this loop can do
    }
    if (items[1].revents & ZMQ_POLLIN) {
      uint64_t counter;
      [[maybe_unused]] ssize_t n = ::read(s.wake_fd, &counter, sizeof counter);
    }
    if (items[0].revents & ZMQ_POLLIN)
      for (int i = 0; i < s.config.receive_batch && s.receive_one(); ++i) {
      }
    s.flush_outbox();
    if (Clock::now() >= next_probe) {
      s.probe_all();
      next_probe = Clock::now() + interval;
    }
  }
  s.flush_outbox();  // best effort: what callers queued before stop()
  s.socket.close();
}

}  // namespace tessera::bus
