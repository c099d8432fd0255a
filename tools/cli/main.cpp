// tessera-cli: tokenize / detokenize with a tokenizer.json; generation offline on the CPU reference engine or from a
// running tessera-server; server info.
#include <cstdio>
#include <exception>

#include "core/common/error.hpp"
#include "tools/cli/cli_commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Tessera command-line client"};
  app.require_subcommand(1);
  int exit_code = 0;
  tessera::cli::add_tokenize_commands(app, exit_code);
  tessera::cli::add_generate_command(app, exit_code);
  tessera::cli::add_info_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tessera::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
