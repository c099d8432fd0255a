#include "core/cuda/cuda_executor.hpp"
#include "core/cuda/cuda_executor_impl.hpp"

#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
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

using cuda::check;
using cuda::DeviceMemory;
using cuda::PinnedMemory;

CudaExecutor::Impl::Knobs CudaExecutor::Impl::Knobs::from_environment() {
  Knobs k;
  if (const char* v = std::getenv("TESSERA_PDL")) k.pdl = std::strcmp(v, "0") != 0;
  if (const char* v = std::getenv("TESSERA_L2_PREFETCH_MB")) k.l2_prefetch_bytes = std::strtoull(v, nullptr, 10) << 20;
  if (const char* v = std::getenv("TESSERA_FUSED_NORM")) k.fused_norm = std::strcmp(v, "1") == 0;
  if (const char* v = std::getenv("TESSERA_CUBLASLT")) k.cublaslt = std::strcmp(v, "0") != 0;
  if (const char* v = std::getenv("TESSERA_DECODE_LARGE_GRID")) {
    const std::optional<kernels::LargeGridBlocks> blocks = kernels::parse_large_grid_blocks(v);
    if (!blocks) throw Error(std::string("TESSERA_DECODE_LARGE_GRID must be 4, 2 or auto, not '") + v + "'");
    k.attention.large_grid_blocks = *blocks;
  }
  if (const char* v = std::getenv("TESSERA_PREFILL_BLOCKS_PER_SM")) {
    const std::optional<int> blocks = kernels::parse_prefill_blocks_per_sm(v);
    if (!blocks) throw Error(std::string("TESSERA_PREFILL_BLOCKS_PER_SM must be 2 or 3, not '") + v + "'");
    k.attention.prefill_blocks_per_sm = *blocks;
  }
  return k;
}

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
  if (knobs.cublaslt) lt_gemm = std::make_unique<cuda::LtGemm>(cublas_workspace.get(), kCublasWorkspaceBytes);
}

void CudaExecutor::Impl::gemm(const void* x, const void* w, void* y, int64_t rows, int64_t in, int64_t out,
                              bool y_f32) {
  namespace k = kernels::cuda;
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0 &&
                       in % static_cast<int64_t>(16 / elem()) == 0;
  if (rows >= 1 && rows <= k::kMaxFewRows && aligned) {
    if (weights.dtype == DType::F32) {
      check(k::launch_linear_few_rows<float>(static_cast<const float*>(x), static_cast<const float*>(w), y, y_f32, rows,
                                             in, out, stream),
            "linear_few_rows");
    } else {
      check(k::launch_linear_few_rows<__nv_bfloat16>(static_cast<const __nv_bfloat16*>(x),
                                                     static_cast<const __nv_bfloat16*>(w), y, y_f32, rows, in, out,
                                                     stream),
            "linear_few_rows");
    }
    return;
  }
  // Any failure of cuBLASLt (no algorithm for the shape, an error) falls back to cublasGemmEx; a sticky CUDA error
  // then fails there.
  if (lt_gemm && rows > k::kMaxFewRows &&
      lt_gemm->enqueue_linear(x, w, y, rows, in, out, y_f32, weights.dtype, stream) == CUBLAS_STATUS_SUCCESS) {
    return;
  }
  const float alpha = 1.0f, beta = 0.0f;
  check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(rows),
                     static_cast<int>(in), &alpha, w, cuda_type(), static_cast<int>(in), x, cuda_type(),
                     static_cast<int>(in), &beta, y, y_f32 ? CUDA_R_32F : cuda_type(), static_cast<int>(out),
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

CudaExecutor::CudaExecutor(const std::filesystem::path& model_dir, const CudaExecutorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  m.knobs = Impl::Knobs::from_environment();
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
