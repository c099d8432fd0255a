#pragma once
// Tensor-core prefill path of paged attention for BF16 (paged_attention_prefill_tc.cu). Device code; include from
// .cu files only.
#include "kernels/paged_attention_internal.cuh"

// Compile-time switch: 0 sends BF16 prefill back to the CUDA-core kernel of paged_attention_prefill.cu.
#ifndef TESSERA_PREFILL_TENSOR_CORES
#define TESSERA_PREFILL_TENSOR_CORES 1
#endif

namespace tessera::kernels::cuda::paged {

// Same contract as launch_prefill<__nv_bfloat16> (one block per (tile of 64 (token, head-of-group) rows, kv head,
// sequence); sequences with query_len <= 1 are skipped), computed with BF16 mma.sync. head_dim 64 or 128.
// blocks_per_sm: 3 compiles the kernel for 3 resident blocks per SM (registers capped at 168), anything else for 2.
cudaError_t launch_prefill_tensor_core(const Args<__nv_bfloat16>& args, int head_dim, int num_seqs,
                                       int max_query_len, int blocks_per_sm, cudaStream_t stream);

}  // namespace tessera::kernels::cuda::paged
