#include "core/model/synthetic_tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "core/common/error.hpp"

namespace tessera {

const char* const kLlama3SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

constexpr const char* kBosToken = "<|begin_of_text|>";
constexpr const char* kEosToken = "<|end_of_text|>";
constexpr int kSpecialTokens = 2;

// Original training text: plain English with digits, punctuation, contractions and line breaks.
constexpr const char* kTrainingText = R"(The lighthouse keeper woke before the sun, as he had done for thirty years.
He climbed the stairs, counted the steps (there were 117 of them), and checked the lamp.
The sea was calm this morning; a few gulls circled the harbour and the boats were still tied up.
"It's going to be a quiet day," he said to the cat, who didn't care about the weather at all.
By nine o'clock the fishermen had gathered on the pier. They talked about the price of fuel,
the new school in the village, and the storm that was expected on Thursday or Friday.
Some of them thought the forecast was wrong again, while others were already moving their nets.

A small computer in the corner of the room recorded the wind speed every 10 minutes.
On Monday it measured 12 knots, on Tuesday 25 knots, and the keeper wrote each number into a notebook.
He liked numbers: they were honest, and they never changed their minds once they were written down.
In the afternoon he painted the railing, repaired a broken window and made a pot of strong tea.
Children from the village sometimes visited him to ask questions about ships, stars and the ocean.
"How far can the light be seen?" asked a girl named Anna. "About twenty miles on a clear night," he answered.
"And what happens when the fog comes?" "Then we use the horn, and everyone listens very carefully."

When the storm finally arrived, the waves were higher than the harbour wall.
Rain hammered the windows, the electricity failed twice, and the radio reported that two boats were missing.
The keeper started the generator, turned the lamp to full power and waited through the long night.
Just before dawn he saw a small red light moving slowly towards the shore. It was the first boat.
An hour later the second one followed, its engine coughing but still running.
The whole village came down to the water to welcome the crews home, and nobody forgot that morning.

Years later, when the lighthouse was replaced by an automatic beacon, people still told the story.
They remembered the man who counted the stairs, wrote down the wind, and kept the light burning.
Learning, working, waiting, watching: these are the things that make a place feel safe.
We're grateful for the people who do them quietly, without asking for thanks or attention.
)";

// GPT-2's printable-first ordering of the 256 bytes; the i-th byte in this order gets token id i.
std::vector<unsigned char> byte_order() {
  std::vector<unsigned char> order;
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  for (int b = 0; b < 256; ++b)
    if (printable(b)) order.push_back(static_cast<unsigned char>(b));
  for (int b = 0; b < 256; ++b)
    if (!printable(b)) order.push_back(static_cast<unsigned char>(b));
  return order;
}

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Splits `text` like HF's Split(Regex, Isolated): matches and the gaps between them are all pieces.
std::vector<std::string> llama3_pretokenize(const std::string& text) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> re(
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kLlama3SplitPattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                    &error_code, &error_offset, nullptr),
      &pcre2_code_free);
  if (!re) throw Error("internal error: cannot compile the Llama 3 split pattern");
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(re.get(), nullptr), &pcre2_match_data_free);

  std::vector<std::string> pieces;
  size_t offset = 0;
  while (offset < text.size()) {
    const int rc = pcre2_match(re.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), offset, 0,
                               match.get(), nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
    if (ov[0] > offset) pieces.push_back(text.substr(offset, ov[0] - offset));
    if (ov[1] == ov[0]) {  // an empty match cannot happen with this pattern; step over it defensively
      offset = ov[0] + 1;
      continue;
    }
    pieces.push_back(text.substr(ov[0], ov[1] - ov[0]));
    offset = ov[1];
  }
  if (offset < text.size()) pieces.push_back(text.substr(offset));
  return pieces;
}

struct BpeResult {
  std::vector<std::string> vocab;   // id -> token string (byte-level characters)
  std::vector<std::string> merges;  // "left right", in rank order
};

// Classic BPE training: repeatedly merge the most frequent adjacent pair (ties: lowest ids) until
// `target` vocab entries exist or no pair is left. Merges whose result already exists add no entry.
BpeResult train_bpe(int target) {
  const std::vector<unsigned char> order = byte_order();
  BpeResult r;
  std::vector<int> id_of_byte(256);
  for (size_t i = 0; i < order.size(); ++i) {
    id_of_byte[order[i]] = static_cast<int>(i);
    r.vocab.push_back(byte_level_char(order[i]));
  }
  std::map<std::string, int> id_of_token;
  for (size_t i = 0; i < r.vocab.size(); ++i) id_of_token[r.vocab[i]] = static_cast<int>(i);

  std::map<std::string, int> word_counts;
  for (const std::string& piece : llama3_pretokenize(kTrainingText)) ++word_counts[piece];
  std::vector<std::pair<std::vector<int>, int>> words;  // symbols, count
  for (const auto& [word, count] : word_counts) {
    std::vector<int> symbols;
    for (unsigned char c : word) symbols.push_back(id_of_byte[c]);
    words.emplace_back(std::move(symbols), count);
  }

  while (static_cast<int>(r.vocab.size()) < target) {
    std::map<std::pair<int, int>, long> pair_counts;
    for (const auto& [symbols, count] : words)
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pair_counts[{symbols[i], symbols[i + 1]}] += count;
    if (pair_counts.empty()) break;
    const auto best = std::max_element(pair_counts.begin(), pair_counts.end(), [](const auto& a, const auto& b) {
      return a.second < b.second || (a.second == b.second && a.first > b.first);
    });
    const auto [left, right] = best->first;
    const std::string merged = r.vocab[left] + r.vocab[right];
    auto [it, inserted] = id_of_token.emplace(merged, static_cast<int>(r.vocab.size()));
    if (inserted) r.vocab.push_back(merged);
    r.merges.push_back(r.vocab[left] + " " + r.vocab[right]);
    for (auto& [symbols, count] : words) {
      std::vector<int> next;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          next.push_back(it->second);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      symbols = std::move(next);
    }
  }
  return r;
}

nlohmann::ordered_json added_token(int id, const char* content) {
  return {{"id", id},           {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},    {"normalized", false}, {"special", true}};
}

}  // namespace

std::string byte_level_char(unsigned char byte) {
  // Printable bytes map to themselves; the other 68 bytes map to U+0100.. in increasing byte order.
  const std::vector<unsigned char> order = byte_order();
  const auto pos = std::find(order.begin(), order.end(), byte) - order.begin();
  constexpr int kPrintableCount = 188;
  return pos < kPrintableCount ? utf8(byte) : utf8(256 + static_cast<uint32_t>(pos - kPrintableCount));
}

int max_synthesized_vocab_size() {
  const BpeResult r = train_bpe(1 << 30);
  return static_cast<int>(r.vocab.size()) + kSpecialTokens;
}

SynthesizedTokenizer synthesize_byte_level_bpe(int vocab_size, int model_max_length) {
  const int model_vocab = vocab_size - kSpecialTokens;
  if (model_vocab < 256)
    throw Error("vocab_size " + std::to_string(vocab_size) + " is too small for a byte-level tokenizer (minimum 258)");
  const BpeResult bpe = train_bpe(model_vocab);
  if (static_cast<int>(bpe.vocab.size()) != model_vocab)
    throw Error("vocab_size " + std::to_string(vocab_size) + " exceeds what the built-in tokenizer text can fill (" +
                std::to_string(bpe.vocab.size() + kSpecialTokens) + "); pass a real tokenizer.json instead");

  SynthesizedTokenizer out;
  out.bos_token_id = model_vocab;
  out.eos_token_id = model_vocab + 1;
  out.merge_count = static_cast<int>(bpe.merges.size());

  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t i = 0; i < bpe.vocab.size(); ++i) vocab[bpe.vocab[i]] = i;
  using J = nlohmann::ordered_json;
  const J bos_piece = {{"SpecialToken", {{"id", kBosToken}, {"type_id", 0}}}};
  J& t = out.tokenizer;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = J::array({added_token(out.bos_token_id, kBosToken), added_token(out.eos_token_id, kEosToken)});
  t["normalizer"] = nullptr;
  t["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       J::array({{{"type", "Split"}, {"pattern", {{"Regex", kLlama3SplitPattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}};
  t["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", J::array({bos_piece, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", J::array({bos_piece,
                         {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                         {{"SpecialToken", {{"id", kBosToken}, {"type_id", 1}}}},
                         {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
      {"special_tokens", {{kBosToken, {{"id", kBosToken}, {"ids", {out.bos_token_id}}, {"tokens", {kBosToken}}}}}}};
  t["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", bpe.merges}};

  J& c = out.tokenizer_config;
  c["bos_token"] = kBosToken;
  c["eos_token"] = kEosToken;
  c["clean_up_tokenization_spaces"] = true;
  c["model_max_length"] = model_max_length;
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  c["added_tokens_decoder"] = {
      {std::to_string(out.bos_token_id), added_token(out.bos_token_id, kBosToken)},
      {std::to_string(out.eos_token_id), added_token(out.eos_token_id, kEosToken)}};
  for (auto& [id, token] : c["added_tokens_decoder"].items()) token.erase("id");
  return out;
}

}  // namespace tessera
