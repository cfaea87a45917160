// SPDX-License-Identifier: Apache-2.0
/// @file The BPF side of a plan: the skeleton opened, sized, loaded through the
/// verifier and attached point by point. Every libbpf resource is owned by a
/// move-only RAII handle; the engine owns them all.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include "attach/plan.h"
#include "common/result.h"
#include "reader/map_reader.h"

struct insa_probes;
struct bpf_link;
struct bpf_map;
struct ring_buffer;

namespace insa::attach {

/// Owns one bpf_link; destroying it detaches.
class Link {
 public:
  Link() = default;
  explicit Link(bpf_link* l) : l_(l) {}
  Link(Link&& o) noexcept : l_(o.l_) { o.l_ = nullptr; }
  Link& operator=(Link&& o) noexcept;
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;
  ~Link();
  explicit operator bool() const { return l_ != nullptr; }

 private:
  bpf_link* l_ = nullptr;
};

struct SkeletonDeleter {
  void operator()(::insa_probes* s) const;
};
struct RingBufferDeleter {
  void operator()(ring_buffer* r) const;
};

/// Attach state of one probe (all its points).
struct ProbeState {
  bool attached = false;
  size_t points_attached = 0;
  std::string error;  ///< first attach failure, one line
  /// A Python probe whose processes have not started yet: not a failure (it is hooked
  /// when one starts), so it does not make the exporter unready.
  bool waiting = false;
};

/// Load-time choices not in the plan (the aggregation maps are sized from plan.budget).
struct EngineOptions {
  /// The config the plan was built from (outlives the engine): probes on paths inside
  /// containers are analysed per file while running. Null: no per-process attachment.
  const config::Config* config = nullptr;
};

/// A process exit reported by the kernel.
struct ExitEvent {
  uint32_t tgid;
  int exit_code;  ///< wait status
  std::string comm;
};

/// A process started running a file (execve).
struct ExecEvent {
  uint32_t tgid;
  uint64_t dev;  ///< userspace dev_t (makedev), comparable with stat's st_dev
  uint64_t ino;
};

class Engine {
 public:
  /// Opens and loads the BPF object (verifier included) and fills the spec map.
  /// Nothing is attached yet; this is all `check` needs.
  static Result<std::unique_ptr<Engine>> load(const plan::Plan& plan, const EngineOptions& opts);
  ~Engine();

  /// Attaches every point of every probe. A failing point is recorded in the probe's
  /// state and logged; the others still attach. Returns the number of probes attached.
  size_t attach_all();
  /// Attaches the points of one probe (again), e.g. after its binary was replaced.
  Result<void> attach_probe(size_t probe);
  /// Re-targets probe i after its binary changed on disk (new inode): new spec and
  /// points from a fresh plan. Links on the old file stay until exit, so processes
  /// still running the old binary keep being measured.
  Result<void> replace_probe(size_t probe, const plan::ProbePlan& pp, const insa_probe_spec& spec);
  /// Releases the links kept on replaced binaries (see replace_probe) once no
  /// process maps the old file (device + inode in /proc/PID/maps). Returns the
  /// number of links released. Scans /proc only while such links exist.
  size_t release_retired();
  /// Links still held on replaced binaries.
  size_t retired_links() const;
  /// Detaches one probe's points.
  void detach_probe(size_t probe);
  /// Starts reporting process exits to `cb` and, when given, every exec to
  /// `exec_cb` (pid, device and inode of the file; called from poll_exits, in the
  /// order they happened). Called again, it replaces the callbacks.
  Result<void> watch_exits(std::function<void(const ExitEvent&)> cb,
                           std::function<void(const ExecEvent&)> exec_cb = {});
  /// Drains pending exit events; waits at most timeout_ms.
  int poll_exits(int timeout_ms);
  /// Python probes: finds the processes they target, checks each one's interpreter
  /// layout against the live process, and hooks it: per process, or host-wide on an
  /// interpreter named in `python.interpreter`. Releases the hooks of processes gone.
  /// Called at start and on every process scan. Returns the processes newly hooked.
  /// `mu`: held only while hooks and states change (the /proc scan and ELF reads run
  /// without it), so a scrape never waits for the scan.
  size_t rescan_python(std::mutex* mu = nullptr);
  /// Hooks an interpreter file for every process that runs it (python.interpreter).
  Result<void> attach_interpreter(const python::Interpreter& in);
  /// Native probes per process: (1) processes in another mount namespace (containers)
  /// whose executable, as they see it, is a probe's absolute path get that probe's
  /// points on their own file (analysed through /proc/PID/root, cached per file, attached
  /// with a pid filter, so two containers running different builds are two targets and
  /// two containers of one image never count a call twice); (2) every process a tracked
  /// probe targets gets the C++ catch hook on the libstdc++ it maps (pid filter), and no
  /// other process does. Links of processes gone (or exec'd into another file) are
  /// released. Called at start, on every scan and after exec events (pending_execs).
  /// `mu`: held only while links and states change. Returns the processes newly attached.
  size_t rescan_files(std::mutex* mu = nullptr);
  /// Exec events of processes a probe may target, not yet handled by rescan_files.
  bool pending_execs() const { return !pending_execs_.empty(); }

  /// Incremental reload, in three steps so the scrape lock is held only for the swap.
  /// `fresh` was renumbered against plan() by plan::rebase_plan, which gave `diff`.
  /// stage_reload (without the lock): the series ids of new and changed probes are
  /// emptied, their specs written at spec indices no running probe uses, their statistics
  /// zeroed, and they are attached, while every running probe keeps counting (a changed
  /// probe's old and new links both fire meanwhile, each into its own series). Nothing a
  /// scrape reads changes. On failure nothing is left behind.
  Result<void> stage_reload(plan::Plan fresh, plan::ReloadDiff diff);
  /// Makes the staged plan the engine's: kept probes carry their links, state and values
  /// over untouched. Call with the lock that scrapes hold.
  /// `cfg`: the new config (outlives the engine until the next reload), which per-process
  /// attachment reads from now on.
  void commit_reload(const config::Config* cfg);
  /// After commit_reload: detaches the removed and replaced probes, clears their specs and
  /// deletes their series' keys from every map keyed by series (delete_series). Returns
  /// the number of keys deleted.
  size_t finish_reload();
  /// Drops a staged reload that will not be committed (detaches what it attached).
  void abort_reload();
  /// Deletes every key whose series id is in `metric_of` (series id → its metric) from
  /// every map keyed by series id (series_maps()); each deleted key of an aggregation map
  /// gives its metric's quota slot back, as an expired one does (reader::release_quota).
  /// Returns the number of keys deleted.
  size_t delete_series(const std::map<uint32_t, uint32_t>& metric_of);

  const std::vector<ProbeState>& states() const { return states_; }
  const plan::Plan& plan() const { return plan_; }
  int counters_fd() const;
  int gauges_fd() const;
  int stats_fd() const;
  /// Every map the reader, the collector and the expiry sweep read or change.
  reader::MapFds map_fds() const;

 private:
  Engine(plan::Plan plan, std::unique_ptr<::insa_probes, SkeletonDeleter> skel);
  Result<Link> attach_point(const plan::AttachPoint& p);
  /// Attaches every point of `pp`, or none (the first failure, with the probe named).
  Result<std::vector<Link>> attach_points(const plan::ProbePlan& pp);
  /// The maps whose keys begin with a __u32 series id: values a reload deletes by id.
  std::vector<bpf_map*> series_maps() const;
  Result<void> write_spec(uint32_t index, const insa_probe_spec& spec);
  Result<void> zero_stats(uint32_t index);
  /// A reload between stage_reload and finish_reload.
  struct PendingReload {
    plan::Plan plan;
    plan::ReloadDiff diff;
    std::vector<std::vector<Link>> links;  ///< per new probe: links attached by stage_reload
    std::vector<ProbeState> states;
    std::vector<std::pair<uint64_t, uint64_t>> probe_files;
    std::vector<uint32_t> new_specs;        ///< spec indices written by stage_reload
    std::vector<Link> catch_links;          ///< catch hooks the running plan lacked
    std::vector<plan::AttachPoint> catch_points;
    std::vector<std::vector<Link>> dropped;  ///< after commit: links of removed probes
    std::map<uint32_t, uint32_t> freed;      ///< after commit: freed series id → its metric
    std::vector<Link> dropped_catch;
  };
  std::unique_ptr<PendingReload> pending_;
  std::vector<plan::AttachPoint> catch_hooked_;  ///< the point of each catch_links_ entry

  plan::Plan plan_;
  std::unique_ptr<::insa_probes, SkeletonDeleter> skel_;
  /// The `quotas` array mapped into our memory (BPF_F_MMAPABLE): the expiry sweep
  /// takes a live key off a metric with an atomic the kernel's atomics see.
  struct Mapping {
    void* addr = nullptr;
    size_t len = 0;
    ~Mapping();
  } quotas_;
  std::vector<std::vector<Link>> links_;  ///< per probe
  std::vector<Link> shared_links_;        ///< task exit
  std::vector<Link> catch_links_;         ///< __cxa_begin_catch hooks, shared by all probes
  /// Links on a replaced binary, kept while a process still runs the old file.
  struct Retired {
    uint64_t dev = 0, ino = 0;  ///< the old file
    std::string path;
    std::vector<Link> links;
  };
  std::vector<Retired> retired_;
  std::vector<std::pair<uint64_t, uint64_t>> probe_files_;  ///< per probe: dev, ino when attached
  std::vector<ProbeState> states_;
  /// Python: one layout per interpreter file (index == cookie of its hooks).
  std::vector<python::Interpreter> py_layouts_;
  std::set<std::string> py_refused_;            ///< files refused once (logged once)
  std::vector<Link> py_host_links_;             ///< frame-entry hooks on whole files
  std::set<size_t> py_host_wide_;               ///< layouts hooked host-wide
  std::map<int, std::vector<Link>> py_pid_links_;  ///< per process: frame-entry and/or per-call hooks
  std::set<int> py_pid_refused_;                ///< processes that cannot be hooked (logged once)
  /// Interpreters read, by (device, inode, size, mtime).
  std::map<std::tuple<uint64_t, uint64_t, uint64_t, int64_t, int64_t>, python::Interpreter> py_inspected_;
  Result<python::Interpreter> inspect_cached(const std::string& file);
  Result<size_t> py_layout(const python::Interpreter& in);
  /// `file`: the interpreter as this process maps it, reached from the exporter.
  Result<void> attach_python_pid(int pid, size_t layout, const std::string& file, bool eval, bool per_call);
  void update_python_states();
  /// Per-process native links (rescan_files), by host PID.
  struct ProcLinks {
    uint64_t dev = 0, ino = 0;  ///< the executable they were made for
    std::map<size_t, std::vector<Link>> probes;  ///< container probes: probe index → links
    std::vector<Link> catch_links;               ///< __cxa_begin_catch hooks of this process
  };
  std::map<int, ProcLinks> procs_;
  std::set<int> pending_execs_;
  /// Container files analysed, by (device, inode, size, mtime) and probe: the plan, or
  /// the refusal (logged once).
  struct FileAnalysis {
    std::optional<plan::FilePlan> plan;
    std::string error;
    uint64_t catch_offset = 0;  ///< a -static-libstdc++ build's own __cxa_begin_catch (0: none)
  };
  std::map<std::tuple<uint64_t, uint64_t, uint64_t, int64_t, size_t>, FileAnalysis> analysed_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> catch_offsets_;  ///< libstdc++ file → offset (0: none)
  std::vector<bool> delta_known_;  ///< per probe: entry_sp_delta set from a file
  std::set<std::pair<int, size_t>> file_refused_;  ///< (pid, probe) refused (logged once)
  void update_file_states();
  bool wants_exec() const;
  void exec_seen(uint32_t tgid, uint64_t dev, uint64_t ino);
  const config::Config* config_ = nullptr;
  std::unique_ptr<ring_buffer, RingBufferDeleter> exits_;
  std::function<void(const ExitEvent&)> exit_cb_;
  std::function<void(const ExecEvent&)> exec_cb_;
};

/// Routes libbpf's messages into spdlog (debug level, warnings as warnings).
void install_libbpf_logger();

}  // namespace insa::attach
