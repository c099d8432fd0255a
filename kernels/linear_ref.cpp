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

// ---- Few rows (decode): memory bound on W. Dot products of R rows x C weight rows, vectorized along in_features.

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

void linear_few_rows(const float* x, const float* w, float* y, int64_t rows, int64_t in, int64_t out) {
  const int64_t tiles = (out + kDotOutTile - 1) / kDotOutTile;
#pragma omp parallel for schedule(static) if (out * in > 32768)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t c_begin = tile * kDotOutTile, c_end = std::min(out, c_begin + kDotOutTile);
    switch (rows) {
      case 3: dot_rows<3>(x, w, y, in, out, c_begin, c_end); break;
      case 2: dot_rows<2>(x, w, y, in, out, c_begin, c_end); break;
      default: dot_rows<1>(x, w, y, in, out, c_begin, c_end); break;
    }
  }
}

// ---- Many rows (prefill): GEMM with packed weights. Each task packs a kTileCols x kDepth slice of W transposed
// ([k][16 outputs], 16 KiB, L1-resident) and streams up to kRowPanel rows of x past it with an outer-product
// micro kernel: kTileRows x 16 outputs = 12 vector accumulators + 2 weight vectors + 1 broadcast (fits 16 AVX
// registers), no horizontal sums.

constexpr int kTileCols = 2 * kLanes;
constexpr int kTileRows = 6;
constexpr int64_t kDepth = 256;
constexpr int64_t kRowPanel = 256;

template <int R>
void outer_kernel(const float* x, int64_t x_stride, const float* packed, int64_t depth, float* y, int64_t y_stride,
                  int cols) {
  Lanes acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = Lanes{};
  for (int64_t k = 0; k < depth; ++k) {
    const Lanes w0 = load_lanes(packed + k * kTileCols);
    const Lanes w1 = load_lanes(packed + k * kTileCols + kLanes);
    for (int r = 0; r < R; ++r) {
      const float xv = x[r * x_stride + k];
      acc[r][0] += xv * w0;
      acc[r][1] += xv * w1;
    }
  }
  for (int r = 0; r < R; ++r) {
    float* y_row = y + r * y_stride;
    if (cols == kTileCols) {
      store_lanes(y_row, load_lanes(y_row) + acc[r][0]);
      store_lanes(y_row + kLanes, load_lanes(y_row + kLanes) + acc[r][1]);
    } else {
      float partial[kTileCols];
      store_lanes(partial, acc[r][0]);
      store_lanes(partial + kLanes, acc[r][1]);
      for (int c = 0; c < cols; ++c) y_row[c] += partial[c];
    }
  }
}

template <int R = kTileRows>
void outer_kernel_rows(int rows, const float* x, int64_t x_stride, const float* packed, int64_t depth, float* y,
                       int64_t y_stride, int cols) {
  if (rows == R) {
    outer_kernel<R>(x, x_stride, packed, depth, y, y_stride, cols);
  } else if constexpr (R > 1) {
    outer_kernel_rows<R - 1>(rows, x, x_stride, packed, depth, y, y_stride, cols);
  }
}

void linear_many_rows(const float* x, const float* w, float* y, int64_t rows, int64_t in, int64_t out) {
  const int64_t panels = (rows + kRowPanel - 1) / kRowPanel;
  const int64_t tiles = (out + kTileCols - 1) / kTileCols;
#pragma omp parallel for collapse(2) schedule(static) if (rows * in * out > 32768)
  for (int64_t panel = 0; panel < panels; ++panel) {
    for (int64_t tile = 0; tile < tiles; ++tile) {
      alignas(64) float packed[kDepth * kTileCols];
      const int64_t r_begin = panel * kRowPanel, r_end = std::min(rows, r_begin + kRowPanel);
      const int64_t c_begin = tile * kTileCols;
      const int cols = static_cast<int>(std::min<int64_t>(kTileCols, out - c_begin));
      for (int64_t r = r_begin; r < r_end; ++r) std::fill_n(y + r * out + c_begin, cols, 0.0f);
      for (int64_t k0 = 0; k0 < in; k0 += kDepth) {
        const int64_t depth = std::min(kDepth, in - k0);
        for (int c = 0; c < kTileCols; ++c) {
          if (c < cols) {
            const float* w_row = w + (c_begin + c) * in + k0;
            for (int64_t k = 0; k < depth; ++k) packed[k * kTileCols + c] = w_row[k];
          } else {
            for (int64_t k = 0; k < depth; ++k) packed[k * kTileCols + c] = 0.0f;  // padding outputs
          }
        }
        for (int64_t r = r_begin; r < r_end; r += kTileRows) {
          const int block_rows = static_cast<int>(std::min<int64_t>(kTileRows, r_end - r));
          outer_kernel_rows(block_rows, x + r * in + k0, in, packed, depth, y + r * out + c_begin, out, cols);
        }
      }
    }
  }
}

}  // namespace

void linear_ref(const float* x, const float* weight, float* y, int64_t rows, int64_t in_features,
                int64_t out_features) {
  if (rows <= 0 || out_features <= 0) return;
  if (rows <= kMaxDotRows) {
    linear_few_rows(x, weight, y, rows, in_features, out_features);
  } else {
    linear_many_rows(x, weight, y, rows, in_features, out_features);
  }
}

}  // namespace tessera::kernels
