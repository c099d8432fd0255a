#pragma once
// Tessera's server: loads the model, sizes the KV cache, starts the actor system (executor, KV-block manager,
// scheduler, tokenizer shards), the ZeroMQ ingress and the Prometheus metrics endpoint, and shuts it all down in
// order.
#include <chrono>
#include <memory>
#include <string>

#include "core/serving/server_config.hpp"

namespace tessera {

class ServerRuntime {
 public:
  // Everything is up (endpoint bound) when the constructor returns. Throws tessera::Error on a bad model, config
  // or endpoint.
  explicit ServerRuntime(const ServerConfig& config);
  ~ServerRuntime();
  ServerRuntime(const ServerRuntime&) = delete;
  ServerRuntime& operator=(const ServerRuntime&) = delete;

  std::string endpoint() const;
  // http://HOST:PORT/metrics, or empty when metrics_port is 0.
  std::string metrics_url() const;

  // True once the executor reported a fatal step (see StepResult::fatal); the process should then exit non-zero.
  bool executor_failed() const;

  // Graceful stop: refuse new requests, give running ones `grace` to finish, end the rest with shutting_down
  // errors, flush the replies, stop the bus and the actors. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
