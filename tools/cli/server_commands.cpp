// tessera-cli's server path: `generate --server` streams a completion from a running tessera-server, and
// `info --server` reports the server's model and capacity once it is ready.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bus/client.hpp"
#include "core/common/error.hpp"
#include "tools/cli/cli_commands.hpp"
#include "tools/cli/id_list.hpp"

namespace tessera::cli {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

void run_server_generate(const std::string& endpoint, const ServerGenerateRequest& request) {
  bus::Client client(endpoint);
  bus::SubmitRequest submit;
  submit.id = "cli-" + std::to_string(Clock::now().time_since_epoch().count());
  if (request.prompt) {
    submit.prompt = *request.prompt;
  } else {
    submit.prompt_ids = request.ids;
  }
  submit.params = request.params;
  std::vector<int32_t> ids;
  std::vector<Clock::time_point> arrivals;  // one per chunk: the client-side view of TTFT and ITL
  const auto start = Clock::now();
  const bus::FinalMessage final = client.generate(submit, [&](const bus::TokenChunk& chunk) {
    arrivals.push_back(Clock::now());
    ids.insert(ids.end(), chunk.ids.begin(), chunk.ids.end());
    std::fwrite(chunk.text.data(), 1, chunk.text.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  if (request.print_ids) std::printf("%s\n", format_comma_list(ids).c_str());
  std::fflush(stdout);
  const double ttft_ms = arrivals.empty() ? 0.0 : ms_between(start, arrivals.front());
  const double itl_ms = arrivals.size() > 1 ? ms_between(arrivals.front(), arrivals.back()) / (arrivals.size() - 1) : 0.0;
  std::fprintf(stderr,
               "prompt %d tokens, generated %d, finish %s, TTFT %.1f ms, ITL %.2f ms (client side); "
               "server: queue %.1f ms, TTFT %.1f ms, E2E %.1f ms\n",
               final.usage.prompt_tokens, final.usage.completion_tokens, bus::finish_reason_name(final.finish_reason),
               ttft_ms, itl_ms, final.timings.queue_s * 1e3, final.timings.ttft_s * 1e3, final.timings.e2e_s * 1e3);
}

void add_info_command(CLI::App& app, int& exit_code) {
  auto endpoint = std::make_shared<std::string>();
  auto timeout_ms = std::make_shared<int>(2000);
  CLI::App* cmd = app.add_subcommand("info", "Print a running server's model and capacity (exit 0 once it is ready)");
  cmd->add_option("--server", *endpoint, "Server endpoint, e.g. tcp://127.0.0.1:5555")->required();
  cmd->add_option("--timeout-ms", *timeout_ms, "How long to wait for the answer")->capture_default_str();
  cmd->callback([endpoint, timeout_ms, &exit_code] {
    bus::Client client(*endpoint);
    bus::InfoReply info;
    try {
      info = client.info(std::chrono::milliseconds(*timeout_ms));
    } catch (const Error& e) {
      throw Error("no answer from " + *endpoint + ": " + e.what());
    }
    std::printf("model: %s\nready: %s\nvocab_size: %d\nmax_model_len: %d\nkv_blocks: %d\nblock_size: %d\n"
                "kv_capacity_tokens: %lld\nmax_num_seqs: %d\nkv_blocks_used: %d\nrequests_running: %d\n"
                "requests_waiting: %d\nprotocol_version: %d\n",
                info.model.c_str(), info.ready ? "true" : "false", info.vocab_size, info.max_model_len, info.kv_blocks,
                info.block_size, static_cast<long long>(info.kv_capacity_tokens), info.max_num_seqs,
                info.kv_blocks_used, info.requests_running, info.requests_waiting, info.protocol_version);
    exit_code = info.ready ? 0 : 1;
  });
}

}  // namespace tessera::cli
