// SPDX-License-Identifier: Apache-2.0
// process_* metrics against independent ground truth: getrlimit, getrusage,
// counting fds this test opens, /proc/self/statm, and the test's own start.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "collector/process_metrics.h"

namespace insa::collector {
namespace {

TEST(ProcessMetrics, AgainstGroundTruth) {
  auto before = read_process_stats();
  ASSERT_TRUE(before.ok()) << before.error().message;
  int fds[5];
  for (int& fd : fds) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto s = read_process_stats();
  for (int fd : fds) close(fd);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->open_fds, before->open_fds + 5);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  EXPECT_EQ(s->max_fds, static_cast<double>(rl.rlim_cur));
  getrlimit(RLIMIT_AS, &rl);
  EXPECT_EQ(s->virtual_max_bytes, rl.rlim_cur == RLIM_INFINITY ? -1.0 : static_cast<double>(rl.rlim_cur));
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  EXPECT_NEAR(s->cpu_seconds, cpu, 0.05);  // /proc counts in clock ticks (10 ms)
  long pages_total = 0, pages_rss = 0;
  std::ifstream("/proc/self/statm") >> pages_total >> pages_rss;
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  EXPECT_NEAR(s->virtual_bytes, pages_total * page, 64 * 1024 * 1024);
  EXPECT_NEAR(s->resident_bytes, pages_rss * page, 16 * 1024 * 1024);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(s->start_time_seconds, now);
  EXPECT_GT(s->start_time_seconds, now - 600);  // this test binary started minutes ago at most
}

TEST(ProcessMetrics, Families) {
  std::vector<prometheus::MetricFamily> out;
  process_metrics_source()(out);
  std::vector<std::string> names;
  for (const auto& f : out) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"process_cpu_seconds_total", "process_max_fds", "process_open_fds",
                                             "process_resident_memory_bytes", "process_start_time_seconds",
                                             "process_virtual_memory_bytes", "process_virtual_memory_max_bytes"}));
  EXPECT_EQ(out[0].type, prometheus::MetricType::Counter);
}

}  // namespace
}  // namespace insa::collector
