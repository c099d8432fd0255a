#pragma once
// The subcommands of tessera-cli; each registers its options on a CLI11 app and runs when chosen.
#include <CLI/CLI.hpp>

namespace tessera::cli {

// Each `add_*` registers a subcommand on `app`; the callback runs it and stores the process exit code in `exit_code`.
void add_tokenize_commands(CLI::App& app, int& exit_code);
void add_generate_command(CLI::App& app, int& exit_code);

}  // namespace tessera::cli
