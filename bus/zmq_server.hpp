#pragma once
// ZmqServerLoop: the server end of the bus. One ROUTER socket, owned by one thread that decodes inbound frames
// (answering protocol errors itself), sends outbound frames queued from any thread, and notices vanished
// clients (failed sends, ZMTP heartbeats, and an application-level heartbeat to the clients it is told to probe).
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "bus/protocol.hpp"

namespace tessera::bus {

// The ROUTER routing id of a connected client (opaque bytes, unique per connection).
using ClientId = std::string;

struct ZmqServerConfig {
  std::string endpoint = "tcp://127.0.0.1:5555";  // tcp://host:port (port 0 = ephemeral) or ipc://path
  ProtocolLimits limits;
  // ZMQ_MAXMSGSIZE: a peer sending a bigger frame is disconnected by ZeroMQ. Frames between
  // limits.max_frame_bytes and this cap get a frame_too_large error reply. 0 = 4 * limits.max_frame_bytes.
  int64_t hard_max_frame_bytes = 0;
  int zmtp_heartbeat_ivl_ms = 300;
  int zmtp_heartbeat_timeout_ms = 1000;
  int probe_interval_ms = 250;  // heartbeat message to every probed client
  int send_high_water_mark = 100000;  // messages queued per client before it counts as lost
  int receive_batch = 256;  // frames read per wake-up before outbound work gets a turn
};

struct ZmqServerCallbacks {
  // A well-formed client message. Runs on the loop thread: keep it short (hand the work off).
  std::function<void(const ClientId&, ClientMessage)> on_message;
  // A send to this client failed (it disconnected, or its queue is full). Runs on the loop thread. May fire
  // more than once for the same client (once per failed send): handle it idempotently. The client is
  // removed from the probe set.
  std::function<void(const ClientId&)> on_client_lost;
  // An error the loop answered itself (a frame it could not decode, or on_message threw). Runs on the loop thread;
  // optional (metrics count these).
  std::function<void(const ClientId&, const ErrorMessage&)> on_protocol_error;
};

class ZmqServerLoop {
 public:
  // Binds the endpoint (throws tessera::Error naming it when the endpoint is malformed or in use) and
  // starts the loop thread.
  ZmqServerLoop(ZmqServerConfig config, ZmqServerCallbacks callbacks);
  ~ZmqServerLoop();  // stop()
  ZmqServerLoop(const ZmqServerLoop&) = delete;
  ZmqServerLoop& operator=(const ZmqServerLoop&) = delete;

  // Queues an encoded frame for a client. Thread-safe, never blocks on the network; usable from callbacks.
  // Frames for one client leave in the order they were queued. Ignored after stop().
  void send(const ClientId& client, std::string frame);
  // Whether the loop sends a heartbeat message to this client every probe_interval_ms (turn on while the
  // client has live requests, so a silent client that vanished is noticed within about a second).
  // Thread-safe.
  void set_probe(const ClientId& client, bool probe);
  // Sends what is already queued (best effort), closes the socket and joins the thread. Idempotent;
  // must not be called from a callback.
  void stop();

  // The bound endpoint as ZeroMQ reports it (resolves tcp port 0 to the real port).
  const std::string& endpoint() const { return bound_endpoint_; }

 private:
  struct State;
  void run();

  std::unique_ptr<State> state_;
  std::string bound_endpoint_;
  std::thread thread_;
};

}  // namespace tessera::bus
