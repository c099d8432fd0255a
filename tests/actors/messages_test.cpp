// Every actor message packs and unpacks with msgpack unchanged, so any actor can later live behind the bus.
#include <gtest/gtest.h>
#include <msgpack.hpp>

#include "actors/messages.hpp"
#include "core/serving/step.hpp"

namespace tessera {
namespace {

template <class T>
T round_trip(const T& value) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, value);
  const msgpack::object_handle handle = msgpack::unpack(buffer.data(), buffer.size());
  return handle.get().as<T>();
}

TEST(ActorMessages, StepStructsRoundTrip) {
  StepPlan plan;
  plan.step_id = 42;
  ScheduledSequence seq;
  seq.seq_id = 7;
  seq.tokens = {1, 2, 3};
  seq.num_cached = 16;
  seq.new_blocks = 1;
  seq.block_table = {5, 9};
  seq.sample = true;
  seq.sampling = SamplingSpec{0.7f, 40, 0.9f, 123456789012345ULL};
  plan.sequences = {seq};
  plan.release_kv = {3, 4};
  plan.release_state = {4};
  const StepPlan back = round_trip(plan);
  EXPECT_EQ(back.step_id, 42u);
  ASSERT_EQ(back.sequences.size(), 1u);
  EXPECT_EQ(back.sequences[0].tokens, seq.tokens);
  EXPECT_EQ(back.sequences[0].block_table, seq.block_table);
  EXPECT_EQ(back.sequences[0].num_cached, 16);
  EXPECT_TRUE(back.sequences[0].sample);
  EXPECT_EQ(back.sequences[0].sampling.seed, 123456789012345ULL);
  EXPECT_FLOAT_EQ(back.sequences[0].sampling.top_p, 0.9f);
  EXPECT_EQ(back.release_kv, plan.release_kv);
  EXPECT_EQ(back.release_state, plan.release_state);

  StepResult result{42, {{7, 99}}, "", 0.5};
  const StepResult r = round_trip(result);
  ASSERT_EQ(r.tokens.size(), 1u);
  EXPECT_EQ(r.tokens[0].token, 99);
  EXPECT_DOUBLE_EQ(r.execute_seconds, 0.5);
}

TEST(ActorMessages, RequestPathStructsRoundTrip) {
  IncomingRequest in;
  in.seq_id = 3;
  in.address = ClientAddress{std::string("\0\x01id", 4), "req-1"};
  in.prompt = "héllo";
  in.params.temperature = 0.5f;
  in.params.seed = 77;
  in.params.stop = {"\n\n", "END"};
  in.params.stop_token_ids = {2};
  in.params.ignore_eos = true;
  in.deadline_ms = 1500;
  in.arrival_s = 12.25;
  const IncomingRequest b = round_trip(in);
  EXPECT_EQ(b.address.client, in.address.client);
  EXPECT_EQ(b.prompt, in.prompt);
  EXPECT_EQ(b.params.seed, std::optional<uint64_t>(77));
  EXPECT_EQ(b.params.stop, in.params.stop);
  EXPECT_TRUE(b.params.ignore_eos);
  EXPECT_EQ(b.deadline_ms, std::optional<int64_t>(1500));

  AdmitRequest admit{3, 1, {1, 2}, in.params, 5, 12.25, 13.75};
  const AdmitRequest a = round_trip(admit);
  EXPECT_EQ(a.prompt, admit.prompt);
  EXPECT_EQ(a.priority, 5);
  EXPECT_EQ(a.deadline_s, std::optional<double>(13.75));

  ShardProgress progress{{SequenceProgress{3, {10, 11}, static_cast<uint8_t>(SequenceOutcome::Length), "", "", 0.01}}};
  const ShardProgress p = round_trip(progress);
  ASSERT_EQ(p.sequences.size(), 1u);
  EXPECT_EQ(p.sequences[0].tokens, (std::vector<int32_t>{10, 11}));
  EXPECT_EQ(p.sequences[0].outcome, static_cast<uint8_t>(SequenceOutcome::Length));

  const AdmissionResult ad = round_trip(AdmissionResult{3, false, "overloaded", "full"});
  EXPECT_EQ(ad.error_code, "overloaded");
  const AbortSequence ab = round_trip(AbortSequence{3, static_cast<uint8_t>(SequenceOutcome::Cancelled), "client_lost", "", false});
  EXPECT_EQ(ab.error_code, "client_lost");
}

}  // namespace
}  // namespace tessera
