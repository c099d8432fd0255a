// Paged attention launcher: argument checks, the split-K plan of the decode path, workspace carving, and the
// dispatch of decode (query_len == 1) and prefill (query_len > 1) sequences to their kernels.
#include <algorithm>

#include "kernels/paged_attention.hpp"
#include "kernels/paged_attention_internal.cuh"

namespace tessera::kernels::cuda {

namespace {

// Splits are whole key tiles of the decode kernels. One tile per split is the floor: at small batches decode is
// pure latency (a few MB at most), and a block whose split fits the pipeline's prologue (two tiles) issues every
// load of its range at once, so more, shorter splits cut the dependent memory round trips of each block.
constexpr int kPartitionQuantum = 64;  // the decode kernels' key tile
constexpr int kMinPartition = kPartitionQuantum;
constexpr int kBlocksPerSm = 2;  // split until the decode grid has about this many blocks per SM
// Visible ranges up to this long are split only into as many splits as keep the grid within one wave
// (kBlocksPerSm blocks per SM): there the splits are pure latency, and a second wave would add more than they save.
constexpr int kShortSpan = 512;
// Grids of at least this many waves (at DecodePlan's large-grid occupancy) take the large-grid pipeline; fewer
// waves would lose more to the last partial wave than the extra blocks per SM gain (H100: 64 sequences x 1000
// tokens, 512 blocks, ran at 1.93 TB/s with three blocks per SM vs 2.31 with two; bench/results session 4 run 9).
constexpr int64_t kLargeGridWaves = 4;

int current_device_attribute(cudaDeviceAttr attribute) {
  int device = 0;
  int value = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&value, attribute, device) != cudaSuccess) return 0;
  return value;
}

int current_sm_count() { return current_device_attribute(cudaDevAttrMultiProcessorCount); }

// Whether a large grid runs the 2-warp block shape on the current device (kAuto: by DRAM bandwidth per SM).
bool two_warp_blocks(LargeGridBlocks requested, int sm_count) {
  if (requested == LargeGridBlocks::kAuto) {
    const double bandwidth = peak_dram_bytes_per_s(current_device_attribute(cudaDevAttrMemoryClockRate),
                                                   current_device_attribute(cudaDevAttrGlobalMemoryBusWidth));
    return resolve_large_grid_blocks(requested, bandwidth, sm_count) == LargeGridBlocks::kTwoWarps;
  }
  return requested == LargeGridBlocks::kTwoWarps;
}

// Decode blocks per sequence before splitting: one per (kv head, chunk of <= 16 query heads of its group), as the
// tensor-core kernel launches (the CUDA-core kernel's chunks of 8 only make its grid larger). Independent of T, so
// one workspace size serves both element types.
int decode_blocks_per_seq(int num_heads, int num_kv_heads) {
  const int group = num_heads / num_kv_heads;
  return num_kv_heads * ((group + paged::kDecodeTcHeads - 1) / paged::kDecodeTcHeads);
}

// Visible keys of a decode query are at most this many (the sliding window caps the range).
int decode_span(int max_context_len, int sliding_window) {
  return sliding_window > 0 ? std::min(max_context_len, sliding_window) : max_context_len;
}

// Splits the context only when the grid would otherwise leave SMs idle (small batches): into about
// kBlocksPerSm * sm_count blocks, splits of whole tiles, at least one tile each. Large batches (the grid fills the
// GPU) are never split. Depends on host arguments only (the context bound, not the device-side lengths), so
// CUDA-graph replays stay valid.
paged::DecodePlan plan_decode(int num_seqs, int blocks_per_seq, int span, int sm_count) {
  paged::DecodePlan plan;
  plan.partition = std::max(span, 1);
  const int64_t blocks = static_cast<int64_t>(num_seqs) * blocks_per_seq;
  plan.large_grid = blocks >= kLargeGridWaves * paged::kLargeGridBlocksPerSm * static_cast<int64_t>(sm_count);
  if (span <= kMinPartition || num_seqs <= 0) return plan;
  const int64_t target = static_cast<int64_t>(kBlocksPerSm) * sm_count;
  const int64_t wanted = span <= kShortSpan ? target / blocks : (target + blocks - 1) / blocks;
  if (wanted <= 1) return plan;
  int64_t partition = (span + wanted - 1) / wanted;
  partition = (partition + kPartitionQuantum - 1) / kPartitionQuantum * kPartitionQuantum;
  partition = std::max<int64_t>(partition, kMinPartition);
  plan.partition = static_cast<int>(partition);
  plan.num_splits = static_cast<int>((span + partition - 1) / partition);
  // Clusters only where the grid takes at most one block per SM: the blocks of a cluster must be resident at once
  // on one GPC, and a grid of more clusters than fit runs in two waves (H100, tessera-attention-bench: 8 x 1000
  // in clusters of 4 took 36.0 us vs 28.7 us with the combine kernel; 1 x 130 in clusters of 8 took 11.1 vs 12.6).
  plan.cluster_combine = plan.num_splits <= paged::kMaxClusterSplits && blocks * plan.num_splits <= sm_count;
  return plan;
}

size_t partial_bytes(int num_seqs, int num_heads, int head_dim, const paged::DecodePlan& plan) {
  if (plan.num_splits <= 1) return 0;
  const size_t parts = static_cast<size_t>(num_seqs) * num_heads * plan.num_splits;
  return parts * (2 + static_cast<size_t>(head_dim)) * sizeof(float);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

size_t paged_attention_workspace_bytes(int max_num_seqs, int max_context_len, int num_heads, int num_kv_heads,
                                       int head_dim, int sliding_window) {
  if (max_num_seqs <= 0 || max_context_len <= 0 || num_heads <= 0 || num_kv_heads <= 0 || head_dim <= 0) return 0;
  const int sm_count = current_sm_count();
  const int blocks_per_seq = decode_blocks_per_seq(num_heads, num_kv_heads);
  const int span = decode_span(max_context_len, sliding_window);
  // Fewer sequences get more splits each, so the need is not monotone in num_seqs: take the maximum.
  size_t most = 0;
  for (int n = 1; n <= max_num_seqs; ++n) {
    const paged::DecodePlan plan = plan_decode(n, blocks_per_seq, span, sm_count);
    if (plan.num_splits == 1) break;  // more sequences never split again
    most = std::max(most, partial_bytes(n, num_heads, head_dim, plan));
  }
  return most;
}

template <class T>
cudaError_t launch_paged_attention(const T* q, int64_t q_row_stride, const T* key_cache, const T* value_cache,
                                   KvCacheLayout layout, const int32_t* query_start, const int32_t* query_len,
                                   const int32_t* context_len, const int32_t* block_tables, int max_blocks_per_seq,
                                   int num_seqs, int64_t num_tokens, int max_query_len, int max_context_len,
                                   AttentionParams params, T* out, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream, bool pdl, AttentionTuning tuning) {
  if (num_seqs < 0 || num_tokens < 0) return cudaErrorInvalidValue;
  if (num_seqs == 0 || num_tokens == 0) return cudaSuccess;
  const int head_dim = layout.head_dim;
  if (head_dim != 64 && head_dim != 128) return cudaErrorInvalidValue;
  if (layout.num_kv_heads <= 0 || params.num_heads <= 0 || params.num_heads % layout.num_kv_heads != 0 ||
      layout.block_size <= 0 || max_blocks_per_seq <= 0 || num_seqs > 65535 || max_query_len <= 0 ||
      max_context_len <= 0 || params.sliding_window < 0 ||
      !valid_prefill_blocks_per_sm(tuning.prefill_blocks_per_sm)) {
    return cudaErrorInvalidValue;
  }
  if (!q || !key_cache || !value_cache || !out || !query_start || !query_len || !context_len || !block_tables)
    return cudaErrorInvalidValue;
  if (!aligned16(q) || !aligned16(key_cache) || !aligned16(value_cache) || !aligned16(out) ||
      q_row_stride % paged::kVec<T> != 0 || q_row_stride < static_cast<int64_t>(params.num_heads) * head_dim) {
    return cudaErrorInvalidValue;
  }

  paged::Args<T> args;
  args.q = q;
  args.q_row_stride = q_row_stride;
  args.key_cache = key_cache;
  args.value_cache = value_cache;
  args.block_size = layout.block_size;
  args.num_kv_heads = layout.num_kv_heads;
  args.num_heads = params.num_heads;
  args.query_start = query_start;
  args.query_len = query_len;
  args.context_len = context_len;
  args.block_tables = block_tables;
  args.max_blocks_per_seq = max_blocks_per_seq;
  args.scale = params.scale;
  args.sliding_window = params.sliding_window;
  args.out = out;

  const int sm_count = current_sm_count();
  paged::DecodePlan plan = plan_decode(num_seqs, decode_blocks_per_seq(params.num_heads, layout.num_kv_heads),
                                       decode_span(max_context_len, params.sliding_window), sm_count);
  plan.two_warp_blocks = plan.large_grid && two_warp_blocks(tuning.large_grid_blocks, sm_count);
  paged::Partials partials;
  const size_t needed = partial_bytes(num_seqs, params.num_heads, head_dim, plan);
  if (needed > 0) {
    if (!workspace || workspace_bytes < needed || reinterpret_cast<uintptr_t>(workspace) % sizeof(float) != 0)
      return cudaErrorInvalidValue;
    const size_t parts = static_cast<size_t>(num_seqs) * params.num_heads * plan.num_splits;
    partials.max = static_cast<float*>(workspace);
    partials.sum = partials.max + parts;
    partials.acc = partials.sum + parts;
  }

  // Decode sequences (query_len == 1) always go through the decode kernel, which skips the others; the prefill
  // kernel runs only when some sequence may have more than one query token (launched normally: it starts after the
  // decode kernels completed).
  cudaError_t status = paged::launch_decode<T>(args, head_dim, num_seqs, plan, partials, stream, pdl);
  if (status != cudaSuccess || max_query_len <= 1) return status;
  return paged::launch_prefill<T>(args, head_dim, num_seqs, max_query_len, tuning.prefill_blocks_per_sm, stream);
}

template cudaError_t launch_paged_attention<float>(const float*, int64_t, const float*, const float*, KvCacheLayout,
                                                   const int32_t*, const int32_t*, const int32_t*, const int32_t*,
                                                   int, int, int64_t, int, int, AttentionParams, float*, void*,
                                                   size_t, cudaStream_t, bool, AttentionTuning);
template cudaError_t launch_paged_attention<__nv_bfloat16>(const __nv_bfloat16*, int64_t, const __nv_bfloat16*,
                                                           const __nv_bfloat16*, KvCacheLayout, const int32_t*,
                                                           const int32_t*, const int32_t*, const int32_t*, int, int,
                                                           int64_t, int, int, AttentionParams, __nv_bfloat16*, void*,
                                                           size_t, cudaStream_t, bool, AttentionTuning);

}  // namespace tessera::kernels::cuda
