#pragma once
// The bridge between the ZeroMQ bus and the actors. It owns the ZmqServerLoop and the table of live requests
// (client, client request id) → seq_id: submits go to a tokenizer shard (by seq_id), cancels and lost clients
// become aborts sent through the owning shard (so they stay ordered after the submit), info is answered here,
// and actors' messages for clients come back through deliver(). Thread-safety: on_* run on the ZeroMQ thread,
// deliver() on any actor thread; the table is guarded by a mutex.
// Metrics: every error message sent to a client (tessera_errors_total{code}, protocol errors included) and the
// submits refused here (duplicate id, shutting down) as rejected requests.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <caf/actor.hpp>

#include "actors/client_sink.hpp"
#include "bus/zmq_server.hpp"
#include "core/metrics/serving_metrics.hpp"

namespace tessera {

class IngressBridge final : public ClientSink {
 public:
  // `info` builds the reply to info requests (called on the ZeroMQ thread). `metrics` may be null.
  explicit IngressBridge(std::function<bus::InfoReply()> info, std::shared_ptr<ServingMetrics> metrics = nullptr);
  ~IngressBridge() override;

  // Wires the actors, then binds and starts the bus (throws tessera::Error on a bad or busy endpoint).
  void start(bus::ZmqServerConfig config, std::vector<caf::actor> shards);
  // The bound endpoint (tcp port 0 resolved).
  std::string endpoint() const;

  void deliver(Outbound message) override;

  // While draining, new submits are refused with shutting_down; cancels and info still work.
  void set_draining(bool draining) { draining_ = draining; }
  size_t num_live_requests() const;
  // Stops the bus thread (flushing queued frames) and drops the actor handles. Idempotent.
  void stop();

 private:
  void on_message(const bus::ClientId& client, bus::ClientMessage message);
  void on_client_lost(const bus::ClientId& client);
  void reply_error(const bus::ClientId& client, const std::string& id, bus::ErrorCode code, std::string message);
  void reject_submit(const bus::ClientId& client, const std::string& id, bus::ErrorCode code, std::string message);
  void count_error(bus::ErrorCode code) {
    if (metrics_) metrics_->record_error(bus::error_code_name(code));
  }
  const caf::actor& shard_of(uint64_t seq_id) const { return shards_[seq_id % shards_.size()]; }

  std::function<bus::InfoReply()> info_;
  std::shared_ptr<ServingMetrics> metrics_;
  std::vector<caf::actor> shards_;
  std::unique_ptr<bus::ZmqServerLoop> loop_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_seq_id_{1};

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, uint64_t> live_;  // (client, request id) → seq_id
  std::unordered_map<std::string, int> live_per_client_;
};

}  // namespace tessera
