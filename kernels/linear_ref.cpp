#include "kernels/linear.hpp"

#include <algorithm>
#include <cstring>

namespace tessera::kernels {

namespace {

// 8 FP32 lanes (one AVX register; two SSE registers without AVX). GNU vector extension, supported by GCC and Clang.
using Lanes = float __attribute__((vector_size(32)));
constexpr int kLanes = 8;

inline Lanes load_lanes(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

inline void store_lanes(float* p, Lanes v) { std::memcpy(p, &v, sizeof(v)); }

// Dot products of R rows x C weight rows, vectorized along in_features.

template <int R, int C>
void dot_kernel(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t depth, float* y,
                int64_t y_stride) {
  Lanes acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = Lanes{};
  int64_t k = 0;
  for (; k + kLanes <= depth; k += kLanes) {
    Lanes xv[R];
    for (int r = 0; r < R; ++r) xv[r] = load_lanes(x + r * x_stride + k);
    for (int c = 0; c < C; ++c) {
      const Lanes wv = load_lanes(w + c * w_stride + k);
      for (int r = 0; r < R; ++r) acc[r][c] += xv[r] * wv;
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      float sum = 0.0f;
      for (int i = 0; i < kLanes; ++i) sum += acc[r][c][i];
      for (int64_t kk = k; kk < depth; ++kk) sum += x[r * x_stride + kk] * w[c * w_stride + kk];
      y[r * y_stride + c] = sum;
    }
  }
}

constexpr int64_t kMaxDotRows = 3;
constexpr int64_t kDotOutTile = 64;  // output features per parallel task

template <int R>
void dot_rows(const float* x, const float* w, float* y, int64_t in, int64_t out, int64_t c_begin, int64_t c_end) {
  int64_t c = c_begin;
  for (; c + 4 <= c_end; c += 4) dot_kernel<R, 4>(x, in, w + c * in, in, in, y + c, out);
  for (; c < c_end; ++c) dot_kernel<R, 1>(x, in, w + c * in, in, in, y + c, out);
}

// Every output element is one dot_kernel dot product whose arithmetic does not depend on R or C, so a row's result
// is bit-identical whatever else is in the batch (batch invariance: a request served in a batch of 200 gets exactly
// the tokens it gets alone). Within an output tile, rows go in groups of kMaxDotRows so W stays in cache.
void linear_rows(const float* x, const float* w, float* y, int64_t rows, int64_t in, int64_t out) {
  const int64_t tiles = (out + kDotOutTile - 1) / kDotOutTile;
#pragma omp parallel for schedule(static) if (rows * out * in > 32768)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t c_begin = tile * kDotOutTile, c_end = std::min(out, c_begin + kDotOutTile);
    for (int64_t r = 0; r < rows; r += kMaxDotRows) {
      const float* xr = x + r * in;
      float* yr = y + r * out;
      switch (std::min(kMaxDotRows, rows - r)) {
        case 3: dot_rows<3>(xr, w, yr, in, out, c_begin, c_end); break;
        case 2: dot_rows<2>(xr, w, yr, in, out, c_begin, c_end); break;
        default: dot_rows<1>(xr, w, yr, in, out, c_begin, c_end); break;
      }
    }
  }
}

}  // namespace

void linear_ref(const float* x, const float* weight, float* y, int64_t rows, int64_t in_features,
                int64_t out_features) {
  if (rows <= 0 || out_features <= 0) return;
  linear_rows(x, weight, y, rows, in_features, out_features);
}

}  // namespace tessera::kernels
