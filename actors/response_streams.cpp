#include "actors/response_streams.hpp"

#include <algorithm>

#include "core/common/error.hpp"

namespace tessera {

namespace {

bus::ErrorMessage error_reply(const ClientAddress& address, bus::ErrorCode code, std::string message) {
  return bus::ErrorMessage{address.request_id, code, std::move(message)};
}

bus::ErrorCode code_from_name(const std::string& name) {
  return bus::parse_error_code(name).value_or(bus::ErrorCode::Internal);
}

RequestOutcome outcome_of(bus::FinishReason reason) {
  switch (reason) {
    case bus::FinishReason::Stop: return RequestOutcome::Stop;
    case bus::FinishReason::Length: return RequestOutcome::Length;
    case bus::FinishReason::Cancelled: return RequestOutcome::Cancelled;
  }
  return RequestOutcome::Stop;
}

}  // namespace

ResponseStreams::ResponseStreams(std::shared_ptr<const Tokenizer> tokenizer, ModelLimits limits,
                                 std::shared_ptr<ServingMetrics> metrics)
    : tokenizer_(std::move(tokenizer)), limits_(std::move(limits)), metrics_(std::move(metrics)) {}

std::variant<PreparedRequest, bus::ErrorMessage> ResponseStreams::open(const IncomingRequest& request) {
  auto opened = open_stream(request);
  if (std::holds_alternative<bus::ErrorMessage>(opened)) record_outcome(RequestOutcome::Rejected);
  return opened;
}

std::variant<PreparedRequest, bus::ErrorMessage> ResponseStreams::open_stream(const IncomingRequest& request) {
  const ClientAddress& address = request.address;
  PreparedRequest prepared;
  prepared.params = request.params;
  prepared.priority = request.priority;
  if (request.prompt) {
    if (!tokenizer_) {
      return error_reply(address, bus::ErrorCode::InvalidRequest,
                         "this server has no tokenizer: send the prompt as prompt_ids");
    }
    prepared.prompt = tokenizer_->encode(*request.prompt, /*add_special_tokens=*/true);
  } else {
    prepared.prompt = request.prompt_ids;
  }
  if (prepared.prompt.empty()) return error_reply(address, bus::ErrorCode::InvalidRequest, "the prompt is empty");
  for (int32_t id : prepared.prompt) {
    if (id < 0 || id >= limits_.vocab_size) {
      return error_reply(address, bus::ErrorCode::InvalidParameter,
                         "prompt_ids holds " + std::to_string(id) + ", outside the vocabulary [0, " +
                             std::to_string(limits_.vocab_size) + ")");
    }
  }
  try {
    prepared.params.validate(limits_.vocab_size);
  } catch (const Error& e) {
    return error_reply(address, bus::ErrorCode::InvalidParameter, e.what());
  }
  if (!prepared.params.stop.empty() && !tokenizer_) {
    return error_reply(address, bus::ErrorCode::InvalidParameter, "stop strings need a tokenizer; this server has none");
  }
  const int64_t prompt_len = static_cast<int64_t>(prepared.prompt.size());
  if (prompt_len >= limits_.max_model_len) {
    return error_reply(address, bus::ErrorCode::PromptTooLong,
                       "the prompt has " + std::to_string(prompt_len) + " tokens; max_model_len is " +
                           std::to_string(limits_.max_model_len));
  }
  if (prompt_len + prepared.params.max_tokens > limits_.max_model_len) {
    return error_reply(address, bus::ErrorCode::PromptTooLong,
                       "prompt (" + std::to_string(prompt_len) + " tokens) + max_tokens (" +
                           std::to_string(prepared.params.max_tokens) + ") exceeds max_model_len " +
                           std::to_string(limits_.max_model_len));
  }
  Stream s{address,
           request.stream,
           static_cast<int32_t>(prompt_len),
           request.arrival_s,
           -1,
           -1,
           -1,
           std::nullopt,
           StopChecker(prepared.params, limits_.eos_token_ids),
           {},
           {}};
  if (tokenizer_) s.detokenizer.emplace(*tokenizer_, /*skip_special_tokens=*/true);
  streams_.insert_or_assign(request.seq_id, std::move(s));
  return prepared;
}

std::optional<Outbound> ResponseStreams::admitted(const AdmissionResult& result) {
  auto it = streams_.find(result.seq_id);
  if (it == streams_.end()) return std::nullopt;
  const ClientAddress address = it->second.address;
  if (result.accepted) {
    return Outbound{address.client, bus::Accepted{address.request_id, it->second.prompt_tokens}, false};
  }
  streams_.erase(it);
  record_outcome(RequestOutcome::Rejected);
  return Outbound{address.client,
                  error_reply(address, code_from_name(result.error_code), result.error_message), true};
}

Outbound ResponseStreams::final_message(uint64_t seq_id, Stream& s, bus::FinishReason reason, double now_s) {
  bus::FinalMessage final;
  final.id = s.address.request_id;
  final.finish_reason = reason;
  final.usage.prompt_tokens = s.prompt_tokens;
  final.usage.completion_tokens = static_cast<int32_t>(s.ids.size());
  final.timings.queue_s = std::max(0.0, s.queue_s);
  final.timings.ttft_s = s.first_token_s >= 0 ? s.first_token_s - s.arrival_s : 0.0;
  final.timings.e2e_s = now_s - s.arrival_s;
  if (!s.stream) {
    final.ids = s.ids;
    final.text = s.text;
  }
  if (metrics_) {
    FinishedRequest finished;
    finished.outcome = outcome_of(reason);
    finished.prompt_tokens = s.prompt_tokens;
    finished.generation_tokens = final.usage.completion_tokens;
    finished.e2e_s = final.timings.e2e_s;
    if (s.first_token_s >= 0) {
      if (s.queue_s >= 0) finished.prefill_s = s.first_token_s - (s.arrival_s + s.queue_s);
      finished.decode_s = s.last_token_s - s.first_token_s;
    }
    metrics_->record_finished(finished);
  }
  Outbound out{s.address.client, std::move(final), true};
  streams_.erase(seq_id);
  return out;
}

ResponseStreams::ProgressOutput ResponseStreams::progress(const SequenceProgress& p, double now_s) {
  ProgressOutput out;
  auto it = streams_.find(p.seq_id);
  if (it == streams_.end()) return out;
  Stream& s = it->second;
  if (p.queue_s >= 0) s.queue_s = p.queue_s;

  bus::TokenChunk chunk{s.address.request_id, {}, {}};
  StopUpdate last;
  int64_t appended = 0;
  for (int32_t token : p.tokens) {
    if (metrics_) {
      if (s.first_token_s < 0) metrics_->record_first_token(now_s - s.arrival_s, s.prompt_tokens);
      else metrics_->record_inter_token_latency(now_s - s.last_token_s);
    }
    if (s.first_token_s < 0) s.first_token_s = now_s;
    s.last_token_s = now_s;
    ++appended;
    const std::string delta = s.detokenizer ? s.detokenizer->push(token) : std::string();
    last = s.stop.append(token, delta);
    s.ids.push_back(token);
    chunk.ids.push_back(token);
    chunk.text += last.text;
    if (last.reason != FinishReason::None) break;
  }
  if (metrics_) metrics_->record_generated_tokens(appended);
  const auto outcome = static_cast<SequenceOutcome>(p.outcome);
  const bool checker_finished = last.reason != FinishReason::None;
  const bool scheduler_finished = outcome == SequenceOutcome::Stop || outcome == SequenceOutcome::Length;
  // The held-back text is released at a normal end, unless a stop string cut it (nothing after it is shown).
  if ((checker_finished || scheduler_finished) && s.detokenizer && !last.stop_string) {
    chunk.text += s.detokenizer->finish();
  }
  s.text += chunk.text;
  if (s.stream && (!chunk.ids.empty() || !chunk.text.empty())) {
    out.messages.push_back(Outbound{s.address.client, std::move(chunk), false});
  }
  if (checker_finished) {
    out.stop_string_hit = last.stop_string.has_value();
    const auto reason = last.reason == FinishReason::Length ? bus::FinishReason::Length : bus::FinishReason::Stop;
    out.messages.push_back(final_message(p.seq_id, s, reason, now_s));
    return out;
  }
  switch (outcome) {
    case SequenceOutcome::None:
      break;
    case SequenceOutcome::Stop:
      out.messages.push_back(final_message(p.seq_id, s, bus::FinishReason::Stop, now_s));
      break;
    case SequenceOutcome::Length:
      out.messages.push_back(final_message(p.seq_id, s, bus::FinishReason::Length, now_s));
      break;
    case SequenceOutcome::Cancelled:
      out.messages.push_back(final_message(p.seq_id, s, bus::FinishReason::Cancelled, now_s));
      break;
    case SequenceOutcome::Error: {
      Outbound error{s.address.client, error_reply(s.address, code_from_name(p.error_code), p.error_message), true};
      streams_.erase(it);
      record_outcome(RequestOutcome::Error);
      out.messages.push_back(std::move(error));
      break;
    }
  }
  return out;
}

std::optional<Outbound> ResponseStreams::fail(uint64_t seq_id, bus::ErrorCode code, const std::string& message) {
  auto it = streams_.find(seq_id);
  if (it == streams_.end()) return std::nullopt;
  Outbound out{it->second.address.client, error_reply(it->second.address, code, message), true};
  streams_.erase(it);
  record_outcome(RequestOutcome::Error);
  return out;
}

std::vector<uint64_t> ResponseStreams::open_ids() const {
  std::vector<uint64_t> ids;
  ids.reserve(streams_.size());
  for (const auto& [id, s] : streams_) ids.push_back(id);
  return ids;
}

}  // namespace tessera
