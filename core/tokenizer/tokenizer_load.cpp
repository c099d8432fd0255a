// Tokenizer::load: reads tokenizer.json / tokenizer_config.json into Tokenizer::Impl.
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"
#include "core/tokenizer/tokenizer_impl.hpp"

namespace tessera {

namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open tokenizer file " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": malformed JSON: " + e.what());
  }
}

const nlohmann::json& member_or_null(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;  // immutable
  const auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

void load_post_processor(const nlohmann::json& config, const std::string& file, Tokenizer::Impl& impl) {
  if (config.is_null()) return;
  const std::string type = config.value("type", "");
  const std::string where = file + ": post_processor '" + type + "'";
  if (type == "Sequence") {
    for (const auto& child : config.at("processors")) load_post_processor(child, file, impl);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets; adds no tokens.
  } else if (type == "TemplateProcessing") {
    const auto& special_tokens = config.at("special_tokens");
    bool seen_sequence = false;
    for (const auto& item : config.at("single")) {
      if (item.contains("Sequence")) {
        if (item["Sequence"].value("id", "A") != "A" || seen_sequence) {
          throw Error(where + ": the single template may only contain sequence A once");
        }
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].at("id").get<std::string>();
        const auto it = special_tokens.find(name);
        if (it == special_tokens.end()) throw Error(where + ": special token '" + name + "' has no ids");
        auto& target = seen_sequence ? impl.template_suffix : impl.template_prefix;
        for (const auto& id : it->at("ids")) target.push_back(id.get<int32_t>());
      } else {
        throw Error(where + ": unknown template item " + item.dump());
      }
    }
  } else {
    throw Error(where + " is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  }
}

// bos_token / eos_token may be a string, {"content": ...} or null.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
  const auto& value = member_or_null(config, key);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content")) return value["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_json,
                          const std::filesystem::path& tokenizer_config_json_or_empty) {
  const std::string file = tokenizer_json.string();
  auto impl = std::make_shared<Impl>();
  impl->source = file;
  try {
    const nlohmann::json root = read_json(tokenizer_json);
    if (!root.is_object()) throw Error(file + ": top level is not a JSON object");
    const auto& model = member_or_null(root, "model");
    if (!model.is_object()) throw Error(file + ": missing \"model\" object");
    const std::string model_type = model.value("type", model.contains("merges") ? "BPE" : "");
    if (model_type != "BPE") {
      throw Error(file + ": model type '" + model_type + "' is not supported (supported: BPE)");
    }
    impl->model = BpeModel::from_json(model, file);
    impl->normalizer = Normalizer::from_json(member_or_null(root, "normalizer"), file);
    impl->pre_tokenizer = PreTokenizer::from_json(member_or_null(root, "pre_tokenizer"), file);
    impl->decoder = DecoderPlan::from_json(member_or_null(root, "decoder"), file);
    load_post_processor(member_or_null(root, "post_processor"), file, *impl);

    int32_t bound = impl->model.id_bound();
    const auto& added = member_or_null(root, "added_tokens");
    for (const auto& entry : added.is_array() ? added : nlohmann::json::array()) {
      AddedToken token;
      token.id = entry.at("id").get<int32_t>();
      if (token.id < 0) throw Error(file + ": added token with negative id");
      token.content = entry.at("content").get<std::string>();
      token.single_word = entry.value("single_word", false);
      token.lstrip = entry.value("lstrip", false);
      token.rstrip = entry.value("rstrip", false);
      token.special = entry.value("special", false);
      token.normalized = entry.value("normalized", !token.special);
      bound = std::max(bound, token.id + 1);
      impl->added_by_content[token.content] = token.id;
      impl->added_tokens.push_back(std::move(token));
    }
    std::vector<AddedToken> raw, normalized;
    std::vector<std::string> raw_patterns, normalized_patterns;
    for (const AddedToken& token : impl->added_tokens) {
      if (token.normalized) {
        normalized.push_back(token);
        normalized_patterns.push_back(impl->normalizer.normalize(token.content));
      } else {
        raw.push_back(token);
        raw_patterns.push_back(token.content);
      }
    }
    impl->raw_added = AddedTokenMatcher(raw, raw_patterns);
    impl->normalized_added = AddedTokenMatcher(normalized, normalized_patterns);

    impl->id_to_token.resize(bound);
    impl->id_present.assign(bound, false);
    impl->special.assign(bound, false);
    for (int32_t id = 0; id < impl->model.id_bound(); ++id) {
      if (const std::string* token = impl->model.id_to_token(id)) {
        impl->id_to_token[id] = *token;
        impl->id_present[id] = true;
      }
    }
    for (const AddedToken& token : impl->added_tokens) {  // added content wins, as in the Rust crate
      impl->id_to_token[token.id] = token.content;
      impl->id_present[token.id] = true;
      impl->special[token.id] = token.special;
    }
    impl->pieces.resize(bound);
    for (int32_t id = 0; id < bound; ++id) {
      if (impl->id_present[id]) impl->pieces[id] = impl->decoder.piece_for(impl->id_to_token[id]);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(file + ": unexpected JSON structure: " + e.what());
  }

  if (!tokenizer_config_json_or_empty.empty()) {
    const std::string config_file = tokenizer_config_json_or_empty.string();
    const nlohmann::json config = read_json(tokenizer_config_json_or_empty);
    if (!config.is_object()) throw Error(config_file + ": top level is not a JSON object");
    const Tokenizer lookup(impl);
    auto resolve = [&](const char* key) -> std::optional<int32_t> {
      const auto name = config_token(config, key);
      if (!name) return std::nullopt;
      const auto id = lookup.token_to_id(*name);
      if (!id) throw Error(config_file + ": " + key + " '" + *name + "' is not a token of " + file);
      return id;
    };
    impl->bos = resolve("bos_token");
    if (const auto eos = resolve("eos_token")) impl->eos.push_back(*eos);
  }
  return Tokenizer(std::move(impl));
}

std::optional<Tokenizer> Tokenizer::load_dir(const std::filesystem::path& dir) {
  const auto json = dir / "tokenizer.json";
  if (!std::filesystem::exists(json)) return std::nullopt;
  const auto config = dir / "tokenizer_config.json";
  return load(json, std::filesystem::exists(config) ? config : std::filesystem::path());
}

}  // namespace tessera
