// KV cache writes and paged attention against a dense naive attention in double, over shuffled block tables,
// sequence lengths around block boundaries (block size 16), GQA and sliding windows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/common/error.hpp"
#include "kernels/kv_cache_write.hpp"
#include "kernels/paged_attention.hpp"
#include "tests/kernels/random_inputs.hpp"

namespace tessera {
namespace {

using test::expect_close;
using test::random_floats;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(KvCacheWriteRef, WritesSlotsAndSkipsNegativeOnes) {
  const kernels::KvCacheLayout layout{3, 4, 2, 5};  // 12 slots of 10 floats
  std::vector<float> kc(12 * 10, kNaN), vc(12 * 10, kNaN);
  const auto k = random_floats(3 * 10, 31), v = random_floats(3 * 10, 32);
  const std::vector<int64_t> slots = {11, -1, 4};
  kernels::kv_cache_write_ref(k.data(), v.data(), 3, slots.data(), layout, kc.data(), vc.data());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(kc[11 * 10 + i], k[i]);
    EXPECT_EQ(vc[11 * 10 + i], v[i]);
    EXPECT_EQ(kc[4 * 10 + i], k[20 + i]);
    EXPECT_EQ(vc[4 * 10 + i], v[20 + i]);
  }
  const int written = static_cast<int>(std::count_if(kc.begin(), kc.end(), [](float x) { return !std::isnan(x); }));
  EXPECT_EQ(written, 20);
  const std::vector<int64_t> bad = {0, 12};
  EXPECT_THROW(kernels::kv_cache_write_ref(k.data(), v.data(), 2, bad.data(), layout, kc.data(), vc.data()), Error);
}

struct TestSequence {
  int context_len;
  int query_len;
};

// A batch of sequences with dense K/V, written through shuffled block tables into a NaN-filled paged cache.
struct AttentionCase {
  int num_heads, num_kv_heads, head_dim, block_size = 16;
  std::vector<TestSequence> shapes;
  std::vector<std::vector<float>> keys, values;  // per sequence: [context, kv_heads, head_dim]
  std::vector<std::vector<int32_t>> block_tables;
  std::vector<float> q;                          // [T, heads, head_dim]
  std::vector<float> key_cache, value_cache;
  kernels::KvCacheLayout layout;
  std::vector<kernels::AttentionSequence> sequences;

  AttentionCase(int heads, int kv_heads, int dim, std::vector<TestSequence> seqs)
      : num_heads(heads), num_kv_heads(kv_heads), head_dim(dim), shapes(std::move(seqs)) {
    int blocks_needed = 0;
    for (const auto& s : shapes) blocks_needed += (s.context_len + block_size - 1) / block_size;
    const int num_blocks = blocks_needed + 3;  // spare blocks stay NaN
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), std::mt19937(7));
    layout = {num_blocks, block_size, kv_heads, dim};
    const int64_t width = layout.floats_per_slot();
    key_cache.assign(num_blocks * block_size * width, kNaN);
    value_cache.assign(key_cache.size(), kNaN);
    int next_block = 0;
    int64_t query_start = 0;
    for (size_t s = 0; s < shapes.size(); ++s) {
      const int ctx = shapes[s].context_len;
      keys.push_back(random_floats(ctx * width, 100 + s, -2, 2));
      values.push_back(random_floats(ctx * width, 200 + s));
      std::vector<int32_t> table;
      for (int b = 0; b < (ctx + block_size - 1) / block_size; ++b) table.push_back(ids[next_block++]);
      block_tables.push_back(table);
      std::vector<int64_t> slots;
      for (int p = 0; p < ctx; ++p) slots.push_back(int64_t{table[p / block_size]} * block_size + p % block_size);
      kernels::kv_cache_write_ref(keys[s].data(), values[s].data(), ctx, slots.data(), layout, key_cache.data(),
                                  value_cache.data());
      query_start += shapes[s].query_len;
    }
    q = random_floats(query_start * heads * dim, 300, -2, 2);
    query_start = 0;
    for (size_t s = 0; s < shapes.size(); ++s) {
      sequences.push_back({query_start, shapes[s].query_len, shapes[s].context_len, block_tables[s].data()});
      query_start += shapes[s].query_len;
    }
  }

  std::vector<float> run(int sliding_window = 0) const {
    kernels::AttentionParams params;
    params.num_heads = num_heads;
    params.scale = 1.0f / std::sqrt(float(head_dim));
    params.sliding_window = sliding_window;
    std::vector<float> out(q.size(), kNaN);
    kernels::paged_attention_ref(q.data(), key_cache.data(), value_cache.data(), layout, sequences, params,
                                 out.data());
    return out;
  }

  // Dense softmax attention in double straight from the definition.
  std::vector<double> naive(int sliding_window = 0) const {
    std::vector<double> out(q.size());
    const int group = num_heads / num_kv_heads;
    int64_t row = 0;
    for (size_t s = 0; s < shapes.size(); ++s) {
      for (int j = 0; j < shapes[s].query_len; ++j, ++row) {
        const int pos = shapes[s].context_len - shapes[s].query_len + j;
        for (int h = 0; h < num_heads; ++h) {
          const float* qh = &q[(row * num_heads + h) * head_dim];
          const int kvh = h / group;
          std::vector<double> scores;
          std::vector<int> visible;
          for (int p = 0; p <= pos; ++p) {
            if (sliding_window > 0 && pos - p >= sliding_window) continue;
            double d = 0;
            for (int i = 0; i < head_dim; ++i) d += double(qh[i]) * keys[s][(p * num_kv_heads + kvh) * head_dim + i];
            scores.push_back(d / std::sqrt(double(head_dim)));
            visible.push_back(p);
          }
          const double mx = *std::max_element(scores.begin(), scores.end());
          double total = 0;
          for (double& x : scores) total += (x = std::exp(x - mx));
          for (int i = 0; i < head_dim; ++i) {
            double acc = 0;
            for (size_t n = 0; n < visible.size(); ++n)
              acc += scores[n] * values[s][(visible[n] * num_kv_heads + kvh) * head_dim + i];
            out[(row * num_heads + h) * head_dim + i] = acc / total;
          }
        }
      }
    }
    return out;
  }
};

TEST(PagedAttentionRef, MatchesDenseAttentionAcrossBlockBoundaries) {
  // Prefills (query_len == context_len), decodes (1) and prefill chunks, lengths around block_size 16.
  const AttentionCase c(6, 2, 13, {{1, 1}, {15, 15}, {16, 16}, {17, 17}, {33, 33}, {33, 1}, {17, 5}, {16, 1}});
  expect_close(c.run(), c.naive(), 1e-5, 1e-5);
}

TEST(PagedAttentionRef, MultiHeadAndMultiQueryVariants) {
  for (auto [heads, kv_heads] : {std::pair{4, 4}, std::pair{8, 1}, std::pair{6, 3}}) {
    const AttentionCase c(heads, kv_heads, 16, {{17, 17}, {33, 2}});
    expect_close(c.run(), c.naive(), 1e-5, 1e-5);
  }
}

TEST(PagedAttentionRef, SlidingWindowLimitsTheVisiblePast) {
  const AttentionCase c(4, 2, 8, {{33, 33}, {17, 1}, {5, 5}});
  for (int window : {1, 5, 16, 17, 100}) expect_close(c.run(window), c.naive(window), 1e-5, 1e-5);
  // A window wider than the context is no window.
  EXPECT_EQ(c.run(100), c.run(0));
}

TEST(PagedAttentionRef, QueriesNeverSeeLaterPositions) {
  AttentionCase c(2, 1, 8, {{17, 17}});
  const auto before = c.run();
  // Perturb the K/V of the last position (block 1, slot 0) in the cache.
  const int64_t slot = int64_t{c.block_tables[0][1]} * c.block_size;
  for (int i = 0; i < c.head_dim; ++i) {
    c.key_cache[slot * c.head_dim + i] += 5.0f;
    c.value_cache[slot * c.head_dim + i] -= 3.0f;
  }
  const auto after = c.run();
  const int64_t row_width = 2 * 8;
  for (int64_t i = 0; i < 16 * row_width; ++i) EXPECT_EQ(before[i], after[i]) << "query " << i / row_width;
  bool last_changed = false;
  for (int64_t i = 16 * row_width; i < 17 * row_width; ++i) last_changed |= before[i] != after[i];
  EXPECT_TRUE(last_changed);
}

TEST(PagedAttentionRef, QueryHeadsShareTheirGroupsKvHead) {
  AttentionCase c(4, 2, 8, {{9, 3}});
  // Same query vector for all heads: heads {0,1} (kv head 0) agree, heads {2,3} (kv head 1) agree, groups differ.
  for (int t = 0; t < 3; ++t)
    for (int h = 1; h < 4; ++h)
      std::copy_n(&c.q[t * 32], 8, &c.q[t * 32 + h * 8]);
  const auto out = c.run();
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(out[t * 32 + i], out[t * 32 + 8 + i]);
      EXPECT_EQ(out[t * 32 + 16 + i], out[t * 32 + 24 + i]);
    }
    EXPECT_NE(out[t * 32], out[t * 32 + 16]);
  }
}

}  // namespace
}  // namespace tessera
