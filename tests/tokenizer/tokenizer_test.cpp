#include <gtest/gtest.h>
#include "core/tokenizer/tokenizer.hpp"
TEST(Tok, Smoke) { auto t = tessera::Tokenizer::load(TESSERA_FETCHED_DATA_DIR "/llama3/tokenizer.json", {}); EXPECT_EQ(t.encode("Hello world", false), (std::vector<int32_t>{9906, 1917})); }
