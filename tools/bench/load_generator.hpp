#pragma once
// Drives one phase of a benchmark through a bus::Client: sends the planned requests (closed loop: as many in flight
// as allowed; open loop / trace: each at its scheduled time), reads every server message, timestamps it with the
// monotonic clock and returns one RequestRecord per plan. Single-threaded: one event loop on the caller's thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bus/client.hpp"
#include "tools/bench/request_record.hpp"
#include "tools/bench/workload.hpp"

namespace tessera::bench {

struct LoadOptions {
  // Closed loop (plans without arrival_s): the concurrency, >= 1. Open loop: a cap on requests in flight
  // (a request due while the cap is reached waits, and its send lag shows it); 0 = no cap.
  int32_t max_in_flight = 1;
  std::vector<int32_t> vocabulary;  // prompt ids are drawn from these
  uint64_t seed = 0;                // prompt ids (and sampling seeds) derive from it and the request index
  float temperature = 0;            // sampling temperature of every request (0 = greedy)
  std::string id_prefix = "r";      // request id = prefix + plan index
  // With requests in flight and no server message for this long, the phase fails (tessera::Error).
  std::chrono::milliseconds idle_timeout{60000};
};

// Live counters, for the progress line.
struct PhaseProgress {
  int64_t total = 0, sent = 0, completed = 0, failed = 0, in_flight = 0, output_tokens = 0;
  double elapsed_s = 0;
};

// The tool's own cost during a phase, to show it is not the bottleneck.
struct ClientLoad {
  double wall_s = 0;     // phase start -> last request ended
  double cpu_s = 0;      // process CPU time (user + system, ZeroMQ's I/O thread included) over the phase
  double busy_s = 0;     // time the event loop spent handling messages and sending, i.e. not waiting in poll
  int64_t messages = 0;  // server messages read
  int32_t max_in_flight_seen = 0;
};

struct PhaseResult {
  std::vector<RequestRecord> records;  // one per plan, in plan order
  ClientLoad client;
};

// Runs `plans` to the end: every request ends with a final or an error reply. Throws tessera::Error when the
// server goes silent for options.idle_timeout, when a reply cannot be decoded, or on an error reply without a
// request id (which means the tool sent something malformed). `progress` (optional) is called about every 100 ms
// and once at the end, on this thread.
PhaseResult run_phase(bus::Client& client, const std::vector<RequestPlan>& plans, const LoadOptions& options,
                      const std::function<void(const PhaseProgress&)>& progress = {});

}  // namespace tessera::bench
