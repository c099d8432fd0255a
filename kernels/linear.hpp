#pragma once
// Linear layer / matmul without bias: y = x W^T, with W in Hugging Face's [out_features, in_features] layout.
// This is the hot loop of the CPU engine. On the GPU, large batches go to cuBLAS (the executor); few rows (decode)
// go to launch_linear_few_rows below, a bandwidth-bound matrix-vector kernel.
#include <cstdint>

namespace tessera::kernels {

// x: [rows, in_features]; weight: [out_features, in_features]; y: [rows, out_features] (must not alias x).
// Vectorized dot products (8 lanes along in_features), OpenMP-parallel over 64-output tiles, rows in groups of 3.
// Batch invariant: each output row is bit-identical whatever the other rows are, so a sequence gets the same logits
// alone or inside any batch (served tokens equal offline tokens exactly). FP32 accumulation.
void linear_ref(const float* x, const float* weight, float* y, int64_t rows, int64_t in_features,
                int64_t out_features);

}  // namespace tessera::kernels

#if TESSERA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace tessera::kernels::cuda {

// Most activation rows launch_linear_few_rows takes (decode batches); above it cuBLAS is the better GEMM.
constexpr int kMaxFewRows = 8;

// Warps the few-row kernel wants in its grid to keep HBM busy. 4096 (half of an H100's 132 SMs x 64 warps): with 16
// loads in flight per lane at one row (launch_for_rows in linear.cu) that is enough, and the Llama-3.1-8B QKV, O and
// down projections then split 2 ways instead of 4 (H100, bench/results/h100-2026-11-23-session3 run 6: batch-1 decode
// step 5.57 vs 5.67 ms; 2048 warps, i.e. no split, was slower: run 3).
constexpr int64_t kFewRowsTargetWarps = 4096;

// How many warps (1, 2 or 4) of one block share each output row's `in` range in launch_linear_few_rows. Shapes with
// few outputs (Llama O, down, QKV projections) would otherwise leave SMs idle, one long dependent row per warp.
// A function of the shape only (never of the row count), so the summation order stays row-count independent:
// doubled while the grid (counted at 2 outputs per warp) is under kFewRowsTargetWarps and every lane keeps at least
// 4 sixteen-byte vectors of the row. element_bytes = sizeof(T).
constexpr int linear_few_rows_split(int64_t in, int64_t out, int64_t element_bytes) {
  const int64_t vectors = in * element_bytes / 16;  // 16-byte vectors per weight row
  const int64_t warps = (out + 1) / 2;
  int split = 1;
  while (split < 4 && warps * split < kFewRowsTargetWarps && vectors >= 2 * split * 32 * 4) split *= 2;
  return split;
}

// A byte range a few-row GEMV asks the L2 cache to fetch once its own stores are issued (cp.async.bulk.prefetch),
// split evenly over its blocks: the next weight matrix, when a kernel that reads little (attention at small batch)
// runs in between and would otherwise leave HBM idle. A hint: never read by the GEMV itself; ignored when null or
// empty; must be 16-byte aligned (else ignored), the size is rounded down to whole 16 bytes.
struct L2Prefetch {
  const void* data = nullptr;
  size_t bytes = 0;
};

// What a few-row GEMV stores. kNone: y = x W^T. kSwigluPairs: W is a paired gate/up weight (row 2j = gate row j,
// row 2j+1 = up row j, out = 2 * inter) and y receives the Llama MLP activation y[r][j] = silu(g) * u, where g and u
// are x W^T's elements 2j and 2j+1 rounded to T; y is [rows][out / 2] of T (y_f32 must be false, out even).
// Bit-identical to the plain GEMV into a [rows][out] buffer followed by launch_swiglu (kernels/swiglu.hpp) on it:
// the gate/up products never reach memory, and the down projection reads plain activations.
enum class FewRowsEpilogue { kNone, kSwigluPairs };

// y = x W^T for 1..kMaxFewRows rows, streaming W once with 16-byte loads (memory bound: ~weight bytes / bandwidth).
// Device pointers. x: [rows][in] of T; weight: [out][in] of T; y: [rows][out] of float when y_f32 (LM-head logits),
// else of T (must not alias x or weight). T = float or __nv_bfloat16; FP32 accumulation.
// Requirements (else cudaErrorInvalidValue, nothing launched): 1 <= rows <= kMaxFewRows, in > 0, out > 0,
// in % (16 / sizeof(T)) == 0, x and weight 16-byte aligned, no null pointer.
// Each output element is bit-identical whatever `rows` is (the summation order depends only on `in` and `out`,
// through linear_few_rows_split above). Asynchronous on `stream`; returns the launch status.
// pdl: launch with programmatic dependent launch (kernels/cuda_common.cuh): the kernel starts streaming W while the
// previous kernel on the stream finishes and reads x only after it completed. Same results either way.
template <class T>
cudaError_t launch_linear_few_rows(const T* x, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in,
                                   int64_t out, cudaStream_t stream, bool pdl = false, L2Prefetch prefetch = {},
                                   FewRowsEpilogue epilogue = FewRowsEpilogue::kNone);

// Most rows for which the executor fuses the RMSNorm before a GEMV into it (launch_linear_few_rows_norm): every
// block recomputes the norm of all rows (reading residual, delta and norm weight, through L1, and staging
// rows x in x sizeof(T) bytes of shared memory), which hides under the block's first weight loads at 1-2 rows and
// grows with the rows.
constexpr int kFusedNormMaxRows = 2;

// Whether launch_linear_few_rows_norm can stage `rows` normalized rows of `in` elements of `element_bytes` in one
// block's shared memory on the current device (rows * in * element_bytes plus ~1.6 KB within the opt-in maximum,
// 227 KB on an H100: e.g. 8 FP32 rows of 4096 take 128 KB). Host only, cheap.
bool linear_few_rows_norm_fits(int64_t rows, int64_t in, size_t element_bytes);

// The RMSNorm (after the residual add) fused into the few-row GEMV, for the decoder's norm -> projection pairs:
//   s = residual + delta (FP32 add, stored as T; delta null: s = residual),
//   x = rms_norm(s) * norm_weight (stored as T), y = x W^T,
// and s stored to residual_out when it is not null (by one block). Bit-identical, for every row count, to
// launch_add_rms_norm(residual, delta, norm_weight, x, ...) (launch_rms_norm(residual, ...) when delta is null)
// followed by launch_linear_few_rows(x, ...): the same float operations and reduction orders (kernels/rms_norm.cuh).
// Every block recomputes x from the residual rows into shared memory, so there is no norm kernel (and no kernel
// boundary) between the GEMV and the kernel before it.
// residual, delta, residual_out: [rows][in]; norm_weight: [in]. residual_out must not alias residual or delta (the
// other blocks still read those while it is written); y must alias none of them. Under pdl only W and norm_weight
// are read before the wait. Requirements (else cudaErrorInvalidValue, nothing launched): those of launch_linear_few_rows,
// residual / delta / norm_weight / residual_out 16-byte aligned, linear_few_rows_norm_fits(rows, in, sizeof(T)).
template <class T>
cudaError_t launch_linear_few_rows_norm(const T* residual, const T* delta, T* residual_out, const T* norm_weight,
                                        float eps, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in,
                                        int64_t out, cudaStream_t stream, bool pdl = false, L2Prefetch prefetch = {},
                                        FewRowsEpilogue epilogue = FewRowsEpilogue::kNone);

}  // namespace tessera::kernels::cuda
#endif
