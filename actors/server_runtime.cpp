#include "actors/server_runtime.hpp"

#include <cctype>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/caf_types.hpp"
#include "actors/executor_actor.hpp"
#include "actors/ingress_bridge.hpp"
#include "actors/kv_manager_actor.hpp"
#include "actors/runtime_gauges.hpp"
#include "actors/scheduler_actor.hpp"
#include "actors/tokenizer_actor.hpp"
#include "core/common/error.hpp"
#include "core/metrics/metrics_endpoint.hpp"
#include "core/metrics/serving_metrics.hpp"
#include "core/model/llama_weights.hpp"
#include "core/serving/cpu_executor.hpp"
#if TESSERA_WITH_CUDA
#include "core/cuda/cuda_executor.hpp"
#endif
#include "core/tokenizer/tokenizer.hpp"

namespace tessera {

namespace {

// Waits until `done()` or `timeout`; polls every few milliseconds (shutdown only, never on the serving path).
template <class Done>
bool wait_until(Done done, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The executor for config.device: the CPU reference engine (FP32), or a CUDA GPU (BF16) in builds with CUDA.
std::shared_ptr<Executor> make_executor(const ServerConfig& config, const std::string& model_name) {
  if (config.device == "cpu") {
    auto weights = std::make_shared<const LlamaWeights>(LlamaWeights::load(config.model));
    const int num_blocks = config.kv_cache_blocks > 0 ? config.kv_cache_blocks
                                                      : CpuExecutor::num_blocks_for_budget(weights->config, config.block_size,
                                                                                           config.kv_cache_bytes);
    return std::make_shared<CpuExecutor>(weights, num_blocks, config.block_size, model_name);
  }
  if (config.device == "cuda" || config.device.rfind("cuda:", 0) == 0) {
#if TESSERA_WITH_CUDA
    CudaExecutorOptions options;
    options.device = config.device == "cuda" ? 0 : std::stoi(config.device.substr(5));
    options.gpu_memory_utilization = config.gpu_memory_utilization;
    options.block_size = config.block_size;
    options.kv_cache_blocks = config.kv_cache_blocks;
    options.max_num_batched_tokens = config.max_num_batched_tokens;
    options.max_num_seqs = config.max_num_seqs;
    options.model_name = model_name;
    return std::make_shared<CudaExecutor>(config.model, options);
#else
    throw Error("device '" + config.device + "': this build has no CUDA support (configure with the CUDA toolkit)");
#endif
  }
  throw Error("unknown device '" + config.device + "' (cpu, cuda or cuda:N)");
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// The metrics of this server: model labels from the executor, every bus error code, live load from the gauges.
std::shared_ptr<ServingMetrics> make_metrics(const ExecutorInfo& executor, const std::string& model_name,
                                             std::shared_ptr<const RuntimeGauges> gauges) {
  ServingMetricsOptions options;
  options.model = model_name;
  options.dtype = lower(executor.dtype);
  options.device = executor.device;
  options.kv_blocks_total = executor.num_blocks;
  for (int code = 0; code <= static_cast<int>(bus::ErrorCode::ShuttingDown); ++code) {
    options.error_codes.push_back(bus::error_code_name(static_cast<bus::ErrorCode>(code)));
  }
  options.live_load = [gauges] {
    return LiveLoad{gauges->requests_running, gauges->requests_waiting, gauges->kv_blocks_used,
                    gauges->kv_blocks_reserved};
  };
  return std::make_shared<ServingMetrics>(std::move(options));
}

}  // namespace

struct ServerRuntime::Impl {
  ServerConfig config;
  std::shared_ptr<RuntimeGauges> gauges = std::make_shared<RuntimeGauges>();
  std::shared_ptr<ServingMetrics> metrics;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  std::shared_ptr<IngressBridge> bridge;
  caf::actor_system_config caf_config;
  std::unique_ptr<caf::actor_system> system;
  caf::actor executor, kv_manager, scheduler;
  std::vector<caf::actor> shards;
  bool stopped = false;

  void stop_actors() {
    for (caf::actor* a : {&scheduler, &kv_manager, &executor}) {
      if (*a) caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
    }
    for (caf::actor& shard : shards) caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
    // Drop every strong handle before the actor system goes, or its destructor waits forever.
    scheduler = kv_manager = executor = caf::actor();
    shards.clear();
    system.reset();
  }
};

ServerRuntime::ServerRuntime(const ServerConfig& config) : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  const LlamaConfig model = LlamaConfig::load(config.model);
  std::shared_ptr<const Tokenizer> tokenizer;
  if (auto loaded = Tokenizer::load_dir(config.model)) tokenizer = std::make_shared<const Tokenizer>(*loaded);
  const int32_t max_model_len = config.effective_max_model_len(model);
  const std::string model_name = std::filesystem::path(config.model).lexically_normal().filename().string();
  std::shared_ptr<Executor> executor = make_executor(config, model_name);
  const ExecutorInfo executor_info = executor->info();
  const int num_blocks = executor_info.num_blocks;
  impl_->metrics = make_metrics(executor_info, model_name, impl_->gauges);

  std::vector<int32_t> eos = model.eos_token_ids;
  if (tokenizer) {
    for (int32_t id : tokenizer->eos_ids()) eos.push_back(id);
  }
  SchedulerConfig scheduler_config;
  scheduler_config.max_num_batched_tokens = config.max_num_batched_tokens;
  scheduler_config.max_num_seqs = config.max_num_seqs;
  scheduler_config.max_waiting_requests = config.max_waiting_requests;
  scheduler_config.max_model_len = max_model_len;
  scheduler_config.block_size = config.block_size;
  scheduler_config.seed = config.seed;
  const std::optional<CapacityPolicy> capacity_policy = parse_capacity_policy(config.capacity_policy);
  if (!capacity_policy) {
    throw Error("scheduler.capacity_policy must be max_utilization or guaranteed_no_evict (got '" +
                config.capacity_policy + "')");
  }
  scheduler_config.capacity_policy = *capacity_policy;

  // Two CAF worker threads: the event-based actors are light; the executor runs on its own (detached) thread.
  impl_->caf_config.set("scheduler.max-threads", 2);
  impl_->caf_config.set("logger.verbosity", caf::atom("quiet"));
  impl_->system = std::make_unique<caf::actor_system>(impl_->caf_config);
  caf::actor_system& system = *impl_->system;
  impl_->executor = spawn_executor_actor(system, executor);
  impl_->kv_manager = spawn_kv_manager_actor(system, num_blocks, config.block_size, impl_->executor, impl_->gauges);
  impl_->scheduler = spawn_scheduler_actor(system, scheduler_config, num_blocks, eos, impl_->kv_manager,
                                           impl_->gauges, impl_->metrics);

  bus::InfoReply info;
  info.model = model_name;
  info.vocab_size = model.vocab_size;
  info.max_model_len = max_model_len;
  info.kv_blocks = num_blocks;
  info.block_size = config.block_size;
  info.kv_capacity_tokens = executor_info.capacity_tokens;
  info.max_num_seqs = config.max_num_seqs;
  info.ready = true;
  auto gauges = impl_->gauges;
  impl_->bridge = std::make_shared<IngressBridge>(
      [info, gauges] {
        bus::InfoReply reply = info;
        reply.kv_blocks_used = gauges->kv_blocks_used;
        reply.requests_running = gauges->requests_running;
        reply.requests_waiting = gauges->requests_waiting;
        return reply;
      },
      impl_->metrics);

  ModelLimits limits{model.vocab_size, max_model_len, eos};
  for (int i = 0; i < config.tokenizer_threads; ++i) {
    impl_->shards.push_back(
        spawn_tokenizer_actor(system, static_cast<uint32_t>(i), tokenizer, limits, impl_->scheduler, impl_->bridge,
                              impl_->metrics));
  }
  caf::anon_send(impl_->scheduler, ShardList{impl_->shards});

  bus::ZmqServerConfig bus_config;
  bus_config.endpoint = config.listen;
  bus_config.limits.max_frame_bytes = static_cast<size_t>(config.max_frame_bytes);
  bus_config.zmtp_heartbeat_timeout_ms = std::max(300, config.client_timeout_ms / 2);
  try {
    impl_->bridge->start(bus_config, impl_->shards);
    // After the bus: a busy bus endpoint is reported first. A busy metrics port is an error too (0 = off).
    if (config.metrics_port != 0) {
      impl_->metrics_endpoint = std::make_unique<MetricsEndpoint>(config.metrics_host, config.metrics_port,
                                                                  impl_->metrics);
    }
  } catch (...) {
    if (impl_->bridge) impl_->bridge->stop();
    impl_->bridge.reset();
    impl_->stop_actors();
    throw;
  }
  spdlog::info("serving {} on {} ({} KV blocks x {} tokens = {} tokens, max_model_len {}, {} tokenizer shards, {})",
               model_name, impl_->bridge->endpoint(), num_blocks, config.block_size, executor_info.capacity_tokens,
               max_model_len, config.tokenizer_threads, tokenizer ? "tokenizer loaded" : "no tokenizer: ids only");
  if (impl_->metrics_endpoint) spdlog::info("metrics on {}", impl_->metrics_endpoint->url());
}

ServerRuntime::~ServerRuntime() { shutdown(std::chrono::milliseconds(0)); }

bool ServerRuntime::executor_failed() const { return impl_->gauges->executor_failed; }

std::string ServerRuntime::endpoint() const { return impl_->bridge ? impl_->bridge->endpoint() : std::string(); }

std::string ServerRuntime::metrics_url() const {
  return impl_->metrics_endpoint ? impl_->metrics_endpoint->url() : std::string();
}

void ServerRuntime::shutdown(std::chrono::milliseconds grace) {
  if (impl_->stopped) return;
  impl_->stopped = true;
  IngressBridge& bridge = *impl_->bridge;
  bridge.set_draining(true);
  const size_t in_flight = bridge.num_live_requests();
  if (in_flight > 0) spdlog::info("shutting down: {} request(s) in flight, grace {} ms", in_flight, grace.count());
  if (!wait_until([&] { return bridge.num_live_requests() == 0; }, grace)) {
    caf::anon_send(impl_->scheduler, shutdown_atom::value);
    wait_until([&] { return bridge.num_live_requests() == 0; }, std::chrono::milliseconds(2000));
  }
  bridge.stop();
  impl_->metrics_endpoint.reset();
  impl_->stop_actors();
  impl_->bridge.reset();
  spdlog::info("stopped");
}

}  // namespace tessera
