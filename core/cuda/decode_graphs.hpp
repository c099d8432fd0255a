#pragma once
// CUDA graphs of decode steps, captured lazily per (padded batch, context bucket) and replayed: one launch instead of
// ~300 kernel launches per step, so the GPU starts the step without waiting for the host to enqueue it. The graph
// reads its inputs from the executor's fixed device buffers, which the executor refills before each launch.
// Threading: one thread (the executor's).
#include <cuda_runtime_api.h>

#include <functional>
#include <map>
#include <utility>

#include "core/cuda/step_inputs.hpp"

namespace tessera::cuda {

class DecodeGraphs {
 public:
  explicit DecodeGraphs(size_t max_graphs) : max_graphs_(max_graphs) {}
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Replays the graph of `shape` (a graph_shape() result) on `stream`; a shape seen for the first time is captured
  // from `record`, which must enqueue exactly the step's work on `stream` (no synchronization, no allocation).
  // Returns false, launching nothing, when the shape is new and max_graphs are captured already (run it eagerly).
  // Throws tessera::Error on a CUDA error (a failed capture leaves the stream usable and caches nothing).
  bool launch(const StepShape& shape, cudaStream_t stream, const std::function<void()>& record);

  // Captures the graph of `shape` without running it (start-up warm-up); true when it is (now) cached.
  bool capture(const StepShape& shape, cudaStream_t stream, const std::function<void()>& record);

  size_t size() const { return graphs_.size(); }

 private:
  size_t max_graphs_;
  std::map<std::pair<int, int>, cudaGraphExec_t> graphs_;  // (num_seqs, max_context_len) -> executable graph
};

}  // namespace tessera::cuda
