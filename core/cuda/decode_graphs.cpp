#include "core/cuda/decode_graphs.hpp"

#include "core/cuda/cuda_check.hpp"

namespace tessera::cuda {

DecodeGraphs::~DecodeGraphs() {
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
}

bool DecodeGraphs::capture(const StepShape& shape, cudaStream_t stream, const std::function<void()>& record) {
  const std::pair<int, int> key{shape.num_seqs, shape.max_context_len};
  if (graphs_.count(key)) return true;
  if (graphs_.size() >= max_graphs_) return false;
  // Thread-local capture: other threads' CUDA calls (e.g. another executor's) are not affected.
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  cudaGraph_t graph = nullptr;
  try {
    record();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();  // an invalidated capture leaves a non-sticky error behind
    throw;
  }
  check(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check(status, "cudaGraphInstantiate");
  graphs_.emplace(key, exec);
  return true;
}

bool DecodeGraphs::launch(const StepShape& shape, cudaStream_t stream, const std::function<void()>& record) {
  if (!capture(shape, stream, record)) return false;
  check(cudaGraphLaunch(graphs_.at({shape.num_seqs, shape.max_context_len}), stream), "cudaGraphLaunch");
  return true;
}

}  // namespace tessera::cuda
