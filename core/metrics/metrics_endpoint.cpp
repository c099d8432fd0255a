#include "core/metrics/metrics_endpoint.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include "core/common/error.hpp"

namespace tessera {

MetricsEndpoint::MetricsEndpoint(const std::string& host, int port, std::shared_ptr<prometheus::Collectable> metrics)
    : host_(host), metrics_(std::move(metrics)) {
  const std::string address = host + ":" + std::to_string(port);
  if (port < 0 || port > 65535) throw Error("metrics: port " + std::to_string(port) + " is out of range (0..65535)");
  try {
    // One serving thread: scrapes are rare and cheap.
    exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception&) {  // CivetException ("null context ..."): the address cannot be bound
    throw Error("metrics: cannot listen on " + address +
                ": the port is in use or the address is not one of this machine's; choose another port with "
                "--metrics-port, or 0 to turn the endpoint off");
  }
  const std::vector<int> ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? port : ports.front();
  exposer_->RegisterCollectable(metrics_);
}

MetricsEndpoint::~MetricsEndpoint() = default;

std::string MetricsEndpoint::url() const { return "http://" + host_ + ":" + std::to_string(port_) + "/metrics"; }

}  // namespace tessera
