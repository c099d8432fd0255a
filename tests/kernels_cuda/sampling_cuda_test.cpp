// launch_sample against the CPU Sampler: greedy ids exactly; sampled modes by the empirical distribution of many
// draws (same logits in every row, one draw per offset) against Sampler::probabilities(), with tokens outside the
// kept set never drawn; determinism in (seed, offset) regardless of batch.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/common/error.hpp"
#include "core/sampling/sampler.hpp"
#include "kernels/sampling.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera {
namespace {

using namespace test;
using kernels::SamplingRow;

constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingRow row_of(const SamplingParams& p, uint64_t offset) {
  return SamplingRow{p.temperature, p.top_k, p.top_p, p.seed.value_or(0), offset};
}

SamplingParams params_of(float temperature, int32_t top_k, float top_p, uint64_t seed = 1234) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.seed = seed;
  return p;
}

// Runs one launch over `logits` ([rows.size()][vocab]) and returns the ids. lead_pad floats before the logits move
// them off 16-byte alignment (the kernels' scalar-load paths).
std::vector<int32_t> sample_on_gpu(const std::vector<float>& logits, int vocab, const std::vector<SamplingRow>& rows,
                                   int lead_pad = 0) {
  const int num_rows = static_cast<int>(rows.size());
  std::vector<float> padded(lead_pad, 0.0f);
  padded.insert(padded.end(), logits.begin(), logits.end());
  DeviceBuffer<float> d_logits(padded);
  DeviceBuffer<SamplingRow> d_rows(rows);
  DeviceBuffer<int32_t> d_out(rows.size());
  const size_t ws_bytes = kernels::cuda::sampling_workspace_bytes(num_rows, vocab);
  DeviceBuffer<char> d_ws(ws_bytes);
  EXPECT_EQ(kernels::cuda::launch_sample(d_logits.get() + lead_pad, num_rows, vocab, d_rows.get(), d_out.get(),
                                         d_ws.get(), ws_bytes, nullptr),
            cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return d_out.download();
}

// Draws `samples` tokens for one logits row (offsets 0, 1, ...) and returns how often each token came up.
std::vector<int64_t> gpu_counts(const std::vector<float>& logits, const SamplingParams& params, int samples) {
  const int vocab = static_cast<int>(logits.size());
  const int per_launch = std::max(1, std::min(samples, (4 << 20) / vocab));  // <= 16 MB of logits
  std::vector<float> batch;
  batch.reserve(static_cast<size_t>(per_launch) * vocab);
  for (int r = 0; r < per_launch; ++r) batch.insert(batch.end(), logits.begin(), logits.end());
  DeviceBuffer<float> d_logits(batch);
  DeviceBuffer<SamplingRow> d_rows(per_launch);
  DeviceBuffer<int32_t> d_out(per_launch);
  const size_t ws_bytes = kernels::cuda::sampling_workspace_bytes(per_launch, vocab);
  DeviceBuffer<char> d_ws(ws_bytes);
  std::vector<int64_t> counts(vocab, 0);
  for (int done = 0; done < samples; done += per_launch) {
    const int n = std::min(per_launch, samples - done);
    std::vector<SamplingRow> rows;
    for (int r = 0; r < n; ++r) rows.push_back(row_of(params, static_cast<uint64_t>(done + r)));
    d_rows.upload(rows);
    EXPECT_EQ(kernels::cuda::launch_sample(d_logits.get(), n, vocab, d_rows.get(), d_out.get(), d_ws.get(), ws_bytes,
                                           nullptr),
              cudaSuccess);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<int32_t> ids = d_out.download();
    for (int r = 0; r < n; ++r) {
      if (ids[r] < 0 || ids[r] >= vocab) {
        ADD_FAILURE() << "id " << ids[r] << " out of range";
        continue;
      }
      ++counts[ids[r]];
    }
  }
  return counts;
}

// Tokens the CPU gives probability 0 are never drawn; kept tokens, grouped in id order into buckets expecting
// >= 50 draws, match the CPU probabilities within a binomial 5-sigma bound.
void expect_distribution(const std::vector<float>& logits, const SamplingParams& params, int samples,
                         const std::string& label) {
  const int vocab = static_cast<int>(logits.size());
  const std::vector<float> probs = Sampler(params, vocab).probabilities(logits);
  const std::vector<int64_t> counts = gpu_counts(logits, params, samples);
  int64_t total = 0, outside = 0;
  for (int id = 0; id < vocab; ++id) {
    total += counts[id];
    if (probs[id] == 0.0f && counts[id] > 0) {
      ++outside;
      ADD_FAILURE() << label << ": token " << id << " is outside the kept set but was drawn " << counts[id]
                    << " times";
      if (outside > 5) return;
    }
  }
  EXPECT_EQ(total, samples) << label;
  double p_bucket = 0.0;
  int64_t c_bucket = 0;
  int first = 0, buckets = 0;
  for (int id = 0; id < vocab; ++id) {
    p_bucket += probs[id];
    c_bucket += counts[id];
    if (p_bucket * samples < 50.0 && id + 1 < vocab) continue;
    const double expected = p_bucket * samples;
    const double sigma = std::sqrt(samples * p_bucket * std::max(0.0, 1.0 - p_bucket));
    EXPECT_LE(std::abs(c_bucket - expected), 5.0 * sigma + 1.0)
        << label << ": tokens [" << first << ", " << id << "] drawn " << c_bucket << " times, expected " << expected;
    ++buckets;
    p_bucket = 0.0;
    c_bucket = 0;
    first = id + 1;
  }
  EXPECT_GE(buckets, 1) << label;
}

std::vector<float> normal_logits(int vocab, uint32_t seed, float scale, int num_neg_inf = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(vocab);
  for (float& x : v) x = dist(rng);
  for (int i = 0; i < num_neg_inf; ++i) v[(i * 7919 + 13) % vocab] = -kInf;
  return v;
}

TEST(SamplingCuda, PhiloxMatchesRandom123KnownAnswers) {
  // Random123 tests/kat_vectors, the three "philox4x32 10" lines (counter[4], key[2] -> result[4]).
  using kernels::Philox4x32;
  const Philox4x32 zero = kernels::philox4x32_10(Philox4x32{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  const Philox4x32 ones = kernels::philox4x32_10(Philox4x32{{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
  const Philox4x32 pi = kernels::philox4x32_10(Philox4x32{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                                               0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(SamplingCuda, GreedyMatchesCpuArgmaxIncludingTies) {
  TESSERA_REQUIRE_GPU();
  for (int vocab : {1, 5, 1000, 1025, 32000, 128256}) {
    std::vector<float> logits;
    std::vector<SamplingRow> rows;
    std::vector<int32_t> expected;
    const SamplingParams greedy = params_of(0.0f, -1, 1.0f);
    for (int r = 0; r < 12; ++r) {
      // Values on a 0.25 grid: the max is tied at several ids in most rows.
      std::vector<float> row = random_vector(vocab, 100 * vocab + r, -3.0f, 3.0f);
      for (float& x : row) x = std::round(x * 4.0f) / 4.0f;
      if (r == 1) std::fill(row.begin(), row.end(), 0.5f);                       // all tied: id 0
      if (r == 2) row.back() = 10.0f;                                            // max at the last id
      if (r == 3 && vocab > 1) for (int i = 0; i < vocab; i += 2) row[i] = -kInf;  // -inf never wins
      if (r == 4) {                                                              // -0 and +0 are equal
        std::fill(row.begin(), row.end(), -1.0f);
        row[vocab - 1] = 0.0f;
        row[vocab / 2] = -0.0f;
      }
      if (r == 5 && vocab > 1) std::fill(row.begin() + 1, row.end(), -kInf);    // only id 0 is possible
      expected.push_back(Sampler(greedy, vocab).sample(row));
      logits.insert(logits.end(), row.begin(), row.end());
      rows.push_back(row_of(greedy, static_cast<uint64_t>(r)));
    }
    const std::vector<int32_t> ids = sample_on_gpu(logits, vocab, rows);
    EXPECT_EQ(ids, expected) << "vocab " << vocab;
  }
}

TEST(SamplingCuda, GarbageRowsGiveMinusOne) {
  TESSERA_REQUIRE_GPU();
  const int vocab = 3000;
  std::vector<float> logits;
  std::vector<SamplingRow> rows;
  for (const SamplingParams& p : {params_of(0.0f, -1, 1.0f), params_of(1.0f, 40, 0.9f)}) {
    for (int kind = 0; kind < 4; ++kind) {
      std::vector<float> row = random_vector(vocab, kind + 7);
      if (kind == 0) row[1234] = std::nanf("");
      if (kind == 1) row[vocab - 1] = kInf;
      if (kind == 2) std::fill(row.begin(), row.end(), -kInf);
      if (kind < 3) {
        EXPECT_THROW(Sampler(p, vocab).sample(row), Error);  // the CPU refuses the same rows
      }
      logits.insert(logits.end(), row.begin(), row.end());
      rows.push_back(row_of(p, 0));
    }
  }
  const std::vector<int32_t> ids = sample_on_gpu(logits, vocab, rows);
  for (int i : {0, 1, 2, 4, 5, 6}) EXPECT_EQ(ids[i], -1) << "row " << i;
  EXPECT_GE(ids[3], 0);  // the clean rows still sample
  EXPECT_GE(ids[7], 0);
}

// The greedy id from first principles (not the Sampler): -1 when the row holds NaN or +inf or no finite logit;
// otherwise the first id holding the largest logit (-0 == +0).
int32_t host_greedy(const float* row, int vocab) {
  int32_t best = -1;
  for (int id = 0; id < vocab; ++id) {
    const float x = row[id];
    if (std::isnan(x) || x == kInf) return -1;
    if (x != -kInf && (best < 0 || x > row[best])) best = id;
  }
  return best;
}
std::vector<int32_t> host_greedy_rows(const std::vector<float>& logits, int vocab) {
  std::vector<int32_t> ids;
  for (size_t r = 0; r * vocab < logits.size(); ++r) ids.push_back(host_greedy(logits.data() + r * vocab, vocab));
  return ids;
}

// Greedy rows cut into 4096-logit slices (one block each): maxima tied within and across slices, in the last
// (partial) slice, signed zeros and -inf-only-but-one rows; aligned (float4) and misaligned (scalar) loads.
TEST(SamplingCuda, GreedySlicesKeepTheLowestIdOfTheMaxAcrossSliceBoundaries) {
  TESSERA_REQUIRE_GPU();
  const float kNan = std::nanf("");
  for (int vocab : {1, 7, 4095, 4096, 4097, 8193, 128256}) {
    std::vector<float> logits;
    std::vector<SamplingRow> rows;
    auto last_id = [&](int id) { return std::min(id, vocab - 1); };
    for (int r = 0; r < 9; ++r) {
      std::vector<float> row = random_vector(vocab, 300 * vocab + r, -3.0f, 3.0f);
      for (float& x : row) x = std::round(x * 4.0f) / 4.0f;  // the max is tied in most rows
      if (r == 1) std::fill(row.begin(), row.end(), 0.5f);
      if (r == 2) row.back() = 10.0f;
      if (r == 3)  // equal maxima in several slices: the lowest id (4095, the end of slice 0, when it exists)
        for (int id : {vocab - 1, vocab / 2, last_id(4096), last_id(4095)}) row[id] = 9.0f;
      if (r == 4)  // first id of slice 1 vs the end of slice 1 and the start of slice 2
        for (int id : {last_id(8192), last_id(8191), last_id(4096)}) row[id] = 9.0f;
      if (r == 5) {  // -0 in a later slice, +0 in an earlier one (and the reverse at small vocab): equal
        std::fill(row.begin(), row.end(), -1.0f);
        row[vocab - 1] = -0.0f;
        row[vocab / 2] = 0.0f;
      }
      if (r == 6) {  // one finite logit, at the end
        std::fill(row.begin(), row.end(), -kInf);
        row.back() = -1e30f;
      }
      if (r == 7) {  // -FLT_MAX beats -inf
        std::fill(row.begin(), row.end(), -kInf);
        row[vocab / 2] = row[vocab - 1] = -std::numeric_limits<float>::max();
      }
      if (r == 8) row[(vocab - 1) / 4096 * 4096] = 3.5f;  // the max alone at the start of the last slice
      EXPECT_EQ(host_greedy(row.data(), vocab), Sampler(params_of(0.0f, -1, 1.0f), vocab).sample(row))
          << "vocab " << vocab << " row " << r;  // the host oracle agrees with the CPU Sampler
      logits.insert(logits.end(), row.begin(), row.end());
      const float temperature = r % 3 == 0 ? 0.0f : (r % 3 == 1 ? -1.0f : kNan);  // all greedy
      rows.push_back(row_of(params_of(temperature, r % 2 ? 5 : -1, 0.9f), static_cast<uint64_t>(r)));
    }
    const std::vector<int32_t> expected = host_greedy_rows(logits, vocab);
    EXPECT_EQ(sample_on_gpu(logits, vocab, rows), expected) << "vocab " << vocab;
    EXPECT_EQ(sample_on_gpu(logits, vocab, rows, /*lead_pad=*/1), expected) << "vocab " << vocab << ", misaligned";
  }
}

TEST(SamplingCuda, GreedyGarbageRowsAmongGoodRowsGiveMinusOne) {
  TESSERA_REQUIRE_GPU();
  for (int vocab : {4097, 128256}) {
    std::vector<float> logits;
    std::vector<SamplingRow> rows;
    for (int r = 0; r < 8; ++r) {
      std::vector<float> row = random_vector(vocab, 50 + r);
      if (r == 1) {  // the max in slice 0, NaN in the last slice
        row[5] = 100.0f;
        row[vocab - 1] = std::nanf("");
      }
      if (r == 2) row.back() = 5.0f;
      if (r == 3) row.back() = kInf;
      if (r == 4) std::fill(row.begin(), row.end(), -kInf);
      if (r == 5) row[0] = std::nanf("");
      if (r == 6) {
        std::fill(row.begin(), row.end(), -kInf);
        row[vocab / 2] = kInf;
      }
      if (r == 7) {
        std::fill(row.begin(), row.end(), -kInf);
        row.back() = 0.0f;
      }
      logits.insert(logits.end(), row.begin(), row.end());
      rows.push_back(row_of(params_of(0.0f, -1, 1.0f), 0));
    }
    const std::vector<int32_t> expected = host_greedy_rows(logits, vocab);
    EXPECT_EQ(expected, (std::vector<int32_t>{expected[0], -1, vocab - 1, -1, -1, -1, -1, vocab - 1}));
    EXPECT_GE(expected[0], 0);
    EXPECT_EQ(sample_on_gpu(logits, vocab, rows), expected) << "vocab " << vocab;
  }
}

// Greedy rows (multi-block path) and sampled rows (one block per row) in one call: each row gets the id it gets
// alone. A sampled row with top_k 1 keeps only the greedy token, so it must agree with the greedy rows' argmax.
TEST(SamplingCuda, MixedGreedyAndSampledRowsMatchOneAtATime) {
  TESSERA_REQUIRE_GPU();
  const int vocab = 128256;
  const SamplingParams params[8] = {params_of(0.0f, -1, 1.0f),  params_of(1.0f, 50, 0.9f),
                                    params_of(std::nanf(""), 40, 0.5f), params_of(0.7f, -1, 1.0f),
                                    params_of(-2.0f, -1, 1.0f), params_of(1.5f, 1000, 0.5f),
                                    params_of(0.0f, 5, 0.9f),   params_of(1.0f, 1, 1.0f)};
  std::vector<float> logits;
  std::vector<SamplingRow> rows;
  for (int r = 0; r < 8; ++r) {
    std::vector<float> row = normal_logits(vocab, 60 + r, 2.0f, 50);
    if (r == 0 || r == 7) row[4095] = row[4096] = 30.0f;  // tie across the first slice boundary
    logits.insert(logits.end(), row.begin(), row.end());
    rows.push_back(row_of(params[r], static_cast<uint64_t>(r * 5)));
  }
  const std::vector<int32_t> ids = sample_on_gpu(logits, vocab, rows);
  const std::vector<int32_t> greedy = host_greedy_rows(logits, vocab);
  ASSERT_EQ(ids.size(), 8u);
  for (int r = 0; r < 8; ++r) {
    const std::vector<float> one(logits.begin() + int64_t{r} * vocab, logits.begin() + int64_t{r + 1} * vocab);
    EXPECT_EQ(sample_on_gpu(one, vocab, {rows[r]}), std::vector<int32_t>{ids[r]}) << "row " << r;
    if (!(params[r].temperature > 0.0f) || params[r].top_k == 1) {
      EXPECT_EQ(ids[r], greedy[r]) << "row " << r;
    } else {
      ASSERT_TRUE(ids[r] >= 0 && ids[r] < vocab) << "row " << r;
      EXPECT_TRUE(std::isfinite(one[ids[r]])) << "row " << r;
    }
  }
  EXPECT_EQ(ids[0], 4095);
  EXPECT_EQ(ids[7], 4095);
}

// Both kernels captured with PDL into a graph and replayed with new logits; the workspace is poisoned between replays.
TEST(SamplingCuda, GreedyPathCapturedWithPdlReplaysWithNewLogits) {
  TESSERA_REQUIRE_GPU();
  const int vocab = 128256, num_rows = 3;
  std::vector<float> variants[2];
  for (int v = 0; v < 2; ++v) variants[v] = normal_logits(num_rows * vocab, 70 + v, 2.0f, 10);
  const std::vector<SamplingRow> rows = {row_of(params_of(0.0f, -1, 1.0f), 0), row_of(params_of(1.0f, 1, 1.0f), 1),
                                         row_of(params_of(0.0f, 7, 0.5f), 2)};
  DeviceBuffer<float> d_logits(variants[0]);
  DeviceBuffer<SamplingRow> d_rows(rows);
  DeviceBuffer<int32_t> d_out(num_rows);
  DeviceBuffer<char> d_ws(kernels::cuda::sampling_workspace_bytes(num_rows, vocab));
  const TestStream stream(/*blocking=*/false);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const CapturedGraph graph(stream.get(), [&] {
    return kernels::cuda::launch_sample(d_logits.get(), num_rows, vocab, d_rows.get(), d_out.get(), d_ws.get(),
                                        d_ws.size(), stream.get(), /*pdl=*/true);
  });
  ASSERT_TRUE(graph.ok());
  for (int replay = 0; replay < 4; ++replay) {
    const std::vector<float>& logits = variants[replay % 2];
    d_logits.upload(logits);
    ASSERT_EQ(cudaMemset(d_ws.get(), 0xff, d_ws.size()), cudaSuccess);
    ASSERT_EQ(cudaMemset(d_out.get(), 0x7f, num_rows * sizeof(int32_t)), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the copies ran on the legacy stream
    ASSERT_EQ(graph.launch(stream.get()), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
    EXPECT_EQ(d_out.download(), host_greedy_rows(logits, vocab)) << "replay " << replay;
  }
}

TEST(SamplingCuda, TemperatureTopKTopPDistributionsMatchCpu) {
  TESSERA_REQUIRE_GPU();
  const int samples = 20000;
  const std::vector<float> logits = normal_logits(1000, 5, 2.0f, /*num_neg_inf=*/25);
  struct Config {
    float temperature;
    int32_t top_k;
    float top_p;
  };
  for (const Config& c : {Config{1.0f, -1, 1.0f}, Config{0.5f, 0, 1.0f}, Config{2.0f, -1, 1.0f},
                          Config{0.5f, 20, 1.0f}, Config{1.0f, 50, 1.0f}, Config{2.0f, 200, 1.0f},
                          Config{0.5f, -1, 0.5f}, Config{1.0f, -1, 0.8f}, Config{2.0f, -1, 0.9f},
                          Config{0.5f, 100, 0.9f}, Config{1.0f, 50, 0.7f}, Config{2.0f, 10, 0.95f},
                          Config{1.0f, 1, 1.0f}, Config{1.0f, 999, 1.0f}, Config{1.0f, -1, 0.01f}}) {
    expect_distribution(logits, params_of(c.temperature, c.top_k, c.top_p), samples,
                        "T " + std::to_string(c.temperature) + " top_k " + std::to_string(c.top_k) + " top_p " +
                            std::to_string(c.top_p));
  }
}

TEST(SamplingCuda, TiesAtTheTopKAndTopPBoundariesKeepTheLowestIds) {
  TESSERA_REQUIRE_GPU();
  const int samples = 20000;
  // Logits on a coarse grid: the k-th value and the nucleus boundary fall inside runs of equal logits.
  std::vector<float> grid = normal_logits(700, 11, 1.5f, 10);
  for (float& x : grid) x = std::round(x * 2.0f) / 2.0f;
  for (int32_t k : {3, 37, 150})
    expect_distribution(grid, params_of(1.0f, k, 1.0f), samples, "grid top_k " + std::to_string(k));
  expect_distribution(grid, params_of(1.0f, 100, 0.6f), samples, "grid top_k 100 top_p 0.6");
  expect_distribution(grid, params_of(0.7f, -1, 0.3f), samples, "grid top_p 0.3");

  // Four equal tokens: top_p 0.5 is reached exactly by the two lowest ids (the slack keeps it exact).
  std::vector<float> four(16, -kInf);
  for (int id : {3, 7, 8, 12}) four[id] = 1.0f;
  expect_distribution(four, params_of(1.0f, -1, 0.5f), 4000, "four equal, top_p 0.5");
  const std::vector<float> probs = Sampler(params_of(1.0f, -1, 0.5f), 16).probabilities(four);
  EXPECT_EQ(probs[3], 0.5f);
  EXPECT_EQ(probs[7], 0.5f);
  EXPECT_EQ(probs[8], 0.0f);
  // Six tokens tied at the top, top_k 4: ids in order; -0 ties with +0.
  std::vector<float> six = normal_logits(64, 3, 0.5f);
  for (int id : {40, 2, 33, 17, 9, 60}) six[id] = 2.0f;
  expect_distribution(six, params_of(1.0f, 4, 1.0f), 4000, "six tied, top_k 4");
  std::vector<float> zeros(50, -3.0f);
  for (int id : {30, 4, 22}) zeros[id] = -0.0f;
  for (int id : {10, 41}) zeros[id] = 0.0f;
  expect_distribution(zeros, params_of(1.0f, 3, 1.0f), 4000, "signed zeros, top_k 3");
}

TEST(SamplingCuda, Llama3VocabDistributionsMatchCpu) {
  TESSERA_REQUIRE_GPU();
  const std::vector<float> logits = normal_logits(128256, 21, 3.0f, 100);
  expect_distribution(logits, params_of(1.0f, 50, 0.9f), 20000, "vocab 128256 top_k 50 top_p 0.9");
  expect_distribution(logits, params_of(1.0f, -1, 0.9f), 20000, "vocab 128256 top_p 0.9");
}

TEST(SamplingCuda, SameSeedAndOffsetGiveTheSameIdInAnyBatch) {
  TESSERA_REQUIRE_GPU();
  const int vocab = 5000, num_rows = 48;
  std::vector<float> logits;
  std::vector<SamplingRow> rows;
  for (int r = 0; r < num_rows; ++r) {
    const std::vector<float> row = normal_logits(vocab, 40 + r, 1.0f + 0.1f * (r % 5));
    logits.insert(logits.end(), row.begin(), row.end());
    const float temperature = (r % 6 == 0) ? 0.0f : 0.5f + 0.25f * (r % 4);
    rows.push_back(SamplingRow{temperature, (r % 3 == 0) ? 40 : -1, (r % 4 == 0) ? 0.8f : 1.0f,
                               static_cast<uint64_t>(1000 + r / 2), static_cast<uint64_t>(r * 3)});
  }
  const std::vector<int32_t> ids = sample_on_gpu(logits, vocab, rows);
  EXPECT_EQ(sample_on_gpu(logits, vocab, rows), ids);  // repeatable

  // The same rows reversed, and a few alone: every row draws the same id.
  std::vector<float> rev_logits;
  std::vector<SamplingRow> rev_rows;
  for (int r = num_rows - 1; r >= 0; --r) {
    rev_logits.insert(rev_logits.end(), logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
    rev_rows.push_back(rows[r]);
  }
  const std::vector<int32_t> rev_ids = sample_on_gpu(rev_logits, vocab, rev_rows);
  for (int r = 0; r < num_rows; ++r) EXPECT_EQ(rev_ids[num_rows - 1 - r], ids[r]) << "row " << r;
  for (int r : {1, 17, 46}) {
    const std::vector<float> one(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
    EXPECT_EQ(sample_on_gpu(one, vocab, {rows[r]}), std::vector<int32_t>{ids[r]}) << "row " << r;
  }

  // Different offsets (or seeds) draw different numbers: a flat distribution gives many distinct ids.
  const std::vector<float> flat(vocab, 0.0f);
  std::vector<float> flat_batch;
  std::vector<SamplingRow> flat_rows;
  for (int r = 0; r < 64; ++r) {
    flat_batch.insert(flat_batch.end(), flat.begin(), flat.end());
    flat_rows.push_back(SamplingRow{1.0f, -1, 1.0f, 7, static_cast<uint64_t>(r)});
  }
  std::vector<int32_t> flat_ids = sample_on_gpu(flat_batch, vocab, flat_rows);
  std::sort(flat_ids.begin(), flat_ids.end());
  EXPECT_GE(std::unique(flat_ids.begin(), flat_ids.end()) - flat_ids.begin(), 50);
}

TEST(SamplingCuda, RejectsBadArguments) {
  TESSERA_REQUIRE_GPU();
  using kernels::cuda::launch_sample;
  DeviceBuffer<float> logits(8);
  DeviceBuffer<SamplingRow> rows(1);
  DeviceBuffer<int32_t> out(1);
  EXPECT_EQ(launch_sample(logits.get(), 1, 0, rows.get(), out.get(), nullptr, 0, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_sample(logits.get(), -1, 8, rows.get(), out.get(), nullptr, 0, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_sample(logits.get(), 1, kernels::kSamplingMaxVocab + 1, rows.get(), out.get(), nullptr, 0, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(launch_sample(logits.get(), 0, 8, rows.get(), out.get(), nullptr, 0, nullptr), cudaSuccess);
  // The greedy partials need workspace: too little, none, or misaligned is refused.
  const size_t ws_bytes = kernels::cuda::sampling_workspace_bytes(1, 8);
  EXPECT_EQ(ws_bytes, 16u);  // one 4096-logit slice, one 16-byte partial
  EXPECT_EQ(kernels::cuda::sampling_workspace_bytes(3, 128256), 3u * 32u * 16u);
  DeviceBuffer<char> ws(2 * ws_bytes);
  EXPECT_EQ(launch_sample(logits.get(), 1, 8, rows.get(), out.get(), nullptr, 0, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_sample(logits.get(), 1, 8, rows.get(), out.get(), ws.get(), ws_bytes - 1, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(launch_sample(logits.get(), 1, 8, rows.get(), out.get(), ws.get() + 4, ws_bytes, nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace tessera
