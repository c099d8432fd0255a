#pragma once
// C++ client of the Tessera bus: one DEALER socket, many requests in flight on it. Not thread-safe: use one
// Client per thread.
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "bus/protocol.hpp"

namespace tessera::bus {

// Everything a server sends except heartbeats (which the client swallows).
using ServerEvent = std::variant<Accepted, TokenChunk, FinalMessage, ErrorMessage, InfoReply>;

// The id of the request an event belongs to (empty for info replies and id-less errors).
std::string event_request_id(const ServerEvent& event);

class Client {
 public:
  // Connects (ZeroMQ connects lazily: a server that is not up yet is fine). Throws tessera::Error on a
  // malformed endpoint.
  explicit Client(const std::string& endpoint);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Queue a message for the server. submit() checks the request with check_submit() first and throws
  // tessera::Error("invalid_parameter: ...") when the server would reject it.
  void submit(const SubmitRequest& request);
  void cancel(const std::string& id);

  // Asks the server for its info and waits up to `timeout` (throws tessera::Error on timeout or error).
  // Other events that arrive meanwhile are kept for next_event().
  InfoReply info(std::chrono::milliseconds timeout);

  // The next event from the server, or nullopt when none arrived within `timeout`. Throws tessera::Error
  // when the server sends a frame that is not a valid server message.
  std::optional<ServerEvent> next_event(std::chrono::milliseconds timeout);

  // Submits `request` and waits for its end, calling on_tokens for each chunk. Returns the final message;
  // an error reply throws tessera::Error whose message starts with the server's error code ("overloaded: ...").
  // When nothing arrives for `idle_timeout`, the request is cancelled and tessera::Error is thrown. Events of
  // other requests are kept for next_event().
  FinalMessage generate(const SubmitRequest& request, const std::function<void(const TokenChunk&)>& on_tokens = {},
                        std::chrono::milliseconds idle_timeout = std::chrono::seconds(60));

 private:
  std::optional<ServerEvent> receive(std::chrono::milliseconds timeout);
  void send_frame(const std::string& frame);

  struct Socket;
  std::unique_ptr<Socket> socket_;
  std::deque<ServerEvent> pending_;  // received while info()/generate() waited for something else
};

}  // namespace tessera::bus
