#pragma once
// The CUDA executor's private state (core/cuda/cuda_executor.cpp: loading, step submission and collection;
// core/cuda/cuda_forward.cpp: the forward pass and its CUDA graphs). Not part of the public interface.
#include <cuda_bf16.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cuda/cuda_check.hpp"
#include "core/cuda/cuda_executor.hpp"
#include "core/cuda/cuda_weights.hpp"
#include "core/cuda/decode_graphs.hpp"
#include "core/cuda/lt_gemm.hpp"
#include "core/cuda/step_inputs.hpp"
#include "kernels/attention_tuning.hpp"
#include "kernels/kv_cache_write.hpp"
#include "kernels/linear.hpp"

namespace tessera {

struct CudaExecutor::Impl {
  using DeviceMemory = cuda::DeviceMemory;
  using PinnedMemory = cuda::PinnedMemory;

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
  std::unique_ptr<cuda::LtGemm> lt_gemm;  // shares cublas_workspace (both run on `stream`); null: TESSERA_CUBLASLT=0
  size_t attention_workspace_bytes = 0, sampling_workspace_bytes = 0;
  std::unordered_map<uint64_t, uint64_t> draws;  // tokens drawn so far per live sequence (the RNG offset)
  std::string broken;                            // a sticky CUDA error: every later step fails with it
  std::vector<int32_t> last_logit_rows;          // rows of `logits` the last step's sampling sequences used
  std::unique_ptr<cuda::DecodeGraphs> graphs;    // null when CUDA graphs are off
  int32_t scratch_block = 0;                     // a KV block no request owns: padding rows of graph steps write it
  // Diagnostic knobs from the environment, read once at construction (forward() runs per eager step):
  // TESSERA_PDL=0 launches every kernel normally; TESSERA_L2_PREFETCH_MB (default 0 = off) is how much of the next
  // O projection the QKV GEMV asks L2 to fetch (with the one-row GEMV's 16 loads in flight it only competes with the
  // weight stream: H100 batch-1 step 5.51 ms without, 5.59 with 16 MB, 5.70 with 40 MB, bench/results
  // h100-2026-11-23-session3 run 12); TESSERA_FUSED_NORM=1 fuses the RMSNorms into the next GEMV at batch <= 2 (off by
  // default: on the H100 it made the batch-1 step slower, 5.87 vs 5.59 ms in run 12); TESSERA_CUBLASLT=0 sends GEMMs
  // of more than kMaxFewRows rows to cublasGemmEx(CUBLAS_GEMM_DEFAULT) instead of cuBLASLt's first heuristic choice;
  // TESSERA_DECODE_LARGE_GRID=4|2|auto picks decode attention's block shape for large batches and
  // TESSERA_PREFILL_BLOCKS_PER_SM=2|3 the tensor-core prefill kernel's occupancy (attention_tuning.hpp; defaults 4 and
  // 2: the alternatives are not yet measured in served runs).
  struct Knobs {
    bool pdl = true;
    size_t l2_prefetch_bytes = 0;
    bool fused_norm = false;
    bool cublaslt = true;
    kernels::AttentionTuning attention;
    static Knobs from_environment();
  };
  Knobs knobs;

  size_t elem() const { return dtype_size(weights.dtype); }
  cudaDataType_t cuda_type() const { return weights.dtype == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; }

  // y[rows, out] = x[rows, in] · w[out, in]^T (row-major), FP32 accumulation; y in the compute type or FP32.
  // Decode-sized batches (rows <= kMaxFewRows) take the bandwidth-bound few-row kernel, which streams the weight
  // faster than cuBLAS does for skinny shapes; more rows go to cuBLASLt (LtGemm), cublasGemmEx where it has no
  // algorithm; unaligned few-row operands go to cublasGemmEx.
  void gemm(const void* x, const void* w, void* y, int64_t rows, int64_t in, int64_t out, bool y_f32 = false);

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


}  // namespace tessera
