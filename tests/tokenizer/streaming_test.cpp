// StreamingDetokenizer: incremental output equals full decode, never ends inside a UTF-8 sequence.
#include <gtest/gtest.h>

#include <random>

#include "core/tokenizer/streaming_detokenizer.hpp"
#include "core/tokenizer/tokenizer.hpp"
#include "core/tokenizer/utf8.hpp"
#include "tests/tokenizer/test_util.hpp"

namespace tessera {
namespace {

using Ids = std::vector<int32_t>;

// Pushes every id, checking each chunk is valid UTF-8; returns all chunks concatenated with finish().
std::string stream_all(const Tokenizer& tok, const Ids& ids, bool skip_special, std::vector<std::string>* chunks = nullptr) {
  StreamingDetokenizer stream(tok, skip_special);
  std::string text;
  for (const int32_t id : ids) {
    const std::string chunk = stream.push(id);
    EXPECT_TRUE(utf8::is_valid(chunk));
    if (chunks) chunks->push_back(chunk);
    text += chunk;
  }
  text += stream.finish();
  return text;
}

// Random sequences mixing ordinary ids, special ids and single-byte ids (which split characters).
std::vector<Ids> random_sequences(const Tokenizer& tok, const Ids& byte_like, const Ids& special, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Ids> sequences;
  for (int n = 0; n < 300; ++n) {
    Ids ids(rng() % 16);
    for (int32_t& id : ids) {
      const uint32_t r = rng() % 10;
      if (r < 4) id = byte_like[rng() % byte_like.size()];
      else if (r < 5) id = special[rng() % special.size()];
      else id = static_cast<int32_t>(rng() % tok.vocab_size());
    }
    sequences.push_back(std::move(ids));
  }
  return sequences;
}

void check_property(const Tokenizer& tok, const std::vector<Ids>& sequences) {
  for (const Ids& ids : sequences) {
    for (const bool skip : {false, true}) {
      // decode() is a separate batch implementation (token strings -> decoder chain, as in HF).
      EXPECT_EQ(stream_all(tok, ids, skip), tok.decode(ids, skip));
    }
  }
}

TEST(StreamingTest, Llama3PropertyOnRandomSequences) {
  const Tokenizer tok = *Tokenizer::load_dir(test::kLlama3Dir);
  Ids byte_like(256);  // ids 0..255 are the single-byte tokens of the byte-level alphabet
  for (int i = 0; i < 256; ++i) byte_like[i] = i;
  check_property(tok, random_sequences(tok, byte_like, {128000, 128001, 128009}, 1));
}

TEST(StreamingTest, Llama2PropertyOnRandomSequences) {
  const Tokenizer tok = *Tokenizer::load_dir(test::kLlama2Dir);
  Ids byte_like;  // <0x00>..<0xFF>
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_like.push_back(*tok.token_to_id(name));
  }
  check_property(tok, random_sequences(tok, byte_like, {0, 1, 2}, 2));
}

TEST(StreamingTest, EncodedTextStreamsBackExactly) {
  for (const auto& dir : {test::kLlama3Dir, test::kLlama2Dir}) {
    const Tokenizer tok = *Tokenizer::load_dir(dir);
    for (const std::string text : {"Hello world", "日本語 😀🤖 émoji", " two  spaces\n\nend", "🤖🤖🤖"}) {
      const Ids ids = tok.encode(text, true);
      EXPECT_EQ(stream_all(tok, ids, true), tok.decode(ids, true)) << dir << ": " << text;
    }
  }
}

TEST(StreamingTest, Llama3HoldsBackSplitCharacters) {
  const Tokenizer tok = *Tokenizer::load_dir(test::kLlama3Dir);
  // One token per byte of U+1F600 (F0 9F 98 80); token_bytes tells which single-byte token is which.
  const std::string emoji = "\xF0\x9F\x98\x80";
  Ids ids;
  for (const char c : emoji) {
    for (int32_t id = 0; id < 256; ++id) {
      if (tok.token_bytes(id) == std::string(1, c)) ids.push_back(id);
    }
  }
  ASSERT_EQ(ids.size(), 4u);
  std::vector<std::string> chunks;
  EXPECT_EQ(stream_all(tok, ids, false, &chunks), emoji);
  EXPECT_EQ(chunks, (std::vector<std::string>{"", "", "", emoji}));
  // A truncated character is flushed as U+FFFD by finish().
  StreamingDetokenizer stream(tok, false);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.finish(), "\uFFFD");
}

TEST(StreamingTest, Llama2ByteFallbackRunAndLeadingSpace) {
  const Tokenizer tok = *Tokenizer::load_dir(test::kLlama2Dir);
  const Ids ids = tok.encode("🤖 ok", false);  // ▁ <0xF0> <0x9F> <0xA4> <0x96> ▁ok
  std::vector<std::string> chunks;
  EXPECT_EQ(stream_all(tok, ids, false, &chunks), "🤖 ok");
  ASSERT_EQ(chunks.size(), ids.size());
  EXPECT_EQ(chunks.front(), "");  // the leading "▁" is the space Strip removes
  EXPECT_EQ(chunks.back(), "🤖 ok");  // the byte run is released when a non-byte token ends it
  std::vector<std::string> skip_chunks;
  const Ids with_bos = tok.encode("Hello world", true);
  EXPECT_EQ(stream_all(tok, with_bos, true, &skip_chunks), "Hello world");
  EXPECT_EQ(skip_chunks, (std::vector<std::string>{"", "Hello", " world"}));
}

}  // namespace
}  // namespace tessera
