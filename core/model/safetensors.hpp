#pragma once
// Read-only access to Hugging Face safetensors checkpoints through memory maps.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data section; offsets are relative to the start of the data section.
// Everything is validated on open; tensors are handed out as raw views into the map (zero-copy).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/common/dtype.hpp"

namespace tessera {

// A whole file mapped read-only. Immutable after construction; safe to share between threads.
class MappedFile {
 public:
  // Throws tessera::Error naming the file when it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// A raw tensor inside a mapped file: what a GPU loader needs to copy it without conversion.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // points into `mapping`, little-endian, row-major
  size_t nbytes = 0;
  std::filesystem::path file;
  std::shared_ptr<const MappedFile> mapping;  // keeps `data` alive

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Header entry of one tensor; dtype is kept as its safetensors string ("BF16", "I8", ...).
struct TensorEntry {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data section
  uint64_t end = 0;
};

// One parsed and validated .safetensors file. Immutable after open; safe to share between threads.
class SafetensorsFile {
 public:
  // Maps and validates the file: header length, JSON, known dtypes, shapes, offsets in range, sizes
  // matching shape x dtype, no overlaps. Throws tessera::Error naming the file (and the tensor).
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return mapping_->path(); }
  const std::map<std::string, TensorEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // Throws tessera::Error naming file and tensor when absent or of a dtype other than F32/F16/BF16.
  TensorView tensor(const std::string& name) const;

 private:
  std::shared_ptr<const MappedFile> mapping_;
  const std::byte* data_section_ = nullptr;
  std::map<std::string, TensorEntry> entries_;
};

// A checkpoint folder: `model.safetensors.index.json` (weight_map: tensor -> shard file) when present,
// otherwise every `*.safetensors` file in the folder. Immutable after open; safe to share between threads.
class Checkpoint {
 public:
  // Throws tessera::Error naming the folder / index / shard on missing files, duplicates or bad headers.
  static Checkpoint open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  bool contains(const std::string& name) const { return location_.count(name) != 0; }
  std::vector<std::string> tensor_names() const;
  // Header entry and the file that holds it; throws naming the tensor and folder when absent.
  const TensorEntry& entry(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  // Throws tessera::Error naming tensor and folder when absent (or file and tensor for unsupported dtypes).
  TensorView tensor(const std::string& name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> location_;  // tensor name -> index in files_
};

// Byte size of one element of a safetensors dtype string, or 0 when the string is not a safetensors dtype.
size_t safetensors_dtype_size(const std::string& dtype);

}  // namespace tessera
