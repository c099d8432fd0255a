// Sampling on the GPU. Greedy rows: their argmax is spread over many blocks (sampling_greedy.cuh: kernel 1 writes
// per-slice partials to the workspace, this file's kernel reduces them). Other rows: one block per logits row, passes
// over the row (all of them read it from global memory; a 128k-vocab row is 500 KB and stays in L2 between passes):
//   1. max / argmax (lowest id on ties) / garbage check / count of finite logits, fused with the first top-k
//      histogram.
//   2. top-k: radix selection of the k-th largest logit over the 32-bit order key of the float (digits of 11, 11 and
//      10 bits, counting histograms in shared memory); ties at the k-th value keep the lowest ids (a tie pass).
//   3. top-p: total fixed-point mass of the top-k set (fused with the first mass histogram), then the same radix
//      descent over mass histograms for the boundary logit, and a tie pass for equal logits at the boundary.
//   4. draw: per-tile sums of the kept weights, a block scan, and one warp walking the tile that holds the target.
// Weights are fixed-point integers (kSamplingWeightBits), so every sum is exact and the result does not depend on the
// order in which threads add: the same (seed, offset) and logits always give the same token.
// Cost of a sampled row: top-k 3-4 passes; top-p 4 more; draw 1. A 128k row is read by one SM (a few us a
// pass from L2), so one lone row costs several to tens of microseconds; many rows run side by side. Every pass keeps
// several loads in flight per thread (pass 1, whose results do not depend on the visiting order, reads 16-byte
// vectors when the row is aligned; the others read their tiles four values per lane at a time). Known slack for
// later: splitting a sampled row over several blocks (as the greedy path does), warp-aggregating the 64-bit mass
// atomics, compacting candidates into shared memory after the first digit. The tie passes (equal logits straddling
// the top-k / top-p boundary) scan in id order with two barriers per 1024 ids and only run when such a tie exists.
#include <climits>

#include "kernels/cuda_common.cuh"
#include "kernels/sampling.hpp"
#include "kernels/sampling_greedy.cuh"

namespace tessera::kernels::cuda {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxBins = 2048;  // 11-bit digits
constexpr int kNoCut = INT_MAX;  // "every tied id is kept"

using u64 = unsigned long long;

struct BinChoice {
  int bin;
  u64 above;      // total of the bins above `bin` plus what lay above the digit's prefix
  u64 bin_value;  // hist[bin]
};

struct Shared {
  uint32_t count_hist[kMaxBins];
  u64 mass_hist[kMaxBins];
  u64 tile_sum[kThreads];
  u64 warp_u64[kWarps];
  float warp_max[kWarps];
  int warp_arg[kWarps];
  uint32_t warp_count[kWarps];
  BinChoice choice;
  int found_id;
  int pick_tile;
  u64 pick_base;
};

// Monotone map float -> uint32 (larger float, larger key). -0 is folded into +0: the CPU ranking treats them as equal.
__device__ __forceinline__ uint32_t order_key(float x) {
  x = (x == 0.0f) ? 0.0f : x;
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_to_float(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// Radix digits of the key, most significant first: bits [31, 21), [21, 10), [10, 0).
__device__ __forceinline__ int digit_shift(int level) { return level == 0 ? 21 : (level == 1 ? 10 : 0); }
__device__ __forceinline__ int digit_bits(int level) { return level == 2 ? 10 : 11; }

__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ u64 warp_inclusive_scan_u64(u64 v, int lane) {
  for (int offset = 1; offset < 32; offset <<= 1) {
    const u64 other = __shfl_up_sync(0xffffffffu, v, offset);
    if (lane >= offset) v += other;
  }
  return v;
}

// Sum over the block; every thread gets the total.
__device__ u64 block_sum_u64(u64 v, Shared& sh) {
  v = warp_sum_u64(v);
  __syncthreads();  // the scratch may still be read by a previous call
  if ((threadIdx.x & 31) == 0) sh.warp_u64[threadIdx.x >> 5] = v;
  __syncthreads();
  u64 total = 0;
  for (int w = 0; w < kWarps; ++w) total += sh.warp_u64[w];
  return total;
}

// Exclusive prefix sum over the block in thread order; `total` receives the sum of all values.
__device__ u64 block_exclusive_scan_u64(u64 v, Shared& sh, u64& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const u64 inclusive = warp_inclusive_scan_u64(v, lane);
  __syncthreads();
  if (lane == 31) sh.warp_u64[warp] = inclusive;
  __syncthreads();
  u64 before = 0;
  total = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += sh.warp_u64[w];
    total += sh.warp_u64[w];
  }
  return before + inclusive - v;
}

// Counting histogram add, aggregated over the lanes of a warp that hit the same bin (logits cluster in few
// exponent bins, so plain atomics would serialize). All 32 lanes must call it together; bin < 0 adds nothing.
__device__ __forceinline__ void add_count(uint32_t* hist, int bin) {
  const unsigned peers = __match_any_sync(0xffffffffu, bin);
  if (bin >= 0 && static_cast<int>(threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
}

// Run by one whole warp: the highest bin d with above + sum(hist[b] for b >= d) >= target, written to `out`.
// The callers guarantee the target is reachable; if rounding ever made it not, bin 0 (keep everything) is chosen.
template <class H>
__device__ void find_crossing_bin(const H* hist, int num_bins, u64 above, u64 target, BinChoice* out) {
  const int lane = threadIdx.x & 31;
  const int per_lane = num_bins / 32;
  const int hi = num_bins - lane * per_lane;  // lane 0 owns the highest bins
  const int lo = hi - per_lane;
  u64 own = 0;
  // Start each lane at a different offset: lanes' ranges are num_bins / 32 apart, i.e. in the same bank.
  for (int i = 0; i < per_lane; ++i) own += hist[lo + (i + lane) % per_lane];
  const u64 inclusive = warp_inclusive_scan_u64(own, lane);
  const unsigned reached = __ballot_sync(0xffffffffu, above + inclusive >= target);
  const int first = reached ? __ffs(reached) - 1 : 31;
  if (lane == first) {
    u64 cum = above + inclusive - own;  // everything above this lane's bins
    int bin = -1;
    for (int b = hi - 1; b >= lo; --b) {
      if (cum + hist[b] >= target) {
        bin = b;
        break;
      }
      cum += hist[b];
    }
    if (bin < 0) {  // not reached (only lane 31 gets here, owning bin 0)
      bin = lo;
      cum -= hist[lo];
    }
    out->bin = bin;
    out->above = cum;
    out->bin_value = hist[bin];
  }
}

// Which tokens survive, and their fixed-point weights.
struct KeptSet {
  float max_logit;
  float temperature;
  bool top_k_on = false;
  uint32_t k_key = 0;  // keep key > k_key, or key == k_key with id <= k_cut
  int k_cut = kNoCut;
  bool top_p_on = false;
  uint32_t p_key = 0;
  int p_cut = kNoCut;

  __device__ bool in_top_k(uint32_t key, int id) const {
    return !top_k_on || key > k_key || (key == k_key && id <= k_cut);
  }
  __device__ bool in_top_p(uint32_t key, int id) const {
    return !top_p_on || key > p_key || (key == p_key && id <= p_cut);
  }
  // Same float operations as the CPU Sampler: exp((logit - max) / temperature), in (0, 1], max token exactly 1.
  __device__ u64 weight(float x) const {
    const float w = expf((x - max_logit) / temperature);
    return __float2ull_rn(w * static_cast<float>(1ull << kSamplingWeightBits));
  }
};

__device__ __forceinline__ bool is_finite_logit(float x) { return x > -INFINITY && x < INFINITY; }

// Iterates a row tile by tile (warp w takes tiles w, w + 32, ...; a tile is tile_len consecutive ids, a multiple of
// 32), so every lane of a warp runs the same number of steps (warp collectives are allowed in f). f(id, valid, x).
// A lane visits ids base + lane, base + lane + 32, ... in order; their loads are issued four at a time.
template <class F>
__device__ __forceinline__ void for_each_tiled(const float* row, int vocab, int tile_len, int num_tiles, F&& f) {
  constexpr int kInFlight = 4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int tile = warp; tile < num_tiles; tile += kWarps) {
    const int base = tile * tile_len;
    for (int j0 = 0; j0 < tile_len; j0 += kInFlight * 32) {
      float x[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int j = j0 + u * 32 + lane;
        x[u] = j < tile_len && base + j < vocab ? row[base + j] : -INFINITY;
      }
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        if (j0 + u * 32 >= tile_len) break;  // warp-uniform
        const int id = base + j0 + u * 32 + lane;
        f(id, id < vocab, x[u]);
      }
    }
  }
}

// Visits every id of the row once, in an order that only the order-independent pass 1 may use: thread t takes the
// 16-byte vectors t, t + kThreads, ... (ids in increasing order within the thread), kBatch vectors in flight; every
// thread runs the same number of steps (warp collectives are allowed in f). Needs vocab % 4 == 0 and a 16-byte
// aligned row; otherwise falls back to for_each_tiled. f(id, valid, x).
template <class F>
__device__ __forceinline__ void for_each_any_order(const float* row, int vocab, int tile_len, int num_tiles, F&& f) {
  if (vocab % 4 != 0 || reinterpret_cast<uintptr_t>(row) % 16 != 0) {
    for_each_tiled(row, vocab, tile_len, num_tiles, f);
    return;
  }
  constexpr int kBatch = 4;
  const float4* vectors = reinterpret_cast<const float4*>(row);
  const int num_vectors = vocab / 4;
  const int steps = (num_vectors + kThreads - 1) / kThreads;  // per thread, block-uniform
  for (int k0 = 0; k0 < steps; k0 += kBatch) {
    float4 v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int c = (k0 + u) * kThreads + static_cast<int>(threadIdx.x);
      v[u] = k0 + u < steps && c < num_vectors ? __ldg(vectors + c)
                                               : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      if (k0 + u >= steps) break;  // block-uniform
      const int c = (k0 + u) * kThreads + static_cast<int>(threadIdx.x);
      const bool valid = c < num_vectors;
      f(4 * c, valid, v[u].x);
      f(4 * c + 1, valid, v[u].y);
      f(4 * c + 2, valid, v[u].z);
      f(4 * c + 3, valid, v[u].w);
    }
  }
}

// The id of the n-th (1-based) token in id order for which pred(id, x) holds; n must be reachable.
template <class P>
__device__ int find_nth_id(const float* row, int vocab, u64 n, Shared& sh, P&& pred) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) sh.found_id = vocab - 1;
  u64 seen = 0;
  for (int base = 0; base < vocab; base += kThreads) {
    const int id = base + static_cast<int>(threadIdx.x);
    const bool flag = id < vocab && pred(id, row[id]);
    const unsigned ballot = __ballot_sync(0xffffffffu, flag);
    __syncthreads();  // previous chunk's counts have been read
    if (lane == 0) sh.warp_count[warp] = __popc(ballot);
    __syncthreads();
    u64 before = 0, chunk = 0;
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) before += sh.warp_count[w];
      chunk += sh.warp_count[w];
    }
    const u64 rank = seen + before + __popc(ballot & ((1u << lane) - 1u)) + 1;
    if (flag && rank == n) sh.found_id = id;
    seen += chunk;
    if (seen >= n) break;  // uniform: every thread computed the same `seen`
  }
  __syncthreads();
  return sh.found_id;
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* __restrict__ logits, int vocab, int tile_len, int num_tiles,
                  const SamplingRow* __restrict__ rows, const GreedyPartial* __restrict__ greedy_partials,
                  int num_slices, int32_t* __restrict__ out_ids) {
  __shared__ Shared sh;
  pdl_launch_dependents();
  pdl_wait();
  const int64_t r = blockIdx.x;
  // Greedy row (temperature <= 0 or NaN; block-uniform): greedy_partials_kernel's blocks computed the argmax of its
  // slices; reduce their partials. (Tested before the row's other parameters are loaded: keeps the sampled path free
  // of register spills.)
  if (!(rows[r].temperature > 0.0f)) {
    if (threadIdx.x < 32) {
      const int id = greedy_reduce_partials(greedy_partials + r * num_slices, num_slices);
      if (threadIdx.x == 0) out_ids[r] = id;
    }
    return;
  }
  const float* row = logits + r * vocab;
  const SamplingRow params = rows[r];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const bool want_top_k = params.top_k > 0 && params.top_k < vocab;

  // Pass 1: argmax, garbage, finite count (+ the first top-k histogram).
  if (want_top_k)
    for (int b = tid; b < kMaxBins; b += kThreads) sh.count_hist[b] = 0;
  __syncthreads();
  float best = -INFINITY;
  int best_id = INT_MAX;
  bool bad = false;
  u64 finite = 0;
  for_each_any_order(row, vocab, tile_len, num_tiles, [&](int id, bool valid, float x) {
    bad |= valid && (x != x || x == INFINITY);
    if (x > best) {  // each thread sees its ids in increasing order: the first max is the lowest id
      best = x;
      best_id = id;
    }
    const bool fin = valid && is_finite_logit(x);
    finite += fin;
    if (want_top_k) add_count(sh.count_hist, fin ? static_cast<int>(order_key(x) >> 21) : -1);
  });
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_id = __shfl_xor_sync(0xffffffffu, best_id, offset);
    if (other > best || (other == best && other_id < best_id)) {
      best = other;
      best_id = other_id;
    }
  }
  if (lane == 0) {
    sh.warp_max[warp] = best;
    sh.warp_arg[warp] = best_id;
  }
  const bool any_bad = __syncthreads_or(bad);
  for (int w = 0; w < kWarps; ++w) {
    if (sh.warp_max[w] > best || (sh.warp_max[w] == best && sh.warp_arg[w] < best_id)) {
      best = sh.warp_max[w];
      best_id = sh.warp_arg[w];
    }
  }
  const u64 num_finite = block_sum_u64(finite, sh);
  if (any_bad || num_finite == 0) {
    if (tid == 0) out_ids[r] = -1;
    return;
  }

  KeptSet kept;
  kept.max_logit = best;
  kept.temperature = params.temperature;

  // Top-k: the k-th largest key, by count histograms over its digits.
  kept.top_k_on = want_top_k && static_cast<u64>(params.top_k) < num_finite;
  if (kept.top_k_on) {
    const u64 k = static_cast<u64>(params.top_k);
    uint32_t prefix = 0, mask = 0;
    u64 above = 0, in_bin = 0;
    bool whole_bin = false;
    for (int level = 0; level < 3 && !whole_bin; ++level) {
      const int shift = digit_shift(level), num_bins = 1 << digit_bits(level);
      if (level > 0) {
        for (int b = tid; b < num_bins; b += kThreads) sh.count_hist[b] = 0;
        __syncthreads();
        for_each_tiled(row, vocab, tile_len, num_tiles, [&](int, bool valid, float x) {
          const uint32_t key = order_key(x);
          const bool match = valid && is_finite_logit(x) && (key & mask) == prefix;
          add_count(sh.count_hist, match ? static_cast<int>((key >> shift) & (num_bins - 1)) : -1);
        });
      }
      __syncthreads();
      if (warp == 0) find_crossing_bin(sh.count_hist, num_bins, above, k, &sh.choice);
      __syncthreads();
      const BinChoice choice = sh.choice;
      above = choice.above;
      in_bin = choice.bin_value;
      prefix |= static_cast<uint32_t>(choice.bin) << shift;
      mask |= static_cast<uint32_t>(num_bins - 1) << shift;
      whole_bin = (k - above == in_bin);  // the whole bin is kept: keep key >= its lowest key
    }
    kept.k_key = prefix;
    if (!whole_bin) {  // full key known; k - above < in_bin tokens tie at it: keep the lowest ids
      const uint32_t k_key = prefix;
      kept.k_cut = find_nth_id(row, vocab, k - above, sh, [&](int, float x) {
        return is_finite_logit(x) && order_key(x) == k_key;
      });
    }
  }

  // Top-p: the smallest rank-order prefix of the top-k set whose mass reaches the threshold.
  kept.top_p_on = params.top_p < 1.0f;
  if (kept.top_p_on) {
    for (int b = tid; b < kMaxBins; b += kThreads) sh.mass_hist[b] = 0;
    __syncthreads();
    u64 own_mass = 0;
    for_each_tiled(row, vocab, tile_len, num_tiles, [&](int id, bool valid, float x) {
      const uint32_t key = order_key(x);
      if (!valid || !is_finite_logit(x) || !kept.in_top_k(key, id)) return;
      const u64 w = kept.weight(x);
      own_mass += w;
      if (w > 0) atomicAdd(&sh.mass_hist[key >> 21], w);
    });
    const u64 total = block_sum_u64(own_mass, sh);  // also orders the histogram atomics before the search
    const double threshold = static_cast<double>(params.top_p) * static_cast<double>(total) *
                             (1.0 - 1e-6);  // Sampler::kTopPRelativeSlack
    u64 target = static_cast<u64>(ceil(threshold));
    target = target < 1 ? 1 : (target > total ? total : target);

    uint32_t prefix = 0, mask = 0;
    u64 above = 0, in_bin = 0;
    for (int level = 0; level < 3; ++level) {
      const int shift = digit_shift(level), num_bins = 1 << digit_bits(level);
      if (level > 0) {
        for (int b = tid; b < num_bins; b += kThreads) sh.mass_hist[b] = 0;
        __syncthreads();
        for_each_tiled(row, vocab, tile_len, num_tiles, [&](int id, bool valid, float x) {
          const uint32_t key = order_key(x);
          if (!valid || !is_finite_logit(x) || (key & mask) != prefix || !kept.in_top_k(key, id)) return;
          const u64 w = kept.weight(x);
          if (w > 0) atomicAdd(&sh.mass_hist[(key >> shift) & (num_bins - 1)], w);
        });
      }
      __syncthreads();
      if (warp == 0) find_crossing_bin(sh.mass_hist, num_bins, above, target, &sh.choice);
      __syncthreads();
      const BinChoice choice = sh.choice;
      above = choice.above;
      in_bin = choice.bin_value;
      prefix |= static_cast<uint32_t>(choice.bin) << shift;
      mask |= static_cast<uint32_t>(num_bins - 1) << shift;
    }
    kept.p_key = prefix;
    // Tokens at the boundary logit all weigh the same: take as many (lowest ids first) as reach the target.
    const u64 w = kept.weight(key_to_float(prefix));
    if (w > 0 && target > above) {
      const u64 tied = in_bin / w;
      const u64 needed = (target - above + w - 1) / w;
      if (needed >= 1 && needed < tied) {
        const uint32_t p_key = prefix;
        kept.p_cut = find_nth_id(row, vocab, needed, sh, [&](int id, float x) {
          const uint32_t key = order_key(x);
          return is_finite_logit(x) && key == p_key && kept.in_top_k(key, id);
        });
      }
    }
  }

  // Draw: tile sums, scan, then one warp walks the tile holding the target.
  for (int tile = warp; tile < num_tiles; tile += kWarps) {
    u64 sum = 0;
    for (int j = lane; j < tile_len; j += 32) {
      const int id = tile * tile_len + j;
      if (id >= vocab) break;
      const float x = row[id];
      const uint32_t key = order_key(x);
      if (is_finite_logit(x) && kept.in_top_k(key, id) && kept.in_top_p(key, id)) sum += kept.weight(x);
    }
    sum = warp_sum_u64(sum);
    if (lane == 0) sh.tile_sum[tile] = sum;
  }
  if (tid == 0) sh.pick_tile = -1;
  __syncthreads();
  const u64 own_tile = tid < num_tiles ? sh.tile_sum[tid] : 0;
  u64 total = 0;
  const u64 before = block_exclusive_scan_u64(own_tile, sh, total);
  const u64 target = __umul64hi(sampling_random_bits(params.seed, params.offset), total);  // uniform in [0, total)
  if (own_tile > 0 && before <= target && target < before + own_tile) {
    sh.pick_tile = tid;
    sh.pick_base = before;
  }
  __syncthreads();
  if (warp != 0) return;
  const int tile = sh.pick_tile;
  if (tile < 0) {  // unreachable: the max token is always kept with weight 1
    if (lane == 0) out_ids[r] = best_id;
    return;
  }
  u64 cum = sh.pick_base;
  for (int j0 = 0; j0 < tile_len; j0 += 32) {
    const int id = tile * tile_len + j0 + lane;
    u64 w = 0;
    if (id < vocab) {
      const float x = row[id];
      const uint32_t key = order_key(x);
      if (is_finite_logit(x) && kept.in_top_k(key, id) && kept.in_top_p(key, id)) w = kept.weight(x);
    }
    const u64 inclusive = warp_inclusive_scan_u64(w, lane);
    const unsigned hit = __ballot_sync(0xffffffffu, target < cum + inclusive);
    if (hit) {
      if (lane == __ffs(hit) - 1) out_ids[r] = id;
      return;
    }
    cum += __shfl_sync(0xffffffffu, inclusive, 31);
  }
  if (lane == 0) out_ids[r] = best_id;  // unreachable (the tile's sum covers the target)
}

}  // namespace

size_t sampling_workspace_bytes(int num_rows, int vocab) {
  if (num_rows <= 0 || vocab < 1) return 0;
  return static_cast<size_t>(num_rows) * static_cast<size_t>(greedy_num_slices(vocab)) * sizeof(GreedyPartial);
}

cudaError_t launch_sample(const float* logits, int num_rows, int vocab, const SamplingRow* rows, int32_t* out_ids,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream, bool pdl) {
  if (num_rows < 0 || vocab < 1 || vocab > kSamplingMaxVocab) return cudaErrorInvalidValue;
  if (workspace_bytes < sampling_workspace_bytes(num_rows, vocab)) return cudaErrorInvalidValue;
  if (num_rows == 0) return cudaSuccess;
  if (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % alignof(GreedyPartial) != 0) {
    return cudaErrorInvalidValue;
  }
  auto* partials = static_cast<GreedyPartial*>(workspace);
  const cudaError_t partials_launched = launch_greedy_partials(logits, num_rows, vocab, rows, partials, stream, pdl);
  if (partials_launched != cudaSuccess) return partials_launched;
  // Tiles of the draw (and of every pass): at most kThreads of them, each a multiple of 32 ids long.
  const int tile_len = static_cast<int>(ceil_div(ceil_div(vocab, kThreads), 32)) * 32;
  const int num_tiles = static_cast<int>(ceil_div(vocab, tile_len));
  return launch_kernel(pdl, sample_kernel, static_cast<unsigned>(num_rows), kThreads, 0, stream, logits, vocab,
                       tile_len, num_tiles, rows, partials, greedy_num_slices(vocab), out_ids);
}

}  // namespace tessera::kernels::cuda
