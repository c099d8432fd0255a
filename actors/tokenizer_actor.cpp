#include "actors/tokenizer_actor.hpp"

#include <chrono>

#include "actors/caf_types.hpp"
#include "actors/client_sink.hpp"
#include "core/common/error.hpp"

namespace tessera {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

caf::behavior tokenizer_behavior(caf::event_based_actor* self, uint32_t shard, std::shared_ptr<const Tokenizer> tokenizer,
                                 ModelLimits limits, caf::actor scheduler, std::shared_ptr<ClientSink> sink,
                                 std::shared_ptr<ServingMetrics> metrics) {
  auto streams = std::make_shared<ResponseStreams>(std::move(tokenizer), std::move(limits), metrics);
  return {
      [=](IncomingRequest& request) {
        std::variant<PreparedRequest, bus::ErrorMessage> prepared;
        try {
          prepared = streams->open(request);
        } catch (const std::exception& e) {  // never let one request take the shard down
          prepared = bus::ErrorMessage{request.address.request_id, bus::ErrorCode::Internal, e.what()};
          if (metrics) metrics->record_outcome(RequestOutcome::Rejected);
        }
        if (auto* error = std::get_if<bus::ErrorMessage>(&prepared)) {
          sink->deliver(Outbound{request.address.client, std::move(*error), true});
          return;
        }
        auto& ok = std::get<PreparedRequest>(prepared);
        AdmitRequest admit;
        admit.seq_id = request.seq_id;
        admit.shard = shard;
        admit.prompt = std::move(ok.prompt);
        admit.params = std::move(ok.params);
        admit.priority = ok.priority;
        admit.arrival_s = request.arrival_s;
        if (request.deadline_ms) admit.deadline_s = request.arrival_s + *request.deadline_ms / 1000.0;
        self->send(scheduler, std::move(admit));
      },
      [=](const AdmissionResult& result) {
        if (auto out = streams->admitted(result)) sink->deliver(std::move(*out));
      },
      [=](const ShardProgress& progress) {
        const double now = now_seconds();
        for (const SequenceProgress& p : progress.sequences) {
          auto out = streams->progress(p, now);
          for (Outbound& message : out.messages) sink->deliver(std::move(message));
          if (out.stop_string_hit) {
            AbortSequence abort;
            abort.seq_id = p.seq_id;
            abort.outcome = static_cast<uint8_t>(SequenceOutcome::Stop);
            abort.already_answered = true;
            self->send(scheduler, abort);
          }
        }
      },
      // A cancel or a lost client, from the ingress: forwarded only while the request is open here, so it reaches
      // the scheduler after the request's own AdmitRequest.
      [=](const AbortSequence& abort) {
        if (streams->is_open(abort.seq_id)) self->send(scheduler, abort);
      },
      [=](shutdown_atom) {
        for (uint64_t id : streams->open_ids()) {
          if (auto out = streams->fail(id, bus::ErrorCode::ShuttingDown, "the server is shutting down")) {
            sink->deliver(std::move(*out));
          }
        }
      },
  };
}

}  // namespace

caf::actor spawn_tokenizer_actor(caf::actor_system& system, uint32_t shard, std::shared_ptr<const Tokenizer> tokenizer,
                                 ModelLimits limits, caf::actor scheduler, std::shared_ptr<ClientSink> sink,
                                 std::shared_ptr<ServingMetrics> metrics) {
  return system.spawn(tokenizer_behavior, shard, std::move(tokenizer), std::move(limits), std::move(scheduler),
                      std::move(sink), std::move(metrics));
}

}  // namespace tessera
