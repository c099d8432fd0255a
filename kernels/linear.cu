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
// `in` and S (a function of in and out), never on R, O, U or where x comes from, so a row's result is
// bit-identical whether it is computed alone or with up to 7 others, with the RMSNorm fused or not.
//
// What is stored (FewRowsEpilogue): y itself, or the SwiGLU of adjacent output pairs (gate row 2j, up row 2j+1 of a
// paired gate/up weight): O is even and groups start at even rows, so lane r*O+o (o even) holds a gate value and
// lane r*O+o+1 its up value; one shuffle brings them together and the activation is stored, never the pair.
//
// Where x comes from (XSource): plain rows; or RMSNorm'ed rows (the norm of the residual stream, fused): after
// pdl_wait() every block computes the normalized rows itself into shared memory (R x in of T) with the norm kernels'
// own arithmetic and reduction order (kernels/rms_norm.cuh), and block 0 also stores the new residual row. The blocks
// of an SM share the residual, delta and norm-weight reads through L1, so L2 serves them about once per SM, not once
// per block (for QKV, whose blocks own only two weight rows, per-block reads would rival the weight stream).
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cuda_common.cuh"
#include "kernels/linear.hpp"
#include "kernels/rms_norm.cuh"
#include "kernels/vector_pack.cuh"

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

enum class XSource { kPlain, kNormed };

// The fused RMSNorm's inputs (XSource::kNormed; unused otherwise). See launch_linear_few_rows_norm.
template <class T>
struct NormInput {
  const T* residual = nullptr;  // [R][in]
  const T* delta = nullptr;     // [R][in], or null: no add
  const T* weight = nullptr;    // [in]
  T* residual_out = nullptr;    // [R][in], or null; written by block 0
  float eps = 0.0f;
  int threads = 32;             // block size of the norm kernels for this row length (their reduction order)
};

// Vector v of activation row r, in FP32. Plain: x is [R][in] (global). Normed: x is the block's staged rows [R][in]
// in shared memory.
template <class T, XSource kSource>
struct XReader {
  static constexpr int kN = Vec16<T>::kElements;
  const uint4* __restrict__ x;
  int64_t vecs;  // 16-byte vectors per activation row (in / kN)

  __device__ __forceinline__ void read(int r, int64_t v, float (&xf)[kN]) const {
    if constexpr (kSource == XSource::kPlain) {
      Vec16<T>::unpack(__ldg(x + r * vecs + v), xf);
    } else {
      Vec16<T>::unpack(x[r * vecs + v], xf);
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

// The fused norm's loads. Every block of the kernel reads the same residual, delta and norm-weight rows, so they go
// through L1 (shared by the blocks of an SM; one L2 fetch per SM instead of one per block): the residual rows
// straight into shared memory (cp.async.ca, no registers held), the others as L1 prefetches that the 16-byte __ldg
// reads later find there.
__device__ __forceinline__ void copy_to_shared_via_l1(uint4* dst, const uint4* src, int64_t vectors) {
  for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x) {
    const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(dst + v));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(src + v) : "memory");
  }
}
__device__ __forceinline__ void wait_shared_copies() {
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
}
__device__ __forceinline__ void prefetch_to_l1(const void* data, int64_t bytes) {
  constexpr int64_t kLine = 128;
  const char* base = static_cast<const char*>(data);
  for (int64_t offset = threadIdx.x * kLine; offset < bytes; offset += blockDim.x * kLine)
    asm volatile("prefetch.global.L1 [%0];" ::"l"(base + offset));
}

template <class T, int N>
__device__ __forceinline__ Pack<T, N> ldg_pack(const T* base, int64_t p) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(base) + p);
  Pack<T, N> v;
  memcpy(&v, &raw, sizeof(v));
  return v;
}

// Stages the R normalized rows x[r] = rms_norm(s[r]) * weight in `staged` ([R][in] of T, shared memory), where
// s = residual + delta stored as T (no delta: s = residual), with the arithmetic of the vectorized add_rms_norm /
// rms_norm kernels run with norm.threads threads per row: the same float operations (kernels/rms_norm.cuh) and the
// same sum-of-squares order (thread t of norm.threads adds packs t, t + threads, ...; block_sum's butterfly within
// each of its warps, then over the warp sums), the norm kernel's warps played by this block's warps in turn.
// residual_out (null unless this block writes it) receives s. Every thread calls it; it ends with a barrier.
template <class T, int R>
__device__ __forceinline__ void stage_normed_rows(const NormInput<T>& norm_in, T* residual_out, int64_t in,
                                                  uint4* staged, float (&sums)[R][32], float (&inv)[R]) {
  constexpr int N = Vec16<T>::kElements;
  constexpr int kThreads = kWarpsPerBlock * 32;
  const int64_t packs = in / N;
  const bool has_delta = norm_in.delta != nullptr;
  T* rows = reinterpret_cast<T*>(staged);
  copy_to_shared_via_l1(staged, reinterpret_cast<const uint4*>(norm_in.residual), R * packs);
  if (has_delta) prefetch_to_l1(norm_in.delta, R * in * static_cast<int64_t>(sizeof(T)));
  wait_shared_copies();
  __syncthreads();

  const int lane = static_cast<int>(threadIdx.x & 31);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int norm_warps = norm_in.threads / 32;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    T* row = rows + r * in;
    const T* delta = has_delta ? norm_in.delta + r * in : nullptr;
    T* row_out = residual_out != nullptr ? residual_out + r * in : nullptr;
    for (int w = warp; w < norm_warps; w += kWarpsPerBlock) {
      // s = residual + delta (each pack visited once), stored, and its squares summed in the norm kernels' order.
      float sum = norm::thread_sum_of_squares<T, N>(w * 32 + lane, norm_in.threads, packs, [&](int64_t p) {
        Pack<T, N> v = load_pack<T, N>(row, p);
        if (delta != nullptr) {
          const Pack<T, N> d = ldg_pack<T, N>(delta, p);
#pragma unroll
          for (int j = 0; j < N; ++j) v.v[j] = norm::add_residual(v.v[j], d.v[j]);
          store_pack<T, N>(row, p, v);
        }
        if (row_out != nullptr) store_pack<T, N>(row_out, p, v);
        return v;
      });
      sum = warp_sum(sum);
      if (lane == 0) sums[r][w] = sum;
    }
  }
  __syncthreads();
  for (int r = warp; r < R; r += kWarpsPerBlock) {
    float total = lane < norm_warps ? sums[r][lane] : 0.0f;  // block_sum's second butterfly
    total = warp_sum(total);
    if (lane == 0) inv[r] = norm::inv_rms(total, in, norm_in.eps);
  }
  __syncthreads();
  // x = s * inv_rms * weight, in place.
#pragma unroll
  for (int r = 0; r < R; ++r) {
    T* row = rows + r * in;
    const float row_inv = inv[r];
    for (int64_t p = threadIdx.x; p < packs; p += kThreads) {
      const Pack<T, N> v = load_pack<T, N>(row, p);
      const Pack<T, N> w = ldg_pack<T, N>(norm_in.weight, p);
      Pack<T, N> o;
#pragma unroll
      for (int j = 0; j < N; ++j) o.v[j] = norm::normalize(v.v[j], row_inv, w.v[j]);
      store_pack<T, N>(row, p, o);
    }
  }
  __syncthreads();
}

// R activation rows, O output rows per warp group, U vectors per output row per chunk, `split` (S) warps per group
// (1, 2 or 4: divides kWarpsPerBlock). Dynamic shared memory: XSource::kNormed's staged rows (R * in * sizeof(T)).
template <class T, int R, int O, int U, XSource kSource, FewRowsEpilogue kEpilogue>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    linear_few_rows_kernel(const T* __restrict__ x, const T* __restrict__ weight, void* __restrict__ y, bool y_f32,
                           int64_t in, int64_t out, int split, const char* __restrict__ prefetch,
                           int64_t prefetch_bytes, NormInput<T> norm_in) {
  static_assert(R * O <= 32, "one lane stores each (activation row, output row) pair");
  constexpr int kN = Vec16<T>::kElements;
  __shared__ float partial[kWarpsPerBlock][32];  // per warp: its sum of pair j in slot j (split > 1 only)
  extern __shared__ uint4 staged_rows[];         // XSource::kNormed: the normalized rows
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
  uint4 w[U][O];
  load_chunk<U, O>(w, w_rows, 0, stride, first, vecs);  // weights only: no earlier kernel writes them
  if constexpr (kSource == XSource::kNormed) {          // the norm weight too (into L1)
    prefetch_to_l1(norm_in.weight, in * static_cast<int64_t>(sizeof(T)));
  }
  pdl_wait();  // x (and y) from here on

  const uint4* x_rows = reinterpret_cast<const uint4*>(x);
  if constexpr (kSource == XSource::kNormed) {
    __shared__ float norm_sums[R][32];
    __shared__ float norm_inv[R];
    stage_normed_rows<T, R>(norm_in, blockIdx.x == 0 ? norm_in.residual_out : nullptr, in, staged_rows, norm_sums,
                            norm_inv);
    x_rows = staged_rows;
  }
  const XReader<T, kSource> x_reader{x_rows, vecs};

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
  if constexpr (kEpilogue == FewRowsEpilogue::kSwigluPairs) {
    static_assert(O % 2 == 0, "a group holds whole (gate, up) pairs");
    const float up = __shfl_down_sync(0xffffffffu, mine, 1);  // every lane: no lane has left the warp
    if (lane < R * O && lane % 2 == 0) {
      const int r = lane / O;
      const int64_t row = row0 + lane % O;  // even; out is even, so row + 1 < out too
      if (row < out) {
        // gate and up rounded to T first: exactly what launch_swiglu reads from a stored gate/up row.
        const float g = to_float(from_float<T>(mine)), u = to_float(from_float<T>(up));
        static_cast<T*>(y)[r * (out / 2) + row / 2] = from_float<T>(silu_mul(g, u));
      }
    }
  } else if (lane < R * O) {
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

// Static shared memory of the kernel besides the staged rows, at most (partials and the norm's scratch).
constexpr size_t kStaticSharedBytes = sizeof(float) * (kWarpsPerBlock * 32 + kMaxFewRows * 33);

// Dynamic shared memory of the fused norm: the staged rows.
size_t norm_shared_bytes(int64_t rows, int64_t in, size_t element_bytes) {
  return static_cast<size_t>(rows) * static_cast<size_t>(in) * element_bytes;
}

template <class T, int R, XSource kSource, FewRowsEpilogue kEpilogue>
cudaError_t launch_for_rows(const T* x, const T* weight, void* y, bool y_f32, int64_t in, int64_t out,
                            cudaStream_t stream, bool pdl, const char* prefetch, int64_t prefetch_bytes,
                            const NormInput<T>& norm_in) {
  // More output rows per warp amortize the x reads when there are many activation rows; fewer keep the grid big.
  // O*U sixteen-byte loads in flight per lane: 16 at one row (decode at batch 1, the latency-critical case: measured
  // faster than 8 on the H100), 8 otherwise (the accumulators of more rows need the registers). O is even (the
  // SwiGLU epilogue's pairs).
  constexpr int O = R > 2 ? 4 : 2;
  constexpr int U = (R == 1 ? 16 : 8) / O;
  const int split = linear_few_rows_split(in, out, sizeof(T));  // never depends on R
  static_assert(kWarpsPerBlock % 4 == 0, "a block holds whole groups of 1, 2 or 4 warps");
  const int64_t groups = (out + O - 1) / O;
  const int64_t groups_per_block = kWarpsPerBlock / split;
  const int64_t blocks = (groups + groups_per_block - 1) / groups_per_block;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  auto* kernel = linear_few_rows_kernel<T, R, O, U, kSource, kEpilogue>;
  const size_t shared_bytes = kSource == XSource::kNormed ? norm_shared_bytes(R, in, sizeof(T)) : 0;
  if (shared_bytes > 48 * 1024) {  // above the default dynamic limit: opt in (not a stream operation)
    const cudaError_t status =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes));
    if (status != cudaSuccess) return status;
  }
  return launch_kernel(pdl, kernel, dim3(static_cast<unsigned>(blocks)), dim3(kWarpsPerBlock * 32), shared_bytes,
                       stream, x, weight, y, y_f32, in, out, split, prefetch, prefetch_bytes, norm_in);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class T, XSource kSource, FewRowsEpilogue kEpilogue>
cudaError_t dispatch_rows(const T* x, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in, int64_t out,
                          cudaStream_t stream, bool pdl, L2Prefetch prefetch, const NormInput<T>& norm_in) {
  constexpr int64_t kPerVec = 16 / sizeof(T);
  if (rows < 1 || rows > kMaxFewRows || in <= 0 || out <= 0 || in % kPerVec != 0) return cudaErrorInvalidValue;
  if (kEpilogue == FewRowsEpilogue::kSwigluPairs && (out % 2 != 0 || y_f32)) return cudaErrorInvalidValue;
  if (weight == nullptr || y == nullptr || !aligned16(weight)) return cudaErrorInvalidValue;
  if constexpr (kSource == XSource::kNormed) {
    if (norm_in.residual == nullptr || norm_in.weight == nullptr || !aligned16(norm_in.residual) ||
        !aligned16(norm_in.weight) || !aligned16(norm_in.delta) || !aligned16(norm_in.residual_out) ||
        !linear_few_rows_norm_fits(rows, in, sizeof(T))) {
      return cudaErrorInvalidValue;
    }
  } else if (x == nullptr || !aligned16(x)) {
    return cudaErrorInvalidValue;
  }
  // A hint: dropped unless it can be issued as is.
  const bool prefetching = prefetch.data != nullptr && aligned16(prefetch.data);
  const char* pf = prefetching ? static_cast<const char*>(prefetch.data) : nullptr;
  const int64_t pf_bytes = prefetching ? static_cast<int64_t>(prefetch.bytes / 16 * 16) : 0;
  auto launch = [&](auto rows_constant) {  // R as a compile-time constant
    return launch_for_rows<T, decltype(rows_constant)::value, kSource, kEpilogue>(x, weight, y, y_f32, in, out, stream,
                                                                                  pdl, pf, pf_bytes, norm_in);
  };
  switch (rows) {
    case 1: return launch(std::integral_constant<int, 1>{});
    case 2: return launch(std::integral_constant<int, 2>{});
    case 3: return launch(std::integral_constant<int, 3>{});
    case 4: return launch(std::integral_constant<int, 4>{});
    case 5: return launch(std::integral_constant<int, 5>{});
    case 6: return launch(std::integral_constant<int, 6>{});
    case 7: return launch(std::integral_constant<int, 7>{});
    default: return launch(std::integral_constant<int, 8>{});
  }
}

static_assert(kMaxFewRows == 8, "the few-row launchers dispatch rows 1..8");

template <class T, XSource kSource>
cudaError_t dispatch(const T* x, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in, int64_t out,
                     cudaStream_t stream, bool pdl, L2Prefetch prefetch, FewRowsEpilogue epilogue,
                     const NormInput<T>& norm_in = {}) {
  if (epilogue == FewRowsEpilogue::kSwigluPairs) {
    return dispatch_rows<T, kSource, FewRowsEpilogue::kSwigluPairs>(x, weight, y, y_f32, rows, in, out, stream, pdl,
                                                                    prefetch, norm_in);
  }
  return dispatch_rows<T, kSource, FewRowsEpilogue::kNone>(x, weight, y, y_f32, rows, in, out, stream, pdl, prefetch,
                                                           norm_in);
}

}  // namespace

bool linear_few_rows_norm_fits(int64_t rows, int64_t in, size_t element_bytes) {
  int device = 0, limit = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
    return false;
  }
  return rows >= 1 && in >= 1 &&
         norm_shared_bytes(rows, in, element_bytes) + kStaticSharedBytes <= static_cast<size_t>(limit);
}

template <class T>
cudaError_t launch_linear_few_rows(const T* x, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in,
                                   int64_t out, cudaStream_t stream, bool pdl, L2Prefetch prefetch,
                                   FewRowsEpilogue epilogue) {
  return dispatch<T, XSource::kPlain>(x, weight, y, y_f32, rows, in, out, stream, pdl, prefetch, epilogue);
}

template <class T>
cudaError_t launch_linear_few_rows_norm(const T* residual, const T* delta, T* residual_out, const T* norm_weight,
                                        float eps, const T* weight, void* y, bool y_f32, int64_t rows, int64_t in,
                                        int64_t out, cudaStream_t stream, bool pdl, L2Prefetch prefetch,
                                        FewRowsEpilogue epilogue) {
  if (in <= 0 || in / kPackElems<T> > 0x7fffffff) return cudaErrorInvalidValue;
  NormInput<T> norm_in;
  norm_in.residual = residual;
  norm_in.delta = delta;
  norm_in.weight = norm_weight;
  norm_in.residual_out = residual_out;
  norm_in.eps = eps;
  norm_in.threads = threads_for(in / kPackElems<T>, norm::kMaxThreads);  // launch_add_rms_norm's block size
  return dispatch<T, XSource::kNormed>(nullptr, weight, y, y_f32, rows, in, out, stream, pdl, prefetch, epilogue,
                                       norm_in);
}

#define TESSERA_INSTANTIATE_LINEAR(T)                                                                              \
  template cudaError_t launch_linear_few_rows<T>(const T*, const T*, void*, bool, int64_t, int64_t, int64_t,       \
                                                 cudaStream_t, bool, L2Prefetch, FewRowsEpilogue);                 \
  template cudaError_t launch_linear_few_rows_norm<T>(const T*, const T*, T*, const T*, float, const T*, void*,    \
                                                      bool, int64_t, int64_t, int64_t, cudaStream_t, bool,         \
                                                      L2Prefetch, FewRowsEpilogue);
TESSERA_INSTANTIATE_LINEAR(float)
TESSERA_INSTANTIATE_LINEAR(__nv_bfloat16)
#undef TESSERA_INSTANTIATE_LINEAR

}  // namespace tessera::kernels::cuda
