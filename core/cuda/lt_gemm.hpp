#pragma once
// The CUDA executor's GEMM for more rows than the few-row GEMV takes: y = x w^T through cuBLASLt with the algorithm
// its heuristic ranks first for the shape. Timed alone on an H100 that choice beats cublasGemmEx(CUBLAS_GEMM_DEFAULT)
// on the Llama-3.1-8B projections (tessera-gemm-bench: batch-256 decode step GEMMs 7.71 -> 7.35 ms, 2048 rows
// 42.55 -> 40.02 ms); inside the executor's steps the difference is within noise (bench/results session 4, run 4).
// It is also the API that FP8 matmuls need. No timing-based autotuning: the algorithm is a deterministic function of the shape, element types,
// pointer alignments and workspace size, so a seeded request gives the same tokens after a restart.
// Host code.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <type_traits>

#include "core/common/dtype.hpp"
#include "core/cuda/cublaslt_handles.hpp"

namespace tessera::cuda {

// The largest power of two <= 256 that divides `address` (256 for null): the alignment cuBLASLt may assume of an
// operand. cuBLASLt assumes 256 unless told otherwise; the executor passes row slices of activation buffers.
uint32_t lt_pointer_alignment(const void* address);

class LtGemm {
 public:
  // Creates the cuBLASLt handle on the current device. `workspace` (device memory, `workspace_bytes` long, 256-byte
  // aligned as cudaMalloc returns it) is used by every enqueued matmul; it may be shared with other work that is
  // ordered with it on one stream (the executor's cuBLAS handle). Throws tessera::Error when the handle can't be made.
  LtGemm(void* workspace, size_t workspace_bytes);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Enqueues y[rows, out] = x[rows, in] · w[out, in]^T (row-major, element counts) on `stream`, FP32 accumulation.
  // x and w hold `dtype` elements (BF16 or F32); y holds FP32 when y_f32 (LM-head logits), else `dtype`. y must not
  // alias x or w. Device pointers; asynchronous.
  // The first call for a (rows, in, out, y_f32, dtype, alignment of x / w / y) creates and caches the matmul
  // descriptor, the layouts and the heuristic's first algorithm; later calls only launch. No synchronization and no
  // device allocation, so it may be called while `stream` is being captured into a CUDA graph.
  // Returns CUBLAS_STATUS_SUCCESS when the matmul was enqueued. Otherwise nothing was enqueued and the caller should
  // compute y another way: CUBLAS_STATUS_INVALID_VALUE (a dimension < 1, a null pointer, dtype F16),
  // CUBLAS_STATUS_NOT_SUPPORTED (the heuristic offers no algorithm for the key; remembered), or the error cuBLASLt
  // reported.
  // Threading: not thread-safe; one stream at a time (the workspace is shared by every call).
  cublasStatus_t enqueue_linear(const void* x, const void* w, void* y, int64_t rows, int64_t in, int64_t out,
                                bool y_f32, DType dtype, cudaStream_t stream);

  // Plans in the cache (keys seen so far, including those without an algorithm). Diagnostics and tests.
  size_t cached_plans() const { return plans_.size(); }

  // Most cached plans (~700 bytes of host memory each): at this size the cache is emptied and refilled on demand
  // (prefill chunks make a plan per projection and distinct row count). Rebuilding a plan gives the same algorithm,
  // so this changes no result.
  static constexpr size_t kMaxCachedPlans = 8192;

 private:
  using Handle = LtHandle;
  using MatmulDesc = LtMatmulDesc;
  using Layout = LtLayout;
  using Preference = LtPreference;

  // What the algorithm choice depends on (besides the device and the workspace size, fixed per LtGemm).
  struct Key {
    int64_t rows, in, out;
    bool y_f32;
    DType dtype;
    uint32_t align_x, align_w, align_y;
    auto tie() const { return std::tie(rows, in, out, y_f32, dtype, align_x, align_w, align_y); }
    bool operator<(const Key& o) const { return tie() < o.tie(); }
  };
  struct Plan {
    MatmulDesc desc;
    Layout a, b, d;  // w as column-major in x out, x as in x rows, y as out x rows (also C: beta is 0)
    bool has_algo = false;
    cublasLtMatmulAlgo_t algo{};
  };

  // The cached plan of `key`, made on first use; throws nothing (a failure is the returned status).
  cublasStatus_t plan_for(const Key& key, const Plan*& plan);
  cublasStatus_t make_plan(const Key& key, Plan& plan) const;

  Handle handle_;
  void* workspace_;
  size_t workspace_bytes_;
  std::map<Key, Plan> plans_;
};

}  // namespace tessera::cuda
