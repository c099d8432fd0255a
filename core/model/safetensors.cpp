#include "core/model/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"

namespace tessera {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string quoted(const fs::path& p) {
  std::string s = "'";  // built stepwise: GCC 12 warns falsely (-Wrestrict) on "'" + str + "'"
  s += p.string();
  s += '\'';
  return s;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses one header entry; `where` prefixes every message ("safetensors file 'x': tensor 'y'").
TensorEntry parse_entry(const json& value, const std::string& where) {
  if (!value.is_object()) throw Error(where + ": header entry is not an object");
  TensorEntry e;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) throw Error(where + ": missing or non-string 'dtype'");
  e.dtype = dtype->get<std::string>();
  if (safetensors_dtype_size(e.dtype) == 0) throw Error(where + ": unknown dtype '" + e.dtype + "'");

  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) throw Error(where + ": missing or non-array 'shape'");
  for (const json& d : *shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) throw Error(where + ": 'shape' holds a non-negative-integer value");
    e.shape.push_back(d.get<int64_t>());
  }

  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned())
    throw Error(where + ": 'data_offsets' must be [begin, end] of non-negative integers");
  e.begin = (*offsets)[0].get<uint64_t>();
  e.end = (*offsets)[1].get<uint64_t>();
  if (e.end < e.begin) throw Error(where + ": data_offsets end < begin");

  // Expected byte count, with overflow checks (a hostile header must not wrap around).
  uint64_t bytes = safetensors_dtype_size(e.dtype);
  for (int64_t d : e.shape) {
    if (d != 0 && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      throw Error(where + ": shape " + shape_string(e.shape) + " is too large");
    bytes *= static_cast<uint64_t>(d);
  }
  if (e.end - e.begin != bytes)
    throw Error(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ") span " +
                std::to_string(e.end - e.begin) + " bytes but shape " + shape_string(e.shape) + " of " + e.dtype +
                " needs " + std::to_string(bytes));
  return e;
}

std::optional<DType> supported_dtype(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  return std::nullopt;
}

json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open " + quoted(path));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error("invalid JSON in " + quoted(path) + ": " + e.what());
  }
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static constexpr std::pair<const char*, size_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  for (const auto& [name, size] : kSizes)
    if (dtype == name) return size;
  return 0;
}

// ---- MappedFile ----

std::shared_ptr<const MappedFile> MappedFile::open(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + quoted(path) + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot stat " + quoted(path) + ": " + std::strerror(err));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* addr = nullptr;
  if (size > 0) {
    addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error("cannot memory-map " + quoted(path) + ": " + std::strerror(err));
    }
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  return std::shared_ptr<const MappedFile>(new MappedFile(path, static_cast<const std::byte*>(addr), size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

// ---- SafetensorsFile ----

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  SafetensorsFile f;
  f.mapping_ = MappedFile::open(path);
  const std::string where = "safetensors file " + quoted(path);
  const size_t file_size = f.mapping_->size();
  if (file_size < 8) throw Error(where + ": file is " + std::to_string(file_size) + " bytes, too short for a header");

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(f.mapping_->data()[i]);
  if (header_len > file_size - 8)
    throw Error(where + ": header length " + std::to_string(header_len) + " exceeds the file size " +
                std::to_string(file_size) + " (truncated or not a safetensors file)");

  const char* header_begin = reinterpret_cast<const char*>(f.mapping_->data() + 8);
  json header;
  try {
    header = json::parse(header_begin, header_begin + header_len);
  } catch (const json::exception& e) {
    throw Error(where + ": invalid JSON header: " + e.what());
  }
  if (!header.is_object()) throw Error(where + ": JSON header is not an object");

  f.data_section_ = f.mapping_->data() + 8 + header_len;
  const uint64_t data_size = file_size - 8 - header_len;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string tensor_where = where + ": tensor '" + name + "'";
    TensorEntry e = parse_entry(value, tensor_where);
    if (e.end > data_size)
      throw Error(tensor_where + ": data_offsets end " + std::to_string(e.end) + " lies beyond the data section of " +
                  std::to_string(data_size) + " bytes (file truncated?)");
    f.entries_.emplace(name, std::move(e));
  }

  // No two tensors may share bytes.
  std::vector<std::pair<const std::string*, const TensorEntry*>> by_offset;
  for (const auto& [name, e] : f.entries_) by_offset.emplace_back(&name, &e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  uint64_t covered_end = 0;  // end of the furthest-reaching non-empty tensor so far
  const std::string* covering = nullptr;
  for (const auto& [name, e] : by_offset) {
    if (e->end == e->begin) continue;
    if (covering != nullptr && e->begin < covered_end)
      throw Error(where + ": tensor '" + *name + "' overlaps tensor '" + *covering + "'");
    if (e->end > covered_end) {
      covered_end = e->end;
      covering = name;
    }
  }
  return f;
}

TensorView SafetensorsFile::tensor(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw Error("tensor '" + name + "' not found in " + quoted(path()));
  const TensorEntry& e = it->second;
  const auto dtype = supported_dtype(e.dtype);
  if (!dtype)
    throw Error("safetensors file " + quoted(path()) + ": tensor '" + name + "' has dtype " + e.dtype +
                ", unsupported (only F32, F16 and BF16 are)");
  TensorView v;
  v.name = name;
  v.dtype = *dtype;
  v.shape = e.shape;
  v.data = data_section_ + e.begin;
  v.nbytes = static_cast<size_t>(e.end - e.begin);
  v.file = path();
  v.mapping = mapping_;
  return v;
}

// ---- Checkpoint ----

Checkpoint Checkpoint::open(const fs::path& dir) {
  Checkpoint c;
  c.dir_ = dir;
  if (!fs::is_directory(dir)) throw Error("checkpoint folder " + quoted(dir) + " does not exist");

  const fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::exists(index_path)) {
    const json index = read_json_file(index_path);
    const auto weight_map = index.find("weight_map");
    if (!index.is_object() || weight_map == index.end() || !weight_map->is_object())
      throw Error(quoted(index_path) + ": missing object 'weight_map'");
    std::map<std::string, size_t> file_index;  // shard file name -> index in files_
    for (const auto& [name, file] : weight_map->items()) {
      if (!file.is_string()) throw Error(quoted(index_path) + ": weight_map entry '" + name + "' is not a string");
      const std::string file_name = file.get<std::string>();
      auto [it, inserted] = file_index.emplace(file_name, c.files_.size());
      if (inserted) {
        if (!fs::exists(dir / file_name))
          throw Error(quoted(index_path) + ": tensor '" + name + "' maps to missing shard " + quoted(dir / file_name));
        c.files_.push_back(SafetensorsFile::open(dir / file_name));
      }
      if (!c.files_[it->second].contains(name))
        throw Error(quoted(index_path) + ": tensor '" + name + "' is not in its shard " + quoted(dir / file_name));
      c.location_.emplace(name, it->second);
    }
    return c;
  }

  std::vector<fs::path> shards;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".safetensors" && fs::is_regular_file(it->path())) shards.push_back(it->path());
  if (ec) throw Error("cannot list checkpoint folder " + quoted(dir) + ": " + ec.message());
  std::sort(shards.begin(), shards.end());
  if (shards.empty()) throw Error("no *.safetensors file in checkpoint folder " + quoted(dir));
  for (const fs::path& shard : shards) {
    c.files_.push_back(SafetensorsFile::open(shard));
    for (const auto& [name, entry] : c.files_.back().entries()) {
      const auto [it, inserted] = c.location_.emplace(name, c.files_.size() - 1);
      if (!inserted)
        throw Error("tensor '" + name + "' appears in both " + quoted(c.files_[it->second].path()) + " and " +
                    quoted(shard));
    }
  }
  return c;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(location_.size());
  for (const auto& [name, index] : location_) names.push_back(name);
  return names;
}

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  const auto it = location_.find(name);
  if (it == location_.end()) throw Error("tensor '" + name + "' not found in checkpoint folder " + quoted(dir_));
  return files_[it->second];
}

const TensorEntry& Checkpoint::entry(const std::string& name) const { return file_of(name).entries().at(name); }

TensorView Checkpoint::tensor(const std::string& name) const { return file_of(name).tensor(name); }

}  // namespace tessera
