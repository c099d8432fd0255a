#pragma once
// Runs tessera-server as a child process for end-to-end tests: starts it, waits for its "ready ENDPOINT" line,
// and stops it with a signal, reporting the exit status.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tessera::test {

class ServerProcess {
 public:
  // argv[0] is the executable. Throws when the server does not print "ready" within `timeout`.
  ServerProcess(std::vector<std::string> argv, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    // Metrics off unless asked for: the default port 9464 would collide between tests running in parallel.
    if (std::find(argv.begin(), argv.end(), "--metrics-port") == argv.end()) {
      argv.push_back("--metrics-port");
      argv.push_back("0");
    }
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
    const auto end = std::chrono::steady_clock::now() + timeout;
    char line[4096];
    while (std::chrono::steady_clock::now() < end && fgets(line, sizeof line, stdout_) != nullptr) {
      std::string s(line);
      if (s.rfind("ready ", 0) == 0) {
        endpoint_ = s.substr(6);
        while (!endpoint_.empty() && (endpoint_.back() == '\n' || endpoint_.back() == '\r')) endpoint_.pop_back();
        return;
      }
    }
    stop(SIGKILL);
    throw std::runtime_error("tessera-server did not become ready");
  }
  ~ServerProcess() { stop(SIGKILL); }

  const std::string& endpoint() const { return endpoint_; }
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits for the exit; returns the exit code (-signal when killed by a signal).
  int stop(int signal = SIGTERM) {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (stdout_) fclose(stdout_);
    stdout_ = nullptr;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::string endpoint_;
  int exit_code_ = -1;
};

}  // namespace tessera::test
