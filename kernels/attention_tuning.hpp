#pragma once
// Launch-shape choices of the BF16 tensor-core attention kernels that change speed, never results beyond FP32
// summation order, and the per-device rule for one of them. Plain C++ (no CUDA): the rules are unit-tested on the
// CPU; launch_paged_attention (paged_attention.hpp) takes an AttentionTuning.
//
// Decode, grids many waves deep (large decode batches): the thread-block shape. Decode attention streams the KV
// cache, and each block alternates between waiting for its tiles and a short burst of math. An SM keeps the memory
// system busy only while enough independent pipelines are in flight. At 256 sequences x 1,500 tokens (Llama-3.1-8B
// attention; bench/results session 4, runs 17-19, same binaries):
//   - 4 warps x 2 stages x 3 blocks per SM: H100 2.77-2.80 TB/s, H200 3.25 TB/s;
//   - 2 warps x 2 stages x 6 blocks per SM: H100 2.59 TB/s (-7 %), H200 3.48-3.49 TB/s (+7 %).
// The H200 moves about 37 GB/s of DRAM bandwidth per SM, the H100 about 25: the card with more bandwidth per SM needs
// more, smaller pipelines per SM to cover it; on the H100 the smaller blocks only add per-block overhead.
//
// Prefill: blocks per SM of the tensor-core prefill kernel (4 warps, 52 KB of shared memory at head_dim 128). Its
// registers decide: 238 per thread allow 2 blocks (8 warps per SM); capped at 168 (no spills, ptxas) 3 blocks fit.
// Not yet measured on a GPU (session 5 had no device), hence 2 stays the default.
#include <cstdint>
#include <optional>
#include <string_view>

namespace tessera::kernels {

enum class LargeGridBlocks : uint8_t {
  kFourWarps,  // 4 warps (64-key tiles), 2 pipeline stages, 3 blocks per SM
  kTwoWarps,   // 2 warps (32-key tiles), 2 pipeline stages, 6 blocks per SM
  kAuto,       // by the device's peak DRAM bandwidth per SM (resolve_large_grid_blocks)
};

// Peak DRAM bandwidth per SM (bytes/s) from which kAuto takes kTwoWarps: between the H100 SXM's 25.4 GB/s
// (3.35 TB/s over 132 SMs) and the H200's 37 GB/s (4.9 TB/s over 132 SMs).
inline constexpr double kTwoWarpMinDramBytesPerSmPerS = 30e9;

// Peak DRAM bandwidth in bytes/s from the CUDA device attributes cudaDevAttrMemoryClockRate (kHz) and
// cudaDevAttrGlobalMemoryBusWidth (bits); double data rate. 0 when either is unknown (<= 0).
constexpr double peak_dram_bytes_per_s(int memory_clock_khz, int bus_width_bits) {
  if (memory_clock_khz <= 0 || bus_width_bits <= 0) return 0.0;
  return 2.0 * memory_clock_khz * 1e3 * (bus_width_bits / 8.0);
}

// The shape to launch: `requested` unless it is kAuto, which takes kTwoWarps on devices of at least
// kTwoWarpMinDramBytesPerSmPerS per SM and kFourWarps otherwise (also when the attributes are unknown).
constexpr LargeGridBlocks resolve_large_grid_blocks(LargeGridBlocks requested, double dram_bytes_per_s,
                                                    int sm_count) {
  if (requested != LargeGridBlocks::kAuto) return requested;
  if (dram_bytes_per_s <= 0.0 || sm_count <= 0) return LargeGridBlocks::kFourWarps;
  return dram_bytes_per_s / sm_count >= kTwoWarpMinDramBytesPerSmPerS ? LargeGridBlocks::kTwoWarps
                                                                       : LargeGridBlocks::kFourWarps;
}

// The knob's spelling: "4", "2" or "auto".
constexpr const char* to_string(LargeGridBlocks blocks) {
  switch (blocks) {
    case LargeGridBlocks::kFourWarps: return "4";
    case LargeGridBlocks::kTwoWarps: return "2";
    case LargeGridBlocks::kAuto: return "auto";
  }
  return "?";
}

// The inverse of to_string (the executor's TESSERA_DECODE_LARGE_GRID knob); nullopt for any other text.
constexpr std::optional<LargeGridBlocks> parse_large_grid_blocks(std::string_view text) {
  for (LargeGridBlocks blocks : {LargeGridBlocks::kFourWarps, LargeGridBlocks::kTwoWarps, LargeGridBlocks::kAuto})
    if (text == to_string(blocks)) return blocks;
  return std::nullopt;
}

// Every launch-shape choice of launch_paged_attention; the defaults are the measured ones.
struct AttentionTuning {
  LargeGridBlocks large_grid_blocks = LargeGridBlocks::kFourWarps;
  int prefill_blocks_per_sm = 2;  // 2 or 3 (kPrefillBlocksPerSmChoices); anything else is rejected by the launcher
};

inline constexpr int kPrefillBlocksPerSmChoices[] = {2, 3};

constexpr bool valid_prefill_blocks_per_sm(int blocks) {
  for (int choice : kPrefillBlocksPerSmChoices)
    if (blocks == choice) return true;
  return false;
}

// "2" or "3" (the executor's TESSERA_PREFILL_BLOCKS_PER_SM knob); nullopt for any other text.
constexpr std::optional<int> parse_prefill_blocks_per_sm(std::string_view text) {
  for (int choice : kPrefillBlocksPerSmChoices)
    if (text.size() == 1 && text[0] == static_cast<char>('0' + choice)) return choice;
  return std::nullopt;
}

}  // namespace tessera::kernels
