#pragma once
// Serves a Collectable at http://HOST:PORT/metrics (prometheus-cpp's civetweb Exposer) and turns a failure to bind
// (port in use, bad address) into a tessera::Error instead of prometheus-cpp's CivetException.
#include <memory>
#include <string>

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace tessera {

class MetricsEndpoint {
 public:
  // `host`: an IPv4 address (127.0.0.1, 0.0.0.0); `port` 0 binds an ephemeral port. The endpoint keeps
  // `metrics` alive and serves it until destroyed. Throws tessera::Error naming the address when it cannot listen.
  MetricsEndpoint(const std::string& host, int port, std::shared_ptr<prometheus::Collectable> metrics);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }        // the bound port (resolves 0)
  std::string url() const;                  // http://HOST:PORT/metrics

 private:
  std::string host_;
  int port_ = 0;
  std::shared_ptr<prometheus::Collectable> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace tessera
