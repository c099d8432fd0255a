// Few-row linear layer (decode GEMV): y[rows][out] = x[rows][in] · W[out][in]^T, memory bound on W.
//
// A group of S warps (S = linear_few_rows_split(in, out), 1, 2 or 4, all in one block) owns O consecutive output
// rows (weight rows); S > 1 gives shapes with few outputs enough warps to keep every SM streaming. The group's
// S*32 lanes stream those rows with 16-byte non-coherent loads that skip L1 (W is read exactly once), U vectors per
// row in flight per lane (U*O*16 bytes per lane), while x is read through L1/L2: it is at most 8 rows and every warp
// of the GPU rereads it. All R activation rows are handled by the same pass over W, with R*O FP32 accumulators in
// registers, then one warp reduction each and, for S > 1, a sum of the S warp partials through shared memory.
//
// Summation order: group lane L (= warp-in-group * 32 + lane) adds the 16-byte vectors L, L+32S, L+64S, ... of the
// row in increasing order (elements of a vector in order, fused multiply-add), then a fixed xor-butterfly over the
// 32 lanes of each warp, then the S warp partials in warp order ((p0 + p1) + p2) + p3. That order depends only on
// `in` and S (a function of in and out), never on R, O or U, so a row's result is bit-identical whether it is
// computed alone or with up to 7 others.
#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/linear.hpp"

namespace tessera::kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

// 16 bytes of W: read once, so keep them out of L1 (which then holds x for all the warps of the SM).
__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// A 16-byte vector of T widened to FP32.
template <class T>
struct Vec16;
template <>
struct Vec16<float> {
  static constexpr int kElements = 4;
  __device__ __forceinline__ static void unpack(const uint4& v, float (&f)[kElements]) {
    f[0] = __uint_as_float(v.x);
    f[1] = __uint_as_float(v.y);
    f[2] = __uint_as_float(v.z);
    f[3] = __uint_as_float(v.w);
  }
};
template <>
struct Vec16<__nv_bfloat16> {
  static constexpr int kElements = 8;
  // BF16 is the high half of an FP32; element 2i is the low half of word i (little endian).
  __device__ __forceinline__ static void unpack(const uint4& v, float (&f)[kElements]) {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = __uint_as_float(words[i] << 16);
      f[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
};

// Adds vector v (16 bytes) of every W row times vector v of every x row into the accumulators.
template <class T, int R, int O>
__device__ __forceinline__ void accumulate(float (&acc)[R][O], const uint4 (&w)[O], const uint4* __restrict__ x_vecs,
                                           int64_t vecs_per_row, int64_t v) {
  constexpr int kN = Vec16<T>::kElements;
  float wf[O][kN];
#pragma unroll
  for (int o = 0; o < O; ++o) Vec16<T>::unpack(w[o], wf[o]);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float xf[kN];
    Vec16<T>::unpack(__ldg(x_vecs + r * vecs_per_row + v), xf);
#pragma unroll
    for (int o = 0; o < O; ++o)
#pragma unroll
      for (int e = 0; e < kN; ++e) acc[r][o] = __fmaf_rn(wf[o][e], xf[e], acc[r][o]);
  }
}

// R activation rows, O output rows per warp group, U vectors per output row in flight per lane, `split` (S) warps
// per group (1, 2 or 4: divides kWarpsPerBlock).
template <class T, int R, int O, int U>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    linear_few_rows_kernel(const T* __restrict__ x, const T* __restrict__ weight, void* __restrict__ y, bool y_f32,
                           int64_t in, int64_t out, int split) {
  static_assert(R * O <= 32, "one lane stores each (activation row, output row) pair");
  constexpr int kN = Vec16<T>::kElements;
  __shared__ float partial[kWarpsPerBlock][32];  // per warp: its sum of pair j in slot j (split > 1 only)
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int part = warp % split;  // this warp's slice of the group's lanes
  const int64_t group = static_cast<int64_t>(blockIdx.x) * (kWarpsPerBlock / split) + warp / split;
  const int64_t row0 = group * O;
  const int64_t vecs = in / kN;  // 16-byte vectors per row
  const int64_t stride = static_cast<int64_t>(split) * 32;  // vectors between a lane's consecutive ones
  const int64_t first = part * 32 + lane;

  // Rows past `out` (last block only) recompute the last row instead of branching in the loop; never stored. No
  // early exit: every warp of a split block must reach the __syncthreads below.
  const uint4* w_rows[O];
#pragma unroll
  for (int o = 0; o < O; ++o) {
    const int64_t row = row0 + o < out ? row0 + o : out - 1;
    w_rows[o] = reinterpret_cast<const uint4*>(weight + row * in);
  }
  const uint4* x_vecs = reinterpret_cast<const uint4*>(x);

  float acc[R][O];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int o = 0; o < O; ++o) acc[r][o] = 0.0f;

  int64_t base = 0;  // group-uniform: lane handles vector base + first (+ u * stride)
  for (; base + U * stride <= vecs; base += U * stride) {
    uint4 w[U][O];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int o = 0; o < O; ++o) w[u][o] = load_streaming(w_rows[o] + base + u * stride + first);
#pragma unroll
    for (int u = 0; u < U; ++u) accumulate<T, R, O>(acc, w[u], x_vecs, vecs, base + u * stride + first);
  }
  for (; base < vecs; base += stride) {  // tail: fewer than U*stride vectors left
    const int64_t v = base + first;
    if (v < vecs) {
      uint4 w[O];
#pragma unroll
      for (int o = 0; o < O; ++o) w[o] = load_streaming(w_rows[o] + v);
      accumulate<T, R, O>(acc, w, x_vecs, vecs, v);
    }
  }

  // Every lane of a warp ends with the same sums; lane j = r*O+o keeps pair (r, o).
  float mine = 0.0f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int o = 0; o < O; ++o) {
      const float sum = warp_sum(acc[r][o]);
      if (lane == r * O + o) mine = sum;
    }
  }
  if (split > 1) {  // uniform over the grid
    partial[warp][lane] = mine;
    __syncthreads();
    if (part != 0) return;
    for (int k = 1; k < split; ++k) mine += partial[warp + k][lane];  // fixed warp order
  }
  if (lane < R * O) {
    const int r = lane / O;
    const int64_t row = row0 + lane % O;
    if (row < out) {
      if (y_f32) {
        static_cast<float*>(y)[r * out + row] = mine;
      } else {
        static_cast<T*>(y)[r * out + row] = from_float<T>(mine);
      }
    }
  }
}

template <class T, int R>
cudaError_t launch_for_rows(const T* x, const T* weight, void* y, bool y_f32, int64_t in, int64_t out,
                            cudaStream_t stream) {
  // More output rows per warp amortize the x reads when there are many activation rows; fewer keep the grid big.
  constexpr int O = R <= 2 ? 2 : 4;
  constexpr int U = R <= 2 ? 4 : 2;  // O*U = 8 sixteen-byte loads in flight per lane
  const int split = linear_few_rows_split(in, out, sizeof(T));  // never depends on R
  static_assert(kWarpsPerBlock % 4 == 0, "a block holds whole groups of 1, 2 or 4 warps");
  const int64_t groups = (out + O - 1) / O;
  const int64_t groups_per_block = kWarpsPerBlock / split;
  const int64_t blocks = (groups + groups_per_block - 1) / groups_per_block;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  linear_few_rows_kernel<T, R, O, U>
      <<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(x, weight, y, y_f32, in, out, split);
  return cudaGetLastError();
}

}  // namespace

template <class T>
cudaError_t launch_linear_few_rows(const T* x, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in,
                                   int64_t out, cudaStream_t stream) {
  constexpr int64_t kPerVec = 16 / sizeof(T);
  if (rows < 1 || rows > kMaxFewRows || in <= 0 || out <= 0 || in % kPerVec != 0) return cudaErrorInvalidValue;
  if (x == nullptr || weight == nullptr || y == nullptr) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(weight) % 16 != 0) {
    return cudaErrorInvalidValue;
  }
  switch (rows) {
    case 1: return launch_for_rows<T, 1>(x, weight, y, y_f32, in, out, stream);
    case 2: return launch_for_rows<T, 2>(x, weight, y, y_f32, in, out, stream);
    case 3: return launch_for_rows<T, 3>(x, weight, y, y_f32, in, out, stream);
    case 4: return launch_for_rows<T, 4>(x, weight, y, y_f32, in, out, stream);
    case 5: return launch_for_rows<T, 5>(x, weight, y, y_f32, in, out, stream);
    case 6: return launch_for_rows<T, 6>(x, weight, y, y_f32, in, out, stream);
    case 7: return launch_for_rows<T, 7>(x, weight, y, y_f32, in, out, stream);
    default: return launch_for_rows<T, 8>(x, weight, y, y_f32, in, out, stream);
  }
}

static_assert(kMaxFewRows == 8, "launch_linear_few_rows dispatches rows 1..8");

template cudaError_t launch_linear_few_rows<float>(const float*, const float*, void*, bool, int64_t, int64_t, int64_t,
                                                   cudaStream_t);
template cudaError_t launch_linear_few_rows<__nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*, void*, bool,
                                                           int64_t, int64_t, int64_t, cudaStream_t);

}  // namespace tessera::kernels::cuda
