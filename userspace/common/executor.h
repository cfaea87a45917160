// SPDX-License-Identifier: Apache-2.0
/// @file One thread that runs submitted jobs in order and hands back their results.
/// The agent reads kernel maps on such a thread ("insa-scrape") that keeps CAP_BPF,
/// so the HTTP threads can hold no capability even on kernels before 6.5, where
/// every bpf(2) command, map lookups included, needs CAP_BPF when
/// kernel.unprivileged_bpf_disabled is set (Debian's default).
#pragma once

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

namespace insa {

class Executor {
 public:
  /// `init` runs first on the new thread (e.g. to narrow its capabilities).
  explicit Executor(const std::string& name, std::function<void()> init = {}) {
    thread_ = std::thread([this, name, init = std::move(init)] {
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      if (init) init();
      loop();
    });
  }
  ~Executor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// Runs `fn` on the executor's thread and waits for its result (exceptions propagate).
  template <typename F>
  auto run(F&& fn) -> decltype(fn()) {
    using T = decltype(fn());
    std::packaged_task<T()> task(std::forward<F>(fn));
    auto result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.emplace_back([&task] { task(); });
    }
    cv_.notify_one();
    return result.get();
  }

  pid_t tid() const { return tid_; }

 private:
  void loop() {
    tid_ = static_cast<pid_t>(gettid());
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::atomic<pid_t> tid_{0};
  std::thread thread_;
};

}  // namespace insa
