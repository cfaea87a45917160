// SPDX-License-Identifier: Apache-2.0
/// @file The probes.yaml model. Pure: parsing and validation only, no libbpf, no
/// ELF. Every element keeps the file:line:col it came from so later stages
/// (symbol resolution, attach) can point the user at the right line.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/label_regex.h"
#include "common/result.h"

namespace insa::config {

/// Where in probes.yaml an element was written.
struct Mark {
  std::string file;
  int line = 0;  ///< 1-based
  int col = 0;   ///< 1-based
  /// "probes.yaml:12:5"
  std::string str() const;
};

enum class MetricType { Counter, Gauge, Histogram };

struct MetricDef {
  std::string name;
  std::string help;
  MetricType type = MetricType::Counter;
  std::vector<std::string> labels;
  std::vector<double> buckets;  ///< histogram `le` bounds, ascending
  /// This metric's kernel series quota, taken out of exporter.max_series first (0: an
  /// even share of what is left).
  uint32_t max_series = 0;
  Mark max_series_mark;
  /// Bucket unit: durations are observed in ns by the kernel, so bounds in seconds
  /// are scaled when a probe observes $duration. Plain values are observed as is.
  Mark mark;
};

/// A value the kernel captures or userspace supplies: `$arg2`, `$arg1:str32`,
/// `$ret`, `$duration`, `$status`, `$pid`, an integer or a literal string.
struct ValueRef {
  /// Python probes add: ArgLen (`$argN:len`), RetStr (`$ret:str`), Exception
  /// (`$exception`, the type name), RetNone (`ret == None` in a condition), and
  /// named parameters (`$request`, `$request:len`: Arg/ArgStr/ArgLen with `name`).
  enum class Kind { Literal, Int, Arg, ArgStr, Ret, Duration, Status, Pid, ArgLen, RetStr, Exception, RetNone };
  Kind kind = Kind::Literal;
  int arg = 0;              ///< 1-based for Arg/ArgStr
  int len = 0;              ///< capture length for ArgStr
  int64_t number = 0;       ///< Int
  std::string literal;      ///< Literal
  bool i32 = false;         ///< `:i32`: a C int, sign-extended from the low 32 bits
  bool len_of = false;      ///< `$ret:len` (Python): len() of the returned object
  std::string name;         ///< Python: a parameter named instead of numbered
  bool kernel() const { return kind != Kind::Literal; }
  std::string str() const;  ///< back to the YAML spelling, for messages
};

/// A label's value: a ValueRef, optionally renamed through a map or a regex.
struct LabelBinding {
  std::string label;
  ValueRef value;
  std::map<int64_t, std::string> value_map;  ///< integer → name
  std::string map_default;                   ///< name for integers not in the map ("" = the number)
  std::string regex_src;                     ///< first capture group (or whole match) is the value
  std::optional<LabelRegex> regex;          ///< RE2, case-insensitive
  bool drop_unmatched = false;  ///< series whose string does not match `regex` are not exported
  Mark mark;
};

enum class Cmp { Lt, Le, Eq, Ne, Gt, Ge };

/// `{if: "ret < 0", then: error}` or `{else: success}`; without `status`, the `if:` of an
/// update (the update applies only when the condition holds).
struct StatusRule {
  ValueRef lhs;  ///< $ret, $duration or $argN
  Cmp cmp = Cmp::Eq;
  int64_t rhs = 0;  ///< durations in ns
  std::string status;
  std::string rhs_name;  ///< `exception == "TimeoutError"`: the name (rhs is its hash)
  Mark mark;
};

enum class UpdateOp { Count, Observe, Add, Sub, Set, Inflight, SpanBegin, SpanEnd };
enum class When { Default, Entry, Exit };

/// One metric update a probe performs.
struct Update {
  std::string metric;
  UpdateOp op = UpdateOp::Count;
  When when = When::Default;
  ValueRef value;  ///< observed / added / set value; counters default to 1
  std::vector<LabelBinding> labels;
  std::string span;  ///< SpanBegin: name of the span; SpanEnd: name of the span it ends
  ValueRef span_key; ///< argument that keys the span
  std::optional<StatusRule> cond;  ///< `if: "ret >= 0"`: update only when it holds
  Mark mark;
};

enum class ExitMethod { ReturnSites, Uretprobe };

/// `python:` of a probe: a function or coroutine of unmodified CPython processes.
struct PythonDef {
  std::string script;       ///< processes whose main script path ends with this
  std::string module;       ///< or processes started with `-m module`
  std::string file;         ///< co_filename suffix of the function's file (default: script or module path)
  std::string function;     ///< co_qualname: "f", "Class.method", "outer.<locals>.inner"
  std::vector<std::string> interpreters;  ///< attach from the start (else found from matching processes)
  std::string source;       ///< the source file, for checks and $name parameters (default: found)
  /// `mechanism: call`: every frame start and end of the targeted processes (sees plain
  /// calls CPython runs inline; costs every Python call of those processes). Default:
  /// frames entered from C (_PyEval_EvalFrameDefault), free for ordinary calls.
  bool per_call = false;
  Mark mark, function_mark;
};

struct ProbeDef {
  std::string name;
  std::string binary;     ///< path or library soname
  int pid = -1;           ///< -1: every process of the binary
  std::string function;   ///< symbol (mangled or demangled), or empty
  std::string usdt;       ///< "provider:name", or empty
  std::optional<uint64_t> offset;  ///< raw file offset, instead of function/usdt
  ExitMethod exit = ExitMethod::ReturnSites;
  std::vector<StatusRule> status;
  std::string default_status = "success";
  std::string exception_status = "error";
  /// Status of a call that never returned (left by longjmp/siglongjmp, or its thread or
  /// process ended): exit updates run with it, skipping $ret and $duration. Empty: such
  /// calls only count in insa_exporter_abandoned_calls_total.
  std::string abandoned_status;
  std::vector<Update> updates;
  std::optional<PythonDef> python;  ///< a Python probe: `binary`, `function`, `usdt`, `offset` unused
  Mark mark;
  Mark binary_mark, function_mark;
  Mark exit_mark;  ///< where `exit:` was written (the probe's mark when absent)
  Mark pid_mark;   ///< where `pid:` was written
  /// Needs entry/exit pairing: some update runs at exit or reads ret/duration/status.
  bool tracked() const;
};

/// A process whose lifecycle is exported (health, restarts).
/// Largest PID the kernel can hand out on 64-bit (PID_MAX_LIMIT, include/linux/threads.h).
inline constexpr uint64_t kPidMaxLimit = 4194304;

struct WorkerDef {
  std::string name;
  std::string type;
  std::string binary;  ///< the executable ("" with `script`: any Python interpreter)
  Mark mark;
  /// A Python worker: processes of a Python interpreter whose main script path ends with
  /// these path components (`sizing_agent_worker.py`); "" for a native worker.
  std::string script;
};

/// Bounds on what a config may hold, each refused with a one-line message. The largest
/// useful config (512 probes, 6 updates each) is about 300 KiB of YAML.
inline constexpr size_t kMaxConfigBytes = 1 << 20;  ///< 1 MiB
inline constexpr size_t kMaxProbes = 512;           ///< the kernel's probe table (INSA_MAX_PROBES)
inline constexpr size_t kMaxMetrics = 4096;         ///< 512 probes x 6 updates fit with room
inline constexpr size_t kMaxWorkers = 1024;
/// YAML nesting: probes.yaml needs 7 levels; yaml-cpp itself stops at 500.
inline constexpr int kMaxYamlDepth = 64;

struct Config {
  std::string file;
  std::string listen_address = ":9091";
  size_t label_limit = 100;  ///< distinct values per metric before `other`
  /// Kernel series budget: split into one quota per metric (attach/map_budget.h).
  uint32_t max_series = 16384;
  Mark max_series_mark;  ///< where `max_series` was written (line 0: default)
  /// Series unchanged this long are removed from the kernel maps and /metrics (0: never).
  int64_t series_expiry_ns = 600'000'000'000;
  std::map<std::string, std::string> system_info;  ///< version, environment
  std::vector<MetricDef> metrics;
  std::vector<WorkerDef> workers;
  std::vector<ProbeDef> probes;
  /// Metric name -> index in `metrics`, filled by parse_config: metric() is then a map
  /// lookup, not a scan (a scan per metric and per update made big configs quadratic).
  std::map<std::string, size_t> metric_index;
  /// The metric named `name`, or nullptr. Falls back to a scan when `metrics` was
  /// changed after parsing (tests build configs by hand).
  const MetricDef* metric(const std::string& name) const;
};

/// Parses and validates probes.yaml text. `file` names it in messages. Never throws:
/// every problem, from YAML syntax to size limits, is one located line.
Result<Config> parse_config(const std::string& text, const std::string& file);
/// Reads and parses a file; a missing, unreadable, non-regular (FIFO, directory) or
/// oversized file is a one-line error, and reading never blocks.
Result<Config> load_config(const std::string& path);
/// `message` as one line: control characters a config can smuggle into a quoted name
/// (newlines, escapes) are written as \n, \r or \xNN, so a log line stays one line.
std::string one_line(const std::string& message);
/// Parses "100ms", "2s", "1.5s", "250us", "10ns" to nanoseconds.
std::optional<int64_t> parse_duration_ns(const std::string& s);
/// Parses a value expression ($arg2, $ret, ...); nullopt when not an expression.
/// `python`: also the values of python: probes ($name, $argN:len, $ret:len, $ret:str, $exception).
std::optional<ValueRef> parse_value(const std::string& s, std::string* why, bool python = false);

}  // namespace insa::config
