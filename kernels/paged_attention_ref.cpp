#include "kernels/paged_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tessera::kernels {

namespace {

float dot(const float* a, const float* b, int n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// One query head of one token: online (single pass) softmax, accumulating straight into `out`.
void attend_one(const float* query, int32_t position, int kv_head, const AttentionSequence& seq,
                const float* key_cache, const float* value_cache, const KvCacheLayout& layout,
                const AttentionParams& params, float* out) {
  const int head_dim = layout.head_dim;
  const int64_t slot_width = layout.floats_per_slot();
  const int32_t first = params.sliding_window > 0 ? std::max(0, position - params.sliding_window + 1) : 0;
  std::fill(out, out + head_dim, 0.0f);
  float running_max = -std::numeric_limits<float>::infinity();
  float denominator = 0.0f;
  for (int32_t block_start = first - first % layout.block_size; block_start <= position;
       block_start += layout.block_size) {
    const int64_t block = seq.block_table[block_start / layout.block_size];
    const int32_t lo = std::max(first, block_start);
    const int32_t hi = std::min(position, block_start + layout.block_size - 1);
    for (int32_t p = lo; p <= hi; ++p) {
      const int64_t offset = (block * layout.block_size + (p - block_start)) * slot_width +
                             static_cast<int64_t>(kv_head) * head_dim;
      const float score = dot(query, key_cache + offset, head_dim) * params.scale;
      if (score > running_max) {
        const float correction = std::exp(running_max - score);  // 0 on the first key
        denominator *= correction;
#pragma omp simd
        for (int i = 0; i < head_dim; ++i) out[i] *= correction;
        running_max = score;
      }
      const float weight = std::exp(score - running_max);
      denominator += weight;
      const float* value = value_cache + offset;
#pragma omp simd
      for (int i = 0; i < head_dim; ++i) out[i] += weight * value[i];
    }
  }
  const float inv = 1.0f / denominator;
#pragma omp simd
  for (int i = 0; i < head_dim; ++i) out[i] *= inv;
}

}  // namespace

void paged_attention_ref(const float* q, const float* key_cache, const float* value_cache, const KvCacheLayout& layout,
                         std::span<const AttentionSequence> sequences, const AttentionParams& params, float* out) {
  const int num_heads = params.num_heads;
  const int group = num_heads / layout.num_kv_heads;
  const int64_t row_width = static_cast<int64_t>(num_heads) * layout.head_dim;
#pragma omp parallel
  for (const AttentionSequence& seq : sequences) {
    const int32_t first_position = seq.context_len - seq.query_len;
    // nowait: sequences are independent, threads move on to the next one without a barrier.
#pragma omp for collapse(2) schedule(static) nowait
    for (int32_t j = 0; j < seq.query_len; ++j) {
      for (int h = 0; h < num_heads; ++h) {
        const int64_t row = (seq.query_start + j) * row_width + static_cast<int64_t>(h) * layout.head_dim;
        attend_one(q + row, first_position + j, h / group, seq, key_cache, value_cache, layout, params, out + row);
      }
    }
  }
}

}  // namespace tessera::kernels
