#include "core/cuda/lt_gemm.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "core/cuda/cuda_check.hpp"

namespace tessera::cuda {

namespace {

constexpr uint32_t kMaxAlignment = 256;  // what cuBLASLt assumes of a pointer unless the preference says less
// Heuristic results asked for; the first usable one is taken (tessera-gemm-bench measured index 0 of 16).
constexpr int kHeuristicCandidates = 16;

}  // namespace

uint32_t lt_pointer_alignment(const void* address) {
  const auto a = reinterpret_cast<uintptr_t>(address);
  if (a == 0) return kMaxAlignment;
  const uintptr_t lowest_bit = a & (~a + 1);
  return static_cast<uint32_t>(std::min<uintptr_t>(lowest_bit, kMaxAlignment));
}

LtGemm::LtGemm(void* workspace, size_t workspace_bytes) : workspace_(workspace), workspace_bytes_(workspace_bytes) {
  cublasLtHandle_t handle = nullptr;
  check(cublasLtCreate(&handle), "cublasLtCreate");
  handle_.reset(handle);
}

LtGemm::~LtGemm() = default;

cublasStatus_t LtGemm::enqueue_linear(const void* x, const void* w, void* y, int64_t rows, int64_t in, int64_t out,
                                      bool y_f32, DType dtype, cudaStream_t stream) {
  if (rows < 1 || in < 1 || out < 1 || x == nullptr || w == nullptr || y == nullptr ||
      (dtype != DType::F32 && dtype != DType::BF16)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const Key key{rows, in, out, y_f32, dtype, lt_pointer_alignment(x), lt_pointer_alignment(w), lt_pointer_alignment(y)};
  const Plan* plan = nullptr;
  if (const cublasStatus_t status = plan_for(key, plan); status != CUBLAS_STATUS_SUCCESS) return status;
  const float alpha = 1.0f, beta = 0.0f;
  // Column-major view of the row-major product: y^T (out x rows) = w (in x out)^T · x^T (in x rows).
  return cublasLtMatmul(handle_.get(), plan->desc.get(), &alpha, w, plan->a.get(), x, plan->b.get(), &beta, y,
                        plan->d.get(), y, plan->d.get(), &plan->algo, workspace_, workspace_bytes_, stream);
}

cublasStatus_t LtGemm::plan_for(const Key& key, const Plan*& plan) {
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    Plan made;
    const cublasStatus_t status = make_plan(key, made);
    // "No algorithm" is a property of the key and is remembered; other failures (e.g. out of host memory) are not.
    if (status != CUBLAS_STATUS_SUCCESS && status != CUBLAS_STATUS_NOT_SUPPORTED) return status;
    if (plans_.size() >= kMaxCachedPlans) plans_.clear();
    it = plans_.emplace(key, std::move(made)).first;
  }
  if (!it->second.has_algo) return CUBLAS_STATUS_NOT_SUPPORTED;
  plan = &it->second;
  return CUBLAS_STATUS_SUCCESS;
}

// Host-only cuBLASLt calls (descriptor creation, the heuristic query): legal during stream capture.
cublasStatus_t LtGemm::make_plan(const Key& key, Plan& plan) const {
  const cudaDataType_t in_type = key.dtype == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
  const cudaDataType_t out_type = key.y_f32 ? CUDA_R_32F : in_type;
  // FP32 accumulation and scaling; FP32 inputs stay strict FP32 (no TF32), as in cublasGemmEx(CUBLAS_COMPUTE_32F).
  cublasLtMatmulDesc_t desc = nullptr;
  cublasStatus_t status = cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  plan.desc.reset(desc);
  const cublasOperation_t transpose = CUBLAS_OP_T;
  status = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose));
  if (status != CUBLAS_STATUS_SUCCESS) return status;

  auto make_layout = [](Layout& layout, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
    cublasLtMatrixLayout_t raw = nullptr;
    const cublasStatus_t s =
        cublasLtMatrixLayoutCreate(&raw, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld);
    layout.reset(raw);
    return s;
  };
  for (const cublasStatus_t s : {make_layout(plan.a, in_type, key.in, key.out, key.in),
                                 make_layout(plan.b, in_type, key.in, key.rows, key.in),
                                 make_layout(plan.d, out_type, key.out, key.rows, key.out)}) {
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }

  cublasLtMatmulPreference_t raw_preference = nullptr;
  status = cublasLtMatmulPreferenceCreate(&raw_preference);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  const Preference preference(raw_preference);
  const uint64_t max_workspace = workspace_bytes_;
  status = cublasLtMatmulPreferenceSetAttribute(raw_preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &max_workspace, sizeof(max_workspace));
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  // A is w, B is x, C and D are y.
  const std::array<std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t>, 4> alignments = {{
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_w},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_x},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_y},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_y},
  }};
  for (const auto& [attribute, bytes] : alignments) {
    status = cublasLtMatmulPreferenceSetAttribute(raw_preference, attribute, &bytes, sizeof(bytes));
    if (status != CUBLAS_STATUS_SUCCESS) return status;
  }

  std::array<cublasLtMatmulHeuristicResult_t, kHeuristicCandidates> results{};
  int returned = 0;
  status = cublasLtMatmulAlgoGetHeuristic(handle_.get(), desc, plan.a.get(), plan.b.get(), plan.d.get(), plan.d.get(),
                                          raw_preference, kHeuristicCandidates, results.data(), &returned);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  // Ordered by the heuristic's estimated time: the first usable one, never a measurement.
  for (int i = 0; i < returned; ++i) {
    const cublasLtMatmulHeuristicResult_t& r = results[static_cast<size_t>(i)];
    if (r.state == CUBLAS_STATUS_SUCCESS && r.workspaceSize <= workspace_bytes_) {
      plan.algo = r.algo;
      plan.has_algo = true;
      return CUBLAS_STATUS_SUCCESS;
    }
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

}  // namespace tessera::cuda
