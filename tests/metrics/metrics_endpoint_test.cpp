// The /metrics endpoint: serves the exposition over HTTP, and a port in use is a tessera::Error (not an abort).
#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/metrics/metrics_endpoint.hpp"
#include "core/metrics/serving_metrics.hpp"
#include "tests/metrics/exposition.hpp"
#include "tests/metrics/http_client.hpp"

namespace tessera {
namespace {

TEST(MetricsEndpointTest, ServesTheExpositionAndAPortInUseIsAClearError) {
  auto metrics = std::make_shared<ServingMetrics>(ServingMetricsOptions{});
  metrics->record_outcome(RequestOutcome::Length);
  MetricsEndpoint endpoint("127.0.0.1", 0, metrics);
  ASSERT_GT(endpoint.port(), 0);
  EXPECT_EQ(endpoint.url(), "http://127.0.0.1:" + std::to_string(endpoint.port()) + "/metrics");

  try {
    MetricsEndpoint second("127.0.0.1", endpoint.port(), metrics);
    FAIL() << "a second endpoint on port " << endpoint.port() << " started";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("127.0.0.1:" + std::to_string(endpoint.port())), std::string::npos) << message;
    EXPECT_NE(message.find("--metrics-port"), std::string::npos) << message;
  }
  EXPECT_THROW(MetricsEndpoint("127.0.0.1", 70000, metrics), Error);

  // The first endpoint still serves.
  const test::HttpResponse response = test::http_get(endpoint.port(), "/metrics");
  EXPECT_EQ(response.status, 200);
  const test::Exposition e(response.body);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "length"}}), 1);
  EXPECT_EQ(test::http_get(endpoint.port(), "/nothing").status, 404);
  EXPECT_EQ(test::http_get(endpoint.port(), "/metrics?x=1").status, 200);
}

// A client that connects and sends nothing does not block scrapes for longer than the read timeout, and an
// endpoint with an open idle connection still stops promptly.
TEST(MetricsEndpointTest, AnIdleConnectionDoesNotWedgeTheEndpoint) {
  auto metrics = std::make_shared<ServingMetrics>(ServingMetricsOptions{});
  auto endpoint = std::make_unique<MetricsEndpoint>("127.0.0.1", 0, metrics);
  const int idle = test::connect_only(endpoint->port());
  ASSERT_GE(idle, 0);
  EXPECT_EQ(test::http_get(endpoint->port(), "/metrics").status, 200);  // answered once the idle one times out
  test::close_fd(idle);
  endpoint.reset();
}

}  // namespace
}  // namespace tessera
