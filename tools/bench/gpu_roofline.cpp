// tessera-gpu-roofline: the two ceilings the GPU benchmarks are judged against, measured in the same run:
// device-to-device copy bandwidth (bytes read + written per second) and the cuBLAS BF16 GEMM rate (FLOP/s).
// Prints one JSON object. Medians of timed repetitions after warm-up, on random (non-zero) data.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cuda/cuda_check.hpp"

namespace {

using tessera::cuda::check;
using tessera::cuda::DeviceMemory;

template <class F>
double median_ms(F&& run, int warmup, int repeat) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int i = 0; i < warmup; ++i) run();
  std::vector<float> times;
  for (int i = 0; i < repeat; ++i) {
    check(cudaEventRecord(start), "record");
    run();
    check(cudaEventRecord(stop), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return times[times.size() / 2];
}

void fill_random_bf16(void* device, size_t n, uint32_t seed) {
  std::vector<__nv_bfloat16> host(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& v : host) v = __float2bfloat16(dist(rng));
  check(cudaMemcpy(device, host.data(), n * 2, cudaMemcpyHostToDevice), "upload");
}

}  // namespace

int main() {
  try {
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "device properties");
    // Copy: 4 GiB buffers (far beyond the 50 MB L2).
    const size_t copy_bytes = size_t{4} << 30;
    DeviceMemory a(copy_bytes, "copy source"), b(copy_bytes, "copy destination");
    check(cudaMemset(a.get(), 0x5a, copy_bytes), "memset");
    const double copy_ms = median_ms([&] { check(cudaMemcpyAsync(b.get(), a.get(), copy_bytes, cudaMemcpyDeviceToDevice), "copy"); }, 3, 10);
    const double copy_bytes_per_s = 2.0 * copy_bytes / (copy_ms * 1e-3);  // read + write
    // GEMM: 8192^3 BF16, FP32 accumulation.
    const int n = 8192;
    DeviceMemory x(size_t{n} * n * 2, "gemm a"), w(size_t{n} * n * 2, "gemm b"), y(size_t{n} * n * 2, "gemm c");
    fill_random_bf16(x.get(), size_t{n} * n, 1);
    fill_random_bf16(w.get(), size_t{n} * n, 2);
    cublasHandle_t handle;
    check(cublasCreate(&handle), "cublasCreate");
    const float alpha = 1, beta = 0;
    const double gemm_ms = median_ms(
        [&] {
          check(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, w.get(), CUDA_R_16BF, n, x.get(),
                             CUDA_R_16BF, n, &beta, y.get(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "gemm");
        },
        3, 10);
    cublasDestroy(handle);
    const double flops = 2.0 * n * double(n) * n / (gemm_ms * 1e-3);
    nlohmann::json out = {{"device", prop.name},
                          {"sm_count", prop.multiProcessorCount},
                          {"copy_bytes", copy_bytes},
                          {"copy_ms_median", copy_ms},
                          {"copy_bandwidth_bytes_per_s", copy_bytes_per_s},
                          {"gemm_shape", "8192x8192x8192 bf16, fp32 accumulate"},
                          {"gemm_ms_median", gemm_ms},
                          {"gemm_flops_per_s", flops}};
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
