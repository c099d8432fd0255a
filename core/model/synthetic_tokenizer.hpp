#pragma once
// A small, self-made byte-level BPE tokenizer in Hugging Face `tokenizer.json` format, for generated test
// checkpoints that come without a real tokenizer.
//
// Layout (vocab_size ids in total):
//   ids 0..255                 the 256 byte tokens, as GPT-2's byte->unicode characters, in GPT-2's order
//                              (id 0 = "!", as in Llama 3)
//   ids 256..vocab_size-3      merges learned by a BPE trainer on a built-in English text, pre-tokenized
//                              with the Llama 3 split regex (PCRE2, so words carry their leading space)
//   id  vocab_size-2           "<|begin_of_text|>" (bos), an added special token
//   id  vocab_size-1           "<|end_of_text|>"   (eos), an added special token
// pre_tokenizer: Sequence[Split(Llama 3 regex, Isolated), ByteLevel(add_prefix_space=false, use_regex=false)];
// decoder: ByteLevel; post_processor: TemplateProcessing that prepends bos (as Llama 3 does), so encoding
// with add_special_tokens=true yields [bos, ...]. tokenizer_config.json names bos_token / eos_token.
#include <string>

#include <nlohmann/json.hpp>

namespace tessera {

// The pre-tokenizer pattern of Llama 3's tokenizer.json.
extern const char* const kLlama3SplitPattern;

struct SynthesizedTokenizer {
  nlohmann::ordered_json tokenizer;         // tokenizer.json
  nlohmann::ordered_json tokenizer_config;  // tokenizer_config.json
  int bos_token_id = 0;
  int eos_token_id = 0;
  int merge_count = 0;
};

// Largest vocab_size the built-in training text can fill (every word fully merged beyond that).
int max_synthesized_vocab_size();

// Deterministic. Throws tessera::Error naming vocab_size when it is below 258 or above
// max_synthesized_vocab_size(). `model_max_length` goes into tokenizer_config.json.
SynthesizedTokenizer synthesize_byte_level_bpe(int vocab_size, int model_max_length);

// GPT-2's reversible byte -> printable unicode character mapping, as UTF-8.
std::string byte_level_char(unsigned char byte);

}  // namespace tessera
