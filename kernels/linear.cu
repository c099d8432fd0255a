// Few-row linear layer (decode GEMV): y[rows][out] = x[rows][in] · W[out][in]^T, memory bound on W.
//
// A group of S warps (S = linear_few_rows_split(in, out), 1, 2 or 4, all in one block) owns O consecutive output
// rows (weight rows); S > 1 gives shapes with few outputs enough warps to keep every SM streaming. The group's
// S*32 lanes stream those rows with 16-byte non-coherent loads that skip L1 (W is read exactly once), in chunks of
// U vectors per row per lane (U*O*16 bytes in flight per lane), while x is read through L1/L2: it is at most 8 rows
// and every warp of the GPU rereads it. All R activation rows are handled by the same pass over W, with R*O FP32
// accumulators in registers, then one warp reduction each and, for S > 1, a sum of the S warp partials through
// shared memory.
//
// Programmatic dependent launch: the first chunk of W is loaded before pdl_wait() (W never depends on an earlier
// kernel), so under PDL the weight stream starts while the previous kernel is still finishing; x is read after it.
//
// Summation order: group lane L (= warp-in-group * 32 + lane) adds the 16-byte vectors L, L+32S, L+64S, ... of the
// row in increasing order (elements of a vector in order, fused multiply-add), then a fixed xor-butterfly over the
// 32 lanes of each warp, then the S warp partials in warp order ((p0 + p1) + p2) + p3. That order depends only on
// `in` and S (a function of in and out), never on R, O, U or the fused SwiGLU, so a row's result is bit-identical
// whether it is computed alone or with up to 7 others, fused or after launch_swiglu.
#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/linear.hpp"

namespace tessera::kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

// 16 bytes of W: read once, so keep them out of L1 (which then holds x for all the warps of the SM). Volatile: the
// loads of the first chunk must stay ahead of pdl_wait().
__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
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

// Vector v of activation row r, in FP32. Plain: x is [R][in]. SwiGLU: x is [R][2 * in] = gate | up per row, and
// the activation is silu_mul rounded to T, exactly what launch_swiglu would have stored.
template <class T, bool kSwiglu>
struct XReader {
  static constexpr int kN = Vec16<T>::kElements;
  const uint4* __restrict__ x;
  int64_t vecs;  // 16-byte vectors per activation row (in / kN)

  __device__ __forceinline__ void read(int r, int64_t v, float (&xf)[kN]) const {
    if constexpr (!kSwiglu) {
      Vec16<T>::unpack(__ldg(x + r * vecs + v), xf);
    } else {
      const uint4* row = x + 2 * r * vecs;
      float g[kN], u[kN];
      Vec16<T>::unpack(__ldg(row + v), g);
      Vec16<T>::unpack(__ldg(row + vecs + v), u);
#pragma unroll
      for (int e = 0; e < kN; ++e) xf[e] = to_float(from_float<T>(silu_mul(g[e], u[e])));
    }
  }
};

// Adds vector v (16 bytes) of every W row times vector v of every x row into the accumulators.
template <class T, int R, int O, class X>
__device__ __forceinline__ void accumulate(float (&acc)[R][O], const uint4 (&w)[O], const X& x, int64_t v) {
  constexpr int kN = Vec16<T>::kElements;
  float wf[O][kN];
#pragma unroll
  for (int o = 0; o < O; ++o) Vec16<T>::unpack(w[o], wf[o]);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float xf[kN];
    x.read(r, v, xf);
#pragma unroll
    for (int o = 0; o < O; ++o)
#pragma unroll
      for (int e = 0; e < kN; ++e) acc[r][o] = __fmaf_rn(wf[o][e], xf[e], acc[r][o]);
  }
}

// The chunk of W at group-uniform `base`: vector base + u * stride + first of every row, u < U. Vectors past the
// row end (last chunk only) read as zeros and are never accumulated.
template <int U, int O>
__device__ __forceinline__ void load_chunk(uint4 (&w)[U][O], const uint4* const (&rows)[O], int64_t base,
                                           int64_t stride, int64_t first, int64_t vecs) {
  if (base + U * stride <= vecs) {
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int o = 0; o < O; ++o) w[u][o] = load_streaming(rows[o] + base + u * stride + first);
  } else {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t v = base + u * stride + first;
#pragma unroll
      for (int o = 0; o < O; ++o) w[u][o] = v < vecs ? load_streaming(rows[o] + v) : make_uint4(0, 0, 0, 0);
    }
  }
}

// This block's share of the L2 prefetch range (data 16-byte aligned, bytes a multiple of 16), in pieces.
__device__ __forceinline__ void l2_prefetch_share(const char* data, int64_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int64_t kPiece = 32 * 1024;
  const int64_t share = static_cast<int64_t>(ceil_div(bytes / 16, gridDim.x)) * 16;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * share;
  const int64_t end = begin + share < bytes ? begin + share : bytes;
  for (int64_t offset = begin; offset < end; offset += kPiece) {
    const uint32_t size = static_cast<uint32_t>(end - offset < kPiece ? end - offset : kPiece);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(data + offset), "r"(size) : "memory");
  }
#endif
}

// R activation rows, O output rows per warp group, U vectors per output row per chunk, `split` (S) warps per group
// (1, 2 or 4: divides kWarpsPerBlock).
template <class T, int R, int O, int U, bool kSwiglu>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    linear_few_rows_kernel(const T* __restrict__ x, const T* __restrict__ weight, void* __restrict__ y, bool y_f32,
                           int64_t in, int64_t out, int split, const char* __restrict__ prefetch,
                           int64_t prefetch_bytes) {
  static_assert(R * O <= 32, "one lane stores each (activation row, output row) pair");
  constexpr int kN = Vec16<T>::kElements;
  __shared__ float partial[kWarpsPerBlock][32];  // per warp: its sum of pair j in slot j (split > 1 only)
  pdl_launch_dependents();
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int part = warp % split;  // this warp's slice of the group's lanes
  const int64_t group = static_cast<int64_t>(blockIdx.x) * (kWarpsPerBlock / split) + warp / split;
  const int64_t row0 = group * O;
  const int64_t vecs = in / kN;  // 16-byte vectors per row
  const int64_t stride = static_cast<int64_t>(split) * 32;  // vectors between a lane's consecutive ones
  const int64_t first = part * 32 + lane;
  const int64_t step = U * stride;  // vectors a group covers per chunk

  // Rows past `out` (last block only) recompute the last row instead of branching in the loop; never stored. No
  // early exit: every warp of a split block must reach the __syncthreads below.
  const uint4* w_rows[O];
#pragma unroll
  for (int o = 0; o < O; ++o) {
    const int64_t row = row0 + o < out ? row0 + o : out - 1;
    w_rows[o] = reinterpret_cast<const uint4*>(weight + row * in);
  }
  const XReader<T, kSwiglu> x_reader{reinterpret_cast<const uint4*>(x), vecs};

  uint4 w[U][O];
  load_chunk<U, O>(w, w_rows, 0, stride, first, vecs);  // weights only: no earlier kernel writes them
  pdl_wait();                                           // x (and y) from here on

  float acc[R][O];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int o = 0; o < O; ++o) acc[r][o] = 0.0f;

  for (int64_t base = 0;;) {  // group-uniform: lane handles vectors base + u * stride + first
    if (base + step <= vecs) {
#pragma unroll
      for (int u = 0; u < U; ++u) accumulate<T, R, O>(acc, w[u], x_reader, base + u * stride + first);
    } else {  // last chunk, partly past the row end
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t v = base + u * stride + first;
        if (v < vecs) accumulate<T, R, O>(acc, w[u], x_reader, v);
      }
    }
    base += step;
    if (base >= vecs) break;
    load_chunk<U, O>(w, w_rows, base, stride, first, vecs);
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
  if (prefetch_bytes > 0 && threadIdx.x == 0) l2_prefetch_share(prefetch, prefetch_bytes);
}

template <class T, int R, bool kSwiglu>
cudaError_t launch_for_rows(const T* x, const T* weight, void* y, bool y_f32, int64_t in, int64_t out,
                            cudaStream_t stream, bool pdl, const char* prefetch, int64_t prefetch_bytes) {
  // More output rows per warp amortize the x reads when there are many activation rows (and the SiLU the fused
  // kernel evaluates per x element); fewer keep the grid big. O*U = 8 sixteen-byte loads in flight per lane (4 for
  // the fused kernel above 4 rows, whose gate/up reads would otherwise spill registers).
  constexpr int O = (kSwiglu || R > 2) ? 4 : 2;
  constexpr int U = (kSwiglu && R > 4) ? 1 : 8 / O;
  const int split = linear_few_rows_split(in, out, sizeof(T));  // never depends on R
  static_assert(kWarpsPerBlock % 4 == 0, "a block holds whole groups of 1, 2 or 4 warps");
  const int64_t groups = (out + O - 1) / O;
  const int64_t groups_per_block = kWarpsPerBlock / split;
  const int64_t blocks = (groups + groups_per_block - 1) / groups_per_block;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  return launch_kernel(pdl, linear_few_rows_kernel<T, R, O, U, kSwiglu>, dim3(static_cast<unsigned>(blocks)),
                       dim3(kWarpsPerBlock * 32), 0, stream, x, weight, y, y_f32, in, out, split, prefetch,
                       prefetch_bytes);
}

template <class T, bool kSwiglu>
cudaError_t dispatch(const T* x, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in, int64_t out,
                     cudaStream_t stream, bool pdl, L2Prefetch prefetch) {
  constexpr int64_t kPerVec = 16 / sizeof(T);
  if (rows < 1 || rows > kMaxFewRows || in <= 0 || out <= 0 || in % kPerVec != 0) return cudaErrorInvalidValue;
  if (x == nullptr || weight == nullptr || y == nullptr) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(weight) % 16 != 0) {
    return cudaErrorInvalidValue;
  }
  // A hint: dropped unless it can be issued as is.
  const bool prefetching = prefetch.data != nullptr && reinterpret_cast<uintptr_t>(prefetch.data) % 16 == 0;
  const char* pf = prefetching ? static_cast<const char*>(prefetch.data) : nullptr;
  const int64_t pf_bytes = prefetching ? static_cast<int64_t>(prefetch.bytes / 16 * 16) : 0;
  switch (rows) {
    case 1: return launch_for_rows<T, 1, kSwiglu>(x, weight, y, y_f32, in, out, stream, pdl, pf, pf_bytes);
    case 2: return launch_for_rows<T, 2, kSwiglu>(x, weight, y, y_f32, in, out, stream, pdl, pf, pf_bytes);
    case 3: return launch_for_rows<T, 3, kSwiglu>(x, weight, y, y_f32, in, out, stream, pdl, pf, pf_bytes);
    case 4: return launch_for_rows<T, 4, kSwiglu>(x, weight, y, y_f32, in, out, stream, pdl, pf, pf_bytes);
    case 5: return launch_for_rows<T, 5, kSwiglu>(x, weight, y, y_f32, in, out, stream, pdl, pf, pf_bytes);
    case 6: return launch_for_rows<T, 6, kSwiglu>(x, weight, y, y_f32, in, out, stream, pdl, pf, pf_bytes);
    case 7: return launch_for_rows<T, 7, kSwiglu>(x, weight, y, y_f32, in, out, stream, pdl, pf, pf_bytes);
    default: return launch_for_rows<T, 8, kSwiglu>(x, weight, y, y_f32, in, out, stream, pdl, pf, pf_bytes);
  }
}

static_assert(kMaxFewRows == 8, "the few-row launchers dispatch rows 1..8");

}  // namespace

template <class T>
cudaError_t launch_linear_few_rows(const T* x, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in,
                                   int64_t out, cudaStream_t stream, bool pdl, L2Prefetch prefetch) {
  return dispatch<T, false>(x, weight, y, y_f32, rows, in, out, stream, pdl, prefetch);
}

template <class T>
cudaError_t launch_linear_few_rows_swiglu(const T* gate_up, const T* weight, void* y, bool y_f32, int64_t rows,
                                          int64_t in, int64_t out, cudaStream_t stream, bool pdl,
                                          L2Prefetch prefetch) {
  return dispatch<T, true>(gate_up, weight, y, y_f32, rows, in, out, stream, pdl, prefetch);
}

#define TESSERA_INSTANTIATE_LINEAR(T)                                                                              \
  template cudaError_t launch_linear_few_rows<T>(const T*, const T*, void*, bool, int64_t, int64_t, int64_t,       \
                                                 cudaStream_t, bool, L2Prefetch);                                  \
  template cudaError_t launch_linear_few_rows_swiglu<T>(const T*, const T*, void*, bool, int64_t, int64_t,         \
                                                        int64_t, cudaStream_t, bool, L2Prefetch);
TESSERA_INSTANTIATE_LINEAR(float)
TESSERA_INSTANTIATE_LINEAR(__nv_bfloat16)
#undef TESSERA_INSTANTIATE_LINEAR

}  // namespace tessera::kernels::cuda
