#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/sampling/sampling_params.hpp"

namespace tessera {
namespace {

constexpr int32_t kVocab = 100;

// Returns the message of the tessera::Error that validate() throws (fails the test if none).
std::string rejection(const SamplingParams& params, int32_t vocab = kVocab) {
  try {
    params.validate(vocab);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "validate() accepted invalid parameters";
  return "";
}

void expect_contains(const std::string& message, const std::string& part) {
  EXPECT_NE(message.find(part), std::string::npos) << "message: \"" << message << "\" lacks \"" << part << "\"";
}

TEST(SamplingParams, DefaultsAreValid) {
  SamplingParams params;
  EXPECT_NO_THROW(params.validate(kVocab));
  EXPECT_EQ(params.temperature, 1.0f);
  EXPECT_EQ(params.top_p, 1.0f);
  EXPECT_GE(params.max_tokens, 1);
  EXPECT_FALSE(params.is_greedy());
}

TEST(SamplingParams, AcceptsBoundaryValues) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.top_k = 0;
  params.top_p = 1.0f;
  params.max_tokens = 1;
  params.stop_token_ids = {0, kVocab - 1};
  params.stop = std::vector<std::string>(SamplingParams::kMaxStopStrings, "x");
  EXPECT_NO_THROW(params.validate(kVocab));
  EXPECT_TRUE(params.is_greedy());
  params.top_k = -1;
  EXPECT_NO_THROW(params.validate(kVocab));
  params.top_k = kVocab * 10;  // larger than the vocabulary: clamped, not an error
  EXPECT_NO_THROW(params.validate(kVocab));
  params.top_p = 1e-6f;
  EXPECT_NO_THROW(params.validate(kVocab));
}

TEST(SamplingParams, TemperatureErrorsNameTheParameter) {
  SamplingParams params;
  params.temperature = -1.0f;
  std::string message = rejection(params);
  expect_contains(message, "temperature");
  expect_contains(message, ">= 0");
  expect_contains(message, "(got -1)");
  params.temperature = std::numeric_limits<float>::quiet_NaN();
  expect_contains(rejection(params), "temperature");
  expect_contains(rejection(params), "nan");
  params.temperature = std::numeric_limits<float>::infinity();
  expect_contains(rejection(params), "temperature");
}

TEST(SamplingParams, TopPErrorsNameTheParameter) {
  SamplingParams params;
  for (float bad : {1.5f, 0.0f, -0.5f, std::numeric_limits<float>::quiet_NaN(), INFINITY}) {
    params.top_p = bad;
    std::string message = rejection(params);
    expect_contains(message, "top_p must be in (0, 1]");
  }
  params.top_p = 1.5f;
  expect_contains(rejection(params), "(got 1.5)");
}

TEST(SamplingParams, TopKErrorNamesTheParameter) {
  SamplingParams params;
  params.top_k = -2;
  std::string message = rejection(params);
  expect_contains(message, "top_k");
  expect_contains(message, "(got -2)");
}

TEST(SamplingParams, MaxTokensErrorNamesTheParameter) {
  SamplingParams params;
  for (int32_t bad : {0, -3}) {
    params.max_tokens = bad;
    std::string message = rejection(params);
    expect_contains(message, "max_tokens must be >= 1");
    expect_contains(message, "(got " + std::to_string(bad) + ")");
  }
}

TEST(SamplingParams, StopTokenIdsMustBeInVocabulary) {
  SamplingParams params;
  params.stop_token_ids = {5, kVocab};
  std::string message = rejection(params);
  expect_contains(message, "stop_token_ids[1]");
  expect_contains(message, "[0, 100)");
  expect_contains(message, "(got 100)");
  params.stop_token_ids = {-1};
  expect_contains(rejection(params), "stop_token_ids[0]");
}

TEST(SamplingParams, StopStringsMustBeNonEmptyAndFew) {
  SamplingParams params;
  params.stop = {"ok", ""};
  std::string message = rejection(params);
  expect_contains(message, "stop[1]");
  expect_contains(message, "non-empty");
  params.stop = std::vector<std::string>(SamplingParams::kMaxStopStrings + 1, "x");
  message = rejection(params);
  expect_contains(message, "stop must hold at most 16");
  expect_contains(message, "(got 17)");
}

TEST(SamplingParams, VocabSizeMustBePositive) {
  SamplingParams params;
  expect_contains(rejection(params, 0), "vocab_size");
}

}  // namespace
}  // namespace tessera
