// tessera-serving-bench: the same workload as tessera-executor-bench (a batch of N requests, each L random prompt ids
// and exactly M output tokens), sent through a running tessera-server over the bus. Comparing the two gives the
// runtime's overhead (actors + ZeroMQ + tokenizer shards) over the bare executor. Prints one JSON object.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bus/client.hpp"
#include "core/common/error.hpp"
#include "tools/bench/bench_stats.hpp"

namespace {

using Clock = std::chrono::steady_clock;

using tessera::bench::median;
using tessera::bench::percentile;

// A greedy request of `input_len` random prompt ids and exactly `output_len` output tokens.
tessera::bus::SubmitRequest fixed_length_request(std::string id, int input_len, int output_len, int vocab,
                                                 std::mt19937& rng) {
  tessera::bus::SubmitRequest r;
  r.id = std::move(id);
  std::vector<int32_t> prompt(input_len);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  r.prompt_ids = std::move(prompt);
  r.params.max_tokens = output_len;
  r.params.temperature = 0;
  r.params.ignore_eos = true;
  return r;
}

nlohmann::json summary(const std::vector<double>& v) {
  return {{"p50", percentile(v, 50)}, {"p90", percentile(v, 90)}, {"p99", percentile(v, 99)}, {"count", v.size()}};
}

// Closed loop: `concurrency` requests in flight until `total` have finished; client-side timestamps.
nlohmann::json closed_loop(tessera::bus::Client& client, int concurrency, int total, int input_len, int output_len,
                           int vocab, std::mt19937& rng) {
  struct Live {
    Clock::time_point submitted, last;
    bool first = true;
  };
  std::map<std::string, Live> live;
  std::vector<double> ttft_ms, itl_ms, e2e_ms;
  int submitted = 0, finished = 0;
  int64_t tokens = 0;
  auto submit = [&] {
    const tessera::bus::SubmitRequest r =
        fixed_length_request("c" + std::to_string(submitted++), input_len, output_len, vocab, rng);
    live[r.id] = Live{Clock::now(), Clock::now(), true};
    client.submit(r);
  };
  const auto start = Clock::now();
  while (submitted < std::min(concurrency, total)) submit();
  while (finished < total) {
    auto event = client.next_event(std::chrono::seconds(120));
    if (!event) throw tessera::Error("no event for 120 s");
    const auto now = Clock::now();
    if (auto* chunk = std::get_if<tessera::bus::TokenChunk>(&*event)) {
      Live& l = live.at(chunk->id);
      tokens += static_cast<int64_t>(chunk->ids.size());
      if (l.first) {
        ttft_ms.push_back(std::chrono::duration<double, std::milli>(now - l.submitted).count());
        l.first = false;
      } else {
        itl_ms.push_back(std::chrono::duration<double, std::milli>(now - l.last).count() / chunk->ids.size());
      }
      l.last = now;
    } else if (auto* error = std::get_if<tessera::bus::ErrorMessage>(&*event)) {
      throw tessera::Error("server error: " + error->message);
    } else if (auto* final = std::get_if<tessera::bus::FinalMessage>(&*event)) {
      e2e_ms.push_back(std::chrono::duration<double, std::milli>(now - live.at(final->id).submitted).count());
      live.erase(final->id);
      ++finished;
      if (submitted < total) submit();
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return {{"mode", "closed_loop"}, {"concurrency", concurrency}, {"num_requests", total}, {"input_len", input_len},
          {"output_len", output_len}, {"duration_s", seconds}, {"output_tokens", tokens},
          {"output_tokens_per_s", tokens / seconds}, {"ttft_ms", summary(ttft_ms)}, {"itl_ms", summary(itl_ms)},
          {"e2e_ms", summary(e2e_ms)}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tessera-serving-bench: a batch of fixed-length requests through a running server"};
  std::string endpoint;
  int batch = 8, input_len = 64, output_len = 32, repeat = 3, warmup = 1, vocab = 0;
  uint32_t seed = 1;
  int concurrency = 0, num_requests = 0;
  app.add_option("--server", endpoint, "Server endpoint")->required();
  app.add_option("--batch", batch, "Requests submitted together")->capture_default_str();
  app.add_option("--input-len", input_len, "Prompt tokens per request (random ids)")->capture_default_str();
  app.add_option("--output-len", output_len, "Output tokens per request (ignore_eos)")->capture_default_str();
  app.add_option("--repeat", repeat, "Measured rounds")->capture_default_str();
  app.add_option("--warmup", warmup, "Unmeasured rounds first")->capture_default_str();
  app.add_option("--seed", seed, "Prompt seed")->capture_default_str();
  app.add_option("--concurrency", concurrency, "Closed loop: requests kept in flight (instead of --batch rounds)");
  app.add_option("--num-requests", num_requests, "Closed loop: requests in all (default 4 x concurrency)");
  CLI11_PARSE(app, argc, argv);
  try {
    tessera::bus::Client client(endpoint);
    vocab = client.info(std::chrono::seconds(10)).vocab_size;
    std::mt19937 rng(seed);
    if (concurrency > 0) {
      if (warmup > 0) closed_loop(client, concurrency, concurrency, input_len, std::min(output_len, 8), vocab, rng);
      const nlohmann::json out = closed_loop(client, concurrency, num_requests > 0 ? num_requests : 4 * concurrency,
                                             input_len, output_len, vocab, rng);
      std::printf("%s\n", out.dump(2).c_str());
      return 0;
    }
    std::vector<double> round_s, ttft_ms, itl_ms;
    int64_t tokens = 0;
    for (int round = 0; round < warmup + repeat; ++round) {
      std::map<std::string, Clock::time_point> last_chunk;
      std::map<std::string, bool> first_seen;
      const auto start = Clock::now();
      for (int i = 0; i < batch; ++i) {
        client.submit(fixed_length_request(std::to_string(round) + "-" + std::to_string(i), input_len, output_len,
                                           vocab, rng));
      }
      int ended = 0;
      int64_t round_tokens = 0;
      while (ended < batch) {
        auto event = client.next_event(std::chrono::seconds(60));
        if (!event) throw tessera::Error("no event for 60 s");
        const auto now = Clock::now();
        if (auto* chunk = std::get_if<tessera::bus::TokenChunk>(&*event)) {
          round_tokens += static_cast<int64_t>(chunk->ids.size());
          if (round >= warmup) {
            if (!first_seen[chunk->id]) {
              ttft_ms.push_back(std::chrono::duration<double, std::milli>(now - start).count());
              first_seen[chunk->id] = true;
            } else {
              itl_ms.push_back(std::chrono::duration<double, std::milli>(now - last_chunk[chunk->id]).count());
            }
          }
          last_chunk[chunk->id] = now;
        } else if (auto* error = std::get_if<tessera::bus::ErrorMessage>(&*event)) {
          throw tessera::Error("server error: " + error->message);
        } else if (std::holds_alternative<tessera::bus::FinalMessage>(*event)) {
          ++ended;
        }
      }
      if (round >= warmup) {
        round_s.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        tokens += round_tokens;
      }
    }
    double total_s = 0;
    for (double s : round_s) total_s += s;
    nlohmann::json out = {{"server", endpoint},
                          {"batch", batch},
                          {"input_len", input_len},
                          {"output_len", output_len},
                          {"repeat", repeat},
                          {"tokens_per_s", tokens / total_s},
                          {"round_median_s", median(round_s)},
                          {"ttft_median_ms", median(ttft_ms)},
                          {"itl_median_ms", median(itl_ms)}};
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
