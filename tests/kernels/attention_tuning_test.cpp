// The attention kernels' launch-shape choices (kernels/attention_tuning.hpp): the per-device rule for decode
// attention's large-grid block shape, the knob's parsing, and the prefill occupancy choices. Device figures are the
// vendors' peak memory clocks and bus widths, as cudaDeviceGetAttribute reports them.
#include "kernels/attention_tuning.hpp"

#include <gtest/gtest.h>

namespace tessera::kernels {
namespace {

constexpr int kHopperSms = 132;

TEST(DecodeBlockShape, PeakBandwidthFromClockAndBusWidth) {
  // H100 SXM: HBM3 at 2,619 MHz on a 5,120-bit bus, double data rate: 3.35 TB/s.
  EXPECT_NEAR(peak_dram_bytes_per_s(2'619'000, 5120), 3.352e12, 1e9);
  EXPECT_EQ(peak_dram_bytes_per_s(0, 5120), 0.0);
  EXPECT_EQ(peak_dram_bytes_per_s(2'619'000, -1), 0.0);
}

TEST(DecodeBlockShape, AutoPicksTwoWarpsOnlyWithMuchBandwidthPerSm) {
  // H100 SXM, 25 GB/s per SM: the 4-warp shape (2.78 vs 2.59 TB/s at 256 x 1500, session 4 run 19).
  EXPECT_EQ(resolve_large_grid_blocks(LargeGridBlocks::kAuto, peak_dram_bytes_per_s(2'619'000, 5120), kHopperSms),
            LargeGridBlocks::kFourWarps);
  // H200, HBM3e 4.8 TB/s on a 6,144-bit bus (3,125 MHz), 36 GB/s per SM: the 2-warp shape (3.48 vs 3.25 TB/s, runs
  // 17-18).
  EXPECT_EQ(resolve_large_grid_blocks(LargeGridBlocks::kAuto, peak_dram_bytes_per_s(3'125'000, 6144), kHopperSms),
            LargeGridBlocks::kTwoWarps);
  // H100 PCIe: 2.0 TB/s over 114 SMs.
  EXPECT_EQ(resolve_large_grid_blocks(LargeGridBlocks::kAuto, peak_dram_bytes_per_s(1'593'000, 5120), 114),
            LargeGridBlocks::kFourWarps);
  // The threshold itself, and unknown attributes (the measured default).
  EXPECT_EQ(resolve_large_grid_blocks(LargeGridBlocks::kAuto, kTwoWarpMinDramBytesPerSmPerS * 100, 100),
            LargeGridBlocks::kTwoWarps);
  EXPECT_EQ(resolve_large_grid_blocks(LargeGridBlocks::kAuto, 0.0, kHopperSms), LargeGridBlocks::kFourWarps);
  EXPECT_EQ(resolve_large_grid_blocks(LargeGridBlocks::kAuto, 5e12, 0), LargeGridBlocks::kFourWarps);
}

TEST(DecodeBlockShape, ExplicitChoiceWinsOverTheDevice) {
  const double h200 = peak_dram_bytes_per_s(3'125'000, 6144);
  EXPECT_EQ(resolve_large_grid_blocks(LargeGridBlocks::kFourWarps, h200, kHopperSms), LargeGridBlocks::kFourWarps);
  EXPECT_EQ(resolve_large_grid_blocks(LargeGridBlocks::kTwoWarps, 1e12, kHopperSms), LargeGridBlocks::kTwoWarps);
}

TEST(DecodeBlockShape, ParsesTheKnobAndRejectsAnythingElse) {
  EXPECT_EQ(parse_large_grid_blocks("4"), LargeGridBlocks::kFourWarps);
  EXPECT_EQ(parse_large_grid_blocks("2"), LargeGridBlocks::kTwoWarps);
  EXPECT_EQ(parse_large_grid_blocks("auto"), LargeGridBlocks::kAuto);
  for (const char* bad : {"", "8", "Auto", "4 ", "two"}) EXPECT_FALSE(parse_large_grid_blocks(bad).has_value()) << bad;
  for (LargeGridBlocks blocks : {LargeGridBlocks::kFourWarps, LargeGridBlocks::kTwoWarps, LargeGridBlocks::kAuto})
    EXPECT_EQ(parse_large_grid_blocks(to_string(blocks)), blocks);
}

TEST(AttentionTuning, DefaultsAreTheMeasuredShapesAndPrefillTakesTwoOrThreeBlocks) {
  const AttentionTuning tuning;
  EXPECT_EQ(tuning.large_grid_blocks, LargeGridBlocks::kFourWarps);
  EXPECT_EQ(tuning.prefill_blocks_per_sm, 2);
  EXPECT_TRUE(valid_prefill_blocks_per_sm(2));
  EXPECT_TRUE(valid_prefill_blocks_per_sm(3));
  for (int bad : {-1, 0, 1, 4, 8}) EXPECT_FALSE(valid_prefill_blocks_per_sm(bad)) << bad;
  EXPECT_EQ(parse_prefill_blocks_per_sm("2"), 2);
  EXPECT_EQ(parse_prefill_blocks_per_sm("3"), 3);
  for (const char* bad : {"", "1", "4", "03", "3 ", "three"}) EXPECT_FALSE(parse_prefill_blocks_per_sm(bad).has_value()) << bad;
}

}  // namespace
}  // namespace tessera::kernels
