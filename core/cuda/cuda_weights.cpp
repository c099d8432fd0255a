#include "core/cuda/cuda_weights.hpp"

#include <cstring>

#include "core/model/safetensors.hpp"

namespace tessera::cuda {

namespace {

// Converts `count` elements from `src` (dtype `from`) into `dst` (dtype `to`); F32/F16/BF16.
void convert(const std::byte* src, DType from, std::byte* dst, DType to, int64_t count) {
  auto read = [&](int64_t i) -> float {
    switch (from) {
      case DType::F32: { float f; std::memcpy(&f, src + 4 * i, 4); return f; }
      case DType::F16: { uint16_t h; std::memcpy(&h, src + 2 * i, 2); return f16_to_f32(h); }
      case DType::BF16: { uint16_t b; std::memcpy(&b, src + 2 * i, 2); return bf16_to_f32(b); }
    }
    return 0;
  };
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const float v = read(i);
    if (to == DType::F32) {
      std::memcpy(dst + 4 * i, &v, 4);
    } else {
      const uint16_t b = f32_to_bf16(v);
      std::memcpy(dst + 2 * i, &b, 2);
    }
  }
}

class Uploader {
 public:
  Uploader(const Checkpoint& checkpoint, DType dtype) : checkpoint_(checkpoint), dtype_(dtype) {}

  // Copies tensor `name` (expected shape `shape`) to `dst` + `offset_elements`.
  void copy(const std::string& name, const std::vector<int64_t>& shape, void* dst, int64_t offset_elements = 0) {
    copy_rows(name, shape, dst, offset_elements, 1);
  }

  // Copies the rows of tensor `name` (rows of shape[1] elements; a 1-D tensor is one row) to `dst` +
  // `offset_elements`, consecutive rows `row_step` rows apart: row_step 2 interleaves two tensors row by row.
  void copy_rows(const std::string& name, const std::vector<int64_t>& shape, void* dst, int64_t offset_elements,
                 int64_t row_step) {
    if (!checkpoint_.contains(name)) {
      throw Error(checkpoint_.dir().string() + ": tensor '" + name + "' is missing");
    }
    const TensorView view = checkpoint_.tensor(name);
    if (view.shape != shape) {
      std::string want, got;
      for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      for (int64_t d : view.shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      throw Error(view.file.string() + ": tensor '" + name + "' has shape [" + got + "], expected [" + want + "]");
    }
    const size_t row_bytes = static_cast<size_t>(shape.size() == 2 ? shape[1] : view.numel()) * dtype_size(dtype_);
    const size_t rows = static_cast<size_t>(view.numel()) * dtype_size(dtype_) / row_bytes;
    std::byte* out = static_cast<std::byte*>(dst) + static_cast<size_t>(offset_elements) * dtype_size(dtype_);
    const void* src = view.data;
    if (view.dtype != dtype_) {
      staging_.resize(rows * row_bytes);
      convert(view.data, view.dtype, staging_.data(), dtype_, view.numel());
      src = staging_.data();
    }
    check(cudaMemcpy2D(out, row_bytes * static_cast<size_t>(row_step), src, row_bytes, row_bytes, rows,
                       cudaMemcpyHostToDevice),
          "uploading weights");
  }

  DeviceMemory allocate(int64_t elements, size_t& total) {
    const size_t bytes = static_cast<size_t>(elements) * dtype_size(dtype_);
    total += bytes;
    return DeviceMemory(bytes, "allocating weights");
  }

 private:
  const Checkpoint& checkpoint_;
  DType dtype_;
  std::vector<std::byte> staging_;
};

}  // namespace

CudaWeights CudaWeights::load(const std::filesystem::path& dir, DType dtype) {
  if (dtype == DType::F16) throw Error("CUDA executor: compute dtype F16 is not supported (use BF16 or F32)");
  CudaWeights w;
  w.config = LlamaConfig::load(dir);
  w.dtype = dtype;
  const LlamaConfig& c = w.config;
  const Checkpoint checkpoint = Checkpoint::open(dir);
  Uploader up(checkpoint, dtype);
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, hd = c.head_dim;
  const int64_t q_out = c.num_heads * hd, kv_out = c.num_kv_heads * hd;

  w.embed_tokens = up.allocate(c.vocab_size * hidden, w.total_bytes);
  up.copy("model.embed_tokens.weight", {c.vocab_size, hidden}, w.embed_tokens.get());
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    CudaLayerWeights layer;
    layer.input_norm = up.allocate(hidden, w.total_bytes);
    up.copy(p + "input_layernorm.weight", {hidden}, layer.input_norm.get());
    layer.qkv = up.allocate((q_out + 2 * kv_out) * hidden, w.total_bytes);
    up.copy(p + "self_attn.q_proj.weight", {q_out, hidden}, layer.qkv.get(), 0);
    up.copy(p + "self_attn.k_proj.weight", {kv_out, hidden}, layer.qkv.get(), q_out * hidden);
    up.copy(p + "self_attn.v_proj.weight", {kv_out, hidden}, layer.qkv.get(), (q_out + kv_out) * hidden);
    layer.o_proj = up.allocate(hidden * q_out, w.total_bytes);
    up.copy(p + "self_attn.o_proj.weight", {hidden, q_out}, layer.o_proj.get());
    layer.post_attn_norm = up.allocate(hidden, w.total_bytes);
    up.copy(p + "post_attention_layernorm.weight", {hidden}, layer.post_attn_norm.get());
    layer.gate_up = up.allocate(2 * inter * hidden, w.total_bytes);
    // Paired rows (gate j, up j adjacent): the decode GEMV's SwiGLU epilogue finds each pair in one warp group.
    up.copy_rows(p + "mlp.gate_proj.weight", {inter, hidden}, layer.gate_up.get(), 0, 2);
    up.copy_rows(p + "mlp.up_proj.weight", {inter, hidden}, layer.gate_up.get(), hidden, 2);
    layer.down = up.allocate(hidden * inter, w.total_bytes);
    up.copy(p + "mlp.down_proj.weight", {hidden, inter}, layer.down.get());
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = up.allocate(hidden, w.total_bytes);
  up.copy("model.norm.weight", {hidden}, w.final_norm.get());
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed_tokens.get();
  } else {
    w.lm_head_own = up.allocate(c.vocab_size * hidden, w.total_bytes);
    up.copy("lm_head.weight", {c.vocab_size, hidden}, w.lm_head_own.get());
    w.lm_head = w.lm_head_own.get();
  }
  return w;
}

}  // namespace tessera::cuda
