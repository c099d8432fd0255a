// Encoding of bus messages: one msgpack map per frame, "v" and "type" first.
#include <msgpack.hpp>

#include "bus/protocol.hpp"

namespace tessera::bus {
namespace {

class MapWriter {
 public:
  MapWriter(uint32_t entries, const char* type) : packer_(buffer_) {
    packer_.pack_map(entries + 2);
    key("v").pack(kProtocolVersion);
    key("type").pack(std::string_view(type));
  }
  MapWriter& key(std::string_view k) {
    packer_.pack(k);
    return *this;
  }
  template <class T>
  MapWriter& pack(const T& value) {
    packer_.pack(value);
    return *this;
  }
  MapWriter& pack_optional_string(const std::optional<std::string>& s) {
    if (s) packer_.pack(*s);
    else packer_.pack_nil();
    return *this;
  }
  msgpack::packer<msgpack::sbuffer>& raw() { return packer_; }
  std::string finish() { return std::string(buffer_.data(), buffer_.size()); }

 private:
  msgpack::sbuffer buffer_;
  msgpack::packer<msgpack::sbuffer> packer_;
};

void pack_params(msgpack::packer<msgpack::sbuffer>& pk, const SamplingParams& p) {
  pk.pack_map(p.seed ? 8 : 7);
  pk.pack(std::string_view("max_tokens")).pack(p.max_tokens);
  pk.pack(std::string_view("temperature")).pack_double(p.temperature);
  pk.pack(std::string_view("top_k")).pack(p.top_k);
  pk.pack(std::string_view("top_p")).pack_double(p.top_p);
  if (p.seed) pk.pack(std::string_view("seed")).pack(*p.seed);
  pk.pack(std::string_view("stop")).pack(p.stop);
  pk.pack(std::string_view("stop_token_ids")).pack(p.stop_token_ids);
  pk.pack(std::string_view("ignore_eos")).pack(p.ignore_eos);
}

}  // namespace

std::string encode(const SubmitRequest& m) {
  MapWriter w(5 + (m.deadline_ms ? 1 : 0), "submit");
  w.key("id").pack(m.id);
  if (m.prompt_ids) w.key("prompt_ids").pack(*m.prompt_ids);
  else w.key("prompt").pack(m.prompt.value_or(std::string()));
  w.key("params");
  pack_params(w.raw(), m.params);
  w.key("stream").pack(m.stream);
  w.key("priority").pack(m.priority);
  if (m.deadline_ms) w.key("deadline_ms").pack(*m.deadline_ms);
  return w.finish();
}

std::string encode(const CancelRequest& m) {
  MapWriter w(1, "cancel");
  w.key("id").pack(m.id);
  return w.finish();
}

std::string encode(const InfoRequest&) { return MapWriter(0, "info").finish(); }

std::string encode(const ClientMessage& m) {
  return std::visit([](const auto& x) { return encode(x); }, m);
}

std::string encode(const Accepted& m) {
  MapWriter w(2, "accepted");
  w.key("id").pack(m.id);
  w.key("prompt_tokens").pack(m.prompt_tokens);
  return w.finish();
}

std::string encode(const TokenChunk& m) {
  MapWriter w(3, "tokens");
  w.key("id").pack(m.id);
  w.key("ids").pack(m.ids);
  w.key("text").pack(m.text);
  return w.finish();
}

std::string encode(const FinalMessage& m) {
  MapWriter w(4 + (m.ids ? 1 : 0) + (m.text ? 1 : 0), "final");
  w.key("id").pack(m.id);
  w.key("finish_reason").pack(std::string_view(finish_reason_name(m.finish_reason)));
  auto& pk = w.raw();
  w.key("usage");
  pk.pack_map(2);
  pk.pack(std::string_view("prompt_tokens")).pack(m.usage.prompt_tokens);
  pk.pack(std::string_view("completion_tokens")).pack(m.usage.completion_tokens);
  w.key("timings");
  pk.pack_map(3);
  pk.pack(std::string_view("queue_s")).pack_double(m.timings.queue_s);
  pk.pack(std::string_view("ttft_s")).pack_double(m.timings.ttft_s);
  pk.pack(std::string_view("e2e_s")).pack_double(m.timings.e2e_s);
  if (m.ids) w.key("ids").pack(*m.ids);
  if (m.text) w.key("text").pack(*m.text);
  return w.finish();
}

std::string encode(const ErrorMessage& m) {
  MapWriter w(3, "error");
  w.key("id").pack_optional_string(m.id);
  w.key("code").pack(std::string_view(error_code_name(m.code)));
  w.key("message").pack(m.message);
  return w.finish();
}

std::string encode(const InfoReply& m) {
  MapWriter w(12, "info");
  w.key("model").pack(m.model);
  w.key("vocab_size").pack(m.vocab_size);
  w.key("max_model_len").pack(m.max_model_len);
  w.key("kv_blocks").pack(m.kv_blocks);
  w.key("block_size").pack(m.block_size);
  w.key("kv_capacity_tokens").pack(m.kv_capacity_tokens);
  w.key("max_num_seqs").pack(m.max_num_seqs);
  w.key("ready").pack(m.ready);
  w.key("protocol_version").pack(m.protocol_version);
  w.key("kv_blocks_used").pack(m.kv_blocks_used);
  w.key("requests_running").pack(m.requests_running);
  w.key("requests_waiting").pack(m.requests_waiting);
  return w.finish();
}

std::string encode(const Heartbeat&) { return MapWriter(0, "heartbeat").finish(); }

std::string encode(const ServerMessage& m) {
  return std::visit([](const auto& x) { return encode(x); }, m);
}

}  // namespace tessera::bus
