// SPDX-License-Identifier: Apache-2.0
#include "app/agent.h"

#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "attach/engine.h"
#include "attach/plan.h"
#include "collector/collector.h"
#include "config/config.h"
#include "common/executor.h"
#include "common/privileges.h"
#include "http/server.h"
#include "http/web_config.h"
#include "collector/process_metrics.h"
#include "process/containers.h"
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
  std::unique_ptr<collector::Expiry> expiry;  ///< series expiry sweeps (main loop)
  std::unique_ptr<collector::Collector> collector;
  std::unique_ptr<process::Lifecycle> lifecycle;
  std::vector<FileId> probe_files;  ///< per probe, to notice a replaced binary
  std::vector<std::string> worker_binaries;
};

/// Everything a config needs before it can serve, done while the previous instance
/// keeps serving: parse, plan (ELF analysis), worker binaries resolved. No BPF yet.
/// Throws FatalError with one line.
std::unique_ptr<Instance> prepare_config(const std::string& file) {
  auto inst = std::make_unique<Instance>();
  auto cfg = config::load_config(file);
  if (!cfg) throw FatalError{cfg.error()};
  inst->cfg = std::move(*cfg);
  process::set_pod_logs_root(inst->cfg.pod_logs_root);
  auto p = plan::build_plan(inst->cfg);
  if (!p) throw FatalError{p.error()};
  inst->plan = std::move(*p);
  for (const auto& w : inst->cfg.workers) {
    if (w.binary.empty()) {  // a Python worker (script:) on any interpreter
      inst->worker_binaries.emplace_back();
      continue;
    }
    auto b = plan::resolve_binary(w.binary, inst->cfg.file);
    // An absolute path not on this host: the executable as processes in containers see it.
    if (!b && w.binary[0] == '/') b = w.binary;
    if (!b) throw FatalError{Error{w.mark.str() + ": worker '" + w.name + "': " + b.error().message}};
    inst->worker_binaries.push_back(*b);
  }
  return inst;
}

/// prepare_config, then the BPF object loaded through the verifier. Nothing is attached.
std::unique_ptr<Instance> prepare_instance(const std::string& file) {
  auto inst = prepare_config(file);
  auto eng = attach::Engine::load(inst->plan, {&inst->cfg});
  if (!eng) throw FatalError{eng.error()};
  inst->engine = std::move(*eng);
  return inst;
}

/// Process exits and execs go to the instance's lifecycle and series expiry (again after
/// a reload).
void watch_lifecycle(Instance& inst) {
  auto* lc = inst.lifecycle.get();
  auto* ex = inst.expiry.get();
  if (auto r = inst.engine->watch_exits(
          [lc, ex](const attach::ExitEvent& e) {
            lc->exited(e.tgid, e.exit_code);
            ex->note_exit(e.tgid);
          },
          inst.cfg.workers.empty() ? std::function<void(const attach::ExecEvent&)>()
                                   : [lc](const attach::ExecEvent& e) { lc->started(e.tgid, e.dev, e.ino); });
      !r)
    throw FatalError{r.error()};
}

/// The reader and collector of an instance whose engine serves its plan (or will, once
/// a staged reload is committed: the collector reads the engine's plan at scrape time).
void build_collector(Instance& in, attach::Engine& eng, const std::vector<collector::FamilySource>& extra) {
  auto* inst = &in;
  auto* lc = inst->lifecycle.get();
  auto fds = eng.map_fds();
  // The spec table of the plan this instance serves (a staged reload may have more).
  fds.nprobes = static_cast<uint32_t>(inst->plan.specs.size());
  inst->reader = std::make_unique<reader::BpfMapReader>(std::move(fds));
  auto* engine = &eng;
  inst->collector = std::make_unique<collector::Collector>(inst->cfg, eng.plan(), *inst->reader, [engine] {
    std::vector<collector::ProbeStatus> s;
    for (const auto& st : engine->states()) s.push_back({st.attached});
    return s;
  });
  inst->collector->set_expiry(inst->expiry.get());
  inst->collector->add_source([lc](std::vector<prometheus::MetricFamily>& out) { lc->collect(out); });
  for (const auto& src : extra) inst->collector->add_source(src);
}

/// Attaches a prepared instance and builds its collector. `prev`: the instance it
/// replaces (whole reload), whose workers' lifecycle state carries over.
void activate_instance(Instance& in, const std::vector<collector::FamilySource>& extra, const Instance* prev = nullptr) {
  auto* inst = &in;
  inst->lifecycle = std::make_unique<process::Lifecycle>(inst->cfg.workers, inst->worker_binaries);
  if (prev) inst->lifecycle->adopt(*prev->lifecycle);
  inst->expiry =
      std::make_unique<collector::Expiry>(inst->engine->plan(), inst->engine->map_fds(), inst->cfg.series_expiry_ns,
                                          inst->cfg.dead_pid_grace_ns);
  watch_lifecycle(*inst);
  inst->lifecycle->scan();
  size_t ok = inst->engine->attach_all();
  spdlog::info("{} of {} probes attached", ok, inst->plan.probes.size());
  // The identity of the file each probe was analysed from: if it was replaced before the
  // attach (which then refused it), the next scan sees the difference and re-plans.
  for (const auto& pp : inst->engine->plan().probes) inst->probe_files.push_back(analysed_id(pp));
  build_collector(*inst, *inst->engine, extra);
}

/// An incremental reload (README, Reloads): the running engine, its BPF object and maps
/// stay; probes identical in the new plan (plan::rebase_plan) keep their links and kernel
/// values; new and changed ones are attached beside them before the swap, removed ones
/// detached and their values deleted after it. Scrapes wait only for the swap. On an
/// error before the swap nothing has changed (FatalError).
void reload_incremental(std::unique_ptr<Instance>& inst, std::unique_ptr<Instance> fresh, plan::ReloadDiff diff,
                        const std::vector<collector::FamilySource>& extra, std::mutex& mu) {
  attach::Engine& engine = *inst->engine;
  const size_t kept = static_cast<size_t>(std::count_if(diff.kept.begin(), diff.kept.end(), [](int k) { return k >= 0; }));
  const size_t removed = diff.removed.size();
  if (auto r = engine.stage_reload(fresh->plan, std::move(diff)); !r) throw FatalError{r.error()};
  try {
    fresh->lifecycle = std::make_unique<process::Lifecycle>(fresh->cfg.workers, fresh->worker_binaries);
    fresh->lifecycle->adopt(*inst->lifecycle);
    build_collector(*fresh, engine, extra);
  } catch (...) {
    engine.abort_reload();
    throw;
  }
  std::unique_ptr<Instance> old;
  {
    std::lock_guard<std::mutex> lock(mu);
    fresh->collector->adopt(*inst->collector);
    engine.commit_reload(&fresh->cfg);
    // The expiry sweeps the same maps: its counts continue, and it follows the engine's
    // plan, whose content has just changed. The main loop (this thread) runs its sweeps.
    fresh->expiry = std::move(inst->expiry);
    fresh->expiry->follow(fresh->cfg.series_expiry_ns, fresh->cfg.dead_pid_grace_ns);
    fresh->collector->set_expiry(fresh->expiry.get());
    fresh->engine = std::move(inst->engine);
    old = std::move(inst);
    inst = std::move(fresh);
  }
  // Before the old lifecycle goes (exits and execs arrive on this thread). The new config
  // is in force now: a failure here is logged, not reported as a failed reload.
  try {
    watch_lifecycle(*inst);
  } catch (const FatalError& e) {
    spdlog::error("reload: worker lifecycle: {}", e.error.message);
  }
  old.reset();
  // The removed probes' keys leave the maps (their quota slots given back); the
  // collector forgets them at its next scrape.
  if (size_t n = engine.finish_reload()) inst->expiry->forget_deleted(n);
  engine.rescan_files(&mu);  // containers of new and changed probes: attached per process now
  for (const auto& pp : engine.plan().probes) inst->probe_files.push_back(analysed_id(pp));
  size_t attached = 0;
  for (const auto& st : engine.states()) attached += st.attached ? 1 : 0;
  spdlog::info("reload: {} probes kept with their values, {} new or changed, {} removed; {} of {} attached", kept,
               engine.plan().probes.size() - kept, removed, attached, engine.plan().probes.size());
}

/// Re-attaches probes whose binary was replaced on disk (new inode). The new plan is
/// built (ELF analysis) without the lock; only the swap of the probe's spec and links
/// holds it, so a scrape never reads them half-replaced nor waits for the analysis.
void check_replaced(Instance& inst, std::mutex& mu) {
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
      inst.probe_files[i] = now;
      continue;
    }
    // The probe keeps its spec index and series ids (those of the running plan, which
    // reloads may have renumbered), so its values continue on the new file.
    if (auto d = plan::rebase_plan(inst.engine->plan(), inst.cfg, *fresh, inst.cfg, /*ids_only=*/true); !d.incremental) {
      spdlog::error("probe '{}': cannot re-attach to the replaced {}: {}", pp.name, pp.binary, d.why);
      inst.probe_files[i] = now;
      continue;
    }
    std::lock_guard<std::mutex> lock(mu);
    auto r = inst.engine->replace_probe(i, fresh->probes[i], fresh->specs[fresh->probes[i].cookie]);
    if (!r)
      spdlog::error("{}", r.error().message);
    else
      spdlog::info("probe '{}' attached to the new {}", pp.name, pp.binary);
    inst.probe_files[i] = analysed_id(fresh->probes[i]);
  }
}

std::string landing_page(const Instance* inst, bool ready, const std::string& telemetry) {
  std::ostringstream o;
  o << "<!DOCTYPE html><html><head><title>insa-exporter</title></head><body>\n"
    << "<h1>insa-exporter " << INSA_VERSION << "</h1>\n<p>Prometheus metrics from unmodified processes, measured with eBPF.</p>\n"
    << "<p><a href=\"" << html_escape(telemetry) << "\">" << html_escape(telemetry) << "</a> &middot; <a href=\"/-/healthy\">/-/healthy</a> &middot; "
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
    const uint32_t c = probes[i].cookie;
    const auto& s = c < snap.stats.size() ? snap.stats[c] : insa_probe_stats{};
    o << "<tr><td>" << html_escape(probes[i].name) << "</td><td>" << html_escape(probes[i].binary) << "</td><td>"
      << html_escape(probes[i].target) << "</td><td>" << probes[i].exit_sites << "</td><td>"
      << (states[i].attached ? "yes" : "no") << "</td><td>" << s.hits << "</td><td>" << s.abandoned << "</td><td>"
      << html_escape(states[i].error) << "</td></tr>\n";
  }
  o << "</table></body></html>\n";
  return o.str();
}

}  // namespace

std::string privilege_problem() { return privileges::load_problem(privileges::effective(), geteuid()); }

namespace {

/// Outcome of the last reload, exported as Prometheus does for its own config.
struct ReloadState {
  std::atomic<bool> last_ok{true};
  std::atomic<double> last_success{0};
};

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A reload asked for over HTTP (POST /-/reload), answered by the main loop.
struct ReloadRequest {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t asked = 0, done = 0;
  std::string last_error;
};

}  // namespace

int run_agent(const AgentOptions& opt) {
  const std::string& config_file = opt.config_file;
  if (auto why = privilege_problem(); !why.empty()) throw FatalError{Error{why, EPERM}};
  // Read the config once up front so a bad file or port fails before anything attaches.
  auto first = config::load_config(config_file);
  if (!first) throw FatalError{first.error()};
  auto web = http::WebConfigSource::open(opt.web_config_file);
  if (!web) throw FatalError{web.error()};
  std::string listen = opt.listen.empty() ? first->listen_address : opt.listen;
  auto server = http::Server::listen(listen);
  if (!server) throw FatalError{server.error()};
  (*server)->set_web_config(*web);

  attach::install_libbpf_logger();
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  ReloadState reload_state;
  ReloadRequest reload_req;
  const double start_time = now_seconds();
  reload_state.last_success = start_time;
  // Families every instance's collector appends: reload outcome and process_* metrics.
  std::vector<collector::FamilySource> extra = {
      [&reload_state](std::vector<prometheus::MetricFamily>& out) {
        prometheus::MetricFamily ok{"insa_exporter_config_last_reload_successful",
                                    "1 when the last configuration reload succeeded.", prometheus::MetricType::Gauge, {}};
        prometheus::ClientMetric m;
        m.gauge.value = reload_state.last_ok ? 1 : 0;
        ok.metric.push_back(m);
        out.push_back(std::move(ok));
        prometheus::MetricFamily ts{"insa_exporter_config_last_reload_success_timestamp_seconds",
                                    "Time of the last successful configuration load (start or reload).",
                                    prometheus::MetricType::Gauge, {}};
        m.gauge.value = reload_state.last_success;
        ts.metric.push_back(m);
        out.push_back(std::move(ts));
      },
      collector::process_metrics_source(),
      [srv = server->get()](std::vector<prometheus::MetricFamily>& out) {
        const auto& st = srv->stats();
        auto add = [&](const char* name, const char* help, prometheus::MetricType t, double v) {
          prometheus::MetricFamily f{name, help, t, {}};
          prometheus::ClientMetric m;
          if (t == prometheus::MetricType::Counter) m.counter.value = v;
          else m.gauge.value = v;
          f.metric.push_back(m);
          out.push_back(std::move(f));
        };
        using prometheus::MetricType;
        add("insa_exporter_http_connections_total", "HTTP connections accepted.", MetricType::Counter,
            static_cast<double>(st.connections.load()));
        add("insa_exporter_http_connections_rejected_total",
            "HTTP connections refused with 503 because 1024 were open.", MetricType::Counter,
            static_cast<double>(st.rejected_connections.load()));
        add("insa_exporter_http_requests_total", "HTTP requests parsed and routed (any status).", MetricType::Counter,
            static_cast<double>(st.requests.load()));
        add("insa_exporter_http_timeouts_total",
            "HTTP connections closed at a deadline: request, idle keep-alive, write or TLS handshake.",
            MetricType::Counter, static_cast<double>(st.timeouts.load()));
        add("insa_exporter_http_tls_handshake_errors_total", "TLS handshakes that failed.", MetricType::Counter,
            static_cast<double>(st.tls_handshake_errors.load()));
        add("insa_exporter_http_open_connections", "HTTP connections open now.", MetricType::Gauge,
            static_cast<double>(st.open_connections.load()));
      }};

  std::mutex mu;  // guards `inst` (and its engine's plan, states and links) against the HTTP threads
  std::unique_ptr<Instance> inst;
  std::atomic<bool> ready{false};
  // Kernel maps are read on one thread that keeps only CAP_BPF (CAP_SYS_ADMIN before
  // 5.8): the HTTP threads hold no capability (README, Which thread holds what).
  Executor scraper("insa-scrape", [] {
    const int cap = http::thread_permits(CAP_BPF) ? CAP_BPF : CAP_SYS_ADMIN;  // no CAP_BPF before 5.8
    if (auto r = http::keep_thread_capabilities(1ULL << cap); !r)
      spdlog::warn("{}", r.error().message);
  });
  (*server)->handle(opt.telemetry_path, [&] {
    std::lock_guard<std::mutex> lock(mu);
    if (!inst) return http::Response{503, "text/plain; charset=utf-8", "not ready\n"};
    auto* c = inst->collector.get();
    return http::Response{200, "text/plain; version=0.0.4; charset=utf-8", scraper.run([c] { return c->text(); })};
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
      if (states[i].attached || states[i].waiting) continue;  // waiting: no process runs its script yet
      ++n;
      missing += "  " + probes[i].name + ": " + states[i].error + "\n";
    }
    if (n == 0) return http::Response{200, "text/plain; charset=utf-8", "Ready\n"};
    return http::Response{503, "text/plain; charset=utf-8",
                          "Not ready: " + std::to_string(n) + " of " + std::to_string(states.size()) +
                              " probes not attached\n" + missing};
  });
  if (opt.enable_lifecycle) {
    (*server)->handle("/-/reload", {"POST", "PUT"}, [&](const http::Request&) {
      std::unique_lock<std::mutex> lock(reload_req.mu);
      const uint64_t ticket = ++reload_req.asked;
      g_signal = SIGHUP;  // wakes the main loop's next turn (within 200 ms)
      if (!reload_req.cv.wait_for(lock, std::chrono::seconds(120), [&] { return reload_req.done >= ticket; }))
        return http::Response{503, "text/plain; charset=utf-8", "reload still running; see the log\n"};
      if (!reload_req.last_error.empty())
        return http::Response{500, "text/plain; charset=utf-8",
                              "failed to reload config, the previous one stays in force: " + reload_req.last_error + "\n"};
      return http::Response{200, "text/plain; charset=utf-8", "reloaded\n"};
    });
  }
  const std::string telemetry = opt.telemetry_path;
  (*server)->handle("/", [&] {
    std::lock_guard<std::mutex> lock(mu);
    auto* in = inst.get();
    const bool r = ready;
    return http::Response{200, "text/html; charset=utf-8",
                          scraper.run([&] { return landing_page(in, r, telemetry); })};
  });
  (*server)->start();
  spdlog::info("listening on {} (port {}, {}{})", listen, (*server)->port(),
               (*web)->current()->tls ? "TLS" : "plain HTTP",
               (*web)->current()->cfg.users.empty() ? "" : ", basic auth");

  {
    auto fresh = prepare_instance(config_file);
    activate_instance(*fresh, extra);
    std::lock_guard<std::mutex> lock(mu);
    inst = std::move(fresh);
  }
  ready = true;
  spdlog::info("ready: serving {}", opt.telemetry_path);

  auto last_scan = std::chrono::steady_clock::now();
  while (true) {
    int sig = g_signal.exchange(0);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", config_file);
      std::string error;
      // Parse and plan the new config while the old one keeps serving.
      std::unique_ptr<Instance> fresh;
      try {
        fresh = prepare_config(config_file);
      } catch (const FatalError& e) {
        error = e.error.message;
      } catch (const std::exception& e) {
        error = std::string("unexpected error while loading ") + config_file + ": " + e.what();
      }
      if (fresh) {
        // Applied to the running BPF object when it can be: unchanged probes keep their
        // values (README, Reloads). Otherwise a whole new instance, verified and attached
        // while the old one still counts and serves (uprobes may stack on one function;
        // each instance has its own maps), then swapped under the lock: scrapes never see
        // a gap nor wait for the attach.
        // rebase_plan also decides whether the new config fits the kernel series budget
        // the maps were loaded with (otherwise `why` says what changed).
        plan::ReloadDiff diff = plan::rebase_plan(inst->engine->plan(), inst->cfg, fresh->plan, fresh->cfg);
        try {
          if (diff.incremental) {
            reload_incremental(inst, std::move(fresh), std::move(diff), extra, mu);
          } else {
            auto eng = attach::Engine::load(fresh->plan, {&fresh->cfg});
            if (!eng) throw FatalError{eng.error()};
            fresh->engine = std::move(*eng);
            activate_instance(*fresh, extra, inst.get());
            std::unique_ptr<Instance> old;
            {
              std::lock_guard<std::mutex> lock(mu);
              fresh->collector->adopt(*inst->collector);
              old = std::move(inst);
              inst = std::move(fresh);
            }
            old.reset();
            spdlog::info("reload: every probe starts again from zero: {}", diff.why);
          }
        } catch (const FatalError& e) {
          error = e.error.message;
        } catch (const std::exception& e) {
          error = std::string("unexpected error while loading ") + config_file + ": " + e.what();
        }
      }
      if (error.empty()) {
        reload_state.last_ok = true;
        reload_state.last_success = now_seconds();
        spdlog::info("reload: {} loaded", config_file);
      } else {
        reload_state.last_ok = false;
        spdlog::error("reload failed, the previous config stays in force: {}", error);
      }
      {
        std::lock_guard<std::mutex> lock(reload_req.mu);
        reload_req.done = reload_req.asked;
        reload_req.last_error = error;
      }
      reload_req.cv.notify_all();
    }
    if (inst) {
      inst->engine->poll_exits(200);
      // A process a native probe targets started: its per-process links now, not at the next scan.
      if (inst->engine->pending_execs()) inst->engine->rescan_files(&mu);
    } else {
      usleep(200 * 1000);
    }
    auto now = std::chrono::steady_clock::now();
    if (inst && now - last_scan >= std::chrono::seconds(1)) {
      last_scan = now;
      inst->lifecycle->scan();
      inst->expiry->tick();  // idle series and those of dead $pid processes
      try {
        check_replaced(*inst, mu);
        // Scans /proc and reads ELF files without the lock; attaches under it.
        inst->engine->rescan_python(&mu);
        inst->engine->rescan_files(&mu);
      } catch (const std::exception& e) {  // e.g. std::filesystem_error on a symlink loop
        spdlog::error("checking for replaced binaries: {}", e.what());
      }
    }
  }
  spdlog::info("shutting down");
  // A scrape stuck in a pathological label regex cannot be interrupted, and stop() joins
  // the threads waiting for it: never let that hold the exit. The kernel detaches every
  // probe when the process's BPF link fds close.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    spdlog::error("shutdown still waiting after 5 s (a scrape still running?): exiting now");
    spdlog::default_logger()->flush();
    _exit(0);
  }).detach();
  (*server)->stop();
  std::lock_guard<std::mutex> lock(mu);
  inst.reset();
  return 0;
}

}  // namespace insa::app
