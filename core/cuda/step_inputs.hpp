#pragma once
// Host-side preparation of one CUDA step: the plan's shape, the shape a captured decode graph runs it at (batch and
// context padded to buckets), and the packing of every per-step input array into one pinned buffer so that a single
// host-to-device copy of only the used bytes moves them. Plain host code (no CUDA calls): unit-tested without a GPU.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/serving/step.hpp"

namespace tessera::cuda {

// Byte offsets of the per-step input arrays inside the packed buffer. Fixed for the executor's lifetime, so kernels
// captured in a CUDA graph keep pointing at the right arrays. The block tables come last: a step copies only
// [0, bytes_used()), and the tables are the only large part (rows of max_blocks_per_seq ids).
struct StepInputLayout {
  size_t token_ids = 0;      // int32 [max_tokens]
  size_t positions = 0;      // int32 [max_tokens]
  size_t slot_mapping = 0;   // int64 [max_tokens]
  size_t pending_rows = 0;   // int32 [max_tokens]: row of the previous step's sampled ids to feed, or -1
  size_t query_start = 0;    // int32 [max_seqs]
  size_t query_len = 0;      // int32 [max_seqs]
  size_t context_len = 0;    // int32 [max_seqs]
  size_t logit_rows = 0;     // int32 [max_seqs]: the token row each sampled sequence's logits come from
  size_t sampling_rows = 0;  // kernels::SamplingRow [max_seqs]
  size_t block_tables = 0;   // int32 [num_seqs][blocks_per_seq], row stride = the step's blocks_per_seq
  size_t total = 0;          // bytes of the whole buffer (block tables at their largest)

  static StepInputLayout make(int64_t max_tokens, int64_t max_seqs, int64_t max_blocks_per_seq);
  size_t bytes_used(int num_seqs, int blocks_per_seq) const;
};

// What sizes a step's kernels. For a graph step these are the padded values the graph was captured with.
struct StepShape {
  int64_t num_tokens = 0;
  int num_seqs = 0;
  int num_logits = 0;       // rows sampled (a graph step samples every row, padding included)
  int max_query_len = 0;
  int max_context_len = 0;  // an upper bound of every sequence's context (tokens)
  int blocks_per_seq = 1;   // block-table row stride (entries)
  bool graph = false;       // run through a captured decode graph

  bool operator==(const StepShape&) const = default;
};

// The plan's own shape. `block_size`: tokens per KV block.
StepShape measure_step(const StepPlan& plan, int block_size);

// When a step may replay a captured graph: decode only (one token per sequence), at most `max_batch` sequences.
// Batches are padded to 1..8 exactly, then multiples of 8; contexts to the next power of two, at least
// `min_context`, at most `max_context` (the model's limit). Returns the padded shape, or nullopt (run eagerly).
struct GraphBuckets {
  int max_batch = 256;
  int min_context = 512;
  int max_context = 0;
  int block_size = 16;
};
std::optional<StepShape> graph_shape(const StepShape& actual, const GraphBuckets& buckets);

// Packs `plan` into `host` (layout.total bytes) for `shape`: the plan's sequences first, then (graph steps) padding
// sequences of one token at position 0 whose KV write goes to `scratch_block`, a block no request owns. `draws`:
// tokens each live sequence has sampled so far (its RNG offset). `previous_rows`: each sequence's row in the
// sampled ids of the step submitted before (a token_pending input is read from there on the device; a sequence
// missing from it throws tessera::Error). Returns, per plan sequence, its row in this step's sampled ids (-1 when
// it does not sample). Block ids are trusted (the plan was validated).
std::vector<int32_t> pack_step_inputs(const StepPlan& plan, const StepShape& shape, const StepInputLayout& layout,
                                      int block_size, int32_t scratch_block,
                                      const std::unordered_map<uint64_t, uint64_t>& draws,
                                      const std::unordered_map<uint64_t, int32_t>& previous_rows, std::byte* host);

}  // namespace tessera::cuda
