#include "core/serving/request_state.hpp"

#include <gtest/gtest.h>

#include <set>
#include <utility>

#include "core/common/error.hpp"

namespace tessera {
namespace {

using S = RequestState;
constexpr S kAll[] = {S::Waiting, S::Prefilling, S::Decoding, S::Preempted, S::Finished, S::Cancelled, S::Failed};

TEST(RequestState, OnlyTheDocumentedTransitionsAreLegal) {
  // The life cycle of request_state.hpp, written out edge by edge.
  const std::set<std::pair<S, S>> legal = {
      {S::Waiting, S::Prefilling},    {S::Waiting, S::Cancelled},     {S::Waiting, S::Failed},
      {S::Prefilling, S::Decoding},   {S::Prefilling, S::Preempted},  {S::Prefilling, S::Finished},
      {S::Prefilling, S::Cancelled},  {S::Prefilling, S::Failed},     {S::Decoding, S::Preempted},
      {S::Decoding, S::Finished},     {S::Decoding, S::Cancelled},    {S::Decoding, S::Failed},
      {S::Preempted, S::Prefilling},  {S::Preempted, S::Finished},    {S::Preempted, S::Cancelled},
      {S::Preempted, S::Failed},
  };
  for (S from : kAll) {
    for (S to : kAll) {
      const bool expected = legal.count({from, to}) > 0;
      EXPECT_EQ(is_legal_transition(from, to), expected) << request_state_name(from) << " -> " << request_state_name(to);
      if (expected) {
        EXPECT_EQ(transition(from, to, 1), to);
      } else {
        EXPECT_THROW(transition(from, to, 1), Error);
      }
    }
  }
}

TEST(RequestState, TerminalStatesAndNames) {
  EXPECT_TRUE(is_terminal(S::Finished));
  EXPECT_TRUE(is_terminal(S::Cancelled));
  EXPECT_TRUE(is_terminal(S::Failed));
  EXPECT_FALSE(is_terminal(S::Preempted));
  EXPECT_STREQ(request_state_name(S::Prefilling), "prefilling");
  try {
    transition(S::Finished, S::Decoding, 42);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "illegal request state transition finished -> decoding (sequence 42)");
  }
}

}  // namespace
}  // namespace tessera
