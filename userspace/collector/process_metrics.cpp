// SPDX-License-Identifier: Apache-2.0
#include "collector/process_metrics.h"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace insa::collector {

Result<ProcessStats> read_process_stats() {
  ProcessStats s;
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return Error::from_errno("cannot read /proc/self/stat");
  // The command name is in parentheses and may hold spaces or ')': fields follow the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return Error{"/proc/self/stat: unexpected format"};
  std::istringstream f(line.substr(close + 2));
  std::vector<std::string> v;  // v[0] is field 3 (state)
  for (std::string x; f >> x;) v.push_back(x);
  if (v.size() < 22) return Error{"/proc/self/stat: unexpected format"};
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  s.cpu_seconds = (std::stod(v[14 - 3]) + std::stod(v[15 - 3])) / tick;
  s.virtual_bytes = std::stod(v[23 - 3]);
  s.resident_bytes = std::stod(v[24 - 3]) * page;
  double btime = 0;
  std::ifstream st("/proc/stat");
  while (std::getline(st, line))
    if (line.rfind("btime ", 0) == 0) btime = std::stod(line.substr(6));
  s.start_time_seconds = btime + std::stod(v[22 - 3]) / tick;
  if (DIR* d = opendir("/proc/self/fd")) {
    int n = 0;
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    s.open_fds = n - 1;  // the directory being read
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) s.max_fds = static_cast<double>(rl.rlim_cur);
  if (getrlimit(RLIMIT_AS, &rl) == 0)
    s.virtual_max_bytes = rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(rl.rlim_cur);
  return s;
}

FamilySource process_metrics_source() {
  return [](std::vector<prometheus::MetricFamily>& out) {
    auto s = read_process_stats();
    if (!s) {
      spdlog::warn("process metrics: {}", s.error().message);
      return;
    }
    auto add = [&](const char* name, const char* help, prometheus::MetricType t, double v) {
      prometheus::MetricFamily f{name, help, t, {}};
      prometheus::ClientMetric m;
      if (t == prometheus::MetricType::Counter)
        m.counter.value = v;
      else
        m.gauge.value = v;
      f.metric.push_back(m);
      out.push_back(std::move(f));
    };
    using prometheus::MetricType;
    add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", MetricType::Counter,
        s->cpu_seconds);
    add("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge, s->max_fds);
    add("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, s->open_fds);
    add("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge, s->resident_bytes);
    add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
        s->start_time_seconds);
    add("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge, s->virtual_bytes);
    add("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", MetricType::Gauge,
        s->virtual_max_bytes);
  };
}

}  // namespace insa::collector
