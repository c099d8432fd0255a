#pragma once
// Helpers for GPU kernel tests: skip visibly without a GPU, device buffers, BF16 conversion, error norms.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/common/dtype.hpp"

namespace tessera::test {

// Skips the test (reported as SKIPPED, with the reason) when no CUDA device is usable, e.g. in CI.
#define TESSERA_REQUIRE_GPU()                                                              \
  do {                                                                                     \
    int tessera_device_count = 0;                                                          \
    if (cudaGetDeviceCount(&tessera_device_count) != cudaSuccess || tessera_device_count == 0) \
      GTEST_SKIP() << "no CUDA device: GPU test skipped";                                  \
  } while (0)

#define TESSERA_CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << cudaGetErrorString(expr)

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n_ && cudaMalloc(reinterpret_cast<void**>(&ptr_), n_ * sizeof(T)) != cudaSuccess) ptr_ = nullptr;
    // Poison: unwritten outputs show up as NaN / garbage, never as plausible zeros.
    if (ptr_) cudaMemset(ptr_, 0xff, n_ * sizeof(T));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) { cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// A created stream (stream capture needs one besides the legacy default stream). Blocking by default: its work is
// ordered after DeviceBuffer's memsets and copies, which run on the legacy default stream. A non-blocking one (for
// capture) is not: synchronize the device after touching buffers on the legacy stream.
class TestStream {
 public:
  explicit TestStream(bool blocking = true) {
    if (blocking) {
      cudaStreamCreate(&stream_);
    } else {
      cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    }
  }
  ~TestStream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// A CUDA graph of what `record` (returning the first launch error) enqueues on `stream` (not the legacy stream),
// captured and instantiated. A failure fails the test with its reason and leaves ok() false; callers ASSERT ok().
class CapturedGraph {
 public:
  template <class Record>
  CapturedGraph(cudaStream_t stream, Record&& record) {
    if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      ADD_FAILURE() << "cudaStreamBeginCapture failed";
      return;
    }
    const cudaError_t recorded = record();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    EXPECT_EQ(ended, cudaSuccess) << cudaGetErrorString(ended);
    EXPECT_EQ(recorded, cudaSuccess) << cudaGetErrorString(recorded);
    if (ended == cudaSuccess && recorded == cudaSuccess) {
      const cudaError_t made = cudaGraphInstantiate(&exec_, graph, 0);
      EXPECT_EQ(made, cudaSuccess) << cudaGetErrorString(made);
      if (made != cudaSuccess) exec_ = nullptr;
    }
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
  ~CapturedGraph() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
  }
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;
  bool ok() const { return exec_ != nullptr; }
  cudaError_t launch(cudaStream_t stream) const { return cudaGraphLaunch(exec_, stream); }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

inline float to_f32(float v) { return v; }
inline float to_f32(__nv_bfloat16 v) { return bf16_to_f32(static_cast<__nv_bfloat16_raw>(v).x); }
template <class T>
T from_f32(float v);
template <>
inline float from_f32<float>(float v) { return v; }
template <>
inline __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  const uint16_t bits = f32_to_bf16(v);
  __nv_bfloat16_raw raw;
  raw.x = bits;
  return __nv_bfloat16(raw);
}

template <class T>
std::vector<T> convert(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = from_f32<T>(v[i]);
  return out;
}
template <class T>
std::vector<float> to_f32(const std::vector<T>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_f32(v[i]);
  return out;
}
// The values a BF16 tensor really holds (for feeding the CPU reference the same inputs).
template <class T>
std::vector<float> rounded(const std::vector<float>& v) {
  return to_f32(convert<T>(v));
}

inline std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// ‖out − ref‖ / ‖ref‖; NaN anywhere gives +inf.
inline double relative_error(const std::vector<float>& out, const std::vector<float>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    diff += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  return std::sqrt(diff / (norm > 0 ? norm : 1));
}

// Per-dtype tolerance on relative_error: FP32 math on FP32 data vs BF16 storage.
template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-2;
}

}  // namespace tessera::test
