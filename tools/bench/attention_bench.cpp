// tessera-attention-bench: launch_paged_attention alone, at the Llama-3.1-8B attention shape (32 query heads, 8 kv
// heads, head_dim 128, BF16, block size 16). Random BF16 K/V cache; one JSON object per case.
//
// Decode ("bench": "paged_attention_decode"): batch x context in {1x128, 1x130, 1x2048, 1x8192, 8x1000, 64x1000,
// 256x1000, 256x2000, 256x1500; the 256-sequence cases in both large-grid block shapes of
// kernels/attention_tuning.hpp}, and two probes of the cache's access pattern at 256 x 1000's bytes: one kv head
// per sequence (contiguous blocks) and unshuffled block tables. Random (shuffled) block tables, every sequence at
// the same context. Each timed run is one launch (decode kernel + split combine), timed with CUDA events after an L2
// flush, median of 20 after 5 warm-up runs. Each case runs twice: max_context_len = the context, and the bucket a
// captured CUDA graph of the executor passes (the power of two above it, at least 512). Reported: ms per launch, GB
// read (K + V bytes of the visible contexts) and the effective TB/s. Then, under the bucket, a chain of 32 launches
// back to back (one per layer, each over its own cache blocks while they fit), timed as a whole after an L2 flush,
// per launch: launched normally (chain_ms) and with programmatic dependent launch (chain_pdl_ms), where each launch
// overlaps the end of the previous one as in a decode step.
//
// Prefill ("bench": "paged_attention_prefill"): one launch over prompts (query_len > 1), timed the same way: one
// 2048-token prompt (the TTFT case), one of 1000, and the prompt part of a served 1000/1000 mixed step (792 + 1000
// tokens), each at every prefill occupancy of kernels/attention_tuning.hpp (2 and 3 blocks per SM). Reported: ms,
// the causal GFLOP done (QK^T + PV over the visible keys) and TFLOP/s.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/paged_attention.hpp"

namespace {

constexpr int kHeads = 32;
constexpr int kKvHeads = 8;
constexpr int kHeadDim = 128;
constexpr int kBlockSize = 16;
constexpr int kWarmup = 5;
constexpr int kRepeat = 20;
constexpr int kChainLayers = 32;
constexpr int kMinGraphContext = 512;  // the executor's smallest graph context bucket (GraphBuckets::min_context)
constexpr size_t kL2FlushBytes = size_t{256} << 20;  // several times the H100's 50 MB L2

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

// Owning device allocation (bytes).
class Device {
 public:
  Device(size_t bytes, const char* what) {
    if (bytes) check(cudaMalloc(&ptr_, bytes), what);
  }
  ~Device() { cudaFree(ptr_); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

// Fills `count` bf16 values with a repeated random 8 MB pattern (generating gigabytes on the host is slow; the
// values only need to be non-trivial).
void fill_random(__nv_bfloat16* device, size_t count, uint32_t seed) {
  std::vector<__nv_bfloat16> chunk(std::min<size_t>(count, size_t{4} << 20));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& v : chunk) v = __float2bfloat16(dist(rng));
  for (size_t done = 0; done < count; done += chunk.size()) {
    const size_t n = std::min(chunk.size(), count - done);
    check(cudaMemcpy(device + done, chunk.data(), n * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice), "fill");
  }
}

int next_power_of_two(int v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

struct Case {
  int batch;
  int context;
  int heads = kHeads;
  int kv_heads = kKvHeads;
  bool shuffled = true;  // false: each sequence's blocks consecutive in the cache
  // The decode kernel's block shape where the grid is many waves deep (256 sequences).
  tessera::kernels::LargeGridBlocks large_grid_blocks = tessera::kernels::LargeGridBlocks::kFourWarps;
};

struct Cache {
  int64_t elements;  // of K (and of V): the block count depends on a case's kv heads
  const __nv_bfloat16* key;
  const __nv_bfloat16* value;
};

struct Timing {
  double ms = 0;             // one launch, median
  double chain_ms = 0;       // per launch of a 32-launch chain, median
  double chain_pdl_ms = 0;   // the same with programmatic dependent launch
};

// Median over kRepeat timed runs (each after an L2 flush; kWarmup untimed runs first) of `launches` calls
// launch(0) .. launch(launches - 1) on `stream`, per call, in ms.
template <class Launch>
double median_launch_ms(cudaStream_t stream, const Device& flush, int launches, Launch&& launch) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int i = 0; i < kWarmup; ++i) launch(i % launches);
  std::vector<float> times;
  for (int i = 0; i < kRepeat; ++i) {
    check(cudaMemsetAsync(flush.as<void>(), i & 0xff, kL2FlushBytes, stream), "L2 flush");
    check(cudaEventRecord(start, stream), "record");
    for (int l = 0; l < launches; ++l) launch(l);
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    times.push_back(ms / static_cast<float>(launches));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return static_cast<double>(times[times.size() / 2]);
}

// Milliseconds of decode launches for `batch` sequences at `context` tokens under `max_context_len`.
Timing time_case(const Case& c, int max_context_len, const Cache& cache, const Device& flush, cudaStream_t stream,
                 std::mt19937& rng, bool chains) {
  const int blocks_per_seq = (max_context_len + kBlockSize - 1) / kBlockSize;  // row stride of the tables
  const int used_blocks = (c.context + kBlockSize - 1) / kBlockSize;
  const int64_t need = int64_t{c.batch} * used_blocks;  // cache blocks one launch reads
  const int64_t num_blocks = cache.elements / (int64_t{kBlockSize} * c.kv_heads * kHeadDim);
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  if (c.shuffled) std::shuffle(ids.begin(), ids.end(), rng);
  // Layer l's tables: their own blocks while kChainLayers * need fit the cache, else shared.
  const size_t table_size = static_cast<size_t>(c.batch) * blocks_per_seq;
  std::vector<int32_t> tables(kChainLayers * table_size, 0);
  for (int l = 0; l < kChainLayers; ++l) {
    const int64_t first = kChainLayers * need <= num_blocks ? l * need : 0;
    for (int s = 0; s < c.batch; ++s)
      for (int b = 0; b < used_blocks; ++b)
        tables[l * table_size + static_cast<size_t>(s) * blocks_per_seq + b] =
            ids[static_cast<size_t>(first + int64_t{s} * used_blocks + b)];
  }
  std::vector<int32_t> query_start(c.batch), query_len(c.batch, 1), context_len(c.batch, c.context);
  std::iota(query_start.begin(), query_start.end(), 0);

  Device d_tables(tables.size() * sizeof(int32_t), "tables"), d_meta(3 * c.batch * sizeof(int32_t), "metadata");
  check(cudaMemcpy(d_tables.as<int32_t>(), tables.data(), tables.size() * sizeof(int32_t), cudaMemcpyHostToDevice),
        "upload tables");
  int32_t* meta = d_meta.as<int32_t>();
  check(cudaMemcpy(meta, query_start.data(), c.batch * sizeof(int32_t), cudaMemcpyHostToDevice), "upload");
  check(cudaMemcpy(meta + c.batch, query_len.data(), c.batch * sizeof(int32_t), cudaMemcpyHostToDevice), "upload");
  check(cudaMemcpy(meta + 2 * c.batch, context_len.data(), c.batch * sizeof(int32_t), cudaMemcpyHostToDevice),
        "upload");
  const size_t row = static_cast<size_t>(c.heads) * kHeadDim;
  Device q(c.batch * row * sizeof(__nv_bfloat16), "q"), out(c.batch * row * sizeof(__nv_bfloat16), "out");
  fill_random(q.as<__nv_bfloat16>(), c.batch * row, 7);
  const size_t ws_bytes =
      tessera::kernels::cuda::paged_attention_workspace_bytes(c.batch, max_context_len, c.heads, c.kv_heads, kHeadDim, 0);
  Device workspace(std::max<size_t>(ws_bytes, 16), "workspace");

  const tessera::kernels::KvCacheLayout layout{num_blocks, kBlockSize, c.kv_heads, kHeadDim};
  tessera::kernels::AttentionParams params;
  params.num_heads = c.heads;
  params.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  auto launch = [&](int layer, bool pdl) {
    check(tessera::kernels::cuda::launch_paged_attention<__nv_bfloat16>(
              q.as<__nv_bfloat16>(), static_cast<int64_t>(row), cache.key, cache.value, layout, meta, meta + c.batch,
              meta + 2 * c.batch, d_tables.as<int32_t>() + layer * table_size, blocks_per_seq, c.batch, c.batch, 1,
              max_context_len, params, out.as<__nv_bfloat16>(), workspace.as<void>(), ws_bytes, stream, pdl,
              tessera::kernels::AttentionTuning{c.large_grid_blocks}),
          "launch_paged_attention");
  };

  // Per launch: one launch, or a chain of kChainLayers (layer l over its own tables), normally or with PDL.
  auto median_ms = [&](int layers, bool pdl) {
    return median_launch_ms(stream, flush, layers, [&](int layer) { launch(layer, pdl); });
  };
  Timing timing;
  timing.ms = median_ms(1, false);
  if (chains) {
    timing.chain_ms = median_ms(kChainLayers, false);
    timing.chain_pdl_ms = median_ms(kChainLayers, true);
  }
  return timing;
}

// One prefill launch (every sequence has query_len > 1): the prefill kernel alone (the decode kernel's blocks
// exit at once), median of kRepeat after an L2 flush. `seqs` are (query_len, context_len) pairs; each sequence's
// blocks are consecutive in the cache. Returns ms and the causal FLOPs it did (QK^T and PV, 2 each per query row,
// visible key and head_dim element).
std::pair<double, double> time_prefill(const std::vector<std::pair<int, int>>& seqs, int blocks_per_sm,
                                       const Cache& cache, const Device& flush, cudaStream_t stream) {
  tessera::kernels::AttentionTuning tuning;
  tuning.prefill_blocks_per_sm = blocks_per_sm;
  const int num_seqs = static_cast<int>(seqs.size());
  int max_query = 0, max_context = 0;
  int64_t tokens = 0;
  double visible_keys = 0;  // summed over query tokens
  std::vector<int32_t> query_start, query_len, context_len;
  for (const auto& [q, c] : seqs) {
    query_start.push_back(static_cast<int32_t>(tokens));
    query_len.push_back(q);
    context_len.push_back(c);
    tokens += q;
    max_query = std::max(max_query, q);
    max_context = std::max(max_context, c);
    const double qd = q;
    visible_keys += qd * (c - q) + qd * (q + 1) / 2;
  }
  const int blocks_per_seq = (max_context + kBlockSize - 1) / kBlockSize;
  std::vector<int32_t> tables(static_cast<size_t>(num_seqs) * blocks_per_seq);
  std::iota(tables.begin(), tables.end(), 0);
  if (int64_t{num_seqs} * blocks_per_seq * kBlockSize * kKvHeads * kHeadDim > cache.elements)
    throw std::runtime_error("prefill case larger than the cache");
  std::vector<int32_t> meta = query_start;
  meta.insert(meta.end(), query_len.begin(), query_len.end());
  meta.insert(meta.end(), context_len.begin(), context_len.end());
  Device d_tables(tables.size() * sizeof(int32_t), "tables"), d_meta(meta.size() * sizeof(int32_t), "metadata");
  check(cudaMemcpy(d_tables.as<int32_t>(), tables.data(), tables.size() * sizeof(int32_t), cudaMemcpyHostToDevice),
        "upload tables");
  check(cudaMemcpy(d_meta.as<int32_t>(), meta.data(), meta.size() * sizeof(int32_t), cudaMemcpyHostToDevice),
        "upload");
  const int32_t* m = d_meta.as<int32_t>();
  const size_t row = size_t{kHeads} * kHeadDim;
  Device q(tokens * row * sizeof(__nv_bfloat16), "q"), out(tokens * row * sizeof(__nv_bfloat16), "out");
  fill_random(q.as<__nv_bfloat16>(), tokens * row, 11);
  const size_t ws_bytes = tessera::kernels::cuda::paged_attention_workspace_bytes(num_seqs, max_context, kHeads,
                                                                                  kKvHeads, kHeadDim, 0);
  Device workspace(std::max<size_t>(ws_bytes, 16), "workspace");
  const int64_t num_blocks = cache.elements / (int64_t{kBlockSize} * kKvHeads * kHeadDim);
  const tessera::kernels::KvCacheLayout layout{num_blocks, kBlockSize, kKvHeads, kHeadDim};
  tessera::kernels::AttentionParams params;
  params.num_heads = kHeads;
  params.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  auto launch = [&] {
    check(tessera::kernels::cuda::launch_paged_attention<__nv_bfloat16>(
              q.as<__nv_bfloat16>(), static_cast<int64_t>(row), cache.key, cache.value, layout, m, m + num_seqs,
              m + 2 * num_seqs, d_tables.as<int32_t>(), blocks_per_seq, num_seqs, tokens, max_query, max_context,
              params, out.as<__nv_bfloat16>(), workspace.as<void>(), ws_bytes, stream, false, tuning),
          "launch_paged_attention (prefill)");
  };
  const double ms = median_launch_ms(stream, flush, 1, [&](int) { launch(); });
  return {ms, 4.0 * kHeads * kHeadDim * visible_keys};
}

}  // namespace

int main() {
  try {
    // The 256-sequence cases run in both large-grid block shapes, one after the other. The last two cases read the
    // same bytes as 256 x 1000: with one kv head per sequence (2048 sequences of 4 query heads), each cache block is
    // one contiguous 4 KB run instead of 16 rows of 256 bytes at a 2 KB stride; then unshuffled block tables.
    using tessera::kernels::LargeGridBlocks;
    constexpr LargeGridBlocks kTwo = LargeGridBlocks::kTwoWarps;
    const std::vector<Case> cases = {{1, 128},
                                     {1, 130},
                                     {1, 2048},
                                     {1, 8192},
                                     {8, 1000},
                                     {64, 1000},
                                     {256, 1000},
                                     {256, 1000, kHeads, kKvHeads, true, kTwo},
                                     {256, 2000},
                                     {256, 2000, kHeads, kKvHeads, true, kTwo},
                                     {256, 1500},
                                     {256, 1500, kHeads, kKvHeads, true, kTwo},
                                     {2048, 1000, 4, 1},
                                     {256, 1000, kHeads, kKvHeads, false}};
    int64_t cache_elems = 0;
    for (const Case& c : cases)
      cache_elems = std::max<int64_t>(
          cache_elems, int64_t{c.batch} * ((c.context + kBlockSize - 1) / kBlockSize) * kBlockSize * c.kv_heads * kHeadDim);
    Device key(cache_elems * sizeof(__nv_bfloat16), "key cache"), value(cache_elems * sizeof(__nv_bfloat16), "value cache");
    fill_random(key.as<__nv_bfloat16>(), cache_elems, 1);
    fill_random(value.as<__nv_bfloat16>(), cache_elems, 2);
    Device flush(kL2FlushBytes, "L2 flush buffer");
    cudaStream_t stream;
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "device properties");
    const Cache cache{cache_elems, key.as<__nv_bfloat16>(), value.as<__nv_bfloat16>()};
    std::mt19937 rng(42);

    for (const Case& c : cases) {
      const double gb = 2.0 * c.batch * c.context * c.kv_heads * kHeadDim * sizeof(__nv_bfloat16) / 1e9;
      const double ms = time_case(c, c.context, cache, flush, stream, rng, false).ms;
      const int bucket = std::max(next_power_of_two(c.context), kMinGraphContext);
      const Timing bucketed = time_case(c, bucket, cache, flush, stream, rng, true);
      const double bucket_ms = bucketed.ms;
      nlohmann::json line = {{"bench", "paged_attention_decode"},
                             {"device", prop.name},
                             {"dtype", "bf16"},
                             {"heads", c.heads},
                             {"kv_heads", c.kv_heads},
                             {"shuffled_blocks", c.shuffled},
                             {"large_grid_warps", tessera::kernels::to_string(c.large_grid_blocks)},
                             {"head_dim", kHeadDim},
                             {"block_size", kBlockSize},
                             {"batch", c.batch},
                             {"context", c.context},
                             {"ms", ms},
                             {"gb_read", gb},
                             {"tb_per_s", gb / ms},  // GB / ms = TB / s
                             {"step_ms_32_layers", 32 * ms},
                             {"bucket_max_context_len", bucket},
                             {"bucket_ms", bucket_ms},
                             {"bucket_tb_per_s", gb / bucket_ms},
                             {"chain_ms", bucketed.chain_ms},
                             {"chain_pdl_ms", bucketed.chain_pdl_ms},
                             {"chain_pdl_step_ms_32_layers", 32 * bucketed.chain_pdl_ms},
                             {"repeats", kRepeat}};
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    }
    // Prefill attention (one layer): the TTFT case (one 2048-token prompt), one 1000-token prompt, and the prefill
    // part of a served 1000/1000 mixed step under a 2048-token budget (256 decodes leave 1792 prompt tokens: the
    // last 792 of one prompt, reading its first 208 from the cache, and a whole second prompt).
    const std::vector<std::vector<std::pair<int, int>>> prefill_cases = {{{2048, 2048}}, {{1000, 1000}},
                                                                         {{792, 1000}, {1000, 1000}}};
    for (const auto& seqs : prefill_cases) {
      for (int blocks_per_sm : tessera::kernels::kPrefillBlocksPerSmChoices) {
        const auto [ms, flops] = time_prefill(seqs, blocks_per_sm, cache, flush, stream);
        nlohmann::json shape = nlohmann::json::array();
        for (const auto& [q, c] : seqs) shape.push_back({{"query_len", q}, {"context_len", c}});
        nlohmann::json line = {{"bench", "paged_attention_prefill"},
                               {"device", prop.name},
                               {"dtype", "bf16"},
                               {"heads", kHeads},
                               {"kv_heads", kKvHeads},
                               {"head_dim", kHeadDim},
                               {"block_size", kBlockSize},
                               {"sequences", shape},
                               {"prefill_blocks_per_sm", blocks_per_sm},
                               {"ms", ms},
                               {"causal_gflop", flops / 1e9},
                               {"tflop_per_s", flops / ms / 1e9},  // FLOP / ms / 1e9 = TFLOP / s
                               {"step_ms_32_layers", 32 * ms},
                               {"repeats", kRepeat}};
        std::printf("%s\n", line.dump().c_str());
        std::fflush(stdout);
      }
    }
    cudaStreamDestroy(stream);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera-attention-bench: %s\n", e.what());
    return 1;
  }
}
