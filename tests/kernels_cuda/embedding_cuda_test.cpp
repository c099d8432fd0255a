// launch_embedding against embedding_ref, FP32 and BF16.
#include "kernels/embedding.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera {
namespace {

using namespace test;

template <class T>
class EmbeddingCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(EmbeddingCuda, Types);

TYPED_TEST(EmbeddingCuda, MatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  for (int64_t hidden : {8, 37, 4096}) {
    const int64_t vocab = 301;
    const std::vector<float> table = rounded<T>(random_vector(vocab * hidden, 1));
    const std::vector<int32_t> ids = {0, 300, 17, 17, 5, 299, 1};
    std::vector<float> expected(ids.size() * hidden);
    kernels::embedding_ref(table.data(), vocab, hidden, ids, expected.data());
    DeviceBuffer<T> d_table(convert<T>(table));
    DeviceBuffer<int32_t> d_ids(ids);
    DeviceBuffer<T> d_out(ids.size() * hidden);
    TESSERA_CUDA_OK(kernels::cuda::launch_embedding(d_table.get(), vocab, hidden, d_ids.get(),
                                                    static_cast<int64_t>(ids.size()), d_out.get(), nullptr));
    TESSERA_CUDA_OK(cudaDeviceSynchronize());
    EXPECT_EQ(relative_error(to_f32(d_out.download()), expected), 0.0) << "hidden " << hidden;  // a copy is exact
  }
}

}  // namespace
}  // namespace tessera
