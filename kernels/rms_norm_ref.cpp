#include "kernels/rms_norm.hpp"

#include <cmath>

namespace tessera::kernels {

namespace {

void normalize_row(const float* x, const float* weight, float* out, int64_t dim, float eps) {
  float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
  for (int64_t i = 0; i < dim; ++i) sum_sq += x[i] * x[i];
  const float inv_rms = 1.0f / std::sqrt(sum_sq / static_cast<float>(dim) + eps);
#pragma omp simd
  for (int64_t i = 0; i < dim; ++i) out[i] = x[i] * inv_rms * weight[i];
}

}  // namespace

void rms_norm_ref(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows > 8)
  for (int64_t r = 0; r < rows; ++r) normalize_row(x + r * dim, weight, out + r * dim, dim, eps);
}

void add_rms_norm_ref(float* residual, const float* x, const float* weight, float* out, int64_t rows, int64_t dim,
                      float eps) {
#pragma omp parallel for schedule(static) if (rows > 8)
  for (int64_t r = 0; r < rows; ++r) {
    float* res = residual + r * dim;
    const float* add = x + r * dim;
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) res[i] += add[i];
    normalize_row(res, weight, out + r * dim, dim, eps);
  }
}

}  // namespace tessera::kernels
