#include "bus/client.hpp"

#include <zmq.hpp>

#include "core/common/error.hpp"

namespace tessera::bus {

struct Client::Socket {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::dealer};
};

std::string event_request_id(const ServerEvent& event) {
  return std::visit(
      [](const auto& e) -> std::string {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, InfoReply>) return {};
        else if constexpr (std::is_same_v<T, ErrorMessage>) return e.id.value_or(std::string());
        else return e.id;
      },
      event);
}

Client::Client(const std::string& endpoint) : socket_(std::make_unique<Socket>()) {
  try {
    socket_->socket.set(zmq::sockopt::linger, 0);
    socket_->socket.set(zmq::sockopt::heartbeat_ivl, 300);
    socket_->socket.set(zmq::sockopt::heartbeat_timeout, 1000);
    socket_->socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw Error("bus client: cannot connect to '" + endpoint + "': " + e.what());
  }
}

Client::~Client() = default;

void Client::send_frame(const std::string& frame) {
  try {
    socket_->socket.send(zmq::buffer(frame), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    throw Error(std::string("bus client: send failed: ") + e.what());
  }
}

void Client::submit(const SubmitRequest& request) {
  if (auto error = check_submit(request, ProtocolLimits{}))
    throw Error(std::string(error_code_name(error->code)) + ": " + error->message);
  send_frame(encode(request));
}

void Client::cancel(const std::string& id) { send_frame(encode(CancelRequest{id})); }

std::optional<ServerEvent> Client::receive(std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    zmq::pollitem_t item{socket_->socket.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::max(left, std::chrono::milliseconds(0)));
    if (!(item.revents & ZMQ_POLLIN)) {
      if (Clock::now() >= deadline) return std::nullopt;
      continue;
    }
    zmq::message_t frame;
    if (!socket_->socket.recv(frame, zmq::recv_flags::dontwait)) continue;
    auto decoded = decode_server_message(std::string_view(static_cast<const char*>(frame.data()), frame.size()));
    if (auto* bad = std::get_if<ErrorMessage>(&decoded)) throw Error("bus client: " + bad->message);
    auto& message = std::get<ServerMessage>(decoded);
    if (std::holds_alternative<Heartbeat>(message)) continue;
    return std::visit(
        [](auto&& m) -> ServerEvent {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, Heartbeat>) return InfoReply{};  // unreachable: filtered above
          else return ServerEvent{std::move(m)};
        },
        std::move(message));
  }
}

std::optional<ServerEvent> Client::next_event(std::chrono::milliseconds timeout) {
  if (!pending_.empty()) {
    ServerEvent event = std::move(pending_.front());
    pending_.pop_front();
    return event;
  }
  return receive(timeout);
}

InfoReply Client::info(std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  send_frame(encode(InfoRequest{}));
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto event = receive(std::max(left, std::chrono::milliseconds(0)));
    if (!event) throw Error("bus client: no info reply within " + std::to_string(timeout.count()) + " ms");
    if (auto* reply = std::get_if<InfoReply>(&*event)) return *reply;
    if (auto* error = std::get_if<ErrorMessage>(&*event); error && !error->id)
      throw Error(std::string(error_code_name(error->code)) + ": " + error->message);
    pending_.push_back(std::move(*event));
  }
}

FinalMessage Client::generate(const SubmitRequest& request, const std::function<void(const TokenChunk&)>& on_tokens,
                              std::chrono::milliseconds idle_timeout) {
  submit(request);
  while (true) {
    auto event = receive(idle_timeout);
    if (!event) {
      cancel(request.id);
      throw Error("bus client: request '" + request.id + "' got no reply within " +
                  std::to_string(idle_timeout.count()) + " ms (cancelled)");
    }
    if (event_request_id(*event) != request.id || std::holds_alternative<InfoReply>(*event)) {
      pending_.push_back(std::move(*event));
      continue;
    }
    if (auto* chunk = std::get_if<TokenChunk>(&*event)) {
      if (on_tokens) on_tokens(*chunk);
    } else if (auto* final = std::get_if<FinalMessage>(&*event)) {
      return std::move(*final);
    } else if (auto* error = std::get_if<ErrorMessage>(&*event)) {
      throw Error(std::string(error_code_name(error->code)) + ": " + error->message);
    }
    // Accepted: keep waiting.
  }
}

}  // namespace tessera::bus
