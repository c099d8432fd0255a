#include "actors/ingress_bridge.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

#include "actors/caf_types.hpp"

namespace tessera {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

IngressBridge::IngressBridge(std::function<bus::InfoReply()> info, std::shared_ptr<ServingMetrics> metrics)
    : info_(std::move(info)), metrics_(std::move(metrics)) {}

IngressBridge::~IngressBridge() { stop(); }

void IngressBridge::start(bus::ZmqServerConfig config, std::vector<caf::actor> shards) {
  shards_ = std::move(shards);
  bus::ZmqServerCallbacks callbacks;
  callbacks.on_message = [this](const bus::ClientId& client, bus::ClientMessage message) {
    on_message(client, std::move(message));
  };
  callbacks.on_client_lost = [this](const bus::ClientId& client) { on_client_lost(client); };
  callbacks.on_protocol_error = [this](const bus::ClientId&, const bus::ErrorMessage& error) {
    count_error(error.code);
  };
  loop_ = std::make_unique<bus::ZmqServerLoop>(std::move(config), std::move(callbacks));
}

std::string IngressBridge::endpoint() const { return loop_ ? loop_->endpoint() : std::string(); }

void IngressBridge::reply_error(const bus::ClientId& client, const std::string& id, bus::ErrorCode code,
                                std::string message) {
  count_error(code);
  loop_->send(client, bus::encode(bus::ErrorMessage{id, code, std::move(message)}));
}

void IngressBridge::reject_submit(const bus::ClientId& client, const std::string& id, bus::ErrorCode code,
                                  std::string message) {
  if (metrics_) metrics_->record_outcome(RequestOutcome::Rejected);
  reply_error(client, id, code, std::move(message));
}

void IngressBridge::on_message(const bus::ClientId& client, bus::ClientMessage message) {
  if (auto* submit = std::get_if<bus::SubmitRequest>(&message)) {
    if (draining_) {
      reject_submit(client, submit->id, bus::ErrorCode::ShuttingDown, "the server is shutting down");
      return;
    }
    const uint64_t seq_id = next_seq_id_++;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!live_.emplace(std::make_pair(client, submit->id), seq_id).second) {
        reject_submit(client, submit->id, bus::ErrorCode::DuplicateRequestId,
                      "request id '" + submit->id + "' is already in use by a live request of this client");
        return;
      }
      if (live_per_client_[client]++ == 0) loop_->set_probe(client, true);
    }
    IncomingRequest request;
    request.seq_id = seq_id;
    request.address = ClientAddress{client, submit->id};
    request.prompt = std::move(submit->prompt);
    if (submit->prompt_ids) request.prompt_ids = std::move(*submit->prompt_ids);
    request.params = std::move(submit->params);
    request.stream = submit->stream;
    request.priority = submit->priority;
    request.deadline_ms = submit->deadline_ms;
    request.arrival_s = now_seconds();
    caf::anon_send(shard_of(seq_id), std::move(request));
  } else if (auto* cancel = std::get_if<bus::CancelRequest>(&message)) {
    uint64_t seq_id = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(std::make_pair(client, cancel->id));
      if (it != live_.end()) seq_id = it->second;
    }
    if (seq_id == 0) {
      reply_error(client, cancel->id, bus::ErrorCode::UnknownRequestId,
                  "no live request with id '" + cancel->id + "' from this client");
      return;
    }
    AbortSequence abort;
    abort.seq_id = seq_id;
    abort.outcome = static_cast<uint8_t>(SequenceOutcome::Cancelled);
    caf::anon_send(shard_of(seq_id), abort);
  } else {
    loop_->send(client, bus::encode(info_()));
  }
}

void IngressBridge::on_client_lost(const bus::ClientId& client) {
  std::vector<uint64_t> lost;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = live_.lower_bound(std::make_pair(client, std::string())); it != live_.end() && it->first.first == client;) {
      lost.push_back(it->second);
      it = live_.erase(it);
    }
    live_per_client_.erase(client);
  }
  if (!lost.empty()) spdlog::info("client lost: cancelling {} request(s)", lost.size());
  for (uint64_t seq_id : lost) {
    AbortSequence abort;
    abort.seq_id = seq_id;
    abort.outcome = static_cast<uint8_t>(SequenceOutcome::Cancelled);
    abort.error_code = "client_lost";
    caf::anon_send(shard_of(seq_id), abort);
  }
}

void IngressBridge::deliver(Outbound message) {
  if (!loop_) return;
  const std::string* request_id = std::visit(
      [](const auto& m) -> const std::string* {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, bus::ErrorMessage>) {
          return m.id ? &*m.id : nullptr;
        } else if constexpr (std::is_same_v<M, bus::InfoReply> || std::is_same_v<M, bus::Heartbeat>) {
          return nullptr;
        } else {
          return &m.id;
        }
      },
      message.message);
  if (const auto* error = std::get_if<bus::ErrorMessage>(&message.message)) count_error(error->code);
  if (request_id != nullptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(std::make_pair(message.client, *request_id));
    if (it == live_.end()) return;  // the client is gone (or never was): nobody to tell
    if (message.terminal) {
      live_.erase(it);
      if (--live_per_client_[message.client] == 0) {
        live_per_client_.erase(message.client);
        loop_->set_probe(message.client, false);
      }
    }
  }
  loop_->send(message.client, bus::encode(message.message));
}

size_t IngressBridge::num_live_requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_.size();
}

void IngressBridge::stop() {
  if (loop_) loop_->stop();
  shards_.clear();
}

}  // namespace tessera
