// SPDX-License-Identifier: Apache-2.0
#include "app/agent.h"

#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>

#include "attach/engine.h"
#include "attach/plan.h"
#include "collector/collector.h"
#include "config/config.h"
#include "http/server.h"
#include "process/lifecycle.h"
#include "reader/map_reader.h"

namespace insa::app {
namespace {

std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal = sig; }

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator!=(const FileId& o) const { return dev != o.dev || ino != o.ino; }
};

FileId file_id(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino};
}

FileId analysed_id(const plan::ProbePlan& pp) {
  if (!pp.points.empty() && pp.points.front().ino != 0)
    return {static_cast<dev_t>(pp.points.front().dev), static_cast<ino_t>(pp.points.front().ino)};
  return file_id(pp.binary);
}

/// One loaded configuration: everything a reload replaces.
struct Instance {
  config::Config cfg;
  plan::Plan plan;
  std::unique_ptr<attach::Engine> engine;
  std::unique_ptr<reader::BpfMapReader> reader;
  std::unique_ptr<collector::Collector> collector;
  std::unique_ptr<process::Lifecycle> lifecycle;
  std::vector<FileId> probe_files;  ///< per probe, to notice a replaced binary
};

std::unique_ptr<Instance> start_instance(const std::string& file) {
  auto inst = std::make_unique<Instance>();
  auto cfg = config::load_config(file);
  if (!cfg) throw FatalError{cfg.error()};
  inst->cfg = std::move(*cfg);
  auto p = plan::build_plan(inst->cfg);
  if (!p) throw FatalError{p.error()};
  inst->plan = std::move(*p);
  auto eng = attach::Engine::load(inst->plan, {inst->cfg.max_series});
  if (!eng) throw FatalError{eng.error()};
  inst->engine = std::move(*eng);

  std::vector<std::string> bins;
  for (const auto& w : inst->cfg.workers) {
    if (w.binary.empty()) {  // a Python worker (script:) on any interpreter
      bins.emplace_back();
      continue;
    }
    auto b = plan::resolve_binary(w.binary, inst->cfg.file);
    if (!b) throw FatalError{Error{w.mark.str() + ": worker '" + w.name + "': " + b.error().message}};
    bins.push_back(*b);
  }
  inst->lifecycle = std::make_unique<process::Lifecycle>(inst->cfg.workers, bins);
  auto* lc = inst->lifecycle.get();
  if (auto r = inst->engine->watch_exits([lc](const attach::ExitEvent& e) { lc->exited(e.tgid, e.exit_code); },
                                         inst->cfg.workers.empty()
                                             ? std::function<void(const attach::ExecEvent&)>()
                                             : [lc](const attach::ExecEvent& e) { lc->started(e.tgid, e.dev, e.ino); });
      !r)
    throw FatalError{r.error()};
  lc->scan();
  size_t ok = inst->engine->attach_all();
  spdlog::info("{} of {} probes attached", ok, inst->plan.probes.size());
  // The identity of the file each probe was analysed from: if it was replaced before the
  // attach (which then refused it), the next scan sees the difference and re-plans.
  for (const auto& pp : inst->engine->plan().probes) inst->probe_files.push_back(analysed_id(pp));

  inst->reader = std::make_unique<reader::BpfMapReader>(inst->engine->counters_fd(), inst->engine->gauges_fd(),
                                                        inst->engine->stats_fd(),
                                                        static_cast<uint32_t>(inst->plan.specs.size()));
  auto* engine = inst->engine.get();
  inst->collector = std::make_unique<collector::Collector>(inst->cfg, inst->engine->plan(), *inst->reader, [engine] {
    std::vector<collector::ProbeStatus> s;
    for (const auto& st : engine->states()) s.push_back({st.attached});
    return s;
  });
  inst->collector->add_source([lc](std::vector<prometheus::MetricFamily>& out) { lc->collect(out); });
  return inst;
}

/// Re-attaches probes whose binary was replaced on disk (new inode), and releases the
/// links on old files no process runs any more.
void check_replaced(Instance& inst) {
  if (size_t n = inst.engine->release_retired(); n)
    spdlog::info("released {} links on replaced binaries that no process runs any more", n);
  for (size_t i = 0; i < inst.probe_files.size(); ++i) {
    const auto& pp = inst.engine->plan().probes[i];
    FileId now = file_id(pp.binary);
    if (now.ino == 0 || !(now != inst.probe_files[i])) continue;
    spdlog::info("binary {} of probe '{}' was replaced; attaching again", pp.binary, pp.name);
    auto fresh = plan::build_plan(inst.cfg);
    if (!fresh) {
      spdlog::error("{}", fresh.error().message);
      continue;
    }
    auto r = inst.engine->replace_probe(i, fresh->probes[i], fresh->specs[i]);
    if (!r)
      spdlog::error("{}", r.error().message);
    else
      spdlog::info("probe '{}' attached to the new {}", pp.name, pp.binary);
    inst.probe_files[i] = analysed_id(fresh->probes[i]);
  }
}

std::string landing_page(const Instance* inst, bool ready) {
  std::ostringstream o;
  o << "<!DOCTYPE html><html><head><title>insa-exporter</title></head><body>\n"
    << "<h1>insa-exporter " << INSA_VERSION << "</h1>\n<p>Prometheus metrics from unmodified processes, measured with eBPF.</p>\n"
    << "<p><a href=\"/metrics\">/metrics</a> &middot; <a href=\"/-/healthy\">/-/healthy</a> &middot; "
       "<a href=\"/-/ready\">/-/ready</a></p>\n";
  if (!inst) {
    o << "<p>" << (ready ? "" : "Loading configuration&hellip;") << "</p></body></html>\n";
    return o.str();
  }
  o << "<p>Config: " << html_escape(inst->cfg.file) << "</p>\n<table border=\"1\" cellpadding=\"4\">\n"
    << "<tr><th>probe</th><th>binary</th><th>target</th><th>return sites</th><th>attached</th><th>events</th>"
       "<th>abandoned</th><th>error</th></tr>\n";
  reader::Snapshot snap;
  (void)inst->reader->read(snap);
  const auto& states = inst->engine->states();
  const auto& probes = inst->engine->plan().probes;
  for (size_t i = 0; i < probes.size(); ++i) {
    const auto& s = i < snap.stats.size() ? snap.stats[i] : insa_probe_stats{};
    o << "<tr><td>" << html_escape(probes[i].name) << "</td><td>" << html_escape(probes[i].binary) << "</td><td>"
      << html_escape(probes[i].target) << "</td><td>" << probes[i].exit_sites << "</td><td>"
      << (states[i].attached ? "yes" : "no") << "</td><td>" << s.hits << "</td><td>" << s.abandoned << "</td><td>"
      << html_escape(states[i].error) << "</td></tr>\n";
  }
  o << "</table></body></html>\n";
  return o.str();
}

}  // namespace

std::string privilege_problem() {
  if (geteuid() == 0) return "";
  std::ifstream st("/proc/self/status");
  std::string line;
  while (std::getline(st, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      unsigned long long caps = std::stoull(line.substr(7), nullptr, 16);
      const unsigned long long need = (1ULL << 38) | (1ULL << 39);  // CAP_PERFMON, CAP_BPF
      if ((caps & need) == need) return "";
    }
  }
  return "not running as root: run with sudo, or grant CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and "
         "CAP_DAC_READ_SEARCH (see deploy/systemd/insa-exporter.service)";
}

int run_agent(const std::string& config_file, const std::string& listen_override) {
  if (auto why = privilege_problem(); !why.empty()) throw FatalError{Error{why, EPERM}};
  // Read the config once up front so a bad file or port fails before anything attaches.
  auto first = config::load_config(config_file);
  if (!first) throw FatalError{first.error()};
  std::string listen = listen_override.empty() ? first->listen_address : listen_override;
  auto server = http::Server::listen(listen);
  if (!server) throw FatalError{server.error()};

  attach::install_libbpf_logger();
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  std::mutex mu;  // guards `inst` against the HTTP thread during reloads
  std::unique_ptr<Instance> inst;
  std::atomic<bool> ready{false};
  (*server)->handle("/metrics", [&] {
    std::lock_guard<std::mutex> lock(mu);
    if (!inst) return http::Response{503, "text/plain; charset=utf-8", "not ready\n"};
    return http::Response{200, "text/plain; version=0.0.4; charset=utf-8", inst->collector->text()};
  });
  (*server)->handle("/-/healthy", [] { return http::Response{200, "text/plain; charset=utf-8", "OK\n"}; });
  // Ready only when every probe is attached: a probe that failed (its PID gone, its file
  // unreadable) is a partial state the orchestrator should see; /metrics still serves
  // what is attached, and insa_exporter_probe_attached says which.
  (*server)->handle("/-/ready", [&] {
    std::lock_guard<std::mutex> lock(mu);
    if (!ready || !inst) return http::Response{503, "text/plain; charset=utf-8", "Not ready: loading probes\n"};
    const auto& states = inst->engine->states();
    const auto& probes = inst->engine->plan().probes;
    std::string missing;
    size_t n = 0;
    for (size_t i = 0; i < states.size(); ++i) {
      if (states[i].attached) continue;
      ++n;
      missing += "  " + probes[i].name + ": " + states[i].error + "\n";
    }
    if (n == 0) return http::Response{200, "text/plain; charset=utf-8", "Ready\n"};
    return http::Response{503, "text/plain; charset=utf-8",
                          "Not ready: " + std::to_string(n) + " of " + std::to_string(states.size()) +
                              " probes not attached\n" + missing};
  });
  (*server)->handle("/", [&] {
    std::lock_guard<std::mutex> lock(mu);
    return http::Response{200, "text/html; charset=utf-8", landing_page(inst.get(), ready)};
  });
  (*server)->start();
  spdlog::info("listening on {} (port {})", listen, (*server)->port());

  {
    auto fresh = start_instance(config_file);
    std::lock_guard<std::mutex> lock(mu);
    inst = std::move(fresh);
  }
  ready = true;
  spdlog::info("ready: serving /metrics");

  auto last_scan = std::chrono::steady_clock::now();
  while (true) {
    int sig = g_signal.exchange(0);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", config_file);
      try {
        std::lock_guard<std::mutex> lock(mu);
        ready = false;
        inst.reset();  // detach before attaching the new config's probes
        inst = start_instance(config_file);
        ready = true;
      } catch (const FatalError& e) {
        spdlog::error("reload failed, serving nothing until the next SIGHUP: {}", e.error.message);
      }
    }
    if (inst) inst->engine->poll_exits(200);
    else usleep(200 * 1000);
    auto now = std::chrono::steady_clock::now();
    if (inst && now - last_scan >= std::chrono::seconds(1)) {
      last_scan = now;
      inst->lifecycle->scan();
      std::lock_guard<std::mutex> lock(mu);  // attach states change under the HTTP handlers
      check_replaced(*inst);
      inst->engine->rescan_python();
    }
  }
  spdlog::info("shutting down");
  (*server)->stop();
  std::lock_guard<std::mutex> lock(mu);
  inst.reset();
  return 0;
}

}  // namespace insa::app
