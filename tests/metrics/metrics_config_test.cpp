// The metrics settings of tessera-server: TOML keys, flags, defaults and validation.
#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/serving/server_config.hpp"
#include "tests/common/error_of.hpp"

namespace tessera {
namespace {

using test::error_of;

TEST(MetricsConfigTest, DefaultsToLoopbackPort9464) {
  const ServerConfig config;
  EXPECT_EQ(config.metrics_port, 9464);
  EXPECT_EQ(config.metrics_host, "127.0.0.1");
}

TEST(MetricsConfigTest, TomlKeysAndFlagsSetIt) {
  ServerConfig config = ServerConfig::from_toml("[server]\nmetrics_port = 0\nmetrics_host = \"0.0.0.0\"\n", "t.toml");
  EXPECT_EQ(config.metrics_port, 0);
  EXPECT_EQ(config.metrics_host, "0.0.0.0");
  EXPECT_EQ(ServerConfig::from_toml(config.to_toml(), "round-trip"), config);

  CLI::App app;
  ServerCommandLine command_line(app);
  std::vector<std::string> args = {"--metrics-host", "127.0.0.2", "--metrics-port", "9500", "--model", "m"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  const ServerConfig flags = command_line.resolve();
  EXPECT_EQ(flags.metrics_port, 9500);
  EXPECT_EQ(flags.metrics_host, "127.0.0.2");
}

TEST(MetricsConfigTest, BadValuesNameTheSetting) {
  ServerConfig config;
  config.model = "m";
  config.metrics_port = 70000;
  EXPECT_NE(error_of([&] { config.validate(); }).find("server.metrics_port (--metrics-port)"), std::string::npos);
  config.metrics_port = -1;
  EXPECT_NE(error_of([&] { config.validate(); }).find("between 0 (off) and 65535"), std::string::npos);
  config.metrics_port = 9464;
  config.metrics_host = "localhost";
  EXPECT_NE(error_of([&] { config.validate(); }).find("server.metrics_host (--metrics-host) must be an IPv4 address"),
            std::string::npos);
  config.metrics_host = "0.0.0.0";
  EXPECT_EQ(error_of([&] { config.validate(); }), "");
  EXPECT_NE(error_of([] { ServerConfig::from_toml("[server]\nmetrics_port = \"9464\"\n", "t.toml"); })
                .find("server.metrics_port must be an integer"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera
