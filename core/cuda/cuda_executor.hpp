#pragma once
// The CUDA executor: one GPU, the whole Llama forward pass with Tessera's kernels and cuBLAS, sampling on the GPU so
// only token ids come back. It implements the same Executor interface as the CPU executor; the server picks it with
// --device cuda[:N]. Threading: one caller at a time (the executor actor's thread), like every Executor.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/common/dtype.hpp"
#include "core/serving/executor.hpp"

namespace tessera {

struct CudaExecutorOptions {
  int device = 0;
  DType dtype = DType::BF16;               // compute and storage type of weights, activations and KV (BF16 or F32)
  double gpu_memory_utilization = 0.90;    // fraction of the GPU's memory Tessera may use; KV gets what is left
  int block_size = 16;                     // tokens per KV block
  int kv_cache_blocks = 0;                 // > 0: exactly this many blocks instead of sizing from free memory
  int max_num_batched_tokens = 2048;       // the largest step (scheduler budget): activations are sized for it
  int max_num_seqs = 256;                  // sequences per step
  bool cuda_graphs = true;                 // replay captured graphs for decode-only steps (captured on first use)
  int max_cuda_graphs = 512;               // graphs kept, one per (batch bucket, context bucket); beyond: eager
  std::string model_name;
};

class CudaExecutor final : public Executor {
 public:
  // Loads `model_dir` onto the GPU and sizes the KV cache. Throws tessera::Error (no GPU, out of memory, bad files).
  CudaExecutor(const std::filesystem::path& model_dir, const CudaExecutorOptions& options);
  ~CudaExecutor() override;

  // Never throws; CUDA errors and bad plans become StepResult::error. After a sticky CUDA error (the context is
  // unusable) the result is marked fatal and every later step fails fast with that error, so requests end with errors
  // instead of hanging and the server shuts down.
  StepResult execute(const StepPlan& plan) override;
  // Pipelined: submit() validates, uploads and enqueues the step (it returns while the GPU may still run the step
  // before); collect() waits for the oldest one. The forward of a step submitted behind another starts on the GPU
  // the moment the previous one ends, so host work between steps (scheduling, result delivery) is hidden.
  void submit(const StepPlan& plan) override;
  StepResult collect() override;
  int steps_outstanding() const override;
  bool runs_asynchronously() const override { return true; }
  ExecutorInfo info() const override;

  // The FP32 logits the last submitted step sampled from (call after execute(), nothing outstanding), [sampling sequences][vocab] in plan order: the check
  // against HF transformers and the CPU engine. Synchronous copy; test and diagnostic use.
  std::vector<float> copy_last_logits() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
