// Hostile frames: each must decode to the documented error code (PROTOCOL.md, "Errors"), never crash, never
// allocate out of proportion to the frame, and name the request when the frame carried a usable id.
#include <msgpack.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bus/protocol.hpp"

namespace tessera::bus {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;
using Writer = std::function<void(Packer&)>;
using Entries = std::vector<std::pair<std::string, Writer>>;

template <class T>
Writer val(T v) {
  return [v](Packer& pk) { pk.pack(v); };
}
Writer nan_value() {
  return [](Packer& pk) { pk.pack_double(std::numeric_limits<double>::quiet_NaN()); };
}

std::string map_frame(const Entries& entries) {
  msgpack::sbuffer b;
  Packer pk(b);
  pk.pack_map(static_cast<uint32_t>(entries.size()));
  for (const auto& [k, w] : entries) {
    pk.pack(k);
    w(pk);
  }
  return {b.data(), b.size()};
}

Writer map_writer(const Entries& entries) {
  return [entries](Packer& pk) {
    pk.pack_map(static_cast<uint32_t>(entries.size()));
    for (const auto& [k, w] : entries) {
      pk.pack(k);
      w(pk);
    }
  };
}

Entries base_submit() {
  return {{"v", val(1)}, {"type", val(std::string("submit"))}, {"id", val(std::string("req-7"))},
          {"prompt", val(std::string("Hello"))}, {"params", map_writer({{"max_tokens", val(8)}})}};
}

// The base submit with `key` replaced (or added); a null writer removes it.
std::string submit_with(const std::string& key, Writer w) {
  Entries e = base_submit();
  bool found = false;
  for (auto it = e.begin(); it != e.end(); ++it)
    if (it->first == key) {
      found = true;
      if (w) it->second = w;
      else e.erase(it);
      break;
    }
  if (!found && w) e.emplace_back(key, w);
  return map_frame(e);
}
std::string submit_param(const std::string& key, Writer w) {
  return submit_with("params", map_writer({{"max_tokens", val(8)}, {key, std::move(w)}}));
}
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

struct Case {
  const char* name;
  std::string frame;
  ErrorCode expected;
  std::optional<std::string> expected_id;
};

ProtocolLimits test_limits() {
  ProtocolLimits l;
  l.max_frame_bytes = 64 * 1024;
  l.max_prompt_ids = 1000;
  return l;
}

std::vector<Case> hostile_cases() {
  const std::optional<std::string> id = "req-7";
  const std::optional<std::string> no_id;
  const std::string valid = map_frame(base_submit());
  std::vector<Case> c;
  c.push_back({"empty frame", "", ErrorCode::Malformed, no_id});
  c.push_back({"reserved byte 0xc1", bytes({0xc1}), ErrorCode::Malformed, no_id});
  c.push_back({"plain text", "hello, is this the server?", ErrorCode::Malformed, no_id});
  c.push_back({"truncated submit", valid.substr(0, valid.size() - 3), ErrorCode::Malformed, no_id});
  c.push_back({"one byte of a map", valid.substr(0, 1), ErrorCode::Malformed, no_id});
  c.push_back({"array instead of map", bytes({0x92, 0x01, 0x02}), ErrorCode::Malformed, no_id});
  c.push_back({"integer instead of map", bytes({0x07}), ErrorCode::Malformed, no_id});
  c.push_back({"nil frame", bytes({0xc0}), ErrorCode::Malformed, no_id});
  c.push_back({"5 bytes declaring a 2^32-1 array", bytes({0xdd, 0xff, 0xff, 0xff, 0xff}), ErrorCode::Malformed, no_id});
  c.push_back({"5 bytes declaring a 2^32-1 map", bytes({0xdf, 0xff, 0xff, 0xff, 0xff}), ErrorCode::Malformed, no_id});
  c.push_back({"str32 declaring 4 GiB", bytes({0x81, 0xa1, 'v', 0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'}),
               ErrorCode::Malformed, no_id});
  c.push_back({"bin32 declaring 4 GiB", bytes({0xc6, 0xff, 0xff, 0xff, 0xff}), ErrorCode::Malformed, no_id});
  c.push_back({"array16 of 65535 declared in 3 bytes", bytes({0xdc, 0xff, 0xff}), ErrorCode::Malformed, no_id});
  c.push_back({"200 nested arrays", std::string(200, '\x91') + '\x01', ErrorCode::Malformed, no_id});
  c.push_back({"stop nested one level too deep",
               submit_param("stop", [](Packer& pk) { pk.pack_array(1).pack_array(1).pack(std::string("x")); }),
               ErrorCode::Malformed, no_id});
  c.push_back({"trailing garbage", valid + "garbage", ErrorCode::Malformed, no_id});
  c.push_back({"two maps in one frame", valid + valid, ErrorCode::Malformed, no_id});
  c.push_back({"duplicate key", map_frame({{"v", val(1)}, {"type", val(std::string("info"))}, {"v", val(1)}}),
               ErrorCode::Malformed, no_id});
  c.push_back({"integer key", submit_with("params", [](Packer& pk) { pk.pack_map(1).pack(1).pack(2); }),
               ErrorCode::Malformed, id});
  c.push_back({"missing v", submit_with("v", nullptr), ErrorCode::InvalidRequest, id});
  c.push_back({"v = 2", submit_with("v", val(2)), ErrorCode::UnsupportedVersion, id});
  c.push_back({"v = \"1\"", submit_with("v", val(std::string("1"))), ErrorCode::UnsupportedVersion, id});
  c.push_back({"v = -1", submit_with("v", val(-1)), ErrorCode::UnsupportedVersion, id});
  c.push_back({"unknown type", submit_with("type", val(std::string("launch_missiles"))), ErrorCode::UnknownType, id});
  c.push_back({"type is an integer", submit_with("type", val(3)), ErrorCode::InvalidRequest, id});
  c.push_back({"missing type", submit_with("type", nullptr), ErrorCode::InvalidRequest, id});
  c.push_back({"missing id", submit_with("id", nullptr), ErrorCode::InvalidRequest, no_id});
  c.push_back({"id is an integer", submit_with("id", val(42)), ErrorCode::InvalidRequest, no_id});
  c.push_back({"id is empty", submit_with("id", val(std::string())), ErrorCode::InvalidRequest, no_id});
  c.push_back({"id of 257 bytes", submit_with("id", val(std::string(257, 'a'))), ErrorCode::InvalidRequest, no_id});
  c.push_back({"id is invalid UTF-8", submit_with("id", val(std::string("\xff\xfe"))), ErrorCode::InvalidRequest,
               no_id});
  c.push_back({"id is binary", submit_with("id", [](Packer& pk) { pk.pack_bin(2).pack_bin_body("ab", 2); }),
               ErrorCode::InvalidRequest, no_id});
  c.push_back({"prompt and prompt_ids both", submit_with("prompt_ids", val(std::vector<int>{1, 2})),
               ErrorCode::InvalidRequest, id});
  c.push_back({"neither prompt nor prompt_ids", submit_with("prompt", nullptr), ErrorCode::InvalidRequest, id});
  {
    Entries e = base_submit();
    e[3] = {"prompt_ids", [](Packer& pk) { pk.pack_array(2).pack(1).pack(std::string("two")); }};
    c.push_back({"prompt_ids holds a string", map_frame(e), ErrorCode::InvalidRequest, id});
    e[3] = {"prompt_ids", val(std::vector<int64_t>{1, -5})};
    c.push_back({"prompt_ids holds a negative id", map_frame(e), ErrorCode::InvalidParameter, id});
    e[3] = {"prompt_ids", val(std::vector<int64_t>{1, 1LL << 31})};
    c.push_back({"prompt_ids holds 2^31", map_frame(e), ErrorCode::InvalidParameter, id});
    e[3] = {"prompt_ids", val(std::vector<int64_t>{})};
    c.push_back({"prompt_ids empty", map_frame(e), ErrorCode::InvalidParameter, id});
    e[3] = {"prompt_ids", val(std::vector<int32_t>(1001, 5))};
    c.push_back({"prompt_ids beyond max_prompt_ids", map_frame(e), ErrorCode::PromptTooLong, id});
    e[3] = {"prompt_ids", val(std::string("1 2 3"))};
    c.push_back({"prompt_ids is a string", map_frame(e), ErrorCode::InvalidRequest, id});
  }
  c.push_back({"prompt is binary", submit_with("prompt", [](Packer& pk) { pk.pack_bin(3).pack_bin_body("abc", 3); }),
               ErrorCode::InvalidRequest, id});
  c.push_back({"prompt is invalid UTF-8", submit_with("prompt", val(std::string("ab\xc0\xaf"))),
               ErrorCode::InvalidRequest, id});
  c.push_back({"prompt is ext", submit_with("prompt", [](Packer& pk) { pk.pack_ext(1, 5).pack_ext_body("a", 1); }),
               ErrorCode::InvalidRequest, id});
  c.push_back({"params is an array", submit_with("params", val(std::vector<int>{1})), ErrorCode::InvalidRequest, id});
  c.push_back({"max_tokens \"ten\"", submit_with("params", map_writer({{"max_tokens", val(std::string("ten"))}})), ErrorCode::InvalidRequest,
               id});
  c.push_back({"duplicate key in params", submit_param("max_tokens", val(9)), ErrorCode::Malformed, id});
  c.push_back({"max_tokens 2^40", submit_with("params", map_writer({{"max_tokens", val(1LL << 40)}})),
               ErrorCode::InvalidParameter, id});
  c.push_back({"max_tokens uint64 max",
               submit_with("params", map_writer({{"max_tokens", val(std::numeric_limits<uint64_t>::max())}})),
               ErrorCode::InvalidParameter, id});
  c.push_back({"max_tokens 0", submit_with("params", map_writer({{"max_tokens", val(0)}})),
               ErrorCode::InvalidParameter, id});
  // (msgpack-cxx packs integral doubles as integers, so the float here must have a fraction.)
  c.push_back({"max_tokens as float", submit_with("params", map_writer({{"max_tokens", val(8.5)}})),
               ErrorCode::InvalidRequest, id});
  c.push_back({"negative temperature", submit_param("temperature", val(-0.5)), ErrorCode::InvalidParameter, id});
  c.push_back({"NaN temperature", submit_param("temperature", nan_value()), ErrorCode::InvalidParameter, id});
  c.push_back({"temperature 1e300", submit_param("temperature", val(1e300)), ErrorCode::InvalidParameter, id});
  c.push_back({"NaN top_p", submit_param("top_p", nan_value()), ErrorCode::InvalidParameter, id});
  c.push_back({"top_p 1.5", submit_param("top_p", val(1.5)), ErrorCode::InvalidParameter, id});
  c.push_back({"top_p 0", submit_param("top_p", val(0)), ErrorCode::InvalidParameter, id});
  c.push_back({"top_k -5", submit_param("top_k", val(-5)), ErrorCode::InvalidParameter, id});
  c.push_back({"top_k \"all\"", submit_param("top_k", val(std::string("all"))), ErrorCode::InvalidRequest, id});
  c.push_back({"negative seed", submit_param("seed", val(-1)), ErrorCode::InvalidParameter, id});
  c.push_back({"seed as string", submit_param("seed", val(std::string("42"))), ErrorCode::InvalidRequest, id});
  c.push_back({"stop is a string", submit_param("stop", val(std::string("\n"))), ErrorCode::InvalidRequest, id});
  c.push_back({"stop holds an integer",
               submit_param("stop", [](Packer& pk) { pk.pack_array(2).pack(std::string("a")).pack(3); }),
               ErrorCode::InvalidRequest, id});
  c.push_back({"17 stop strings", submit_param("stop", val(std::vector<std::string>(17, "x"))),
               ErrorCode::InvalidParameter, id});
  c.push_back({"empty stop string", submit_param("stop", val(std::vector<std::string>{""})),
               ErrorCode::InvalidParameter, id});
  c.push_back({"stop string of 1025 bytes", submit_param("stop", val(std::vector<std::string>{std::string(1025, 's')})),
               ErrorCode::InvalidParameter, id});
  c.push_back({"negative stop_token_id", submit_param("stop_token_ids", val(std::vector<int>{-1})),
               ErrorCode::InvalidParameter, id});
  c.push_back({"ignore_eos as integer", submit_param("ignore_eos", val(1)), ErrorCode::InvalidRequest, id});
  c.push_back({"unknown params field", submit_param("max_token", val(8)), ErrorCode::InvalidRequest, id});
  c.push_back({"unknown top-level field", submit_with("promt", val(std::string("x"))), ErrorCode::InvalidRequest, id});
  c.push_back({"stream \"yes\"", submit_with("stream", val(std::string("yes"))), ErrorCode::InvalidRequest, id});
  c.push_back({"priority 2^40", submit_with("priority", val(1LL << 40)), ErrorCode::InvalidParameter, id});
  c.push_back({"deadline_ms 0", submit_with("deadline_ms", val(0)), ErrorCode::InvalidParameter, id});
  c.push_back({"deadline_ms negative", submit_with("deadline_ms", val(-100)), ErrorCode::InvalidParameter, id});
  c.push_back({"deadline_ms as float", submit_with("deadline_ms", val(1.5)), ErrorCode::InvalidRequest, id});
  c.push_back({"cancel without id", map_frame({{"v", val(1)}, {"type", val(std::string("cancel"))}}),
               ErrorCode::InvalidRequest, no_id});
  c.push_back({"info with an extra field",
               map_frame({{"v", val(1)}, {"type", val(std::string("info"))}, {"x", val(1)}}),
               ErrorCode::InvalidRequest, no_id});
  c.push_back({"frame over the size limit", submit_with("prompt", val(std::string(70 * 1024, 'a'))),
               ErrorCode::FrameTooLarge, no_id});
  return c;
}

TEST(ProtocolHostile, EveryHostileFrameGetsItsErrorCode) {
  const auto cases = hostile_cases();
  ASSERT_GE(cases.size(), 30u);
  const ProtocolLimits limits = test_limits();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto decoded = decode_client_message(c.frame, limits);
    ASSERT_TRUE(std::holds_alternative<ProtocolError>(decoded)) << "accepted a hostile frame";
    const auto& e = std::get<ProtocolError>(decoded);
    EXPECT_EQ(error_code_name(e.code), std::string(error_code_name(c.expected))) << e.message;
    EXPECT_EQ(e.id, c.expected_id) << e.message;
    EXPECT_FALSE(e.message.empty());
    // The error reply itself is a valid server message.
    auto reply = decode_server_message(encode(e));
    EXPECT_TRUE(std::holds_alternative<ServerMessage>(reply));
  }
}

TEST(ProtocolHostile, BaseFramesAreValid) {
  // Guards the table above: its frames differ from an accepted frame only in the named defect.
  auto decoded = decode_client_message(map_frame(base_submit()), test_limits());
  ASSERT_TRUE(std::holds_alternative<ClientMessage>(decoded));
  EXPECT_EQ(std::get<SubmitRequest>(std::get<ClientMessage>(decoded)).params.max_tokens, 8);
  auto with_nil_seed = decode_client_message(submit_param("seed", [](Packer& pk) { pk.pack_nil(); }), test_limits());
  EXPECT_TRUE(std::holds_alternative<ClientMessage>(with_nil_seed));
  auto sixteen = decode_client_message(submit_param("stop", val(std::vector<std::string>(16, "x"))), test_limits());
  EXPECT_TRUE(std::holds_alternative<ClientMessage>(sixteen));
}

// Random truncations, bit flips and splices of valid frames: the decoder answers every one quickly.
TEST(ProtocolHostile, MutatedFramesNeverCrash) {
  SubmitRequest r;
  r.id = "fuzz";
  r.prompt = "The quick brown fox";
  r.params.stop = {"a", "b"};
  r.params.stop_token_ids = {1, 2, 3};
  r.params.seed = 9;
  r.deadline_ms = 10;
  const std::vector<std::string> seeds = {encode(r), encode(CancelRequest{"x"}), encode(InfoRequest{})};
  std::mt19937 rng(1234);
  const auto start = std::chrono::steady_clock::now();
  int errors = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string f = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits && !f.empty(); ++k) {
      switch (rng() % 4) {
        case 0: f[rng() % f.size()] = static_cast<char>(rng()); break;
        case 1: f.resize(rng() % f.size()); break;
        case 2: f.insert(f.begin() + static_cast<long>(rng() % (f.size() + 1)), static_cast<char>(rng())); break;
        case 3: f[rng() % f.size()] ^= static_cast<char>(1u << (rng() % 8)); break;
      }
    }
    auto decoded = decode_client_message(f, ProtocolLimits{});
    if (auto* e = std::get_if<ProtocolError>(&decoded)) {
      ++errors;
      EXPECT_FALSE(e->message.empty());
      EXPECT_NE(e->code, ErrorCode::Internal) << e->message;
    }
  }
  EXPECT_GT(errors, 10000);  // most mutations break the frame
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace tessera::bus
