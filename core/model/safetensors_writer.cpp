#include "core/model/safetensors_writer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"

namespace tessera {

namespace fs = std::filesystem;

namespace {

// Elements per parallel work item: big enough to amortise scheduling, small enough to balance 16+ threads.
constexpr int64_t kChunkElements = int64_t{1} << 20;

std::string quoted(const fs::path& p) {
  std::string s = "'";  // built stepwise: GCC 12 warns falsely (-Wrestrict) on "'" + str + "'"
  s += p.string();
  s += '\'';
  return s;
}

// Closes the descriptor and unmaps on every exit path.
class WritableMap {
 public:
  WritableMap(const fs::path& file, uint64_t size) : file_(file), size_(size) {
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error("cannot create " + quoted(file) + ": " + std::strerror(errno));
    // Reserve the blocks up front so a full disk is an error here, not a SIGBUS while filling the map.
    if (::fallocate(fd_, 0, 0, static_cast<off_t>(size)) != 0) {
      if (errno != EOPNOTSUPP && errno != ENOSYS) fail("cannot allocate");
      if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) fail("cannot resize");
    }
    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (addr == MAP_FAILED) fail("cannot memory-map");
    data_ = static_cast<std::byte*>(addr);
  }
  ~WritableMap() {
    if (data_ != nullptr) ::munmap(data_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  WritableMap(const WritableMap&) = delete;
  WritableMap& operator=(const WritableMap&) = delete;

  std::byte* data() { return data_; }
  // Unmaps and closes, reporting write-back errors (e.g. a full disk).
  void finish() {
    const int unmap_rc = ::munmap(data_, size_);
    data_ = nullptr;
    if (unmap_rc != 0) fail("cannot unmap");
    const int close_rc = ::close(fd_);
    fd_ = -1;
    if (close_rc != 0) throw Error("cannot close " + quoted(file_) + ": " + std::strerror(errno));
  }

 private:
  [[noreturn]] void fail(const char* what) {
    throw Error(std::string(what) + " " + quoted(file_) + " (" + std::to_string(size_) + " bytes): " +
                std::strerror(errno));
  }
  fs::path file_;
  uint64_t size_ = 0;
  int fd_ = -1;
  std::byte* data_ = nullptr;
};

std::string shard_name(size_t index, size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buf;
}

}  // namespace

void write_safetensors_file(const fs::path& file, const std::vector<TensorSpec>& tensors, const TensorFiller& fill) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    if (header.contains(t.name)) throw Error("duplicate tensor '" + t.name + "' written to " + quoted(file));
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offsets.push_back(offset);
    offset += t.nbytes();
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // pad so the data section is 8-byte aligned
  const uint64_t data_start = 8 + header_text.size();

  WritableMap map(file, data_start + offset);
  std::byte* base = map.data();
  uint64_t header_len = header_text.size();
  for (int i = 0; i < 8; ++i) base[i] = static_cast<std::byte>((header_len >> (8 * i)) & 0xff);
  std::memcpy(base + 8, header_text.data(), header_text.size());

  struct Chunk {
    size_t tensor;
    int64_t first;
    int64_t count;
  };
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < tensors.size(); ++i)
    for (int64_t first = 0; first < tensors[i].numel(); first += kChunkElements)
      chunks.push_back({i, first, std::min(kChunkElements, tensors[i].numel() - first)});

  const int64_t chunk_count = static_cast<int64_t>(chunks.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t c = 0; c < chunk_count; ++c) {
    const Chunk& chunk = chunks[c];
    const TensorSpec& spec = tensors[chunk.tensor];
    std::byte* out = base + data_start + offsets[chunk.tensor] + chunk.first * dtype_size(spec.dtype);
    fill(spec, chunk.first, chunk.count, out);
  }
  map.finish();
}

std::vector<fs::path> write_safetensors_checkpoint(const fs::path& dir, const std::vector<TensorSpec>& tensors,
                                                   const TensorFiller& fill, uint64_t max_shard_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create folder " + quoted(dir) + ": " + ec.message());

  std::vector<std::vector<TensorSpec>> shards(1);
  uint64_t shard_bytes = 0;
  for (const TensorSpec& t : tensors) {
    if (!shards.back().empty() && shard_bytes + t.nbytes() > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += t.nbytes();
  }

  // Drop files of an earlier run so the folder describes exactly one checkpoint.
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".safetensors" || it->path().filename() == "model.safetensors.index.json")
      stale.push_back(it->path());
  for (const fs::path& p : stale)
    if (!ec) fs::remove(p, ec);
  if (ec) throw Error("cannot clear old checkpoint files in " + quoted(dir) + ": " + ec.message());

  std::vector<fs::path> files;
  if (shards.size() == 1) {
    files.push_back(dir / "model.safetensors");
    write_safetensors_file(files.back(), shards[0], fill);
    return files;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = shard_name(s, shards.size());
    files.push_back(dir / name);
    write_safetensors_file(files.back(), shards[s], fill);
    for (const TensorSpec& t : shards[s]) {
      weight_map[t.name] = name;
      total += t.nbytes();
    }
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = weight_map;
  const fs::path index_path = dir / "model.safetensors.index.json";
  std::ofstream out(index_path);
  out << index.dump(2) << "\n";
  if (!out) throw Error("cannot write " + quoted(index_path));
  return files;
}

TensorFiller float_tensor_filler(const std::vector<FloatTensor>& tensors) {
  std::map<std::string, const FloatTensor*> by_name;
  for (const FloatTensor& t : tensors) by_name[t.spec.name] = &t;
  return [by_name](const TensorSpec& spec, int64_t first, int64_t count, void* out) {
    const float* src = by_name.at(spec.name)->values.data() + first;
    switch (spec.dtype) {
      case DType::F32:
        std::memcpy(out, src, static_cast<size_t>(count) * 4);
        break;
      case DType::F16:
        for (int64_t i = 0; i < count; ++i) static_cast<uint16_t*>(out)[i] = f32_to_f16(src[i]);
        break;
      case DType::BF16:
        for (int64_t i = 0; i < count; ++i) static_cast<uint16_t*>(out)[i] = f32_to_bf16(src[i]);
        break;
    }
  };
}

std::vector<TensorSpec> specs_of(const std::vector<FloatTensor>& tensors) {
  std::vector<TensorSpec> specs;
  for (const FloatTensor& t : tensors) {
    if (static_cast<int64_t>(t.values.size()) != t.spec.numel())
      throw Error("tensor '" + t.spec.name + "' has " + std::to_string(t.values.size()) + " values for shape of " +
                  std::to_string(t.spec.numel()) + " elements");
    specs.push_back(t.spec);
  }
  return specs;
}

}  // namespace tessera
