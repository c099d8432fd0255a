#include "tools/bench/load_generator.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/common/error.hpp"

namespace tessera::bench {

namespace {

using Clock = std::chrono::steady_clock;

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

class PhaseRunner {
 public:
  PhaseRunner(bus::Client& client, const std::vector<RequestPlan>& plans, const LoadOptions& options,
              const std::function<void(const PhaseProgress&)>& progress)
      : client_(client), plans_(plans), options_(options), progress_(progress) {
    if (options.max_in_flight < 0) throw Error("max_in_flight must be >= 0");
    closed_loop_ = !plans.empty() && !plans.front().arrival_s;
    for (const RequestPlan& plan : plans) {
      if (plan.arrival_s.has_value() == closed_loop_)
        throw Error("run_phase: plans mix scheduled and unscheduled requests");
    }
    if (closed_loop_ && options.max_in_flight < 1) throw Error("a closed loop needs a concurrency >= 1");
    result_.records.resize(plans.size());
    by_id_.reserve(plans.size());
  }

  PhaseResult run() {
    start_ = Clock::now();
    const double cpu_start = process_cpu_seconds();
    last_message_ = start_;
    last_progress_ = start_;
    while (done_ < static_cast<int64_t>(plans_.size())) {
      const Clock::time_point loop_start = Clock::now();
      send_due(loop_start);
      const Clock::time_point before_wait = Clock::now();
      result_.client.busy_s += seconds(before_wait - loop_start);
      std::optional<bus::ServerEvent> event = client_.next_event(wait_budget(before_wait));
      const Clock::time_point now = Clock::now();
      if (event) {
        last_message_ = now;
        ++result_.client.messages;
        handle(*event, now);
        result_.client.busy_s += seconds(Clock::now() - now);
      } else if (in_flight_ > 0 && now - last_message_ > options_.idle_timeout) {
        throw Error("no reply from the server for " + std::to_string(options_.idle_timeout.count()) + " ms with " +
                    std::to_string(in_flight_) + " requests in flight");
      }
      if (progress_ && now - last_progress_ >= std::chrono::milliseconds(100)) report_progress(now);
    }
    const Clock::time_point end = Clock::now();
    result_.client.wall_s = seconds(end - start_);
    result_.client.cpu_s = process_cpu_seconds() - cpu_start;
    if (progress_) report_progress(end);
    return std::move(result_);
  }

 private:
  static double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

  bool slot_free() const { return options_.max_in_flight == 0 || in_flight_ < options_.max_in_flight; }

  void send_due(Clock::time_point now) {
    while (next_ < plans_.size() && slot_free()) {
      const RequestPlan& plan = plans_[next_];
      if (plan.arrival_s && seconds(now - start_) < *plan.arrival_s) {
        now = Clock::now();
        if (seconds(now - start_) < *plan.arrival_s) return;
      }
      send(next_++);
    }
  }

  void send(size_t i) {
    const RequestPlan& plan = plans_[i];
    bus::SubmitRequest request;
    request.id = options_.id_prefix + std::to_string(plan.index);
    request.prompt_ids = make_prompt_ids(plan.input_len, options_.vocabulary, options_.seed, plan.index);
    request.params.max_tokens = plan.output_len;
    request.params.ignore_eos = true;  // exactly output_len tokens
    request.params.temperature = options_.temperature;
    request.params.seed = options_.seed + static_cast<uint64_t>(plan.index);
    RequestRecord& record = result_.records[i];
    record.id = request.id;
    record.plan = plan;
    if (!by_id_.emplace(request.id, i).second) throw Error("duplicate request id '" + request.id + "' in one phase");
    record.send_s = seconds(Clock::now() - start_);
    client_.submit(request);
    ++in_flight_;
    result_.client.max_in_flight_seen = std::max(result_.client.max_in_flight_seen, in_flight_);
  }

  // How long next_event() may block: until the next scheduled send, or a progress tick.
  std::chrono::milliseconds wait_budget(Clock::time_point now) const {
    std::chrono::milliseconds budget(100);
    if (next_ < plans_.size() && slot_free() && plans_[next_].arrival_s) {
      const double until_s = *plans_[next_].arrival_s - seconds(now - start_);
      // Whole milliseconds only (ZeroMQ's poll granularity): under 1 ms left, poll without blocking.
      budget = std::min(budget, std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, std::floor(until_s * 1e3)))));
    }
    return budget;
  }

  void handle(bus::ServerEvent& event, Clock::time_point now) {
    if (std::holds_alternative<bus::InfoReply>(event)) return;
    const std::string id = bus::event_request_id(event);
    if (auto* error = std::get_if<bus::ErrorMessage>(&event); error && !error->id)
      throw Error(std::string("the server rejected a frame without a usable id: ") + bus::error_code_name(error->code) +
                  ": " + error->message);
    const auto found = by_id_.find(id);
    if (found == by_id_.end()) return;  // not a request of this phase
    RequestRecord& record = result_.records[found->second];
    if (record.end_s) return;  // the protocol sends nothing after the end; ignore it if a server does
    const double t = seconds(now - start_);
    if (auto* accepted = std::get_if<bus::Accepted>(&event)) {
      record.prompt_tokens = accepted->prompt_tokens;
    } else if (auto* chunk = std::get_if<bus::TokenChunk>(&event)) {
      if (chunk->ids.empty()) return;
      record.chunks.push_back({t, static_cast<int32_t>(chunk->ids.size())});
      output_tokens_ += static_cast<int64_t>(chunk->ids.size());
    } else if (auto* final = std::get_if<bus::FinalMessage>(&event)) {
      record.end_s = t;
      record.finish_reason = bus::finish_reason_name(final->finish_reason);
      record.usage_completion_tokens = final->usage.completion_tokens;
      if (!record.prompt_tokens) record.prompt_tokens = final->usage.prompt_tokens;
      finish(false);
    } else if (auto* error = std::get_if<bus::ErrorMessage>(&event)) {
      record.end_s = t;
      record.error_code = bus::error_code_name(error->code);
      record.error_message = error->message;
      finish(true);
    }
  }

  void finish(bool failed) {
    --in_flight_;
    ++done_;
    if (failed) ++failed_;
  }

  void report_progress(Clock::time_point now) {
    last_progress_ = now;
    PhaseProgress p;
    p.total = static_cast<int64_t>(plans_.size());
    p.sent = static_cast<int64_t>(next_);
    p.completed = done_ - failed_;
    p.failed = failed_;
    p.in_flight = in_flight_;
    p.output_tokens = output_tokens_;
    p.elapsed_s = seconds(now - start_);
    progress_(p);
  }

  bus::Client& client_;
  const std::vector<RequestPlan>& plans_;
  const LoadOptions& options_;
  const std::function<void(const PhaseProgress&)>& progress_;
  bool closed_loop_ = true;
  PhaseResult result_;
  std::unordered_map<std::string, size_t> by_id_;
  Clock::time_point start_, last_message_, last_progress_;
  size_t next_ = 0;
  int32_t in_flight_ = 0;
  int64_t done_ = 0, failed_ = 0, output_tokens_ = 0;
};

}  // namespace

PhaseResult run_phase(bus::Client& client, const std::vector<RequestPlan>& plans, const LoadOptions& options,
                      const std::function<void(const PhaseProgress&)>& progress) {
  return PhaseRunner(client, plans, options, progress).run();
}

}  // namespace tessera::bench
