#include "core/metrics/metrics_endpoint.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include "core/common/error.hpp"

namespace tessera {

namespace {

constexpr size_t kMaxRequestBytes = 16 * 1024;  // a scrape's request is a few hundred bytes
constexpr int kReadTimeoutMs = 2000;            // a client that connects and says nothing is dropped

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // the scraper went away
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string response(int status, std::string_view reason, std::string_view content_type, std::string_view body) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\nContent-Type: " +
                  std::string(content_type) + "\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nConnection: close\r\n\r\n";
  r += body;
  return r;
}

}  // namespace

MetricsEndpoint::MetricsEndpoint(const std::string& host, int port, std::shared_ptr<prometheus::Collectable> metrics)
    : host_(host), metrics_(std::move(metrics)) {
  const std::string address = host + ":" + std::to_string(port);
  if (port < 0 || port > 65535) throw Error("metrics: port " + std::to_string(port) + " is out of range (0..65535)");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    throw Error("metrics: '" + host + "' is not an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0)");
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw Error(std::string("metrics: socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 || ::listen(listen_fd_, 16) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(listen_fd_);
    throw Error("metrics: cannot listen on " + address + " (" + reason +
                "); choose another port with --metrics-port, or 0 to turn the endpoint off");
  }
  socklen_t len = sizeof sa;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    ::close(listen_fd_);
    throw Error(std::string("metrics: eventfd: ") + std::strerror(errno));
  }
  thread_ = std::thread([this] { serve(); });
}

MetricsEndpoint::~MetricsEndpoint() {
  const uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) < 0) {
    // cannot happen for an eventfd below its maximum; the join below would then wait for the poll timeout
  }
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

std::string MetricsEndpoint::url() const { return "http://" + host_ + ":" + std::to_string(port_) + "/metrics"; }

void MetricsEndpoint::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    const int connection = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;
    answer(connection);
    ::close(connection);
  }
}

void MetricsEndpoint::answer(int connection) {
  // Read the request head (up to the blank line); only its first line matters.
  std::string request;
  char buffer[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
    pollfd p{connection, POLLIN, 0};
    if (::poll(&p, 1, kReadTimeoutMs) <= 0) return;
    const ssize_t n = ::recv(connection, buffer, sizeof buffer, 0);
    if (n <= 0) return;
    request.append(buffer, static_cast<size_t>(n));
  }
  const std::string_view line = std::string_view(request).substr(0, request.find("\r\n"));
  const size_t method_end = line.find(' ');
  const size_t path_end = line.find(' ', method_end + 1);
  if (method_end == std::string_view::npos || path_end == std::string_view::npos) {
    send_all(connection, response(400, "Bad Request", "text/plain", "bad request\n"));
    return;
  }
  const std::string_view method = line.substr(0, method_end);
  std::string_view path = line.substr(method_end + 1, path_end - method_end - 1);
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") {
    send_all(connection, response(404, "Not Found", "text/plain", "only /metrics is served here\n"));
    return;
  }
  if (method != "GET" && method != "HEAD") {
    send_all(connection, response(405, "Method Not Allowed", "text/plain", "use GET\n"));
    return;
  }
  const std::string body = prometheus::TextSerializer().Serialize(metrics_->Collect());
  std::string reply = response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
  if (method == "HEAD") reply.resize(reply.size() - body.size());
  send_all(connection, reply);
}

}  // namespace tessera
