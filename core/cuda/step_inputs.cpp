#include "core/cuda/step_inputs.hpp"

#include <algorithm>
#include <cstring>

#include "core/common/error.hpp"
#include "kernels/sampling.hpp"

namespace tessera::cuda {

namespace {

constexpr size_t kAlign = 256;  // every array starts 256-byte aligned (vector loads, cudaMemcpy friendly)
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int next_power_of_two(int n) {
  int p = 1;
  while (p < n) p *= 2;
  return p;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace

StepInputLayout StepInputLayout::make(int64_t max_tokens, int64_t max_seqs, int64_t max_blocks_per_seq) {
  StepInputLayout l;
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t here = at;
    at += align_up(bytes);
    return here;
  };
  l.token_ids = take(max_tokens * 4);
  l.positions = take(max_tokens * 4);
  l.slot_mapping = take(max_tokens * 8);
  l.pending_rows = take(max_tokens * 4);
  l.query_start = take(max_seqs * 4);
  l.query_len = take(max_seqs * 4);
  l.context_len = take(max_seqs * 4);
  l.logit_rows = take(max_seqs * 4);
  l.sampling_rows = take(max_seqs * sizeof(kernels::SamplingRow));
  l.block_tables = take(max_seqs * max_blocks_per_seq * 4);
  l.total = at;
  return l;
}

size_t StepInputLayout::bytes_used(int num_seqs, int blocks_per_seq) const {
  return block_tables + static_cast<size_t>(num_seqs) * blocks_per_seq * 4;
}

StepShape measure_step(const StepPlan& plan, int block_size) {
  StepShape s;
  s.num_seqs = static_cast<int>(plan.sequences.size());
  for (const ScheduledSequence& seq : plan.sequences) {
    const int len = static_cast<int>(seq.tokens.size());
    const int context = seq.num_cached + len;
    s.num_tokens += len;
    s.max_query_len = std::max(s.max_query_len, len);
    s.max_context_len = std::max(s.max_context_len, context);
    s.blocks_per_seq = std::max(s.blocks_per_seq, ceil_div(context, block_size));
    s.num_logits += seq.sample ? 1 : 0;
  }
  return s;
}

std::optional<StepShape> graph_shape(const StepShape& actual, const GraphBuckets& b) {
  if (actual.num_seqs < 1 || actual.max_query_len != 1 || actual.num_seqs > b.max_batch) return std::nullopt;
  if (actual.max_context_len > b.max_context || b.max_context < 1) return std::nullopt;
  StepShape s;
  s.graph = true;
  s.num_seqs = actual.num_seqs <= 8 ? actual.num_seqs : ceil_div(actual.num_seqs, 8) * 8;
  s.num_seqs = std::min(s.num_seqs, b.max_batch);
  s.num_tokens = s.num_seqs;
  s.num_logits = s.num_seqs;
  s.max_query_len = 1;
  s.max_context_len = std::min(std::max(next_power_of_two(actual.max_context_len), b.min_context), b.max_context);
  s.blocks_per_seq = ceil_div(s.max_context_len, b.block_size);
  return s;
}

std::vector<int32_t> pack_step_inputs(const StepPlan& plan, const StepShape& shape, const StepInputLayout& layout,
                                      int block_size, int32_t scratch_block,
                                      const std::unordered_map<uint64_t, uint64_t>& draws,
                                      const std::unordered_map<uint64_t, int32_t>& previous_rows, std::byte* host) {
  auto* ids = reinterpret_cast<int32_t*>(host + layout.token_ids);
  auto* positions = reinterpret_cast<int32_t*>(host + layout.positions);
  auto* slots = reinterpret_cast<int64_t*>(host + layout.slot_mapping);
  auto* pending = reinterpret_cast<int32_t*>(host + layout.pending_rows);
  auto* query_start = reinterpret_cast<int32_t*>(host + layout.query_start);
  auto* query_len = reinterpret_cast<int32_t*>(host + layout.query_len);
  auto* context_len = reinterpret_cast<int32_t*>(host + layout.context_len);
  auto* logit_rows = reinterpret_cast<int32_t*>(host + layout.logit_rows);
  auto* sampling_rows = reinterpret_cast<kernels::SamplingRow*>(host + layout.sampling_rows);
  auto* block_tables = reinterpret_cast<int32_t*>(host + layout.block_tables);
  const int stride = shape.blocks_per_seq;

  std::vector<int32_t> sample_row(plan.sequences.size(), -1);
  int64_t t = 0;
  int logit = 0;
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const ScheduledSequence& seq = plan.sequences[i];
    const int len = static_cast<int>(seq.tokens.size());
    query_start[i] = static_cast<int32_t>(t);
    query_len[i] = len;
    context_len[i] = seq.num_cached + len;
    int32_t* table = block_tables + i * stride;
    const int known = std::min<int>(stride, static_cast<int>(seq.block_table.size()));
    std::copy_n(seq.block_table.begin(), known, table);
    std::fill(table + known, table + stride, scratch_block);
    for (int j = 0; j < len; ++j, ++t) {
      const int pos = seq.num_cached + j;
      ids[t] = seq.tokens[j];
      pending[t] = -1;
      positions[t] = pos;
      slots[t] = int64_t{seq.block_table[pos / block_size]} * block_size + pos % block_size;
    }
    if (seq.token_pending) {
      const auto row = previous_rows.find(seq.seq_id);
      if (row == previous_rows.end()) {
        throw Error("sequence " + std::to_string(seq.seq_id) +
                    ": its pending input token was not sampled in the previous step");
      }
      ids[t - 1] = 0;
      pending[t - 1] = row->second;
    }
    // A graph step samples every row (its sampled output row i is sequence i); an eager step only the sampling ones.
    const bool row_samples = shape.graph || seq.sample;
    if (!row_samples) continue;
    const auto it = draws.find(seq.seq_id);
    logit_rows[logit] = static_cast<int32_t>(t - 1);
    sampling_rows[logit] = kernels::SamplingRow{seq.sampling.temperature, seq.sampling.top_k, seq.sampling.top_p,
                                                seq.sampling.seed, it == draws.end() ? 0 : it->second};
    if (seq.sample) sample_row[i] = logit;
    ++logit;
  }
  // Padding sequences of a graph step: one greedy token at position 0 that writes (and reads) the scratch block.
  for (int i = static_cast<int>(plan.sequences.size()); i < shape.num_seqs; ++i, ++t) {
    query_start[i] = static_cast<int32_t>(t);
    query_len[i] = 1;
    context_len[i] = 1;
    std::fill(block_tables + static_cast<int64_t>(i) * stride, block_tables + static_cast<int64_t>(i + 1) * stride,
              scratch_block);
    ids[t] = 0;
    pending[t] = -1;
    positions[t] = 0;
    slots[t] = int64_t{scratch_block} * block_size;
    logit_rows[logit] = static_cast<int32_t>(t);
    sampling_rows[logit] = kernels::SamplingRow{0.0f, -1, 1.0f, 0, 0};
    ++logit;
  }
  return sample_row;
}

}  // namespace tessera::cuda
