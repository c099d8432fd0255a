#pragma once
// CAF registration of Tessera's messages. Inside one process CAF passes them by value without serializing
// (CAF_ALLOW_UNSAFE_MESSAGE_TYPE); across processes they travel as msgpack (MSGPACK_DEFINE_MAP on each struct),
// which is the bus's format, so one definition serves both. Include this only in actor translation units: CAF
// headers are slow to compile.
#include <caf/all.hpp>

#include "actors/messages.hpp"
#include "core/serving/step.hpp"

namespace tessera {

// KV-block manager: free these sequences' blocks now (the scheduler had no step to carry them).
struct KvFree {
  std::vector<uint64_t> seq_ids;
  MSGPACK_DEFINE_MAP(seq_ids)
};

// Wiring at start-up (local only, never crosses processes).
struct ShardList {
  std::vector<caf::actor> shards;
};

using free_atom = caf::atom_constant<caf::atom("free")>;
using kick_atom = caf::atom_constant<caf::atom("kick")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using shards_atom = caf::atom_constant<caf::atom("shards")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
// Scheduler → KV-block manager → executor: answer every step still held back (no further plan is coming now).
using flush_atom = caf::atom_constant<caf::atom("flush")>;

}  // namespace tessera

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::StepPlan)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::StepResult)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::IncomingRequest)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::ShardProgress)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::AdmissionResult)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::AbortSequence)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::AdmitRequest)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::KvFree)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tessera::ShardList)
