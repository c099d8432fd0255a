// ResponseStreams without actors: validation on open, admission, streamed text, stop strings, finals and errors.
#include <gtest/gtest.h>

#include "actors/response_streams.hpp"

namespace tessera {
namespace {

const std::string kData = TESSERA_FETCHED_DATA_DIR;

class ResponseStreamsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = std::make_shared<const Tokenizer>(
        Tokenizer::load(kData + "/llama3/tokenizer.json", kData + "/llama3/tokenizer_config.json"));
    limits_ = ModelLimits{tokenizer_->vocab_size(), 64, {128001}};
  }

  IncomingRequest request(uint64_t seq, const std::string& prompt, int max_tokens = 16) {
    IncomingRequest r;
    r.seq_id = seq;
    r.address = ClientAddress{"client-a", "req-" + std::to_string(seq)};
    r.prompt = prompt;
    r.params.max_tokens = max_tokens;
    r.arrival_s = 100.0;
    return r;
  }

  SequenceProgress tokens(uint64_t seq, std::vector<int32_t> ids, SequenceOutcome outcome = SequenceOutcome::None) {
    SequenceProgress p;
    p.seq_id = seq;
    p.tokens = std::move(ids);
    p.outcome = static_cast<uint8_t>(outcome);
    p.queue_s = 0.25;
    return p;
  }

  std::shared_ptr<const Tokenizer> tokenizer_;
  ModelLimits limits_;
};

template <class T>
const T& as(const Outbound& out) {
  return std::get<T>(out.message);
}

TEST_F(ResponseStreamsTest, OpenEncodesAndValidates) {
  ResponseStreams streams(tokenizer_, limits_);
  auto ok = streams.open(request(1, "Hello world"));
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(ok));
  EXPECT_EQ(std::get<PreparedRequest>(ok).prompt, tokenizer_->encode("Hello world", true));
  EXPECT_TRUE(streams.is_open(1));

  auto bad_id = request(2, "");
  bad_id.prompt.reset();
  bad_id.prompt_ids = {1, limits_.vocab_size};
  auto e1 = streams.open(bad_id);
  ASSERT_TRUE(std::holds_alternative<bus::ErrorMessage>(e1));
  EXPECT_EQ(std::get<bus::ErrorMessage>(e1).code, bus::ErrorCode::InvalidParameter);
  EXPECT_EQ(std::get<bus::ErrorMessage>(e1).id, "req-2");

  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += " word" + std::to_string(i);  // > 64 tokens
  auto e2 = streams.open(request(3, long_prompt, 4));
  ASSERT_TRUE(std::holds_alternative<bus::ErrorMessage>(e2));
  EXPECT_EQ(std::get<bus::ErrorMessage>(e2).code, bus::ErrorCode::PromptTooLong);

  auto e3 = streams.open(request(4, "Hi", 64));  // prompt + max_tokens over max_model_len 64
  ASSERT_TRUE(std::holds_alternative<bus::ErrorMessage>(e3));
  EXPECT_EQ(std::get<bus::ErrorMessage>(e3).code, bus::ErrorCode::PromptTooLong);

  auto bad_temp = request(5, "Hi");
  bad_temp.params.temperature = -2;
  auto e4 = streams.open(bad_temp);
  ASSERT_TRUE(std::holds_alternative<bus::ErrorMessage>(e4));
  EXPECT_NE(std::get<bus::ErrorMessage>(e4).message.find("temperature"), std::string::npos);

  ResponseStreams ids_only(nullptr, limits_);
  auto e5 = ids_only.open(request(6, "text needs a tokenizer"));
  ASSERT_TRUE(std::holds_alternative<bus::ErrorMessage>(e5));
  EXPECT_EQ(std::get<bus::ErrorMessage>(e5).code, bus::ErrorCode::InvalidRequest);
  EXPECT_EQ(streams.num_open(), 1u);
  EXPECT_EQ(ids_only.num_open(), 0u);
}

TEST_F(ResponseStreamsTest, AdmissionAcceptsOrEndsWithOneError) {
  ResponseStreams streams(tokenizer_, limits_);
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(streams.open(request(1, "a b c"))));
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(streams.open(request(2, "d e"))));
  auto accepted = streams.admitted(AdmissionResult{1, true, "", ""});
  ASSERT_TRUE(accepted.has_value());
  EXPECT_FALSE(accepted->terminal);
  EXPECT_EQ(as<bus::Accepted>(*accepted).prompt_tokens, static_cast<int32_t>(tokenizer_->encode("a b c", true).size()));
  auto rejected = streams.admitted(AdmissionResult{2, false, "overloaded", "queue full"});
  ASSERT_TRUE(rejected.has_value());
  EXPECT_TRUE(rejected->terminal);
  EXPECT_EQ(as<bus::ErrorMessage>(*rejected).code, bus::ErrorCode::Overloaded);
  EXPECT_FALSE(streams.is_open(2));
  EXPECT_FALSE(streams.admitted(AdmissionResult{2, false, "overloaded", ""}).has_value());  // never twice
}

TEST_F(ResponseStreamsTest, StreamsTextAndEndsWithOneFinal) {
  ResponseStreams streams(tokenizer_, limits_);
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(streams.open(request(1, "Say", 4))));
  const auto ids = tokenizer_->encode(" héllo wörld 😀", false);
  ASSERT_GE(ids.size(), 4u);
  std::string text;
  std::vector<int32_t> seen;
  for (size_t i = 0; i < 4; ++i) {
    const auto outcome = i == 3 ? SequenceOutcome::Length : SequenceOutcome::None;
    auto out = streams.progress(tokens(1, {ids[i]}, outcome), 101.0 + i);
    for (const Outbound& o : out.messages) {
      if (auto* chunk = std::get_if<bus::TokenChunk>(&o.message)) {
        text += chunk->text;
        seen.insert(seen.end(), chunk->ids.begin(), chunk->ids.end());
      }
    }
    if (i < 3) {
      EXPECT_TRUE(streams.is_open(1));
    } else {
      ASSERT_TRUE(out.messages.back().terminal);
      const auto& final = as<bus::FinalMessage>(out.messages.back());
      EXPECT_EQ(final.finish_reason, bus::FinishReason::Length);
      EXPECT_EQ(final.usage.completion_tokens, 4);
      EXPECT_DOUBLE_EQ(final.timings.ttft_s, 1.0);
      EXPECT_DOUBLE_EQ(final.timings.e2e_s, 4.0);
      EXPECT_DOUBLE_EQ(final.timings.queue_s, 0.25);
      EXPECT_FALSE(final.ids.has_value());
    }
  }
  const std::vector<int32_t> first4(ids.begin(), ids.begin() + 4);
  EXPECT_EQ(seen, first4);
  EXPECT_EQ(text, tokenizer_->decode(first4, true));
  EXPECT_FALSE(streams.is_open(1));
  EXPECT_TRUE(streams.progress(tokens(1, {ids[0]}), 200).messages.empty());  // late tokens are dropped
}

TEST_F(ResponseStreamsTest, StopStringCutsTheTextAndAsksTheSchedulerToStop) {
  ResponseStreams streams(tokenizer_, limits_);
  auto r = request(1, "Go", 30);
  r.params.stop = {"world"};
  r.stream = false;
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(streams.open(r)));
  const auto ids = tokenizer_->encode("Hello, world! More text", false);
  ResponseStreams::ProgressOutput last;
  size_t fed = 0;
  while (streams.is_open(1) && fed < ids.size()) last = streams.progress(tokens(1, {ids[fed++]}), 101.0);
  EXPECT_TRUE(last.stop_string_hit);
  ASSERT_EQ(last.messages.size(), 1u);  // stream = false: no chunks, just the final
  const auto& final = as<bus::FinalMessage>(last.messages[0]);
  EXPECT_EQ(final.finish_reason, bus::FinishReason::Stop);
  ASSERT_TRUE(final.text.has_value());
  EXPECT_EQ(*final.text, "Hello, ");
  ASSERT_TRUE(final.ids.has_value());
  EXPECT_EQ(final.ids->size(), fed);
}

TEST_F(ResponseStreamsTest, CancelAndErrorsAreTerminal) {
  ResponseStreams streams(tokenizer_, limits_);
  for (uint64_t seq : {1, 2, 3}) ASSERT_TRUE(std::holds_alternative<PreparedRequest>(streams.open(request(seq, "x"))));
  auto cancelled = streams.progress(tokens(1, {}, SequenceOutcome::Cancelled), 101);
  ASSERT_EQ(cancelled.messages.size(), 1u);
  EXPECT_EQ(as<bus::FinalMessage>(cancelled.messages[0]).finish_reason, bus::FinishReason::Cancelled);
  SequenceProgress failed = tokens(2, {}, SequenceOutcome::Error);
  failed.error_code = "deadline_exceeded";
  failed.error_message = "too late";
  auto error = streams.progress(failed, 101);
  ASSERT_EQ(error.messages.size(), 1u);
  EXPECT_TRUE(error.messages[0].terminal);
  EXPECT_EQ(as<bus::ErrorMessage>(error.messages[0]).code, bus::ErrorCode::DeadlineExceeded);
  auto shutdown = streams.fail(3, bus::ErrorCode::ShuttingDown, "bye");
  ASSERT_TRUE(shutdown.has_value());
  EXPECT_EQ(as<bus::ErrorMessage>(*shutdown).code, bus::ErrorCode::ShuttingDown);
  EXPECT_EQ(streams.num_open(), 0u);
  EXPECT_FALSE(streams.fail(3, bus::ErrorCode::ShuttingDown, "bye").has_value());
}

}  // namespace
}  // namespace tessera
