// Which token ids prompts are built from: the server's whole vocabulary, or a tokenizer's non-special ids.
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/model/random_checkpoint.hpp"
#include "core/tokenizer/tokenizer.hpp"
#include "tools/bench/bench_run.hpp"

namespace tessera::bench {
namespace {

namespace fs = std::filesystem;

TEST(BenchPromptVocabulary, EveryIdOfTheServerByDefault) {
  bus::InfoReply info;
  info.vocab_size = 300;
  const std::vector<int32_t> ids = prompt_vocabulary(BenchOptions{}, info);
  ASSERT_EQ(ids.size(), 300u);
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(ids.back(), 299);
  info.vocab_size = 0;
  EXPECT_THROW(prompt_vocabulary(BenchOptions{}, info), Error);
}

TEST(BenchPromptVocabulary, ATokenizersSpecialTokensAreLeftOut) {
  const fs::path dir = fs::temp_directory_path() / ("tessera_bench_vocab_" + std::to_string(getpid()));
  RandomCheckpointOptions options;
  options.config = model_preset("tiny");  // BOS 510 and EOS 511 are the synthesized tokenizer's specials
  options.dtype = DType::F32;
  write_random_checkpoint(dir, options);
  BenchOptions bench;
  bench.tokenizer_dir = dir.string();
  bus::InfoReply info;
  info.vocab_size = 512;
  const std::vector<int32_t> ids = prompt_vocabulary(bench, info);
  EXPECT_TRUE(std::find(ids.begin(), ids.end(), 510) == ids.end());
  EXPECT_TRUE(std::find(ids.begin(), ids.end(), 511) == ids.end());
  EXPECT_TRUE(std::find(ids.begin(), ids.end(), 100) != ids.end());
  const Tokenizer tokenizer = *Tokenizer::load_dir(dir);
  for (int32_t id : ids) EXPECT_FALSE(tokenizer.is_special(id)) << id;
  info.vocab_size = 50;  // a server with a smaller vocabulary bounds the ids
  EXPECT_EQ(prompt_vocabulary(bench, info).back(), 49);
  bench.tokenizer_dir = (dir / "nothing").string();
  EXPECT_THROW(prompt_vocabulary(bench, info), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tessera::bench
