#pragma once
// A stand-in for tessera-server in tessera-bench's tests: a real bus endpoint (ZmqServerLoop) that accepts submits
// and, every `step`, streams the next chunk of made-up token ids to each live request, then a final. It records
// what it was asked, so tests can compare the tool's view with the server's.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "bus/protocol.hpp"
#include "bus/zmq_server.hpp"

namespace tessera::test {

class FakeBenchServer {
 public:
  struct Options {
    int tokens_per_chunk = 1;                   // ids per "tokens" message
    std::chrono::microseconds step{300};        // time between chunks
    int reject_every = 0;                       // every k-th submit gets error "overloaded" (0 = never)
    bool silent = false;                        // accept, then never answer again
  };
  struct Submitted {
    std::string id;
    size_t prompt_ids = 0;
    int32_t max_tokens = 0;
    bool ignore_eos = false;
  };

  FakeBenchServer(const std::string& endpoint, Options options) : options_(options) {
    bus::ZmqServerConfig config;
    config.endpoint = endpoint;
    bus::ZmqServerCallbacks callbacks;
    callbacks.on_message = [this](const bus::ClientId& client, bus::ClientMessage message) {
      on_message(client, std::move(message));
    };
    callbacks.on_client_lost = [](const bus::ClientId&) {};
    loop_ = std::make_unique<bus::ZmqServerLoop>(config, callbacks);
    stepper_ = std::thread([this] { step_loop(); });
  }
  ~FakeBenchServer() {
    stop_ = true;
    stepper_.join();
    loop_->stop();
  }

  std::vector<Submitted> submitted() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return submitted_;
  }
  size_t max_live() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_live_;
  }
  int64_t tokens_sent() const { return tokens_sent_; }

 private:
  struct Live {
    bus::ClientId client;
    int32_t remaining = 0;
    int32_t generated = 0;
    int32_t prompt = 0;
  };

  void on_message(const bus::ClientId& client, bus::ClientMessage message) {
    if (std::holds_alternative<bus::InfoRequest>(message)) {
      bus::InfoReply info;
      info.model = "fake";
      info.vocab_size = 1000;
      info.max_model_len = 4096;
      info.ready = true;
      loop_->send(client, bus::encode(info));
      return;
    }
    auto* submit = std::get_if<bus::SubmitRequest>(&message);
    if (!submit) return;
    std::lock_guard<std::mutex> lock(mutex_);
    submitted_.push_back({submit->id, submit->prompt_ids ? submit->prompt_ids->size() : 0, submit->params.max_tokens,
                          submit->params.ignore_eos});
    if (options_.reject_every > 0 && submitted_.size() % static_cast<size_t>(options_.reject_every) == 0) {
      loop_->send(client, bus::encode(bus::ErrorMessage{submit->id, bus::ErrorCode::Overloaded, "queue full"}));
      return;
    }
    const int32_t prompt = static_cast<int32_t>(submitted_.back().prompt_ids);
    loop_->send(client, bus::encode(bus::Accepted{submit->id, prompt}));
    if (options_.silent) return;
    live_[submit->id] = Live{client, submit->params.max_tokens, 0, prompt};
    max_live_ = std::max(max_live_, live_.size());
  }

  void step_loop() {
    while (!stop_) {
      std::this_thread::sleep_for(options_.step);
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = live_.begin(); it != live_.end();) {
        Live& l = it->second;
        bus::TokenChunk chunk{it->first, {}, ""};
        for (int i = 0; i < options_.tokens_per_chunk && l.remaining > 0; ++i, --l.remaining, ++l.generated)
          chunk.ids.push_back(l.generated % 1000);
        tokens_sent_ += static_cast<int64_t>(chunk.ids.size());
        loop_->send(l.client, bus::encode(chunk));
        if (l.remaining == 0) {
          bus::FinalMessage final;
          final.id = it->first;
          final.finish_reason = bus::FinishReason::Length;
          final.usage = {l.prompt, l.generated};
          loop_->send(l.client, bus::encode(final));
          it = live_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  Options options_;
  std::unique_ptr<bus::ZmqServerLoop> loop_;
  mutable std::mutex mutex_;
  std::map<std::string, Live> live_;
  std::vector<Submitted> submitted_;
  size_t max_live_ = 0;
  std::atomic<int64_t> tokens_sent_{0};
  std::atomic<bool> stop_{false};
  std::thread stepper_;
};

}  // namespace tessera::test
