#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/sampling/stop_checker.hpp"

namespace tessera {
namespace {

constexpr int32_t kEos = 2;
constexpr int32_t kText = 100;  // an ordinary token id

struct FedText {
  std::string emitted;
  FinishReason reason = FinishReason::None;
  StopUpdate last;
  int steps = 0;
};

// Feeds text deltas (all as ordinary tokens) until the checker finishes; collects everything emitted.
FedText feed(StopChecker& checker, const std::vector<std::string>& deltas) {
  FedText run;
  for (const std::string& delta : deltas) {
    run.last = checker.append(kText, delta);
    run.emitted += run.last.text;
    ++run.steps;
    if (run.last.reason != FinishReason::None) break;
  }
  run.reason = run.last.reason;
  return run;
}

SamplingParams with_stops(std::vector<std::string> stops, int32_t max_tokens = 100) {
  SamplingParams p;
  p.stop = std::move(stops);
  p.max_tokens = max_tokens;
  return p;
}

TEST(StopChecker, StopStringSplitAcrossTokensIsNeverEmitted) {
  StopChecker checker(with_stops({"STOP"}), {kEos});
  StopUpdate u = checker.append(kText, "Hello S");
  EXPECT_EQ(u.reason, FinishReason::None);
  EXPECT_EQ(u.text, "Hello ");  // "S" may begin "STOP": held back
  u = checker.append(kText, "T");
  EXPECT_EQ(u.text, "");
  u = checker.append(kText, "OP and more");
  EXPECT_EQ(u.reason, FinishReason::Stop);
  EXPECT_EQ(u.text, "");  // neither the stop string nor what follows it
  ASSERT_TRUE(u.stop_string.has_value());
  EXPECT_EQ(*u.stop_string, "STOP");
  EXPECT_FALSE(u.stop_token.has_value());
  EXPECT_TRUE(checker.finished());
  EXPECT_THROW(checker.append(kText, "x"), Error);
}

TEST(StopChecker, TextBeforeStopStringInSameDeltaIsEmitted) {
  StopChecker checker(with_stops({"\n\n"}), {kEos});
  FedText run = feed(checker, {"line one", "\nline two\n\nignored"});
  EXPECT_EQ(run.reason, FinishReason::Stop);
  EXPECT_EQ(run.emitted, "line one\nline two");
}

TEST(StopChecker, HoldbackReleasedWhenPartialMatchBreaks) {
  StopChecker checker(with_stops({"</end>"}), {kEos});
  StopUpdate u = checker.append(kText, "a </e");
  EXPECT_EQ(u.text, "a ");
  u = checker.append(kText, "n");
  EXPECT_EQ(u.text, "");  // "</en" still a prefix
  u = checker.append(kText, "X");
  EXPECT_EQ(u.reason, FinishReason::None);
  EXPECT_EQ(u.text, "</enX");  // match broken: everything released
}

TEST(StopChecker, OverlappingRestartOfStopString) {
  // "aab" after "aaa...": the automaton must keep the right prefix when a partial match fails.
  StopChecker checker(with_stops({"aab"}), {kEos});
  StopUpdate u = checker.append(kText, "xaa");
  EXPECT_EQ(u.text, "x");
  u = checker.append(kText, "a");
  EXPECT_EQ(u.text, "a");  // "aaa": only the last "aa" can still begin "aab"
  u = checker.append(kText, "b");
  EXPECT_EQ(u.reason, FinishReason::Stop);
  EXPECT_EQ(u.text, "");
}

TEST(StopChecker, MultipleStopStringsFirstCompletedWins) {
  StopChecker checker(with_stops({"world", "lo w", "xyz"}), {kEos});
  FedText run = feed(checker, {"hel", "lo wor", "ld"});
  EXPECT_EQ(run.reason, FinishReason::Stop);
  EXPECT_EQ(*run.last.stop_string, "lo w");  // completes before "world"
  EXPECT_EQ(run.emitted, "hel");
}

TEST(StopChecker, SameEndPrefersLongestStopString) {
  StopChecker checker(with_stops({"b", "ab"}), {kEos});
  FedText run = feed(checker, {"xxa", "b"});
  EXPECT_EQ(*run.last.stop_string, "ab");
  EXPECT_EQ(run.emitted, "xx");
}

TEST(StopChecker, HeldTextHasPrefixOfAnyStopString) {
  StopChecker checker(with_stops({"abc", "bcd"}), {kEos});
  StopUpdate u = checker.append(kText, "zab");  // "ab" begins "abc", "b" begins "bcd": hold the longer
  EXPECT_EQ(u.text, "z");
  u = checker.append(kText, "cd");  // "abc" completes first (at 'c')
  EXPECT_EQ(u.reason, FinishReason::Stop);
  EXPECT_EQ(*u.stop_string, "abc");
  EXPECT_EQ(u.text, "");
}

TEST(StopChecker, StopsAtMaxTokensAndReleasesHeldText) {
  StopChecker checker(with_stops({"STOP"}, 3), {kEos});
  FedText run = feed(checker, {"one ", "two ", "ST", "never"});
  EXPECT_EQ(run.steps, 3);
  EXPECT_EQ(run.reason, FinishReason::Length);
  EXPECT_EQ(run.emitted, "one two ST");  // held prefix never became a stop string
  EXPECT_EQ(checker.num_tokens(), 3);
  EXPECT_STREQ(finish_reason_name(run.reason), "length");
}

TEST(StopChecker, MaxTokensOneWithoutStopStrings) {
  SamplingParams params;
  params.max_tokens = 1;
  StopChecker checker(params, {kEos});
  StopUpdate u = checker.append(kText, "hi");
  EXPECT_EQ(u.reason, FinishReason::Length);
  EXPECT_EQ(u.text, "hi");
}

TEST(StopChecker, StopStringOnLastAllowedTokenIsStop) {
  StopChecker checker(with_stops({"!"}, 2), {kEos});
  FedText run = feed(checker, {"a", "b!"});
  EXPECT_EQ(run.reason, FinishReason::Stop);
  EXPECT_EQ(run.emitted, "ab");
}

TEST(StopChecker, EosStopsUnlessIgnored) {
  StopChecker checker(with_stops({"STOP"}), {kEos, 7});
  checker.append(kText, "hi ST");
  StopUpdate u = checker.append(7, "</s>");
  EXPECT_EQ(u.reason, FinishReason::Stop);
  ASSERT_TRUE(u.stop_token.has_value());
  EXPECT_EQ(*u.stop_token, 7);
  EXPECT_EQ(u.text, "ST");  // held text released, EOS text not emitted
  EXPECT_EQ(checker.num_tokens(), 2);  // the EOS token counts as generated

  SamplingParams ignore = with_stops({}, 3);
  ignore.ignore_eos = true;
  StopChecker ignoring(ignore, {kEos});
  StopUpdate v = ignoring.append(kEos, "<eos>");
  EXPECT_EQ(v.reason, FinishReason::None);
  EXPECT_EQ(v.text, "<eos>");
  v = ignoring.append(kEos, "<eos>");
  EXPECT_EQ(v.reason, FinishReason::None);
  v = ignoring.append(kEos, "<eos>");
  EXPECT_EQ(v.reason, FinishReason::Length);
}

TEST(StopChecker, StopTokenIdsAlwaysStop) {
  SamplingParams params = with_stops({});
  params.stop_token_ids = {42};
  params.ignore_eos = true;
  StopChecker checker(params, {kEos});
  EXPECT_EQ(checker.append(kEos, "").reason, FinishReason::None);  // ignored EOS
  EXPECT_EQ(checker.append(kText, "text").text, "text");
  StopUpdate u = checker.append(42, "<|eot|>");
  EXPECT_EQ(u.reason, FinishReason::Stop);
  EXPECT_EQ(*u.stop_token, 42);
  EXPECT_EQ(u.text, "");
  EXPECT_STREQ(finish_reason_name(u.reason), "stop");
}

TEST(StopChecker, StopTokenOnLastAllowedTokenIsStop) {
  StopChecker checker(with_stops({}, 1), {kEos});
  EXPECT_EQ(checker.append(kEos, "").reason, FinishReason::Stop);
}

TEST(StopChecker, HeldTextStaysBoundedOverLongGeneration) {
  // Many tokens that repeatedly almost complete the stop string: output is exact and nothing is lost.
  StopChecker checker(with_stops({"<<END>>"}, 100000), {kEos});
  std::string expected, emitted;
  for (int i = 0; i < 20000; ++i) {
    std::string delta = (i % 2 == 0) ? "<<EN" : "D>x";  // "<<END>x" never completes
    expected += delta;
    StopUpdate u = checker.append(kText, delta);
    ASSERT_EQ(u.reason, FinishReason::None);
    emitted += u.text;
    ASSERT_LE(expected.size() - emitted.size(), std::string("<<END>>").size());
  }
  StopUpdate u = checker.append(kText, "<<END>> tail");
  EXPECT_EQ(u.reason, FinishReason::Stop);
  emitted += u.text;
  EXPECT_EQ(emitted, expected);
}

TEST(StopChecker, MultiByteUtf8StopString) {
  StopChecker checker(with_stops({"→ end"}), {kEos});
  std::string arrow = "→";  // 3 bytes; delivered split across tokens
  FedText run = feed(checker, {"a b ", arrow.substr(0, 1), arrow.substr(1), " en", "d"});
  EXPECT_EQ(run.reason, FinishReason::Stop);
  EXPECT_EQ(run.emitted, "a b ");
}

}  // namespace
}  // namespace tessera
