#pragma once
// A paged-attention test problem: random (T-rounded) queries and K/V caches, shuffled block tables, the CPU oracle
// (paged_attention_ref) and the GPU launcher over the same inputs, and the per-sequence comparison.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/paged_attention.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera::test {

struct SeqSpec {
  int query_len = 1;
  int context_len = 1;
};

struct BatchSpec {
  std::vector<SeqSpec> seqs;
  int num_heads = 8;
  int num_kv_heads = 2;
  int head_dim = 128;
  int block_size = 16;
  int sliding_window = 0;
  bool fused_qkv = false;  // q rows at the stride of a fused [q | k | v] projection row
  uint32_t seed = 1;
  // max_context_len passed to the launcher: at least every context (0: exactly the longest), e.g. the power-of-two
  // bucket a CUDA graph was captured for.
  int max_context_bound = 0;
  int table_slack = 1;  // block-table entries per row beyond the longest sequence's (the row stride grows)
  kernels::AttentionTuning tuning;  // launch shapes of the tensor-core kernels
};

inline std::string describe(const BatchSpec& spec) {
  std::string s = "heads " + std::to_string(spec.num_heads) + "/" + std::to_string(spec.num_kv_heads) + " dim " +
                  std::to_string(spec.head_dim) + " block " + std::to_string(spec.block_size) + " window " +
                  std::to_string(spec.sliding_window) + " bound " + std::to_string(spec.max_context_bound) +
                  " large-grid warps " + kernels::to_string(spec.tuning.large_grid_blocks) + " prefill blocks/SM " +
                  std::to_string(spec.tuning.prefill_blocks_per_sm) + " seqs";
  for (const SeqSpec& seq : spec.seqs) s += " (" + std::to_string(seq.query_len) + "," + std::to_string(seq.context_len) + ")";
  return s;
}

// Host inputs and their device copies. The tables cover every sequence's spec context; shorter context lengths
// (set_context_lengths) read a prefix of the same rows.
template <class T>
class AttentionProblem {
 public:
  explicit AttentionProblem(const BatchSpec& spec) : spec_(spec) {
    const int num_seqs = static_cast<int>(spec.seqs.size());
    const int bs = spec.block_size;
    row_width_ = static_cast<int64_t>(spec.num_heads) * spec.head_dim;
    q_stride_ = spec.fused_qkv ? static_cast<int64_t>(spec.num_heads + 2 * spec.num_kv_heads) * spec.head_dim : row_width_;

    // Block tables: a random permutation of all cache blocks, so consecutive positions live in scattered blocks.
    int64_t total_blocks = 3;  // a few blocks nobody owns
    int longest_blocks = 0;
    for (const SeqSpec& seq : spec.seqs) {
      const int blocks = (seq.context_len + bs - 1) / bs;
      longest_blocks = std::max(longest_blocks, blocks);
      total_blocks += blocks;
    }
    max_blocks_per_seq_ = std::max(1, longest_blocks + spec.table_slack);
    std::vector<int32_t> block_ids(total_blocks);
    std::iota(block_ids.begin(), block_ids.end(), 0);
    std::shuffle(block_ids.begin(), block_ids.end(), std::mt19937(spec.seed));
    // Unused table entries hold an id far outside the cache: a kernel reading past context_len faults.
    tables_.assign(static_cast<size_t>(num_seqs) * max_blocks_per_seq_, 1 << 30);
    query_start_.resize(num_seqs);
    query_len_.resize(num_seqs);
    context_len_.resize(num_seqs);
    int64_t next_block = 0;
    for (int s = 0; s < num_seqs; ++s) {
      const SeqSpec& seq = spec.seqs[s];
      const int blocks = (seq.context_len + bs - 1) / bs;
      for (int b = 0; b < blocks; ++b) tables_[static_cast<size_t>(s) * max_blocks_per_seq_ + b] = block_ids[next_block++];
      query_start_[s] = static_cast<int32_t>(num_tokens_);
      query_len_[s] = seq.query_len;
      context_len_[s] = seq.context_len;
      num_tokens_ += seq.query_len;
      max_query_len_ = std::max(max_query_len_, seq.query_len);
      max_context_len_ = std::max(max_context_len_, seq.context_len);
    }
    max_context_len_ = std::max(max_context_len_, spec.max_context_bound);

    layout_ = kernels::KvCacheLayout{total_blocks, bs, spec.num_kv_heads, spec.head_dim};
    const size_t cache_size = static_cast<size_t>(total_blocks) * bs * layout_.floats_per_slot();
    key_cache_ = rounded<T>(random_vector(cache_size, spec.seed + 1));
    value_cache_ = rounded<T>(random_vector(cache_size, spec.seed + 2));
    q_rows_ = rounded<T>(random_vector(static_cast<size_t>(num_tokens_ * q_stride_), spec.seed + 3));
    q_dense_.resize(static_cast<size_t>(num_tokens_ * row_width_));
    for (int64_t t = 0; t < num_tokens_; ++t)
      std::copy_n(q_rows_.begin() + t * q_stride_, row_width_, q_dense_.begin() + t * row_width_);

    params_.num_heads = spec.num_heads;
    params_.scale = 1.0f / std::sqrt(static_cast<float>(spec.head_dim));
    params_.sliding_window = spec.sliding_window;

    d_q_ = std::make_unique<DeviceBuffer<T>>(convert<T>(q_rows_));
    d_key_ = std::make_unique<DeviceBuffer<T>>(convert<T>(key_cache_));
    d_value_ = std::make_unique<DeviceBuffer<T>>(convert<T>(value_cache_));
    d_start_ = std::make_unique<DeviceBuffer<int32_t>>(query_start_);
    d_qlen_ = std::make_unique<DeviceBuffer<int32_t>>(query_len_);
    d_ctx_ = std::make_unique<DeviceBuffer<int32_t>>(context_len_);
    d_tables_ = std::make_unique<DeviceBuffer<int32_t>>(tables_);
    d_out_ = std::make_unique<DeviceBuffer<T>>(q_dense_.size());
    workspace_bytes_ = kernels::cuda::paged_attention_workspace_bytes(
        num_seqs, max_context_len_, spec.num_heads, spec.num_kv_heads, spec.head_dim, spec.sliding_window);
    d_ws_ = std::make_unique<DeviceBuffer<uint8_t>>(std::max<size_t>(workspace_bytes_, 1));
  }

  const std::vector<int32_t>& context_lengths() const { return context_len_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  int max_context_len() const { return max_context_len_; }

  // New device-side context lengths (each <= the spec's: the tables cover no more); launches see them, the
  // host-side bounds stay.
  void set_context_lengths(const std::vector<int32_t>& context_len) {
    context_len_ = context_len;
    d_ctx_->upload(context_len_);
  }
  // Unwritten output rows read back as NaN.
  void poison_output() { cudaMemset(d_out_->get(), 0xff, d_out_->size() * sizeof(T)); }

  cudaError_t launch(cudaStream_t stream, bool pdl = false) const {
    return kernels::cuda::launch_paged_attention<T>(
        d_q_->get(), q_stride_, d_key_->get(), d_value_->get(), layout_, d_start_->get(), d_qlen_->get(),
        d_ctx_->get(), d_tables_->get(), max_blocks_per_seq_, static_cast<int>(spec_.seqs.size()), num_tokens_,
        max_query_len_, max_context_len_, params_, d_out_->get(), d_ws_->get(), workspace_bytes_, stream, pdl,
        spec_.tuning);
  }

  // For tests that chain other kernels around the launch: the device arrays the launch reads and writes, and the
  // host values the caches and q rows hold.
  T* device_q() const { return d_q_->get(); }
  T* device_key_cache() const { return d_key_->get(); }
  T* device_value_cache() const { return d_value_->get(); }
  const kernels::KvCacheLayout& layout() const { return layout_; }
  int64_t q_stride() const { return q_stride_; }
  int64_t num_tokens() const { return num_tokens_; }
  const std::vector<float>& q_rows() const { return q_rows_; }  // [num_tokens][q_stride]
  const std::vector<float>& key_cache() const { return key_cache_; }
  const std::vector<float>& value_cache() const { return value_cache_; }
  std::vector<T> output() const { return d_out_->download(); }
  // Per sequence, the flat cache slot of its newest token (position context_len - 1) under the current context
  // lengths, or -1 when it has none (context 0).
  std::vector<int64_t> newest_slots() const {
    std::vector<int64_t> slots(spec_.seqs.size(), -1);
    for (size_t s = 0; s < slots.size(); ++s) {
      const int position = context_len_[s] - 1;
      if (position < 0) continue;
      const int32_t block = tables_[s * max_blocks_per_seq_ + position / spec_.block_size];
      slots[s] = static_cast<int64_t>(block) * spec_.block_size + position % spec_.block_size;
    }
    return slots;
  }

  // CPU oracle output for the current context lengths.
  std::vector<float> reference() const {
    std::vector<kernels::AttentionSequence> sequences(spec_.seqs.size());
    for (size_t s = 0; s < sequences.size(); ++s)
      sequences[s] = {query_start_[s], query_len_[s], context_len_[s], tables_.data() + s * max_blocks_per_seq_};
    std::vector<float> expected(q_dense_.size());
    kernels::paged_attention_ref(q_dense_.data(), key_cache_.data(), value_cache_.data(), layout_, sequences, params_,
                                 expected.data());
    return expected;
  }

  // Downloads the output and compares every sequence's query rows with the oracle (tolerance<T>()).
  void expect_matches_reference() const {
    const std::vector<float> expected = reference();
    const std::vector<float> out = to_f32(d_out_->download());
    for (size_t s = 0; s < spec_.seqs.size(); ++s) {
      const auto lo = static_cast<size_t>(query_start_[s] * row_width_);
      const auto hi = lo + static_cast<size_t>(query_len_[s] * row_width_);
      const std::vector<float> got(out.begin() + lo, out.begin() + hi);
      const std::vector<float> want(expected.begin() + lo, expected.begin() + hi);
      EXPECT_LT(relative_error(got, want), tolerance<T>())
          << "sequence " << s << " (query_len " << query_len_[s] << ", context " << context_len_[s] << ")";
    }
  }

 private:
  BatchSpec spec_;
  int64_t row_width_ = 0;
  int64_t q_stride_ = 0;
  int max_blocks_per_seq_ = 1;
  int64_t num_tokens_ = 0;
  int max_query_len_ = 1;
  int max_context_len_ = 1;
  std::vector<int32_t> tables_, query_start_, query_len_, context_len_;
  kernels::KvCacheLayout layout_;
  std::vector<float> key_cache_, value_cache_, q_rows_, q_dense_;
  kernels::AttentionParams params_;
  std::unique_ptr<DeviceBuffer<T>> d_q_, d_key_, d_value_, d_out_;
  std::unique_ptr<DeviceBuffer<int32_t>> d_start_, d_qlen_, d_ctx_, d_tables_;
  std::unique_ptr<DeviceBuffer<uint8_t>> d_ws_;
  size_t workspace_bytes_ = 0;
};

// Builds the problem, runs the GPU launcher on the default stream and checks it against the oracle.
template <class T>
void check_batch(const BatchSpec& spec) {
  SCOPED_TRACE(describe(spec));
  AttentionProblem<T> problem(spec);
  TESSERA_CUDA_OK(problem.launch(nullptr));
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  problem.expect_matches_reference();
}

}  // namespace tessera::test
