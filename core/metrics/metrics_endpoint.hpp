#pragma once
// Serves a Collectable at http://HOST:PORT/metrics in Prometheus's text format (version 0.0.4), one small HTTP/1.1
// responder on its own thread. Not prometheus-cpp's civetweb Exposer: civetweb creates its threads with 100 KB stacks,
// and a process that links cuBLAS (94 KB of static thread-local storage in libcublasLt) cannot create such threads,
// so every CUDA build of tessera-server failed to start its endpoint. Scrapes are rare and small: one connection at a
// time, each answered and closed.
#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace tessera {

class MetricsEndpoint {
 public:
  // `host`: an IPv4 address (127.0.0.1, 0.0.0.0); `port` 0 binds an ephemeral port. The endpoint keeps
  // `metrics` alive and serves it until destroyed. Throws tessera::Error naming the address when it cannot listen.
  MetricsEndpoint(const std::string& host, int port, std::shared_ptr<prometheus::Collectable> metrics);
  ~MetricsEndpoint();  // stops accepting and joins the thread (within ~0.1 s)
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }  // the bound port (resolves 0)
  std::string url() const;            // http://HOST:PORT/metrics

 private:
  void serve();
  void answer(int connection);

  std::string host_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: the destructor's stop signal
  std::shared_ptr<prometheus::Collectable> metrics_;
  std::thread thread_;
};

}  // namespace tessera
