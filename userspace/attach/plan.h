// SPDX-License-Identifier: Apache-2.0
/// @file The attach plan: probes.yaml compiled into what the kernel needs (one
/// insa_probe_spec per probe, indexed by attach cookie; the attach points with
/// binary, file offset and role) and what the collector needs to turn map keys
/// back into labelled series. Resolving binaries and symbols happens here, so
/// `insa-exporter check` and the real run share one path.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "attach/map_budget.h"
#include "common/label_regex.h"
#include "common/result.h"
#include "config/config.h"
#include "insa_shared.h"
#include "python/interp.h"

namespace insa::plan {

/// PyEntry/PyExit: the interpreter's _PyEval_EvalFrameDefault (uprobe and
/// uretprobe), shared by every Python probe; their cookie indexes py_layouts.
/// PyResume/PyClear: the per-call mechanism (RESUME handler sites, frame clear), per process.
enum class Role { Entry, Exit, Uretprobe, Catch, Usdt, PyEntry, PyExit, PyResume, PyClear };

/// One uprobe/USDT attachment.
struct AttachPoint {
  Role role = Role::Entry;
  std::string binary;  ///< absolute path of the ELF file
  uint64_t offset = 0; ///< file offset (uprobes)
  int pid = -1;
  uint32_t cookie = 0;
  std::string usdt_provider, usdt_name;
  int probe = -1;      ///< index in Plan::probes, -1 for the shared catch hook
  /// Identity of the file the offsets were computed from (0: not checked). The engine
  /// attaches through a descriptor whose fstat matches it, never by path alone.
  uint64_t dev = 0, ino = 0;
};

/// How one label of a series is produced from a key.
struct LabelDecoder {
  /// Container: `$container`/`$pod`/`$namespace`, from the host PID in the slot (field).
  enum class Kind { Static, Int, Str, Status, Container };
  std::string name;
  Kind kind = Kind::Static;
  enum class Field { Container, Pod, Namespace } field = Field::Container;
  std::string static_value;
  uint32_t offset = 0, len = 0;  ///< bytes in insa_key.data
  std::map<int64_t, std::string> value_map;
  std::string map_default;
  std::optional<LabelRegex> regex;
  bool drop_unmatched = false;
  bool pid = false;  ///< Int from $pid: the series ends with its process (expiry)
};

/// A key.series id: one (probe, update) pair.
struct Series {
  size_t metric = 0;  ///< index in Config::metrics
  std::vector<LabelDecoder> labels;  ///< in the metric's label order
  double scale = 1.0;  ///< kernel units → exported units (1e-9 for ns → s)
  int probe = -1;
  bool gauge = false;  ///< lives in the gauges map
  /// A gauge moved by add/sub/in-flight: its value is a running balance, so it is
  /// expired only at zero (a `set` gauge holds the last value and expires when idle).
  bool additive = false;
  /// An in-flight gauge whose labels are all static needs no kernel update: its value is
  /// the probe's own statistics, entries - (returns + exceptions + abandoned + untracked),
  /// which the kernel counts anyway. Saves two shared-map updates per call.
  bool derived_inflight = false;
  /// A hole left by a reload (rebase_plan): no probe updates this id; its keys are gone
  /// from the maps, and a later reload may give the id to a new series.
  bool unused = false;
};

struct ProbePlan {
  std::string name;
  std::string binary;
  std::string target;  ///< "demangled (mangled) @0x..", "usdt provider:name", ..
  uint32_t cookie = 0;
  bool tracked = false;
  size_t exit_sites = 0;
  /// Return-site probes: where the entry uprobe sits and how the kernel runs it, and
  /// the exit sites, for `check` ("entry @0x11a9 push rbp (emulated); exits @0x11f0 ret").
  std::string sites;
  /// How the end of a call is seen, and why (`check` prints it).
  std::string exit_method;
  std::vector<AttachPoint> points;
  config::Mark mark;
  /// A Python probe: its target in py_targets; the attach points are the interpreters'.
  std::optional<config::PythonDef> python;
  int pid = -1;
  int py_target = -1;
  /// The binary as processes see it, when the config names it by an absolute path
  /// (matched against /proc/PID/exe: a container's view); "" for a library or a
  /// relative path. Processes in another mount namespace running a file at this path
  /// are attached per process, each from its own file (Engine::rescan_files).
  std::string own_path;
  /// False when no file exists at the path on the exporter's host: `points` is empty
  /// and the probe attaches only to the containers that run it.
  bool host_file = true;
  /// A shared library (libfoo.so*): without pid: or select:, every process of the host
  /// that maps it traps on its probes (host-wide, which `check` points out).
  bool library = false;
  /// `select:`: attached per process, only to processes of matching containers.
  std::optional<config::Selector> select;
  /// Attached per process (rescan_files) rather than to the whole file.
  bool per_process() const { return !host_file || select.has_value(); }
};

struct Plan {
  /// index == cookie (ProbePlan::cookie). A fresh plan numbers its probes 0..n-1; after
  /// an incremental reload (rebase_plan) the numbering has holes (zeroed specs).
  std::vector<insa_probe_spec> specs;
  std::vector<Series> series;          ///< index == key.series (holes: Series::unused)
  std::vector<ProbePlan> probes;       ///< in config order; probes[i].cookie indexes specs
  std::vector<std::string> statuses;   ///< status index → name
  bool needs_catch = false;            ///< some tracked probe: hook __cxa_begin_catch
  /// The copies of __cxa_begin_catch inside probed binaries linked with
  /// -static-libstdc++ (only their processes run them). libstdc++.so's is hooked per
  /// process, for the processes probes target only (Engine::rescan_files).
  std::vector<AttachPoint> catch_points;
  /// Python probes: what the kernel matches code objects against (index == target).
  std::vector<insa_py_target> py_targets;
  /// Interpreters known when the plan was built (configured, or run by a matching
  /// process); the engine attaches more as matching processes appear.
  std::vector<python::Interpreter> py_interpreters;
  /// max_series shared among the metrics; the sizes of the aggregation maps.
  MapBudget budget;
};

/// How a new plan relates to the running one across a reload (rebase_plan).
struct ReloadDiff {
  /// Per probe of the new plan: index of the running probe it continues (same kernel
  /// spec index, series ids, links and values), or -1 when it is new or changed.
  std::vector<int> kept;
  std::vector<size_t> removed;          ///< running probes not kept: detached, their values deleted
  std::vector<uint32_t> freed_specs;    ///< spec indices of the removed probes (cleared)
  std::vector<uint32_t> freed_series;   ///< series ids of the removed probes (their keys deleted)
  /// False when the new plan cannot be applied to the running BPF object (`why`): a
  /// change to the Python probes (their target table is a load-time constant), a config
  /// the loaded kernel series budget does not hold (budget_misfit), or more spec indices
  /// or statuses than the kernel's tables hold. Then the agent reloads whole.
  bool incremental = true;
  std::string why;
};

/// Why the maps loaded with `running`'s budget cannot serve `fresh` (empty: they can).
/// They can when the metrics are the same, in the same order (insa_action.metric indexes
/// the kernel's quotas), max_series settings are unchanged, no metric without its own
/// max_series gains captured labels it had no share for or more fixed-label series than
/// its quota, and each map has room for the new config's `other` keys beside the quotas.
/// Then the loaded quotas and sizes stay (rebase_plan gives `fresh` the running budget).
std::string budget_misfit(const Plan& running, const config::Config& running_cfg, const Plan& fresh,
                          const config::Config& fresh_cfg);

/// Renumbers `fresh` (built from the new config) against `running`, the plan in force.
/// A probe of `fresh` identical to a running probe of the same name (same resolved file
/// by device and inode, attach points, kernel spec and series definitions, metric
/// definitions included) takes over its spec index (cookie) and series ids, so its kernel
/// keys and values continue. New and changed probes get indices and ids no running probe
/// uses (never ones freed by this reload, so a late event of a detached probe cannot land
/// in a new series). The status table is extended, never reordered: captured status
/// indices keep their names. `ids_only`: match probes by name and series definitions
/// only, ignoring attach points and spec (a binary replaced on disk keeps its numbering).
ReloadDiff rebase_plan(const Plan& running, const config::Config& running_cfg, Plan& fresh,
                       const config::Config& fresh_cfg, bool ids_only = false);

/// Does a Python probe target this process? (script path suffix or module, and pid)
bool python_matches(const ProbePlan& pp, int pid, const std::string& script_path, const std::string& module);

/// Compiles a validated config. Every binary and symbol is resolved; the first
/// problem is a one-line error naming probes.yaml:line:col.
Result<Plan> build_plan(const config::Config& cfg);

/// A native probe analysed from one file: a container's copy of its binary, opened
/// through /proc/PID/root. Its points (same cookies as in the full plan) and the entry
/// stack delta of that build.
struct FilePlan {
  ProbePlan probe;
  int64_t entry_sp_delta = 0;
};
Result<FilePlan> plan_probe_file(const config::Config& cfg, size_t probe, const std::string& file);

/// Absolute path of a probe's binary: a path relative to the config file's
/// directory (or the working directory), or a library soname/bare name.
Result<std::string> resolve_binary(const std::string& binary, const std::string& config_file);

}  // namespace insa::plan
