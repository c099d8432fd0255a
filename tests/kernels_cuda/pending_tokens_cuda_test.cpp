// launch_resolve_pending_tokens against resolve_pending_tokens_ref: rows taken from the previous step's sampled ids,
// others untouched, a negative sampled id clamped to 0; more tokens than one block of threads.
#include "kernels/pending_tokens.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera {
namespace {

using namespace test;

TEST(PendingTokensCuda, MatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  const int64_t n = 600;
  std::vector<int32_t> ids(n), rows(n, -1);
  const std::vector<int32_t> sampled = {11, 22, -1, 44, 55};
  for (int64_t t = 0; t < n; ++t) {
    ids[t] = static_cast<int32_t>(1000 + t);
    if (t % 7 == 3) rows[t] = static_cast<int32_t>(t % 5);
  }
  std::vector<int32_t> expected = ids;
  kernels::resolve_pending_tokens_ref(expected, rows, sampled);
  EXPECT_EQ(expected[3], 44);                          // the reference itself: row 3 % 5 = 3
  EXPECT_EQ(expected[17], 0);                          // row 2 holds -1 -> 0
  EXPECT_EQ(expected[4], 1004);                        // not pending
  DeviceBuffer<int32_t> d_ids(ids), d_rows(rows), d_sampled(sampled);
  TESSERA_CUDA_OK(kernels::cuda::launch_resolve_pending_tokens(d_ids.get(), d_rows.get(), d_sampled.get(), n, nullptr));
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(d_ids.download(), expected);
}

}  // namespace
}  // namespace tessera
