// tessera-cli generate: offline generation on the CPU reference engine, or through a server (server_commands.cpp).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/common/error.hpp"
#include "core/generation/offline_generator.hpp"
#include "core/model/llama_weights.hpp"
#include "core/tokenizer/tokenizer.hpp"
#include "tools/cli/cli_commands.hpp"
#include "tools/cli/id_list.hpp"

namespace tessera::cli {

namespace {

struct GenerateOptions {
  std::string model_dir;
  std::string server;
  std::optional<std::string> prompt;
  std::optional<std::string> ids;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  std::string stop_token_ids;
  bool print_ids = false;
  bool no_special_tokens = false;
};

void run_generate(const GenerateOptions& options) {
  if (!options.server.empty()) {
    ServerGenerateRequest request;
    request.prompt = options.prompt;
    if (options.ids) request.ids = parse_id_list(*options.ids, "--ids");
    request.params = options.sampling;
    request.params.seed = options.seed;
    if (!options.stop_token_ids.empty()) {
      request.params.stop_token_ids = parse_id_list(options.stop_token_ids, "--stop-token-ids");
    }
    request.print_ids = options.print_ids;
    run_server_generate(options.server, request);
    return;
  }
  auto weights = std::make_shared<const LlamaWeights>(LlamaWeights::load(options.model_dir));
  std::shared_ptr<const Tokenizer> tokenizer;
  if (auto loaded = Tokenizer::load_dir(options.model_dir)) tokenizer = std::make_shared<const Tokenizer>(*loaded);

  std::vector<int32_t> prompt;
  if (options.prompt) {
    if (!tokenizer) {
      throw Error(options.model_dir + " has no tokenizer.json: give the prompt as token ids with --ids");
    }
    prompt = tokenizer->encode(*options.prompt, !options.no_special_tokens);
  } else {
    prompt = parse_id_list(*options.ids, "--ids");
  }
  SamplingParams params = options.sampling;
  params.seed = options.seed;
  if (!options.stop_token_ids.empty()) params.stop_token_ids = parse_id_list(options.stop_token_ids, "--stop-token-ids");
  if (!params.stop.empty() && !tokenizer) throw Error("--stop needs a tokenizer; this checkpoint has none");

  OfflineGenerator generator(weights, tokenizer);
  const GenerationResult result = generator.generate(prompt, params, [](int32_t, std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  if (tokenizer) std::printf("\n");
  if (options.print_ids || !tokenizer) std::printf("%s\n", format_comma_list(result.token_ids).c_str());

  std::fflush(stdout);
  const double decode_s = result.total_s - result.time_to_first_token_s;
  const size_t decoded = result.token_ids.size() - 1;
  std::fprintf(stderr, "prompt %zu tokens, generated %zu, finish %s, TTFT %.1f ms, ITL %.2f ms, %.1f tok/s\n",
               prompt.size(), result.token_ids.size(), finish_reason_name(result.finish_reason),
               result.time_to_first_token_s * 1e3, decoded ? decode_s / decoded * 1e3 : 0.0,
               result.total_s > 0 ? result.token_ids.size() / result.total_s : 0.0);
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Generate a completion offline from a checkpoint folder (--model) or from a server (--server)");
  auto* model_option = cmd->add_option("--model", options->model_dir, "Hugging Face checkpoint folder (offline)")
                           ->check(CLI::ExistingDirectory);
  auto* server_option = cmd->add_option("--server", options->server, "tessera-server endpoint, e.g. tcp://127.0.0.1:5555");
  model_option->excludes(server_option);
  server_option->excludes(model_option);
  auto* prompt_option = cmd->add_option("--prompt", options->prompt, "Prompt text (needs the checkpoint's tokenizer)");
  auto* ids_option = cmd->add_option("--ids", options->ids, "Prompt token ids, e.g. 1,2,3");
  prompt_option->excludes(ids_option);
  ids_option->excludes(prompt_option);
  cmd->add_option("--max-tokens", options->sampling.max_tokens, "Most tokens to generate")->required();
  cmd->add_option("--temperature", options->sampling.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", options->sampling.top_k, "Keep the k most likely tokens (-1 = off)")->capture_default_str();
  cmd->add_option("--top-p", options->sampling.top_p, "Nucleus probability mass (1 = off)")->capture_default_str();
  cmd->add_option("--seed", options->seed, "Sampling seed: same seed, same output");
  cmd->add_option("--stop", options->sampling.stop, "Stop string (repeatable); not included in the output");
  cmd->add_option("--stop-token-ids", options->stop_token_ids, "Token ids that end generation, e.g. 128009,128001");
  cmd->add_flag("--ignore-eos", options->sampling.ignore_eos, "Keep generating past the end-of-sequence token");
  cmd->add_flag("--print-ids", options->print_ids, "Print the generated ids, comma-separated, as the last line");
  cmd->add_flag("--no-special-tokens", options->no_special_tokens, "Encode --prompt without the BOS/template tokens");
  cmd->callback([options, &exit_code] {
    if (!options->prompt && !options->ids) throw CLI::RequiredError("--prompt or --ids");
    if (options->model_dir.empty() && options->server.empty()) throw CLI::RequiredError("--model or --server");
    run_generate(*options);
    exit_code = 0;
  });
}

}  // namespace tessera::cli
