#pragma once
// tessera-bench's command line (CLI11): the options, their conflicts and the checks that need no server.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/bench/bench_options.hpp"

namespace tessera::bench {

class BenchCli {
 public:
  BenchCli();
  ~BenchCli();

  // Parses argv. Throws CLI::ParseError for what CLI11 checks (unknown flags, missing --server, conflicting load
  // modes, --help) and tessera::Error for values CLI11 cannot judge (length specs, --slo, sweep lists), each with
  // a message naming the option.
  BenchOptions parse(int argc, const char* const* argv);
  // Prints a CLI11 error (or the help) and returns the exit code, like CLI::App::exit.
  int exit(const CLI::ParseError& error);

 private:
  struct Raw;
  std::unique_ptr<Raw> raw_;
  CLI::App app_;
};

}  // namespace tessera::bench
