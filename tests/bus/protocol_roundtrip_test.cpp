// Every message type survives encode -> decode, and the bytes match the msgpack format PROTOCOL.md describes.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "bus/protocol.hpp"

namespace tessera::bus {
namespace {

ClientMessage decode_ok(const std::string& frame) {
  auto decoded = decode_client_message(frame, ProtocolLimits{});
  if (auto* e = std::get_if<ProtocolError>(&decoded)) {
    ADD_FAILURE() << error_code_name(e->code) << ": " << e->message;
    return InfoRequest{};
  }
  return std::get<ClientMessage>(decoded);
}

ServerMessage decode_server_ok(const std::string& frame) {
  auto decoded = decode_server_message(frame);
  if (auto* e = std::get_if<ErrorMessage>(&decoded)) {
    ADD_FAILURE() << e->message;
    return Heartbeat{};
  }
  return std::get<ServerMessage>(decoded);
}

TEST(ProtocolRoundTrip, SubmitWithPromptAndAllParams) {
  SubmitRequest r;
  r.id = "req-ü-1";
  r.prompt = "Hello, world";
  r.params.max_tokens = 77;
  r.params.temperature = 0.5f;
  r.params.top_k = 40;
  r.params.top_p = 0.9f;
  r.params.seed = 18446744073709551615ull;
  r.params.stop = {"\n\n", "END"};
  r.params.stop_token_ids = {2, 128009};
  r.params.ignore_eos = true;
  r.stream = false;
  r.priority = -3;
  r.deadline_ms = 1500;
  auto back = std::get<SubmitRequest>(decode_ok(encode(r)));
  EXPECT_EQ(back.id, r.id);
  EXPECT_EQ(back.prompt, r.prompt);
  EXPECT_FALSE(back.prompt_ids.has_value());
  EXPECT_EQ(back.params.max_tokens, 77);
  EXPECT_EQ(back.params.temperature, 0.5f);
  EXPECT_EQ(back.params.top_k, 40);
  EXPECT_EQ(back.params.top_p, 0.9f);
  EXPECT_EQ(back.params.seed, r.params.seed);
  EXPECT_EQ(back.params.stop, r.params.stop);
  EXPECT_EQ(back.params.stop_token_ids, r.params.stop_token_ids);
  EXPECT_TRUE(back.params.ignore_eos);
  EXPECT_FALSE(back.stream);
  EXPECT_EQ(back.priority, -3);
  EXPECT_EQ(back.deadline_ms, 1500);
}

TEST(ProtocolRoundTrip, SubmitWithPromptIdsAndDefaults) {
  SubmitRequest r;
  r.id = "a";
  r.prompt_ids = std::vector<int32_t>{1, 0, 2147483647, 15043};
  auto back = std::get<SubmitRequest>(decode_ok(encode(r)));
  EXPECT_EQ(back.prompt_ids, r.prompt_ids);
  EXPECT_FALSE(back.prompt.has_value());
  EXPECT_TRUE(back.stream);
  EXPECT_EQ(back.priority, 0);
  EXPECT_FALSE(back.deadline_ms.has_value());
  EXPECT_FALSE(back.params.seed.has_value());
  EXPECT_EQ(back.params.max_tokens, SamplingParams{}.max_tokens);
}

TEST(ProtocolRoundTrip, CancelAndInfo) {
  auto cancel = std::get<CancelRequest>(decode_ok(encode(CancelRequest{"xyz"})));
  EXPECT_EQ(cancel.id, "xyz");
  EXPECT_TRUE(std::holds_alternative<InfoRequest>(decode_ok(encode(InfoRequest{}))));
  EXPECT_TRUE(std::holds_alternative<CancelRequest>(decode_ok(encode(ClientMessage{CancelRequest{"q"}}))));
}

// Hand-assembled msgpack (independent of the encoder): fixmap(2) "v" 1 "type" "info".
TEST(ProtocolRoundTrip, HandWrittenInfoFrameDecodes) {
  const std::string frame("\x82\xa1v\x01\xa4type\xa4info", 14);
  EXPECT_TRUE(std::holds_alternative<InfoRequest>(decode_ok(frame)));
  EXPECT_EQ(encode(InfoRequest{}), frame);
}

// What a Python client sends: integer temperature 0, nil seed, minimal params.
TEST(ProtocolRoundTrip, HandWrittenSubmitWithIntegerTemperatureAndNilSeed) {
  // {"v":1,"type":"submit","id":"r","prompt":"hi","params":{"temperature":0,"seed":nil}}
  const char raw[] = "\x85\xa1v\x01\xa4type\xa6submit\xa2id\xa1r\xa6prompt\xa2hi\xa6params\x82"
                     "\xabtemperature\x00\xa4seed\xc0";
  const std::string frame(raw, sizeof raw - 1);  // the literal holds a NUL byte
  ASSERT_EQ(frame.size(), 58u);
  auto r = std::get<SubmitRequest>(decode_ok(frame));
  EXPECT_EQ(r.params.temperature, 0.0f);
  EXPECT_TRUE(r.params.is_greedy());
  EXPECT_FALSE(r.params.seed.has_value());
  EXPECT_EQ(r.prompt, "hi");
}

TEST(ProtocolRoundTrip, ServerMessages) {
  auto a = std::get<Accepted>(decode_server_ok(encode(Accepted{"r1", 12})));
  EXPECT_EQ(a.id, "r1");
  EXPECT_EQ(a.prompt_tokens, 12);

  auto t = std::get<TokenChunk>(decode_server_ok(encode(TokenChunk{"r1", {5, -1, 7}, "abc"})));
  EXPECT_EQ(t.id, "r1");
  EXPECT_EQ(t.ids, (std::vector<int32_t>{5, -1, 7}));
  EXPECT_EQ(t.text, "abc");

  FinalMessage f{"r1", FinishReason::Length, {12, 30}, {0.25, 0.5, 1.75}, std::vector<int32_t>{1, 2}, "xy"};
  auto fb = std::get<FinalMessage>(decode_server_ok(encode(f)));
  EXPECT_EQ(fb.id, "r1");
  EXPECT_EQ(fb.finish_reason, FinishReason::Length);
  EXPECT_EQ(fb.usage.prompt_tokens, 12);
  EXPECT_EQ(fb.usage.completion_tokens, 30);
  EXPECT_EQ(fb.timings.queue_s, 0.25);
  EXPECT_EQ(fb.timings.ttft_s, 0.5);
  EXPECT_EQ(fb.timings.e2e_s, 1.75);
  EXPECT_EQ(fb.ids, f.ids);
  EXPECT_EQ(fb.text, f.text);

  FinalMessage streamed{"r2", FinishReason::Cancelled, {}, {}, std::nullopt, std::nullopt};
  auto sb = std::get<FinalMessage>(decode_server_ok(encode(streamed)));
  EXPECT_EQ(sb.finish_reason, FinishReason::Cancelled);
  EXPECT_FALSE(sb.ids.has_value());
  EXPECT_FALSE(sb.text.has_value());

  auto e = std::get<ErrorMessage>(decode_server_ok(encode(ErrorMessage{"r3", ErrorCode::Overloaded, "busy"})));
  EXPECT_EQ(e.id, "r3");
  EXPECT_EQ(e.code, ErrorCode::Overloaded);
  EXPECT_EQ(e.message, "busy");
  auto e2 = std::get<ErrorMessage>(decode_server_ok(encode(ErrorMessage{std::nullopt, ErrorCode::Malformed, "x"})));
  EXPECT_FALSE(e2.id.has_value());

  InfoReply info{"tiny", 32000, 2048, 100, 16, 1600, 64, true, 1, 37, 5, 9};
  auto ib = std::get<InfoReply>(decode_server_ok(encode(info)));
  EXPECT_EQ(ib.model, "tiny");
  EXPECT_EQ(ib.vocab_size, 32000);
  EXPECT_EQ(ib.max_model_len, 2048);
  EXPECT_EQ(ib.kv_blocks, 100);
  EXPECT_EQ(ib.block_size, 16);
  EXPECT_EQ(ib.kv_capacity_tokens, 1600);
  EXPECT_EQ(ib.max_num_seqs, 64);
  EXPECT_TRUE(ib.ready);
  EXPECT_EQ(ib.protocol_version, 1);
  EXPECT_EQ(ib.kv_blocks_used, 37);
  EXPECT_EQ(ib.requests_running, 5);
  EXPECT_EQ(ib.requests_waiting, 9);

  EXPECT_TRUE(std::holds_alternative<Heartbeat>(decode_server_ok(encode(Heartbeat{}))));
  EXPECT_TRUE(std::holds_alternative<Heartbeat>(decode_server_ok(encode(ServerMessage{Heartbeat{}}))));
}

TEST(ProtocolRoundTrip, EveryErrorCodeHasAUniqueWireName) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::ShuttingDown); ++c) {
    const auto code = static_cast<ErrorCode>(c);
    auto parsed = parse_error_code(error_code_name(code));
    ASSERT_TRUE(parsed.has_value()) << error_code_name(code);
    EXPECT_EQ(*parsed, code);
    auto back = std::get<ErrorMessage>(decode_server_ok(encode(ErrorMessage{"i", code, "m"})));
    EXPECT_EQ(back.code, code);
  }
  EXPECT_FALSE(parse_error_code("no_such_code").has_value());
}

TEST(ProtocolRoundTrip, ClientMessagesAreNotServerMessages) {
  auto decoded = decode_server_message(encode(CancelRequest{"x"}));
  ASSERT_TRUE(std::holds_alternative<ErrorMessage>(decoded));
  EXPECT_EQ(std::get<ErrorMessage>(decoded).code, ErrorCode::Malformed);
  auto decoded2 = decode_client_message(encode(Accepted{"x", 1}), ProtocolLimits{});
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(decoded2));
  EXPECT_EQ(std::get<ProtocolError>(decoded2).code, ErrorCode::UnknownType);
  EXPECT_EQ(std::get<ProtocolError>(decoded2).id, "x");
}

TEST(ProtocolRoundTrip, CheckSubmitMatchesDecoder) {
  SubmitRequest r;
  r.id = "k";
  r.prompt = "p";
  EXPECT_FALSE(check_submit(r, ProtocolLimits{}).has_value());
  r.params.top_p = 0.0f;
  auto err = check_submit(r, ProtocolLimits{});
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, ErrorCode::InvalidParameter);
  EXPECT_EQ(err->id, "k");
  EXPECT_NE(err->message.find("top_p"), std::string::npos);
  r.params.top_p = 1.0f;
  r.prompt_ids = std::vector<int32_t>{1};
  EXPECT_EQ(check_submit(r, ProtocolLimits{})->code, ErrorCode::InvalidRequest);
}

}  // namespace
}  // namespace tessera::bus
