#pragma once
// Owning handles of the cuBLASLt C API (pointers to opaque structs, destroyed with their cublasLt*Destroy), for the
// executor's LtGemm and tessera-gemm-bench.
#include <cublasLt.h>

#include <memory>
#include <type_traits>

namespace tessera::cuda {

template <class T, cublasStatus_t (*Destroy)(T)>
struct LtDeleter {
  void operator()(T p) const { Destroy(p); }
};
template <class T, cublasStatus_t (*Destroy)(T)>
using LtOwned = std::unique_ptr<std::remove_pointer_t<T>, LtDeleter<T, Destroy>>;

using LtHandle = LtOwned<cublasLtHandle_t, cublasLtDestroy>;
using LtMatmulDesc = LtOwned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using LtLayout = LtOwned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using LtPreference = LtOwned<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

}  // namespace tessera::cuda
