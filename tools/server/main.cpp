// tessera-server: serve a checkpoint over the ZeroMQ bus until SIGINT/SIGTERM, then stop gracefully (exit 0).
#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "actors/server_runtime.hpp"
#include "core/common/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Tessera LLM server"};
  tessera::ServerCommandLine command_line(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Block the stop signals in every thread (threads inherit the mask) and take them with sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    const tessera::ServerConfig config = command_line.resolve();
    spdlog::set_level(spdlog::level::from_str(config.log_level));
    tessera::ServerRuntime server(config);
    // One line on stdout when ready, for scripts and tests.
    std::printf("ready %s\n", server.endpoint().c_str());
    std::fflush(stdout);
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("{} received", signal == SIGINT ? "SIGINT" : "SIGTERM");
    server.shutdown(std::chrono::milliseconds(config.shutdown_grace_ms));
    if (server.executor_failed()) return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
