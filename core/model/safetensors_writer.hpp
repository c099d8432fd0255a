#pragma once
// Writing safetensors checkpoints straight into the output files through memory maps, filling tensor
// data in parallel (OpenMP) so that multi-GB checkpoints are written at memory speed.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/common/dtype.hpp"

namespace tessera {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  uint64_t nbytes() const { return static_cast<uint64_t>(numel()) * dtype_size(dtype); }
};

// Writes elements [first, first + count) of `spec`, encoded as spec.dtype, to `out` (which points at element
// `first`). Threading: called concurrently from several OpenMP threads on disjoint ranges; must not throw.
using TensorFiller = std::function<void(const TensorSpec& spec, int64_t first, int64_t count, void* out)>;

// Writes one .safetensors file holding `tensors` in the given order (header padded to 8 bytes, so every
// tensor of an aligned size starts 8-byte aligned). Throws tessera::Error naming the file on I/O failure
// or duplicate tensor names.
void write_safetensors_file(const std::filesystem::path& file, const std::vector<TensorSpec>& tensors,
                            const TensorFiller& fill);

// Writes `tensors` into `dir` as `model.safetensors`, or, when they total more than `max_shard_bytes`, as
// `model-0000K-of-0000N.safetensors` shards (in order, a new shard whenever the next tensor would overflow
// the current one) plus `model.safetensors.index.json`. Returns the written safetensors files.
std::vector<std::filesystem::path> write_safetensors_checkpoint(const std::filesystem::path& dir,
                                                                const std::vector<TensorSpec>& tensors,
                                                                const TensorFiller& fill, uint64_t max_shard_bytes);

// Tensor data given as FP32 values, converted to the spec's dtype when written (tests, small files).
struct FloatTensor {
  TensorSpec spec;
  std::vector<float> values;  // spec.numel() values
};
// A filler that encodes FloatTensor values; `tensors` must outlive the returned function.
TensorFiller float_tensor_filler(const std::vector<FloatTensor>& tensors);
std::vector<TensorSpec> specs_of(const std::vector<FloatTensor>& tensors);

}  // namespace tessera
