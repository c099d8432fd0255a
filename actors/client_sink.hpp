#pragma once
// Where actors put messages for clients: the ingress bridge implements it over the ZeroMQ thread's outbound queue.
#include "actors/response_streams.hpp"

namespace tessera {

class ClientSink {
 public:
  virtual ~ClientSink() = default;
  // Thread-safe; never blocks on the network. A terminal message ends the request's life at the ingress.
  virtual void deliver(Outbound message) = 0;
};

}  // namespace tessera
