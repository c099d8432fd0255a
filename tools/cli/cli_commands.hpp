#pragma once
// The subcommands of tessera-cli; each registers its options on a CLI11 app and runs when chosen.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/sampling/sampling_params.hpp"

namespace tessera::cli {

// A generate request for a running server (`generate --server`).
struct ServerGenerateRequest {
  std::optional<std::string> prompt;  // sent as text: the server tokenizes
  std::vector<int32_t> ids;           // used when prompt is absent
  SamplingParams params;
  bool print_ids = false;
};
// Streams the completion to stdout; timings on stderr. Throws tessera::Error with the server's error code.
void run_server_generate(const std::string& endpoint, const ServerGenerateRequest& request);

// Each `add_*` registers a subcommand on `app`; the callback runs it and stores the process exit code in `exit_code`.
void add_tokenize_commands(CLI::App& app, int& exit_code);
void add_generate_command(CLI::App& app, int& exit_code);
void add_info_command(CLI::App& app, int& exit_code);

}  // namespace tessera::cli
