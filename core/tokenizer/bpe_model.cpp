#include "core/tokenizer/bpe_model.hpp"

#include <cstdio>
#include <queue>

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"

namespace tessera {

namespace {

std::string optional_string(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  return it->get<std::string>();
}

}  // namespace

BpeModel BpeModel::from_json(const nlohmann::json& model, const std::string& file) {
  const std::string where = file + ": model (BPE)";
  BpeModel bpe;
  const auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() && dropout->get<double>() != 0.0) {
    throw Error(where + ": dropout is not supported (encoding would not be deterministic)");
  }
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) throw Error(where + ": missing \"vocab\" object");
  int32_t max_id = -1;
  for (const auto& [token, id_json] : vocab->items()) {
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id > INT32_MAX) throw Error(where + ": vocab id out of range for token '" + token + "'");
    bpe.vocab_.emplace(token, static_cast<int32_t>(id));
    max_id = std::max<int32_t>(max_id, static_cast<int32_t>(id));
  }
  bpe.id_to_token_.resize(static_cast<std::size_t>(max_id + 1));
  bpe.id_present_.assign(bpe.id_to_token_.size(), false);
  for (const auto& [token, id] : bpe.vocab_) {
    bpe.id_to_token_[id] = token;
    bpe.id_present_[id] = true;
  }

  bpe.continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix");
  bpe.end_of_word_suffix_ = optional_string(model, "end_of_word_suffix");
  bpe.fuse_unk_ = model.value("fuse_unk", false);
  bpe.byte_fallback_ = model.value("byte_fallback", false);
  bpe.ignore_merges_ = model.value("ignore_merges", false);
  const std::string unk = optional_string(model, "unk_token");
  if (!unk.empty()) {
    const auto it = bpe.vocab_.find(unk);
    if (it == bpe.vocab_.end()) throw Error(where + ": unk_token '" + unk + "' is not in the vocab");
    bpe.unk_id_ = it->second;
  }
  if (bpe.byte_fallback_) {
    bpe.has_all_byte_tokens_ = true;
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      const auto it = bpe.vocab_.find(std::string_view(name));
      if (it == bpe.vocab_.end()) {
        bpe.has_all_byte_tokens_ = false;
        bpe.byte_token_ids_[b] = -1;
      } else {
        bpe.byte_token_ids_[b] = it->second;
      }
    }
  }

  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) throw Error(where + ": missing \"merges\" array");
  bpe.merges_.reserve(merges->size());
  int32_t rank = 0;
  for (const auto& merge : *merges) {
    std::string left, right;
    if (merge.is_string()) {  // legacy "a b" form
      const std::string& line = merge.get_ref<const std::string&>();
      const auto space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        throw Error(where + ": merge #" + std::to_string(rank) + " '" + line + "' is not of the form \"a b\"");
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      throw Error(where + ": merge #" + std::to_string(rank) + " is neither \"a b\" nor [a, b]");
    }
    const auto l = bpe.vocab_.find(left), r = bpe.vocab_.find(right);
    if (l == bpe.vocab_.end() || r == bpe.vocab_.end()) {
      throw Error(where + ": merge #" + std::to_string(rank) + " uses a token missing from the vocab");
    }
    std::string_view right_part = right;
    const std::string& prefix = bpe.continuing_subword_prefix_;
    if (!prefix.empty() && right_part.starts_with(prefix)) right_part.remove_prefix(prefix.size());
    const auto merged = bpe.vocab_.find(left + std::string(right_part));
    if (merged == bpe.vocab_.end()) {
      throw Error(where + ": merge #" + std::to_string(rank) + " produces a token missing from the vocab");
    }
    // Like the Rust crate (collect into a map), a repeated pair keeps its last rank.
    bpe.merges_[pair_key(l->second, r->second)] = MergeTarget{rank, merged->second};
    ++rank;
  }
  return bpe;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_bound() || !id_present_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Initial symbols: one per character (with subword prefix / word suffix), byte fallback or unk.
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  int32_t pending_unk = -1;  // unk token waiting to be emitted (fuse_unk grows it)
  std::string piece;
  for (std::size_t pos = 0; pos < word.size();) {
    const auto lead = static_cast<unsigned char>(word[pos]);
    const std::size_t len = std::min<std::size_t>(word.size() - pos, lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4);
    piece.clear();
    if (pos != 0) piece += continuing_subword_prefix_;
    piece.append(word.substr(pos, len));
    if (pos + len == word.size()) piece += end_of_word_suffix_;
    pos += len;
    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk >= 0) ids.push_back(pending_unk);
      pending_unk = -1;
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_found = true;
      for (const char c : piece) all_found = all_found && byte_token_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all_found) {
        for (const char c : piece) ids.push_back(byte_token_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      // fuse_unk: consecutive unknown characters become a single unk token.
      if (pending_unk >= 0 && !fuse_unk_) ids.push_back(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unk token the Rust crate silently drops the character; so do we.
  }
  if (pending_unk >= 0) ids.push_back(pending_unk);
  merge_symbols(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

void BpeModel::merge_symbols(std::vector<int32_t>& ids) const {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Symbol> symbols(n);
  for (int i = 0; i < n; ++i) symbols[i] = Symbol{ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push_pair = [&](int pos) {
    const int next = symbols[pos].next;
    if (next < 0) return;
    const auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push(Candidate{it->second.rank, pos, it->second.new_id});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Skip stale entries: the pair at this position changed since it was queued.
    const auto it = merges_.find(pair_key(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  ids.clear();
  for (int i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

}  // namespace tessera
