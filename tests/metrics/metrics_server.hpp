#pragma once
// For the tests that run a real tessera-server with metrics: a tiny random model in a temporary folder, the
// server on a fresh ipc endpoint with its metrics endpoint on a free loopback port, and scrapes of /metrics.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/model/random_checkpoint.hpp"
#include "tests/e2e/server_process.hpp"
#include "tests/metrics/exposition.hpp"
#include "tests/metrics/http_client.hpp"

namespace tessera::test {

// A tiny random checkpoint (with its synthesized tokenizer) that is removed with the object.
class TinyModel {
 public:
  explicit TinyModel(const std::string& tag)
      : dir_(std::filesystem::temp_directory_path() / ("tessera_" + tag + "_" + std::to_string(getpid()))) {
    RandomCheckpointOptions options;
    options.config = model_preset("tiny");
    options.dtype = DType::F32;
    options.seed = 3;
    write_random_checkpoint(dir_, options);
  }
  ~TinyModel() { std::filesystem::remove_all(dir_); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

struct MetricsServer {
  std::unique_ptr<ServerProcess> process;
  int metrics_port = 0;

  Exposition scrape() const {
    const HttpResponse response = http_get(metrics_port, "/metrics");
    if (response.status != 200) throw std::runtime_error("GET /metrics: HTTP " + std::to_string(response.status));
    return Exposition(response.body);
  }
};

// Starts tessera-server on `model` with `extra` flags and metrics on a free port; a port taken between the choice
// and the bind fails the start, which is retried with another port.
inline MetricsServer start_metrics_server(const std::filesystem::path& model, const std::string& tag,
                                          const std::vector<std::string>& extra = {}) {
  const std::string bin = TESSERA_BIN_DIR;
  for (int attempt = 0;; ++attempt) {
    const int port = free_tcp_port();
    const std::string endpoint = "ipc://" + (std::filesystem::temp_directory_path() /
                                             ("tessera_" + tag + "_" + std::to_string(getpid()) + "_" +
                                              std::to_string(attempt) + ".sock"))
                                                .string();
    std::vector<std::string> argv = {bin + "/tessera-server", "--model", model.string(), "--listen", endpoint,
                                     "--log-level", "warn", "--metrics-port", std::to_string(port)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    try {
      return MetricsServer{std::make_unique<ServerProcess>(argv), port};
    } catch (const std::exception&) {
      if (attempt == 2) throw;
    }
  }
}

}  // namespace tessera::test
