#pragma once
// CUDA / cuBLAS error handling and owning device memory for the CUDA executor (host code).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>

#include "core/common/error.hpp"

namespace tessera::cuda {

// Throws tessera::Error("<what>: <CUDA error string>") on failure.
inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}
inline void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) throw Error(std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(status)));
}

// Owning CUDA allocation, move-only. Kind::Device: cudaMalloc / cudaFree; Kind::Pinned: page-locked host memory
// (cudaMallocHost / cudaFreeHost) for asynchronous copies.
enum class MemoryKind { Device, Pinned };

template <MemoryKind Kind>
class CudaMemory {
 public:
  CudaMemory() = default;
  CudaMemory(size_t bytes, const char* what) : bytes_(bytes) {
    if (bytes_ == 0) return;
    check(Kind == MemoryKind::Device ? cudaMalloc(&ptr_, bytes_) : cudaMallocHost(&ptr_, bytes_), what);
  }
  ~CudaMemory() { release(); }
  CudaMemory(CudaMemory&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  CudaMemory& operator=(CudaMemory&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  template <class T = void>
  T* get() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void release() {
    if (!ptr_) return;
    if (Kind == MemoryKind::Device) cudaFree(ptr_);
    else cudaFreeHost(ptr_);
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

using DeviceMemory = CudaMemory<MemoryKind::Device>;
using PinnedMemory = CudaMemory<MemoryKind::Pinned>;

}  // namespace tessera::cuda
