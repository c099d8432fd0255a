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

inline float horizontal_sum(Lanes v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// Tiling: each parallel task owns a panel of kRowPanel input rows x kOutTile output features and walks the
// in_features dimension in chunks of kInChunk, so the weight tile chunk (kOutTile x kInChunk, 64 KiB) stays in L2
// while every row of the panel streams past it.
constexpr int64_t kRowPanel = 64;
constexpr int64_t kOutTile = 64;
constexpr int64_t kInChunk = 256;
constexpr int kRowBlock = 4;  // register block: rows of x
constexpr int kOutBlock = 3;  // register block: rows of W (4 x 3 accumulators + operands fit 16 AVX registers)

// y[r][c] += sum_k x[r][k] * w[c][k] for an R x C register block over k in [0, depth).
template <int R, int C>
void micro_kernel(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t depth, float* y,
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
      float sum = horizontal_sum(acc[r][c]);
      for (int64_t kk = k; kk < depth; ++kk) sum += x[r * x_stride + kk] * w[c * w_stride + kk];
      y[r * y_stride + c] += sum;
    }
  }
}

template <int R>
void micro_kernel_cols(int cols, const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t depth,
                       float* y, int64_t y_stride) {
  static_assert(kOutBlock == 3);
  switch (cols) {
    case 3: micro_kernel<R, 3>(x, x_stride, w, w_stride, depth, y, y_stride); break;
    case 2: micro_kernel<R, 2>(x, x_stride, w, w_stride, depth, y, y_stride); break;
    default: micro_kernel<R, 1>(x, x_stride, w, w_stride, depth, y, y_stride); break;
  }
}

void micro_kernel_any(int rows, int cols, const float* x, int64_t x_stride, const float* w, int64_t w_stride,
                      int64_t depth, float* y, int64_t y_stride) {
  static_assert(kRowBlock == 4);
  switch (rows) {
    case 4: micro_kernel_cols<4>(cols, x, x_stride, w, w_stride, depth, y, y_stride); break;
    case 3: micro_kernel_cols<3>(cols, x, x_stride, w, w_stride, depth, y, y_stride); break;
    case 2: micro_kernel_cols<2>(cols, x, x_stride, w, w_stride, depth, y, y_stride); break;
    default: micro_kernel_cols<1>(cols, x, x_stride, w, w_stride, depth, y, y_stride); break;
  }
}

// Single-row case (decode): memory bound on W, so block more output features per pass over x.
template <int C>
void row_kernel(const float* x, const float* w, int64_t w_stride, int64_t depth, float* y) {
  micro_kernel<1, C>(x, 0, w, w_stride, depth, y, 0);
}

}  // namespace

void linear_ref(const float* x, const float* weight, float* y, int64_t rows, int64_t in_features,
                int64_t out_features) {
  const int64_t row_panels = (rows + kRowPanel - 1) / kRowPanel;
  const int64_t out_tiles = (out_features + kOutTile - 1) / kOutTile;
  const bool parallel = rows * in_features * out_features > 32768;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t panel = 0; panel < row_panels; ++panel) {
    for (int64_t tile = 0; tile < out_tiles; ++tile) {
      const int64_t r_begin = panel * kRowPanel, r_end = std::min(rows, r_begin + kRowPanel);
      const int64_t c_begin = tile * kOutTile, c_end = std::min(out_features, c_begin + kOutTile);
      for (int64_t r = r_begin; r < r_end; ++r) std::fill(y + r * out_features + c_begin, y + r * out_features + c_end, 0.0f);
      for (int64_t k = 0; k < in_features; k += kInChunk) {
        const int64_t depth = std::min(kInChunk, in_features - k);
        if (r_end - r_begin == 1) {
          int64_t c = c_begin;
          for (; c + 4 <= c_end; c += 4)
            row_kernel<4>(x + r_begin * in_features + k, weight + c * in_features + k, in_features, depth,
                          y + r_begin * out_features + c);
          for (; c < c_end; ++c)
            row_kernel<1>(x + r_begin * in_features + k, weight + c * in_features + k, in_features, depth,
                          y + r_begin * out_features + c);
          continue;
        }
        for (int64_t r = r_begin; r < r_end; r += kRowBlock) {
          const int block_rows = static_cast<int>(std::min<int64_t>(kRowBlock, r_end - r));
          for (int64_t c = c_begin; c < c_end; c += kOutBlock) {
            const int block_cols = static_cast<int>(std::min<int64_t>(kOutBlock, c_end - c));
            micro_kernel_any(block_rows, block_cols, x + r * in_features + k, in_features,
                             weight + c * in_features + k, in_features, depth, y + r * out_features + c,
                             out_features);
          }
        }
      }
    }
  }
}

}  // namespace tessera::kernels
