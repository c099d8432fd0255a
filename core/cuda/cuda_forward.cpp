// The CUDA executor's forward pass (one step's kernels on the executor's stream, eager or captured into a decode
// graph) and the graph capture at start-up. Loading, submission and collection are in cuda_executor.cpp.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "core/cuda/cuda_executor_impl.hpp"
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
  // The diagnostic knobs (TESSERA_PDL, TESSERA_L2_PREFETCH_MB, TESSERA_FUSED_NORM) are read once at construction.
  const bool pdl = knobs.pdl;
  const size_t prefetch_cap = knobs.l2_prefetch_bytes;
  auto few_rows_fit = [&](const void* x, const void* w, int64_t rows, int64_t in_features) {
    return rows >= 1 && rows <= k::kMaxFewRows && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
           reinterpret_cast<uintptr_t>(w) % 16 == 0 && in_features % static_cast<int64_t>(16 / sizeof(T)) == 0;
  };
  // gemm() with the decode GEMV launched here (PDL, optional L2 prefetch); cuBLAS for other shapes.
  auto linear = [&](const void* x, const void* w, void* y, int64_t rows, int64_t in_features, int64_t out_features,
                    bool y_f32 = false, k::L2Prefetch prefetch = {},
                    k::FewRowsEpilogue epilogue = k::FewRowsEpilogue::kNone) {
    if (few_rows_fit(x, w, rows, in_features)) {
      check(k::launch_linear_few_rows<T>(static_cast<const T*>(x), static_cast<const T*>(w), y, y_f32, rows,
                                         in_features, out_features, stream, pdl, prefetch, epilogue),
            "linear_few_rows");
    } else if (epilogue != k::FewRowsEpilogue::kNone) {
      throw Error("CUDA executor: a GEMV epilogue was asked of a shape that runs on cuBLAS");  // a bug of ours
    } else {
      gemm(x, w, y, rows, in_features, out_features, y_f32);
    }
  };

  // The residual stream lives in `cur`; `alt` is the other of (residual, normed). norm_linear computes
  // y = rms_norm(cur (+ delta)) W^T and updates the stream: at decode sizes (n <= kFusedNormMaxRows) the GEMV
  // normalizes its input itself (launch_linear_few_rows_norm, bit-identical to the separate kernels, one kernel
  // boundary less) and writes the new residual to `alt` (its blocks still read `cur`), and the two swap; otherwise
  // add_rms_norm updates `cur` in place and normalizes into `alt` for the GEMV.
  const bool fuse_norm = knobs.fused_norm && n <= k::kFusedNormMaxRows &&
                         k::linear_few_rows_norm_fits(n, hidden, sizeof(T));
  T* cur = res;
  T* alt = nrm;
  auto norm_linear = [&](const T* delta, const T* norm_weight, const void* w, void* y, int64_t out_features,
                         bool y_f32, k::L2Prefetch prefetch, bool keep_residual,
                         k::FewRowsEpilogue epilogue = k::FewRowsEpilogue::kNone) {
    if (fuse_norm && reinterpret_cast<uintptr_t>(norm_weight) % 16 == 0 && few_rows_fit(cur, w, n, hidden)) {
      T* residual_out = delta != nullptr && keep_residual ? alt : nullptr;
      check(k::launch_linear_few_rows_norm<T>(cur, delta, residual_out, norm_weight, eps, static_cast<const T*>(w), y,
                                              y_f32, n, hidden, out_features, stream, pdl, prefetch, epilogue),
            "linear_few_rows_norm");
      if (residual_out != nullptr) std::swap(cur, alt);
      return;
    }
    if (delta != nullptr) {
      check(k::launch_add_rms_norm<T>(cur, delta, norm_weight, alt, n, hidden, eps, stream, pdl), "add_rms_norm");
    } else {
      check(k::launch_rms_norm<T>(cur, norm_weight, alt, n, hidden, eps, stream, pdl), "rms_norm");
    }
    linear(alt, w, y, n, hidden, out_features, y_f32, prefetch, epilogue);
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
                                       stream, pdl, knobs.attention),
          "paged_attention");
    linear(attention.get(), w.o_proj.get(), out, n, q_out, hidden);
    // The gate/up weight is paired (gate j, up j adjacent rows): the decode GEMV stores silu(gate) * up itself
    // (bit-identical to launch_swiglu over its output); larger batches run cuBLAS and launch_swiglu.
    if (few_rows_fit(alt, w.gate_up.get(), n, hidden)) {
      norm_linear(out, w.post_attn_norm.get<T>(), w.gate_up.get(), act.get(), 2 * inter, false, {}, true,
                  k::FewRowsEpilogue::kSwigluPairs);
    } else {
      norm_linear(out, w.post_attn_norm.get<T>(), w.gate_up.get(), gate_up.get(), 2 * inter, false, {}, true);
      check(k::launch_swiglu<T>(gate_up.get<T>(), act.get<T>(), n, inter, stream, pdl), "swiglu");
    }
    linear(act.get(), w.down.get(), out, n, inter, hidden);
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

}  // namespace tessera
