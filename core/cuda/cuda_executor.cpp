#include "core/cuda/cuda_executor.hpp"

#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <unordered_map>
#include <utility>

#include "core/cuda/cuda_weights.hpp"
#include "core/cuda/decode_graphs.hpp"
#include "core/cuda/step_inputs.hpp"
#include "core/serving/plan_validation.hpp"
#include "kernels/embedding.hpp"
#include "kernels/kv_cache_write.hpp"
#include "kernels/linear.hpp"
#include "kernels/paged_attention.hpp"
#include "kernels/pending_tokens.hpp"
#include "kernels/rms_norm.hpp"
#include "kernels/rope.hpp"
#include "kernels/rope_kv_write.hpp"
#include "kernels/sampling.hpp"
#include "kernels/swiglu.hpp"

namespace tessera {

namespace {

using cuda::check;
using cuda::DeviceMemory;
using cuda::PinnedMemory;

}  // namespace

struct CudaExecutor::Impl {
  CudaExecutorOptions options;
  cuda::CudaWeights weights;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  kernels::KvCacheLayout layout;
  int64_t kv_layer_elements = 0;  // elements of one layer's K (same for V)
  DeviceMemory kv_cache;
  int max_blocks_per_seq = 0;
  cuda::StepInputLayout inputs;
  // Two submission slots (a step may be queued while the previous one runs): host input and output buffers and the
  // events that say when the GPU is done with them.
  struct Slot {
    PinnedMemory host_inputs;
    PinnedMemory host_ids;
    cudaEvent_t inputs_copied = nullptr;  // the host inputs may be rewritten
    cudaEvent_t begin = nullptr;          // the GPU reached the step
    cudaEvent_t ids_ready = nullptr;      // the step's sampled ids are in host_ids
  };
  Slot slots[Executor::kMaxStepsInFlight];
  int next_slot = 0;
  DeviceMemory device_inputs;
  // A submitted step not yet collected.
  struct Submitted {
    uint64_t step_id = 0;
    int slot = -1;                                       // -1: nothing was launched
    std::vector<std::pair<uint64_t, int32_t>> samples;   // (sequence, row of the sampled ids), plan order
    std::string error;                                   // set at submission: the result is this error
    std::chrono::steady_clock::time_point submitted_at;
  };
  std::deque<Submitted> submitted;
  // Each sequence's row in the sampled ids of the step submitted last (token_pending inputs of the next step).
  std::unordered_map<uint64_t, int32_t> previous_rows;
  // Activations, sized for max_num_batched_tokens.
  DeviceMemory residual, normed, qkv, attention, block_out, gate_up, act, gathered, logits, sampled, inv_freq;
  DeviceMemory attention_workspace, sampling_workspace, cublas_workspace;
  size_t attention_workspace_bytes = 0, sampling_workspace_bytes = 0;
  std::unordered_map<uint64_t, uint64_t> draws;  // tokens drawn so far per live sequence (the RNG offset)
  std::string broken;                            // a sticky CUDA error: every later step fails with it
  std::vector<int32_t> last_logit_rows;          // rows of `logits` the last step's sampling sequences used
  std::unique_ptr<cuda::DecodeGraphs> graphs;    // null when CUDA graphs are off
  int32_t scratch_block = 0;                     // a KV block no request owns: padding rows of graph steps write it

  size_t elem() const { return dtype_size(weights.dtype); }
  cudaDataType_t cuda_type() const { return weights.dtype == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; }

  // y[rows, out] = x[rows, in] · w[out, in]^T (row-major), FP32 accumulation; y in the compute type or FP32.
  // Decode-sized batches (rows <= kMaxFewRows) take the bandwidth-bound few-row kernel, which streams the weight
  // faster than cuBLAS does for skinny shapes; everything else (and unaligned operands) goes to cuBLAS.
  void gemm(const void* x, const void* w, void* y, int64_t rows, int64_t in, int64_t out, bool y_f32 = false) {
    const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0 &&
                         in % static_cast<int64_t>(16 / elem()) == 0;
    if (rows >= 1 && rows <= kernels::cuda::kMaxFewRows && aligned) {
      if (weights.dtype == DType::F32) {
        check(kernels::cuda::launch_linear_few_rows<float>(static_cast<const float*>(x), static_cast<const float*>(w),
                                                           y, y_f32, rows, in, out, stream),
              "linear_few_rows");
      } else {
        check(kernels::cuda::launch_linear_few_rows<__nv_bfloat16>(static_cast<const __nv_bfloat16*>(x),
                                                                   static_cast<const __nv_bfloat16*>(w), y, y_f32,
                                                                   rows, in, out, stream),
              "linear_few_rows");
      }
      return;
    }
    const float alpha = 1.0f, beta = 0.0f;
    check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(rows),
                       static_cast<int>(in), &alpha, w, cuda_type(), static_cast<int>(in), x, cuda_type(),
                       static_cast<int>(in), &beta, y, y_f32 ? CUDA_R_32F : cuda_type(), static_cast<int>(out),
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  }

  template <class T>
  void forward(const cuda::StepShape& shape);
  void record(const cuda::StepShape& shape);       // enqueues the step's kernels on `stream`
  void run_forward(const cuda::StepShape& shape);  // eagerly, or through a captured decode graph when shape.graph
  void capture_common_graphs();
  cuda::GraphBuckets graph_buckets() const {
    return cuda::GraphBuckets{options.max_num_seqs, 512, weights.config.max_position_embeddings, options.block_size};
  }
  void allocate(const CudaExecutorOptions& o);
  void submit(const StepPlan& plan);
  StepResult collect();
  // After a failure: a sticky CUDA error makes the executor unusable for good (`broken`); returns whether it did.
  bool note_sticky_error();
};

void CudaExecutor::Impl::allocate(const CudaExecutorOptions& o) {
  const LlamaConfig& c = weights.config;
  const int64_t m = o.max_num_batched_tokens, s = o.max_num_seqs;
  const int64_t hidden = c.hidden_size, q_out = int64_t{c.num_heads} * c.head_dim,
                qkv_out = q_out + 2 * int64_t{c.num_kv_heads} * c.head_dim, inter = c.intermediate_size;
  auto buffer = [&](int64_t elements, size_t element_bytes) { return DeviceMemory(elements * element_bytes, "activations"); };
  residual = buffer(m * hidden, elem());
  normed = buffer(m * hidden, elem());
  qkv = buffer(m * qkv_out, elem());
  attention = buffer(m * q_out, elem());
  block_out = buffer(m * hidden, elem());
  gate_up = buffer(m * 2 * inter, elem());
  act = buffer(m * inter, elem());
  gathered = buffer(s * hidden, elem());
  logits = buffer(s * c.vocab_size, 4);
  sampled = buffer(s, 4);
  const std::vector<float> freqs = kernels::rope_inv_freq(c);
  inv_freq = buffer(static_cast<int64_t>(freqs.size()), 4);
  check(cudaMemcpy(inv_freq.get(), freqs.data(), freqs.size() * 4, cudaMemcpyHostToDevice), "inv_freq");
  max_blocks_per_seq = (c.max_position_embeddings + o.block_size - 1) / o.block_size;
  inputs = cuda::StepInputLayout::make(m, s, max_blocks_per_seq);
  device_inputs = DeviceMemory(inputs.total, "step inputs");
  for (Slot& slot : slots) {
    slot.host_inputs = PinnedMemory(inputs.total, "step inputs");
    slot.host_ids = PinnedMemory(s * 4, "sampled ids");
    check(cudaEventCreateWithFlags(&slot.inputs_copied, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreate(&slot.begin), "cudaEventCreate");
    check(cudaEventCreate(&slot.ids_ready), "cudaEventCreate");
  }
  attention_workspace_bytes = kernels::cuda::paged_attention_workspace_bytes(
      static_cast<int>(s), c.max_position_embeddings, c.num_heads, c.num_kv_heads, c.head_dim, c.sliding_window.value_or(0));
  attention_workspace = DeviceMemory(attention_workspace_bytes, "attention workspace");
  sampling_workspace_bytes = kernels::cuda::sampling_workspace_bytes(static_cast<int>(s), c.vocab_size);
  sampling_workspace = DeviceMemory(sampling_workspace_bytes, "sampling workspace");
  // cuBLAS gets its workspace up front: it must not allocate while a graph is being captured.
  constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
  cublas_workspace = DeviceMemory(kCublasWorkspaceBytes, "cuBLAS workspace");
  check(cublasSetWorkspace(cublas, cublas_workspace.get(), kCublasWorkspaceBytes), "cublasSetWorkspace");
}

template <class T>
void CudaExecutor::Impl::forward(const cuda::StepShape& shape) {
  namespace k = kernels::cuda;
  const int64_t n = shape.num_tokens;
  const int num_seqs = shape.num_seqs, num_logits = shape.num_logits;
  const LlamaConfig& c = weights.config;
  const int64_t hidden = c.hidden_size, hd = c.head_dim, q_out = int64_t{c.num_heads} * hd,
                kv_out = int64_t{c.num_kv_heads} * hd, qkv_out = q_out + 2 * kv_out, inter = c.intermediate_size;
  auto* in = device_inputs.get<std::byte>();
  const auto* ids = reinterpret_cast<const int32_t*>(in + inputs.token_ids);
  const auto* positions = reinterpret_cast<const int32_t*>(in + inputs.positions);
  const auto* slots = reinterpret_cast<const int64_t*>(in + inputs.slot_mapping);
  const auto* query_start = reinterpret_cast<const int32_t*>(in + inputs.query_start);
  const auto* query_len = reinterpret_cast<const int32_t*>(in + inputs.query_len);
  const auto* context_len = reinterpret_cast<const int32_t*>(in + inputs.context_len);
  const auto* block_tables = reinterpret_cast<const int32_t*>(in + inputs.block_tables);
  const auto* logit_rows = reinterpret_cast<const int32_t*>(in + inputs.logit_rows);
  const auto* sampling_rows = reinterpret_cast<const kernels::SamplingRow*>(in + inputs.sampling_rows);
  T* res = residual.get<T>();
  T* nrm = normed.get<T>();
  T* qkv_p = qkv.get<T>();
  T* out = block_out.get<T>();
  const float eps = c.rms_norm_eps;
  kernels::AttentionParams params{c.num_heads, static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))),
                                  c.sliding_window.value_or(0)};

  // Our kernels launch with programmatic dependent launch (kernels/cuda_common.cuh): each starts while the one before
  // finishes (a GEMV streams its first weights meanwhile, the decode attention its old K/V rows) and waits for it
  // before touching activations. The prefill attention kernel and cuBLAS launch normally, which is always safe.
  // Diagnostic knobs, read here (eager steps and graph captures): TESSERA_PDL=0 launches everything normally;
  // TESSERA_L2_PREFETCH_MB (default 16, 0 = off) is how much of the next O projection the QKV GEMV asks L2 to fetch,
  // so HBM keeps streaming while RoPE and attention run; TESSERA_FUSED_NORM=1 fuses the RMSNorms into the next GEMV.
  const char* pdl_env = std::getenv("TESSERA_PDL");
  const bool pdl = pdl_env == nullptr || std::strcmp(pdl_env, "0") != 0;
  const char* prefetch_env = std::getenv("TESSERA_L2_PREFETCH_MB");
  const size_t prefetch_cap = (prefetch_env ? std::strtoull(prefetch_env, nullptr, 10) : 16) << 20;
  auto few_rows_fit = [&](const void* x, const void* w, int64_t rows, int64_t in_features) {
    return rows >= 1 && rows <= k::kMaxFewRows && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
           reinterpret_cast<uintptr_t>(w) % 16 == 0 && in_features % static_cast<int64_t>(16 / sizeof(T)) == 0;
  };
  // gemm() with the decode GEMV launched here (PDL, optional L2 prefetch); cuBLAS for other shapes.
  auto linear = [&](const void* x, const void* w, void* y, int64_t rows, int64_t in_features, int64_t out_features,
                    bool y_f32 = false, k::L2Prefetch prefetch = {}) {
    if (few_rows_fit(x, w, rows, in_features)) {
      check(k::launch_linear_few_rows<T>(static_cast<const T*>(x), static_cast<const T*>(w), y, y_f32, rows,
                                         in_features, out_features, stream, pdl, prefetch),
            "linear_few_rows");
    } else {
      gemm(x, w, y, rows, in_features, out_features, y_f32);
    }
  };

  // The residual stream lives in `cur`; `alt` is the other of (residual, normed). norm_linear computes
  // y = rms_norm(cur (+ delta)) W^T and updates the stream: at decode sizes (n <= kFusedNormMaxRows) the GEMV
  // normalizes its input itself (launch_linear_few_rows_norm, bit-identical to the separate kernels, one kernel
  // boundary less) and writes the new residual to `alt` (its blocks still read `cur`), and the two swap; otherwise
  // add_rms_norm updates `cur` in place and normalizes into `alt` for the GEMV.
  // Off unless TESSERA_FUSED_NORM=1: on the H100 the fused kernel made the batch-1 step slower (6.22 vs 5.83 ms,
  // bench/results/h100-2026-11-23-session2 run 9): every block's norm prologue costs more than the launch it saves.
  const char* fuse_env = std::getenv("TESSERA_FUSED_NORM");
  const bool fuse_norm = fuse_env != nullptr && std::strcmp(fuse_env, "1") == 0 && n <= k::kFusedNormMaxRows &&
                         k::linear_few_rows_norm_fits(n, hidden, sizeof(T));
  T* cur = res;
  T* alt = nrm;
  auto norm_linear = [&](const T* delta, const T* norm_weight, const void* w, void* y, int64_t out_features,
                         bool y_f32, k::L2Prefetch prefetch, bool keep_residual) {
    if (fuse_norm && reinterpret_cast<uintptr_t>(norm_weight) % 16 == 0 && few_rows_fit(cur, w, n, hidden)) {
      T* residual_out = delta != nullptr && keep_residual ? alt : nullptr;
      check(k::launch_linear_few_rows_norm<T>(cur, delta, residual_out, norm_weight, eps, static_cast<const T*>(w), y,
                                              y_f32, n, hidden, out_features, stream, pdl, prefetch),
            "linear_few_rows_norm");
      if (residual_out != nullptr) std::swap(cur, alt);
      return;
    }
    if (delta != nullptr) {
      check(k::launch_add_rms_norm<T>(cur, delta, norm_weight, alt, n, hidden, eps, stream, pdl), "add_rms_norm");
    } else {
      check(k::launch_rms_norm<T>(cur, norm_weight, alt, n, hidden, eps, stream, pdl), "rms_norm");
    }
    linear(alt, w, y, n, hidden, out_features, y_f32, prefetch);
  };

  // Inputs of pipelined decodes: the previous step's sampled ids, still in `sampled` (stream order).
  check(k::launch_resolve_pending_tokens(const_cast<int32_t*>(ids), reinterpret_cast<const int32_t*>(in + inputs.pending_rows),
                                         sampled.get<int32_t>(), n, stream),
        "resolve_pending_tokens");
  // Launched normally: the first of our kernels in the step, after the input copy and the fix-up above.
  check(k::launch_embedding<T>(static_cast<const T*>(weights.embed_tokens.get()), c.vocab_size, hidden, ids, n, res, stream),
        "embedding");
  for (int l = 0; l < c.num_layers; ++l) {
    const cuda::CudaLayerWeights& w = weights.layers[l];
    norm_linear(l == 0 ? nullptr : out, w.input_norm.get<T>(), w.qkv.get(), qkv_p, qkv_out, false,
                k::L2Prefetch{w.o_proj.get(), std::min(w.o_proj.bytes(), prefetch_cap)}, true);
    T* k_cache = kv_cache.get<T>() + 2 * kv_layer_elements * l;
    T* v_cache = k_cache + kv_layer_elements;
    check(k::launch_rope_kv_write<T>(qkv_p, qkv_p + q_out, qkv_p + q_out + kv_out, n, qkv_out, c.num_heads, positions,
                                     inv_freq.get<float>(), slots, layout, k_cache, v_cache, stream, pdl),
          "rope_kv_write");
    // PDL: the step inputs and the cached K/V rows of earlier steps are read before the KV write above completes
    // (launch_paged_attention's contract: nothing in this step writes them).
    check(k::launch_paged_attention<T>(qkv_p, qkv_out, k_cache, v_cache, layout, query_start, query_len, context_len,
                                       block_tables, shape.blocks_per_seq, num_seqs, n, shape.max_query_len,
                                       shape.max_context_len,
                                       params, attention.get<T>(), attention_workspace.get(), attention_workspace_bytes,
                                       stream, pdl),
          "paged_attention");
    linear(attention.get(), w.o_proj.get(), out, n, q_out, hidden);
    norm_linear(out, w.post_attn_norm.get<T>(), w.gate_up.get(), gate_up.get(), 2 * inter, false, {}, true);
    // Few rows: SiLU x up computed inside the down projection (bit-identical to the two kernels below).
    if (n <= k::kFusedSwigluMaxRows && few_rows_fit(gate_up.get(), w.down.get(), n, inter)) {
      check(k::launch_linear_few_rows_swiglu<T>(gate_up.get<T>(), w.down.get<T>(), out, false, n, inter, hidden, stream,
                                                pdl),
            "down_swiglu");
    } else {
      check(k::launch_swiglu<T>(gate_up.get<T>(), act.get<T>(), n, inter, stream, pdl), "swiglu");
      linear(act.get(), w.down.get(), out, n, inter, hidden);
    }
  }
  // The LM head in FP32 logits over the final norm of the last token of every sampling sequence, then sampling on
  // the GPU. A decode step where every sequence samples (every graph step) samples rows 0..n-1 in order: the LM head
  // reads the normed rows directly. Otherwise they are gathered first (an embedding lookup over the normed rows).
  const bool every_row_samples = shape.max_query_len == 1 && num_seqs == n && num_logits == n;
  if (every_row_samples) {
    norm_linear(out, weights.final_norm.get<T>(), weights.lm_head, logits.get(), c.vocab_size, /*y_f32=*/true, {},
                /*keep_residual=*/false);
  } else {
    check(k::launch_add_rms_norm<T>(cur, out, weights.final_norm.get<T>(), alt, n, hidden, eps, stream, pdl),
          "final norm");
    check(k::launch_embedding<T>(alt, n, hidden, logit_rows, num_logits, gathered.get<T>(), stream, pdl), "gather");
    linear(gathered.get(), weights.lm_head, logits.get(), num_logits, hidden, c.vocab_size, /*y_f32=*/true);
  }
  check(k::launch_sample(logits.get<float>(), num_logits, c.vocab_size, sampling_rows, sampled.get<int32_t>(),
                         sampling_workspace.get(), sampling_workspace_bytes, stream, pdl),
        "sample");
}

void CudaExecutor::Impl::record(const cuda::StepShape& shape) {
  if (weights.dtype == DType::F32) {
    forward<float>(shape);
  } else {
    forward<__nv_bfloat16>(shape);
  }
}

void CudaExecutor::Impl::run_forward(const cuda::StepShape& shape) {
  if (shape.graph && graphs->launch(shape, stream, [&] { record(shape); })) return;
  record(shape);
}

// The decode shapes a server meets first (every batch bucket at contexts up to 2048), captured at start-up so that
// the first steps at a new batch size do not pay for a capture. Capturing runs nothing.
void CudaExecutor::Impl::capture_common_graphs() {
  for (int context = 512; context <= 2048; context *= 2) {
    for (int batch = 1; batch <= options.max_num_seqs; batch += batch < 8 ? 1 : 8) {
      cuda::StepShape actual;
      actual.num_seqs = batch;
      actual.num_tokens = batch;
      actual.max_query_len = 1;
      actual.max_context_len = std::min(context, weights.config.max_position_embeddings);
      const std::optional<cuda::StepShape> shape = cuda::graph_shape(actual, graph_buckets());
      if (shape) graphs->capture(*shape, stream, [&] { record(*shape); });
    }
  }
}

CudaExecutor::CudaExecutor(const std::filesystem::path& model_dir, const CudaExecutorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) throw Error("no CUDA device is available");
  if (options.device < 0 || options.device >= devices) {
    throw Error("CUDA device " + std::to_string(options.device) + " does not exist (" + std::to_string(devices) +
                " device(s))");
  }
  check(cudaSetDevice(options.device), "cudaSetDevice");
  m.weights = cuda::CudaWeights::load(model_dir, options.dtype);
  check(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cublasCreate(&m.cublas), "cublasCreate");
  check(cublasSetStream(m.cublas, m.stream), "cublasSetStream");
  m.allocate(options);

  const LlamaConfig& c = m.weights.config;
  m.layout.block_size = options.block_size;
  m.layout.num_kv_heads = c.num_kv_heads;
  m.layout.head_dim = c.head_dim;
  const int64_t bytes_per_block =
      int64_t{2} * c.num_layers * options.block_size * c.num_kv_heads * c.head_dim * static_cast<int64_t>(m.elem());
  int64_t num_blocks = options.kv_cache_blocks;
  if (num_blocks <= 0) {
    size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    const double reserved = static_cast<double>(total_bytes) * (1.0 - options.gpu_memory_utilization);
    const double budget = static_cast<double>(free_bytes) - reserved;
    num_blocks = budget > 0 ? static_cast<int64_t>(budget / bytes_per_block) : 0;
    if (num_blocks < 1) {
      throw Error("not enough GPU memory for the KV cache: " + std::to_string(free_bytes >> 20) + " MiB free after the " +
                  "weights, gpu_memory_utilization " + std::to_string(options.gpu_memory_utilization));
    }
  }
  // One block more than the pool hands out: the scratch block that padding rows of graph steps write and read.
  m.scratch_block = static_cast<int32_t>(num_blocks);
  m.layout.num_blocks = num_blocks + 1;
  m.kv_layer_elements = m.layout.num_blocks * options.block_size * c.num_kv_heads * c.head_dim;
  m.kv_cache = DeviceMemory(static_cast<size_t>(m.layout.num_blocks * bytes_per_block), "KV cache");
  if (options.cuda_graphs) {
    m.graphs = std::make_unique<cuda::DecodeGraphs>(options.max_cuda_graphs);
    m.capture_common_graphs();
  }
}

CudaExecutor::~CudaExecutor() {
  if (impl_->stream) cudaStreamSynchronize(impl_->stream);
  for (Impl::Slot& slot : impl_->slots) {
    for (cudaEvent_t event : {slot.inputs_copied, slot.begin, slot.ids_ready}) {
      if (event) cudaEventDestroy(event);
    }
  }
  if (impl_->cublas) cublasDestroy(impl_->cublas);
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

std::vector<float> CudaExecutor::copy_last_logits() const {
  const Impl& m = *impl_;
  const size_t vocab = static_cast<size_t>(m.weights.config.vocab_size);
  std::vector<float> out(m.last_logit_rows.size() * vocab);
  for (size_t i = 0; i < m.last_logit_rows.size(); ++i) {
    check(cudaMemcpy(out.data() + i * vocab, m.logits.get<float>() + m.last_logit_rows[i] * vocab, vocab * 4,
                     cudaMemcpyDeviceToHost),
          "copying logits");
  }
  return out;
}

ExecutorInfo CudaExecutor::info() const {
  const Impl& m = *impl_;
  ExecutorInfo i;
  i.device = "cuda:" + std::to_string(m.options.device);
  i.dtype = dtype_name(m.weights.dtype);
  i.model_name = m.options.model_name;
  i.num_blocks = m.scratch_block;  // the blocks the pool may hand out (the scratch block is not one of them)
  i.block_size = m.layout.block_size;
  i.capacity_tokens = int64_t{m.scratch_block} * m.layout.block_size;
  i.vocab_size = m.weights.config.vocab_size;
  i.max_position_embeddings = m.weights.config.max_position_embeddings;
  return i;
}

bool CudaExecutor::Impl::note_sticky_error() {
  const cudaError_t last = cudaGetLastError();
  const cudaError_t state = cudaStreamQuery(stream);
  if (state == cudaSuccess || state == cudaErrorNotReady) return false;
  broken = std::string("the GPU is in an unrecoverable state: ") + cudaGetErrorString(last != cudaSuccess ? last : state);
  return true;
}

void CudaExecutor::Impl::submit(const StepPlan& plan) {
  Submitted step;
  step.step_id = plan.step_id;
  step.submitted_at = std::chrono::steady_clock::now();
  for (uint64_t id : plan.release_state) draws.erase(id);
  // Pending inputs may only name the step submitted just before this one.
  std::unordered_map<uint64_t, int32_t> previous;
  previous.swap(previous_rows);
  try {
    if (!broken.empty()) throw Error(broken);
    if (submitted.size() >= static_cast<size_t>(Executor::kMaxStepsInFlight)) {
      throw Error("step " + std::to_string(plan.step_id) + " submitted while " + std::to_string(submitted.size()) +
                  " steps are outstanding");
    }
    const LlamaConfig& c = weights.config;
    validate_plan(plan, PlanLimits{c.vocab_size, c.max_position_embeddings, layout.block_size, scratch_block});
    const cuda::StepShape actual = cuda::measure_step(plan, layout.block_size);
    if (actual.num_tokens > options.max_num_batched_tokens || actual.num_seqs > options.max_num_seqs) {
      throw Error("step " + std::to_string(plan.step_id) + " has " + std::to_string(actual.num_tokens) + " tokens in " +
                  std::to_string(actual.num_seqs) + " sequences; the executor was sized for " +
                  std::to_string(options.max_num_batched_tokens) + " tokens and " +
                  std::to_string(options.max_num_seqs) + " sequences");
    }
    if (actual.num_seqs > 0) {
      const std::optional<cuda::StepShape> padded = graphs ? cuda::graph_shape(actual, graph_buckets()) : std::nullopt;
      const cuda::StepShape shape = padded ? *padded : actual;
      Slot& slot = slots[next_slot];
      // The copy that last read this slot's host inputs (two steps ago) is long done; make sure.
      check(cudaEventSynchronize(slot.inputs_copied), "step inputs");
      std::byte* h = slot.host_inputs.get<std::byte>();
      const std::vector<int32_t> sample_row =
          cuda::pack_step_inputs(plan, shape, inputs, layout.block_size, scratch_block, draws, previous, h);
      check(cudaEventRecord(slot.begin, stream), "cudaEventRecord");
      check(cudaMemcpyAsync(device_inputs.get(), h, inputs.bytes_used(shape.num_seqs, shape.blocks_per_seq),
                            cudaMemcpyHostToDevice, stream),
            "step inputs");
      check(cudaEventRecord(slot.inputs_copied, stream), "cudaEventRecord");
      run_forward(shape);
      check(cudaMemcpyAsync(slot.host_ids.get(), sampled.get(), static_cast<size_t>(shape.num_logits) * 4,
                            cudaMemcpyDeviceToHost, stream),
            "sampled ids");
      check(cudaEventRecord(slot.ids_ready, stream), "cudaEventRecord");
      step.slot = next_slot;
      next_slot = (next_slot + 1) % Executor::kMaxStepsInFlight;
      last_logit_rows.clear();
      for (size_t i = 0; i < plan.sequences.size(); ++i) {
        if (sample_row[i] < 0) continue;
        const uint64_t id = plan.sequences[i].seq_id;
        step.samples.emplace_back(id, sample_row[i]);
        previous_rows[id] = sample_row[i];
        last_logit_rows.push_back(sample_row[i]);
        ++draws[id];  // the RNG offset of the sequence's next draw
      }
    }
  } catch (const std::exception& e) {
    step.error = e.what();
    step.slot = -1;
    previous_rows.clear();
    note_sticky_error();
  }
  submitted.push_back(std::move(step));
}

StepResult CudaExecutor::Impl::collect() {
  StepResult result;
  if (submitted.empty()) {
    result.error = "collect() without a submitted step";
    return result;
  }
  const Submitted step = std::move(submitted.front());
  submitted.pop_front();
  result.step_id = step.step_id;
  try {
    if (!step.error.empty()) throw Error(step.error);
    if (step.slot >= 0) {
      const Slot& slot = slots[step.slot];
      check(cudaEventSynchronize(slot.ids_ready), "step");
      float gpu_ms = 0;
      if (cudaEventElapsedTime(&gpu_ms, slot.begin, slot.ids_ready) == cudaSuccess) result.execute_seconds = gpu_ms / 1e3;
      const auto* ids = slot.host_ids.get<int32_t>();
      for (const auto& [seq_id, row] : step.samples) {
        if (ids[row] < 0) throw Error(sequence_name(seq_id) + ": the model produced NaN or infinite logits");
        result.tokens.push_back(SampledToken{seq_id, ids[row]});
      }
    }
  } catch (const std::exception& e) {
    result.tokens.clear();
    result.error = e.what();
  }
  if (!result.error.empty() && (note_sticky_error() || !broken.empty())) {
    result.fatal = true;
    if (result.error.find(broken) == std::string::npos) result.error += " (" + broken + ")";
  }
  if (result.execute_seconds == 0) {
    result.execute_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step.submitted_at).count();
  }
  return result;
}

void CudaExecutor::submit(const StepPlan& plan) { impl_->submit(plan); }

StepResult CudaExecutor::collect() { return impl_->collect(); }

int CudaExecutor::steps_outstanding() const { return static_cast<int>(impl_->submitted.size()); }

StepResult CudaExecutor::execute(const StepPlan& plan) {
  impl_->submit(plan);
  return impl_->collect();
}

}  // namespace tessera
