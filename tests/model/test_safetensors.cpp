// Safetensors reading and writing: round trips in every dtype, sharding, a file written by the reference
// Python implementation, and every validation error (which must name the file and the tensor).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/model/llama_weights.hpp"
#include "core/model/safetensors.hpp"
#include "core/model/safetensors_writer.hpp"
#include "tests/model/test_util.hpp"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using test::error_message;
using test::TempDir;

// Writes a safetensors file by hand: 8-byte header length (or `declared_len`), header, data bytes.
void write_raw(const fs::path& path, const std::string& header, const std::string& data, uint64_t declared_len = 0) {
  const uint64_t len = declared_len ? declared_len : header.size();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  test::write_text(path, bytes + header + data);
}

std::vector<float> values_of(const HostTensor& t) { return std::vector<float>(t.data, t.data + t.numel()); }

// Values exactly representable in F16 and BF16, so every dtype must return them unchanged.
std::vector<FloatTensor> sample_tensors(DType dtype) {
  std::vector<float> a, b;
  for (int i = 0; i < 12; ++i) a.push_back(static_cast<float>(i - 6) * 0.125f);
  for (int i = 0; i < 5; ++i) b.push_back(static_cast<float>(i) * 2.5f);
  return {{{"layer.a", dtype, {3, 4}}, a}, {{"layer.b", dtype, {5}}, b}};
}

TEST(Safetensors, RoundTripEveryDtype) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    TempDir dir;
    const auto tensors = sample_tensors(dtype);
    write_safetensors_file(dir / "m.safetensors", specs_of(tensors), float_tensor_filler(tensors));
    const SafetensorsFile file = SafetensorsFile::open(dir / "m.safetensors");
    ASSERT_EQ(file.entries().size(), 2u);
    for (const FloatTensor& t : tensors) {
      const TensorView view = file.tensor(t.spec.name);
      EXPECT_EQ(view.dtype, dtype);
      EXPECT_EQ(view.shape, t.spec.shape);
      EXPECT_EQ(view.nbytes, t.values.size() * dtype_size(dtype));
      EXPECT_EQ(view.file, dir / "m.safetensors");
      EXPECT_EQ(values_of(to_host_tensor(view)), t.values) << dtype_name(dtype) << " " << t.spec.name;
    }
  }
}

TEST(Safetensors, AlignedF32IsZeroCopyFromTheMap) {
  TempDir dir;
  const auto tensors = sample_tensors(DType::F32);
  write_safetensors_file(dir / "m.safetensors", specs_of(tensors), float_tensor_filler(tensors));
  const SafetensorsFile file = SafetensorsFile::open(dir / "m.safetensors");
  const TensorView view = file.tensor("layer.b");
  const HostTensor host = to_host_tensor(view);
  EXPECT_EQ(static_cast<const void*>(host.data), static_cast<const void*>(view.data));
  EXPECT_EQ(host.owner.get(), static_cast<const void*>(view.mapping.get()));
}

// Written on the GPU machine with safetensors.torch.save_file from torch tensors:
// a.f32 = arange(6)*0.5-1 as [2,3]; b.f16 = [1.5, -2.25, 65504 (max), 2^-14 (min normal), 2^-24 (min subnormal)];
// c.bf16 = [1, -2^-7, 3.140625, -3e38 rounded to bf16]; d.i8 = [1, -2, 3].
TEST(Safetensors, ReadsFileWrittenByPythonSafetensors) {
  const fs::path path = fs::path(TESSERA_MODEL_TEST_DATA) / "python_written.safetensors";
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.entries().size(), 4u);
  EXPECT_EQ(values_of(to_host_tensor(file.tensor("a.f32"))), (std::vector<float>{-1, -0.5f, 0, 0.5f, 1, 1.5f}));
  EXPECT_EQ(file.tensor("a.f32").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(values_of(to_host_tensor(file.tensor("b.f16"))),
            (std::vector<float>{1.5f, -2.25f, 65504.0f, std::ldexp(1.0f, -14), std::ldexp(1.0f, -24)}));
  const std::vector<float> c = values_of(to_host_tensor(file.tensor("c.bf16")));
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0], 1.0f);
  EXPECT_EQ(c[1], -0.0078125f);
  EXPECT_EQ(c[2], 3.140625f);
  EXPECT_EQ(c[3], -3.00405527047391e+38f);  // torch's value printed as float
  EXPECT_EQ(file.entries().at("d.i8").dtype, "I8");
  const std::string msg = error_message([&] { file.tensor("d.i8"); });
  EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("'d.i8'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("I8"), std::string::npos) << msg;
}

TEST(Safetensors, HeaderIsPaddedAndDataAligned) {
  TempDir dir;
  const auto tensors = sample_tensors(DType::BF16);
  write_safetensors_file(dir / "m.safetensors", specs_of(tensors), float_tensor_filler(tensors));
  const std::string bytes = test::read_text(dir / "m.safetensors");
  uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);  // little-endian host
  EXPECT_EQ(len % 8, 0u);
  const auto header = nlohmann::json::parse(bytes.substr(8, len));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  EXPECT_EQ(header["layer.a"]["dtype"], "BF16");
  EXPECT_EQ(header["layer.a"]["data_offsets"], nlohmann::json::array({0, 24}));
  EXPECT_EQ(header["layer.b"]["data_offsets"], nlohmann::json::array({24, 34}));
  EXPECT_EQ(bytes.size(), 8 + len + 34);
}

TEST(Safetensors, ShardedCheckpointWithIndex) {
  TempDir dir;
  std::vector<FloatTensor> tensors;
  for (int i = 0; i < 5; ++i)
    tensors.push_back({{std::to_string(i).insert(0, 1, 't'), DType::F16, {100}}, std::vector<float>(100, static_cast<float>(i))});
  // 200 bytes per tensor, at most 450 per shard: shards of 2, 2 and 1 tensors.
  const auto files = write_safetensors_checkpoint(dir.path(), specs_of(tensors), float_tensor_filler(tensors), 450);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].filename(), "model-00001-of-00003.safetensors");
  EXPECT_EQ(files[2].filename(), "model-00003-of-00003.safetensors");
  const auto index = nlohmann::json::parse(test::read_text(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 1000);
  EXPECT_EQ(index["weight_map"]["t2"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["t4"], "model-00003-of-00003.safetensors");

  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  EXPECT_EQ(checkpoint.files().size(), 3u);
  EXPECT_EQ(checkpoint.tensor_names().size(), 5u);
  for (int i = 0; i < 5; ++i) {
    const TensorView view = checkpoint.tensor(std::to_string(i).insert(0, 1, 't'));
    EXPECT_EQ(values_of(to_host_tensor(view)), std::vector<float>(100, static_cast<float>(i)));
  }
  EXPECT_EQ(checkpoint.tensor("t3").file, dir / "model-00002-of-00003.safetensors");

  // Without the index every *.safetensors in the folder is read.
  fs::remove(dir / "model.safetensors.index.json");
  EXPECT_EQ(Checkpoint::open(dir.path()).tensor_names().size(), 5u);

  // Rewriting with a large shard size leaves a single model.safetensors and no stale shards.
  const auto single = write_safetensors_checkpoint(dir.path(), specs_of(tensors), float_tensor_filler(tensors), 1 << 20);
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(single[0].filename(), "model.safetensors");
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00003.safetensors"));
  EXPECT_EQ(Checkpoint::open(dir.path()).files().size(), 1u);
}

void expect_names(const std::string& msg, const std::vector<std::string>& parts) {
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

TEST(SafetensorsErrors, HeaderLengthBeyondFile) {
  TempDir dir;
  write_raw(dir / "x.safetensors", "{}", "", 1000);
  expect_names(error_message([&] { SafetensorsFile::open(dir / "x.safetensors"); }),
               {(dir / "x.safetensors").string(), "header length 1000"});
}

TEST(SafetensorsErrors, FileTooShort) {
  TempDir dir;
  test::write_text(dir / "x.safetensors", "abc");
  expect_names(error_message([&] { SafetensorsFile::open(dir / "x.safetensors"); }),
               {(dir / "x.safetensors").string(), "too short"});
}

TEST(SafetensorsErrors, BadJson) {
  TempDir dir;
  write_raw(dir / "x.safetensors", R"({"w": {"dtype": "F32",)", "");
  expect_names(error_message([&] { SafetensorsFile::open(dir / "x.safetensors"); }),
               {(dir / "x.safetensors").string(), "JSON"});
}

TEST(SafetensorsErrors, UnknownDtype) {
  TempDir dir;
  write_raw(dir / "x.safetensors", R"({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}})", "ab");
  expect_names(error_message([&] { SafetensorsFile::open(dir / "x.safetensors"); }),
               {(dir / "x.safetensors").string(), "'w'", "Q4"});
}

TEST(SafetensorsErrors, UnsupportedDtypeOnAccess) {
  TempDir dir;
  write_raw(dir / "x.safetensors", R"({"q": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", "ab");
  const SafetensorsFile file = SafetensorsFile::open(dir / "x.safetensors");  // listing still works
  expect_names(error_message([&] { file.tensor("q"); }), {(dir / "x.safetensors").string(), "'q'", "F8_E4M3"});
}

TEST(SafetensorsErrors, OffsetsNotMatchingShape) {
  TempDir dir;
  write_raw(dir / "x.safetensors", R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})",
            std::string(16, '\0'));
  expect_names(error_message([&] { SafetensorsFile::open(dir / "x.safetensors"); }),
               {(dir / "x.safetensors").string(), "'w'", "[2, 2]", "needs 16"});
}

TEST(SafetensorsErrors, OffsetsReversedOrMalformed) {
  TempDir dir;
  write_raw(dir / "x.safetensors", R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", std::string(8, 0));
  expect_names(error_message([&] { SafetensorsFile::open(dir / "x.safetensors"); }), {"'w'", "end < begin"});
  write_raw(dir / "y.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", std::string(4, 0));
  expect_names(error_message([&] { SafetensorsFile::open(dir / "y.safetensors"); }),
               {(dir / "y.safetensors").string(), "'w'", "data_offsets"});
  write_raw(dir / "z.safetensors", R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", std::string(4, 0));
  expect_names(error_message([&] { SafetensorsFile::open(dir / "z.safetensors"); }), {"'w'", "shape"});
}

TEST(SafetensorsErrors, OverlappingTensors) {
  TempDir dir;
  write_raw(dir / "x.safetensors",
            R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            std::string(12, '\0'));
  expect_names(error_message([&] { SafetensorsFile::open(dir / "x.safetensors"); }),
               {(dir / "x.safetensors").string(), "'a'", "'b'", "overlaps"});
}

TEST(SafetensorsErrors, TruncatedFile) {
  TempDir dir;
  const auto tensors = sample_tensors(DType::F32);
  write_safetensors_file(dir / "m.safetensors", specs_of(tensors), float_tensor_filler(tensors));
  fs::resize_file(dir / "m.safetensors", fs::file_size(dir / "m.safetensors") - 4);
  expect_names(error_message([&] { SafetensorsFile::open(dir / "m.safetensors"); }),
               {(dir / "m.safetensors").string(), "'layer.b'", "truncated"});
}

TEST(SafetensorsErrors, MissingTensorNamesTensorAndFolder) {
  TempDir dir;
  const auto tensors = sample_tensors(DType::F32);
  write_safetensors_checkpoint(dir.path(), specs_of(tensors), float_tensor_filler(tensors), 1 << 20);
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  EXPECT_FALSE(checkpoint.contains("nope"));
  expect_names(error_message([&] { checkpoint.tensor("nope"); }), {"'nope'", dir.path().string()});
}

TEST(SafetensorsErrors, IndexNamingMissingShardOrTensor) {
  TempDir dir;
  const auto tensors = sample_tensors(DType::F32);
  write_safetensors_checkpoint(dir.path(), specs_of(tensors), float_tensor_filler(tensors), 1 << 20);
  test::write_text(dir / "model.safetensors.index.json",
                   R"({"weight_map": {"layer.a": "model.safetensors", "layer.c": "model-2.safetensors"}})");
  expect_names(error_message([&] { Checkpoint::open(dir.path()); }),
               {"model.safetensors.index.json", "'layer.c'", "model-2.safetensors"});
  test::write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"layer.z": "model.safetensors"}})");
  expect_names(error_message([&] { Checkpoint::open(dir.path()); }), {"'layer.z'", "model.safetensors"});
  test::write_text(dir / "model.safetensors.index.json", R"({"weight_map": )");
  expect_names(error_message([&] { Checkpoint::open(dir.path()); }), {"model.safetensors.index.json", "JSON"});
}

TEST(SafetensorsErrors, FolderWithoutSafetensorsOrDuplicates) {
  TempDir dir;
  expect_names(error_message([&] { Checkpoint::open(dir.path()); }), {dir.path().string(), "no *.safetensors"});
  expect_names(error_message([&] { Checkpoint::open(dir / "absent"); }), {"absent", "does not exist"});
  const auto tensors = sample_tensors(DType::F32);
  write_safetensors_file(dir / "a.safetensors", specs_of(tensors), float_tensor_filler(tensors));
  write_safetensors_file(dir / "b.safetensors", specs_of(tensors), float_tensor_filler(tensors));
  expect_names(error_message([&] { Checkpoint::open(dir.path()); }), {"'layer.a'", "a.safetensors", "b.safetensors"});
}

TEST(SafetensorsErrors, WriterRejectsDuplicateNames) {
  TempDir dir;
  auto tensors = sample_tensors(DType::F32);
  tensors[1].spec.name = tensors[0].spec.name;
  tensors[1].values.resize(12);
  tensors[1].spec.shape = {12};
  expect_names(error_message([&] {
                 write_safetensors_file(dir / "m.safetensors", specs_of(tensors), float_tensor_filler(tensors));
               }),
               {"duplicate", "'layer.a'", "m.safetensors"});
}

}  // namespace
}  // namespace tessera
