// SPDX-License-Identifier: Apache-2.0
#include "config/config.h"

#include "common/regular_file.h"

#include "common/name_hash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <regex>
#include <set>
#include <sstream>

#include <prometheus/check_names.h>

namespace insa::config {
namespace {

/// Bytes of a Python qualname or file suffix the kernel compares, NUL included (INSA_PY_NAME).
constexpr size_t INSA_PY_NAME_MAX = 64;

/// Validation failure inside the parser; converted to Error at the API edge.
struct ParseError {
  std::string message;
};

/// "file:L:C" of a yaml-cpp mark (0-based; a null mark, -1, reads as 1:1).
std::string where(const std::string& file, const YAML::Mark& m) {
  return file + ":" + std::to_string(std::max(m.line, 0) + 1) + ":" + std::to_string(std::max(m.column, 0) + 1);
}

/// The closing quote of the quoted scalar opening at `pos` (a ' or "), or npos.
size_t closing_quote(const std::string& text, size_t pos) {
  const char q = text[pos];
  for (size_t i = pos + 1; i < text.size(); ++i) {
    if (q == '"' && text[i] == '\\') {
      ++i;
    } else if (text[i] == q) {
      if (q == '\'' && i + 1 < text.size() && text[i + 1] == '\'') ++i;  // '' is a quote inside '...'
      else return i;
    }
  }
  return std::string::npos;
}

/// What the node tree hides, checked on yaml-cpp's event stream (linear, aliases not
/// expanded): a key that is not a scalar, duplicate keys (yaml-cpp keeps both and `[]`
/// returns the first), nesting deeper than any config needs, a second document, and a
/// quoted string left open (yaml-cpp 0.7 ends it at the end of the file when the file
/// ends with a newline, which swallowed the rest of the config into one value).
class Lint : public YAML::EventHandler {
 public:
  Lint(const std::string& text, const std::string& file) : text_(text), file_(file) {}

  void OnDocumentStart(const YAML::Mark& m) override {
    if (++docs_ > 1)
      throw ParseError{where(file_, m) + ": a second YAML document (after '---' or '...'): a config is one document; "
                       "remove the separator or merge the two"};
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m, nullptr, false); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m, nullptr, false, true); }
  void OnScalar(const YAML::Mark& m, const std::string& tag, YAML::anchor_t, const std::string& value) override {
    node(m, &value, false);
    // yaml-cpp tags quoted scalars "!"; remember the last one, the only one that can run to the end.
    if (tag == "!" && offset(m) < text_.size() && (text_[offset(m)] == '"' || text_[offset(m)] == '\'')) last_quote_ = m;
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m, nullptr, true);
    stack_.push_back(Frame{false, true, {}});
  }
  void OnSequenceEnd() override { stack_.pop_back(); }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m, nullptr, true);
    stack_.push_back(Frame{true, true, {}});
  }
  void OnMapEnd() override { stack_.pop_back(); }

  /// After the whole stream: a quoted scalar without its closing quote.
  void finish() const {
    if (last_quote_.pos < 0) return;
    const size_t at = offset(last_quote_);
    if (closing_quote(text_, at) == std::string::npos)
      throw ParseError{where(file_, last_quote_) + ": the string opened here with " + text_[at] +
                       " is never closed: add the closing " + text_[at]};
  }

 private:
  struct Frame {
    bool map = false;
    bool key_next = true;  ///< in a map: the next node is a key
    std::unordered_map<std::string, YAML::Mark> keys;
  };

  size_t offset(const YAML::Mark& m) const { return m.pos < 0 ? text_.size() : static_cast<size_t>(m.pos); }

  void node(const YAML::Mark& m, const std::string* scalar, bool collection, bool alias = false) {
    if (!stack_.empty() && stack_.back().map) {
      Frame& f = stack_.back();
      const bool is_key = f.key_next;
      f.key_next = !f.key_next;
      if (is_key) {
        if (!scalar || alias)
          throw ParseError{where(file_, m) + ": a key must be a plain name, not " +
                           (collection ? "a list or mapping" : alias ? "an alias" : "empty") +
                           " (write 'name: value')"};
        auto [it, fresh] = f.keys.emplace(*scalar, m);
        if (!fresh)
          throw ParseError{where(file_, m) + ": duplicate key '" + *scalar + "' (first at " + where(file_, it->second) +
                           "); YAML keeps only one: remove or merge the other"};
      }
    }
    if (collection && static_cast<int>(stack_.size()) >= kMaxYamlDepth)
      throw ParseError{where(file_, m) + ": YAML nested more than " + std::to_string(kMaxYamlDepth) +
                       " levels deep (a config needs 7): close the open brackets or fix the indentation"};
  }

  const std::string& text_;
  const std::string& file_;
  int docs_ = 0;
  YAML::Mark last_quote_ = YAML::Mark::null_mark();
  std::vector<Frame> stack_;
};

/// `[host]:port` as the exporter's listener takes it: host empty (all interfaces), a
/// name or IPv4 address, or an IPv6 address in brackets; port 0 to 65535.
bool listen_address_ok(const std::string& a) {
  const size_t c = a.rfind(':');
  if (c == std::string::npos) return false;
  const std::string host = a.substr(0, c), port = a.substr(c + 1);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) ||
      std::stoul(port) > 65535)
    return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    return std::all_of(host.begin() + 1, host.end() - 1,
                       [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) || ch == ':' || ch == '.' || ch == '%'; });
  return std::all_of(host.begin(), host.end(),
                     [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == '_'; });
}

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  Mark mark(const YAML::Node& n) const {
    auto m = n.Mark();
    return Mark{file_, m.line + 1, m.column + 1};
  }

  [[noreturn]] void fail(const YAML::Node& n, const std::string& what) const {
    throw ParseError{mark(n).str() + ": " + what};
  }

  void keys(const YAML::Node& n, const std::string& where, std::initializer_list<const char*> allowed) const {
    if (!n.IsMap()) fail(n, where + " must be a mapping");
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) fail(kv.first, "a key in " + where + " must be a plain name, not a list or mapping");
      const std::string& k = kv.first.Scalar();
      bool ok = std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; });
      if (!ok) {
        std::string list;
        for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
        fail(kv.first, "unknown key '" + k + "' in " + where + " (allowed: " + list + ")");
      }
    }
  }

  std::string str(const YAML::Node& n, const std::string& what) const {
    if (!n.IsScalar()) fail(n, what + " must be a string");
    return n.Scalar();
  }

  std::string req_str(const YAML::Node& parent, const char* key, const std::string& where) const {
    auto n = parent[key];
    if (!n) fail(parent, where + " needs '" + key + "'");
    return str(n, std::string("'") + key + "'");
  }

  int64_t integer(const YAML::Node& n, const std::string& what) const {
    if (!n.IsScalar()) fail(n, what + " must be an integer");
    try {
      size_t used = 0;
      long long v = std::stoll(n.Scalar(), &used, 0);
      if (used != n.Scalar().size()) throw std::invalid_argument("trailing");
      return v;
    } catch (const std::exception&) {
      fail(n, what + " must be an integer, got '" + n.Scalar() + "'");
    }
  }

  /// A PID: decimal digits only ("010" is not octal 8), 1 .. PID_MAX_LIMIT.
  int pid_value(const YAML::Node& n) const {
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    const bool digits = !v.empty() && v.size() <= 10 &&
                        std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    if (!digits || v[0] == '0' || std::stoull(v) > kPidMaxLimit)
      fail(n, "'pid' must be a process ID in decimal, 1 to " + std::to_string(kPidMaxLimit) + ", got '" + v + "'");
    return static_cast<int>(std::stoul(v));
  }

  /// A raw file offset: decimal or 0x-hex (a leading 0 is refused, not read as
  /// octal), above 0 (offset 0 is the ELF header, never code).
  uint64_t offset_value(const YAML::Node& n) const {
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    const bool hex = v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X');
    const std::string body = hex ? v.substr(2) : v;
    const bool ok = !body.empty() && body.size() <= 16 && (hex || body[0] != '0') &&
                    std::all_of(body.begin(), body.end(),
                                [&](char ch) { return hex ? std::isxdigit(static_cast<unsigned char>(ch)) != 0
                                                          : (ch >= '0' && ch <= '9'); });
    uint64_t off = 0;
    if (ok) {
      try {
        off = std::stoull(body, nullptr, hex ? 16 : 10);
      } catch (const std::exception&) {
        off = 0;
      }
    }
    if (off == 0)
      fail(n, "'offset' must be a file offset above 0 in decimal or 0x-hex (see insa-exporter list-probes), got '" + v +
                  "'");
    return off;
  }

  double number(const YAML::Node& n, const std::string& what) const {
    if (!n.IsScalar()) fail(n, what + " must be a number");
    try {
      size_t used = 0;
      double v = std::stod(n.Scalar(), &used);
      if (used != n.Scalar().size() || !std::isfinite(v)) throw std::invalid_argument("bad");
      return v;
    } catch (const std::exception&) {
      fail(n, what + " must be a number, got '" + n.Scalar() + "'");
    }
  }

  Config parse(const YAML::Node& root) {
    Config c;
    c.file = file_;
    if (!root || root.IsNull()) throw ParseError{file_ + ":1:1: the file is empty; see probes.yaml in the repository for an example"};
    keys(root, "the top level", {"exporter", "metrics", "workers", "probes"});
    if (auto e = root["exporter"]) parse_exporter(e, c);
    if (auto m = root["metrics"]) {
      if (!m.IsSequence()) fail(m, "'metrics' must be a list");
      for (const auto& n : m) {
        if (c.metrics.size() == kMaxMetrics)
          fail(n, "more than " + std::to_string(kMaxMetrics) + " metrics: declare only the metrics probes update "
                  "(labels tell series of one metric apart)");
        c.metrics.push_back(parse_metric(n, c));
        c.metric_index.emplace(c.metrics.back().name, c.metrics.size() - 1);
      }
    }
    if (auto w = root["workers"]) {
      if (!w.IsSequence()) fail(w, "'workers' must be a list");
      std::set<std::string> seen;
      for (const auto& n : w) {
        if (c.workers.size() == kMaxWorkers)
          fail(n, "more than " + std::to_string(kMaxWorkers) + " workers: one entry per worker program, not per process");
        keys(n, "a worker", {"name", "type", "binary", "script"});
        if (!n["binary"] && !n["script"])
          fail(n, "a worker needs 'binary' (its executable) or 'script' (the main script of a Python worker, e.g. "
                  "worker.py)");
        WorkerDef d{req_str(n, "name", "a worker"), n["type"] ? str(n["type"], "'type'") : "",
                    n["binary"] ? str(n["binary"], "'binary'") : "", mark(n),
                    n["script"] ? str(n["script"], "'script'") : ""};
        if (n["script"] && d.script.empty()) fail(n["script"], "'script' is empty: name the worker's main script (worker.py)");
        if (!seen.insert(d.name).second) fail(n["name"], "duplicate worker name '" + d.name + "'");
        c.workers.push_back(std::move(d));
      }
    }
    auto p = root["probes"];
    if (!p) fail(root, "no 'probes' list: nothing to measure");
    if (!p.IsSequence()) fail(p, "'probes' must be a list");
    std::map<std::string, Mark> names;
    for (const auto& n : p) {
      if (c.probes.size() == kMaxProbes)
        fail(n, "more than " + std::to_string(kMaxProbes) + " probes (the kernel's probe table holds " +
                    std::to_string(kMaxProbes) + "): run a second exporter for the rest");
      auto probe = parse_probe(n, c);
      auto [it, fresh] = names.emplace(probe.name, probe.mark);
      if (!fresh) fail(n["name"], "duplicate probe name '" + probe.name + "' (first at " + it->second.str() + ")");
      c.probes.push_back(std::move(probe));
    }
    check_spans(c);
    return c;
  }

 private:
  void parse_exporter(const YAML::Node& n, Config& c) {
    keys(n, "'exporter'", {"listen_address", "label_limit", "max_series", "series_expiry", "dead_pid_grace", "system_info",
                           "pod_logs_root"});
    if (n["pod_logs_root"]) c.pod_logs_root = str(n["pod_logs_root"], "'pod_logs_root'");
    if (n["max_series"]) {
      auto v = integer(n["max_series"], "'max_series'");
      if (v < 16 || v > (1 << 22)) fail(n["max_series"], "'max_series' must be between 16 and 4194304");
      c.max_series = static_cast<uint32_t>(v);
      c.max_series_mark = mark(n["max_series"]);
    }
    if (auto e = n["series_expiry"]) {
      auto text = str(e, "'series_expiry'");
      auto ns = text == "0" ? std::optional<int64_t>(0) : parse_duration_ns(text);
      if (!ns || (*ns != 0 && *ns < 1000000000LL))
        fail(e,
             "'series_expiry' must be a duration of at least 1s (e.g. 10m, 90s), or 0 to keep series forever, got '" +
                 text + "'");
      c.series_expiry_ns = *ns;
    }
    if (auto e = n["dead_pid_grace"]) {
      auto text = str(e, "'dead_pid_grace'");
      auto ns = text == "0" ? std::optional<int64_t>(0) : parse_duration_ns(text);
      if (!ns || *ns > 86'400'000'000'000LL)
        fail(e, "'dead_pid_grace' must be a duration up to 24h (e.g. 60s, 5m), or 0 to drop a dead process's "
                "series at once, got '" + text + "'");
      c.dead_pid_grace_ns = *ns;
    }
    if (n["listen_address"]) {
      c.listen_address = str(n["listen_address"], "'listen_address'");
      if (!listen_address_ok(c.listen_address))
        fail(n["listen_address"], "'listen_address' is [host]:port with a port from 0 to 65535, e.g. :9091, "
                                  "127.0.0.1:9091 or [::1]:9091, got '" + c.listen_address + "'");
    }
    if (n["label_limit"]) {
      auto v = integer(n["label_limit"], "'label_limit'");
      if (v < 1) fail(n["label_limit"], "'label_limit' must be at least 1");
      c.label_limit = static_cast<size_t>(v);
    }
    if (auto s = n["system_info"]) {
      keys(s, "'system_info'", {"version", "environment", "platform"});
      for (const auto& kv : s) c.system_info[kv.first.Scalar()] = str(kv.second, kv.first.Scalar());
    }
  }

  MetricDef parse_metric(const YAML::Node& n, const Config& c) {
    keys(n, "a metric", {"name", "type", "help", "labels", "buckets", "max_series"});
    MetricDef m;
    m.mark = mark(n);
    m.name = req_str(n, "name", "a metric");
    if (!prometheus::CheckMetricName(m.name)) fail(n["name"], "'" + m.name + "' is not a valid Prometheus metric name");
    if (auto it = c.metric_index.find(m.name); it != c.metric_index.end())
      fail(n["name"], "duplicate metric '" + m.name + "' (first at " + c.metrics[it->second].mark.str() + ")");
    auto type = req_str(n, "type", "metric '" + m.name + "'");
    if (type == "counter") m.type = MetricType::Counter;
    else if (type == "gauge") m.type = MetricType::Gauge;
    else if (type == "histogram") m.type = MetricType::Histogram;
    else fail(n["type"], "unknown metric type '" + type + "' (use counter, gauge or histogram)");
    auto ends_with = [&](const std::string& suf) {
      return m.name.size() > suf.size() && m.name.compare(m.name.size() - suf.size(), suf.size(), suf) == 0;
    };
    if (m.name == "_total")
      fail(n["name"], "counter '_total' is only the suffix: name what it counts, e.g. insa_requests_total");
    if (m.type == MetricType::Counter && !ends_with("_total"))
      fail(n["name"], "counter '" + m.name + "' must end in _total");
    m.help = n["help"] ? str(n["help"], "'help'") : m.name;
    if (auto l = n["labels"]) {
      if (!l.IsSequence()) fail(l, "'labels' must be a list of label names");
      for (const auto& x : l) {
        auto name = str(x, "a label name");
        if (!prometheus::CheckLabelName(name) || name == "le") fail(x, "'" + name + "' is not a valid label name");
        if (std::find(m.labels.begin(), m.labels.end(), name) != m.labels.end()) fail(x, "duplicate label '" + name + "'");
        m.labels.push_back(name);
      }
    }
    if (auto b = n["buckets"]) {
      if (m.type != MetricType::Histogram) fail(b, "'buckets' only applies to histograms");
      if (!b.IsSequence() || b.size() == 0) fail(b, "'buckets' must be a non-empty list of numbers");
      for (const auto& x : b) {
        double v = number(x, "a bucket bound");
        if (!m.buckets.empty() && v <= m.buckets.back()) fail(x, "bucket bounds must be strictly ascending");
        m.buckets.push_back(v);
      }
      if (m.buckets.size() > 16) fail(b, "at most 16 bucket bounds (+Inf is implied)");
    } else if (m.type == MetricType::Histogram) {
      fail(n, "histogram '" + m.name + "' needs 'buckets'");
    }
    if (auto q = n["max_series"]) {
      auto v = integer(q, "'max_series'");
      if (v < 1 || v > (1 << 22)) fail(q, "'max_series' must be between 1 and 4194304");
      m.max_series = static_cast<uint32_t>(v);
      m.max_series_mark = mark(q);
    }
    return m;
  }

  ValueRef value(const YAML::Node& n, const std::string& what, bool allow_literal) {
    if (!n.IsScalar()) fail(n, what + " must be a scalar");
    std::string why;
    if (auto v = parse_value(n.Scalar(), &why, python_ctx_)) return *v;
    if (auto pv = python_ctx_ ? std::nullopt : parse_value(n.Scalar(), nullptr, true); pv && pv->name.empty())
      fail(n, "'" + n.Scalar() + "' is for python: probes (native probes use $argN, $argN:str, $ret, $duration, $status, $pid)");
    if (!why.empty()) fail(n, why);
    if (!allow_literal) fail(n, what + ": '" + n.Scalar() + "' is not a value ($argN, $argN:str, $ret, $duration, $status, $pid or an integer)");
    ValueRef r;
    r.literal = n.Scalar();
    return r;
  }

  LabelBinding label(const std::string& name, const YAML::Node& n) {
    LabelBinding b;
    b.label = name;
    b.mark = mark(n);
    if (n.IsScalar()) {
      b.value = value(n, "label '" + name + "'", true);
      return b;
    }
    keys(n, "label '" + name + "'", {"value", "map", "default", "regex", "drop_unmatched"});
    if (!n["value"]) fail(n, "label '" + name + "' needs 'value'");
    b.value = value(n["value"], "label '" + name + "'", false);
    if (auto m = n["map"]) {
      if (!m.IsMap()) fail(m, "'map' must map integers to names");
      for (const auto& kv : m) {
        const int64_t k = integer(kv.first, "a map key");
        if (b.value_map.count(k))
          fail(kv.first, "map key '" + kv.first.Scalar() + "' is the integer " + std::to_string(k) +
                             " again: give each integer one name");
        b.value_map[k] = str(kv.second, "a map value");
      }
      if (b.value.kind == ValueRef::Kind::ArgStr || b.value.kind == ValueRef::Kind::RetStr ||
          b.value.kind == ValueRef::Kind::Exception)
        fail(m, "'map' needs an integer value, not a string");
    }
    if (n["default"]) b.map_default = str(n["default"], "'default'");
    if (auto r = n["regex"]) {
      b.regex_src = str(r, "'regex'");
      auto re = LabelRegex::compile(b.regex_src);
      if (!re) fail(r, "invalid regex '" + b.regex_src + "': " + re.error().message + " (RE2 syntax)");
      b.regex = *re;
      if (b.value.kind != ValueRef::Kind::ArgStr && b.value.kind != ValueRef::Kind::RetStr &&
          b.value.kind != ValueRef::Kind::Exception)
        fail(r, "'regex' needs a string value such as $arg2:str64");
    }
    if (auto d = n["drop_unmatched"]) {
      if (!n["regex"]) fail(d, "'drop_unmatched' needs a 'regex'");
      auto v = str(d, "'drop_unmatched'");
      if (v != "true" && v != "false") fail(d, "'drop_unmatched' is true or false");
      b.drop_unmatched = v == "true";
    }
    return b;
  }

  Update update(const YAML::Node& n, const Config& c, const std::string& probe) {
    keys(n, "a metric update", {"metric", "labels", "observe", "add", "sub", "set", "inflight", "count", "when",
                                "span_begin", "span_end", "span_key", "if"});
    Update u;
    u.mark = mark(n);
    u.metric = req_str(n, "metric", "a metric update of probe '" + probe + "'");
    const MetricDef* m = c.metric(u.metric);
    if (!m) fail(n["metric"], "metric '" + u.metric + "' is not declared under 'metrics'");
    int ops = 0;
    auto pick = [&](const char* key, UpdateOp op) {
      if (!n[key]) return;
      ++ops;
      u.op = op;
      if (op == UpdateOp::Inflight) {
        if (n[key].Scalar() != "true") fail(n[key], "'inflight' takes true");
      } else if (op == UpdateOp::SpanBegin || op == UpdateOp::SpanEnd) {
        u.span = str(n[key], std::string("'") + key + "'");
      } else {
        u.value = value(n[key], std::string("'") + key + "'", false);
        if (u.value.kind == ValueRef::Kind::ArgStr || u.value.kind == ValueRef::Kind::RetStr ||
            u.value.kind == ValueRef::Kind::Exception || u.value.container())
          fail(n[key], "a metric value must be an integer, not a string");
      }
    };
    u.value.kind = ValueRef::Kind::Int;
    u.value.number = 1;
    pick("count", UpdateOp::Count);
    pick("observe", UpdateOp::Observe);
    pick("add", UpdateOp::Add);
    pick("sub", UpdateOp::Sub);
    pick("set", UpdateOp::Set);
    pick("inflight", UpdateOp::Inflight);
    pick("span_begin", UpdateOp::SpanBegin);
    pick("span_end", UpdateOp::SpanEnd);
    if (ops > 1) fail(n, "a metric update does one of count, observe, add, sub, set, inflight, span_begin, span_end");
    if (ops == 0) u.op = m->type == MetricType::Histogram ? UpdateOp::Observe : UpdateOp::Count;
    auto need = [&](bool ok, const std::string& msg) { if (!ok) fail(n, msg); };
    switch (u.op) {
      case UpdateOp::Count: need(m->type == MetricType::Counter, "'" + u.metric + "' is not a counter: use observe/add/sub/set/inflight"); break;
      case UpdateOp::Observe: need(m->type == MetricType::Histogram, "'observe' needs a histogram; '" + u.metric + "' is not one"); break;
      case UpdateOp::SpanEnd: need(m->type == MetricType::Histogram, "'span_end' observes into a histogram; '" + u.metric + "' is not one"); break;
      case UpdateOp::Add: case UpdateOp::Sub: case UpdateOp::Set: case UpdateOp::Inflight:
        need(m->type == MetricType::Gauge, "'" + u.metric + "' is not a gauge"); break;
      case UpdateOp::SpanBegin: break;
    }
    if (u.op == UpdateOp::Observe && !n["observe"]) fail(n, "histogram '" + u.metric + "' needs 'observe: $duration' (or another value)");
    if (u.op == UpdateOp::SpanBegin || u.op == UpdateOp::SpanEnd) {
      if (!n["span_key"]) fail(n, "a span needs 'span_key: $argN' naming the argument that pairs begin and end");
      u.span_key = value(n["span_key"], "'span_key'", false);
      if (u.span_key.kind != ValueRef::Kind::Arg) fail(n["span_key"], "'span_key' must be an integer argument $argN");
    }
    if (auto w = n["when"]) {
      auto s = str(w, "'when'");
      if (s == "entry") u.when = When::Entry;
      else if (s == "exit") u.when = When::Exit;
      else fail(w, "'when' is entry or exit");
    }
    if (auto i = n["if"]) {
      StatusRule r;
      r.mark = mark(i);
      condition(i, r);
      if (u.op == UpdateOp::Inflight || u.op == UpdateOp::SpanBegin || u.op == UpdateOp::SpanEnd)
        fail(i, "'if' applies to count, observe, add, sub and set updates, not to inflight or spans");
      u.cond = r;
    }
    std::set<std::string> given;
    if (auto l = n["labels"]) {
      if (!l.IsMap()) fail(l, "'labels' must map label names to values");
      for (const auto& kv : l) {
        auto name = kv.first.Scalar();
        if (std::find(m->labels.begin(), m->labels.end(), name) == m->labels.end())
          fail(kv.first, "metric '" + u.metric + "' has no label '" + name + "'");
        given.insert(name);
        u.labels.push_back(label(name, kv.second));
      }
    }
    if (u.op != UpdateOp::SpanBegin)
      for (const auto& want : m->labels)
        if (!given.count(want)) fail(n, "metric '" + u.metric + "' needs a value for label '" + want + "'");
    return u;
  }

  StatusRule rule(const YAML::Node& n) {
    StatusRule r;
    r.mark = mark(n);
    if (n.IsMap() && n["else"]) {
      keys(n, "a status rule", {"else"});
      r.status = str(n["else"], "'else'");
      r.lhs.kind = ValueRef::Kind::Literal;  // marks the default
      return r;
    }
    keys(n, "a status rule", {"if", "then"});
    if (!n["if"] || !n["then"]) fail(n, "a status rule is {if: \"ret < 0\", then: error} or {else: success}");
    r.status = str(n["then"], "'then'");
    condition(n["if"], r);
    return r;
  }

  /// `<ret|duration|argN>[:i32] <op> <value>` into r.lhs, r.cmp, r.rhs.
  void condition(const YAML::Node& node, StatusRule& r) {
    std::istringstream in(str(node, "'if'"));
    std::string lhs, op, rhs;
    in >> lhs >> op >> rhs;
    std::string rest;
    if (!python_ctx_ && (lhs == "exception" || lhs == "$exception" || rhs == "None"))
      fail(node, std::string("'") + (rhs == "None" ? "None" : "exception") +
                     "' is for python: probes (native conditions compare ret, duration or argN with an integer)");
    if (python_ctx_ && lhs == "exception" && op.empty()) {  // Python: the call raised
      r.lhs.kind = ValueRef::Kind::Exception;
      r.cmp = Cmp::Ne;
      r.rhs = 0;
      return;
    }
    if (lhs.empty() || op.empty() || rhs.empty() || (in >> rest)) fail(node, "a condition is '<ret|duration|argN> <op> <value>', e.g. 'ret < 0' or 'duration > 100ms'");
    if (lhs[0] != '$') lhs = "$" + lhs;
    std::string why;
    auto v = parse_value(lhs, &why, python_ctx_);
    if (!v || !(v->kind == ValueRef::Kind::Ret || v->kind == ValueRef::Kind::Duration || v->kind == ValueRef::Kind::Arg ||
                v->kind == ValueRef::Kind::ArgLen || v->kind == ValueRef::Kind::Exception))
      fail(node, std::string("a condition tests ret, duration or argN") +
                     (python_ctx_ ? " (Python also: exception, argN:len, ret:len, a parameter name)" : "") + ", not '" +
                     lhs.substr(1) + "'");
    r.lhs = *v;
    static const std::map<std::string, Cmp> ops{{"<", Cmp::Lt}, {"<=", Cmp::Le}, {"==", Cmp::Eq},
                                                {"!=", Cmp::Ne}, {">", Cmp::Gt}, {">=", Cmp::Ge}};
    auto it = ops.find(op);
    if (it == ops.end()) fail(node, "unknown comparison '" + op + "' (use < <= == != > >=)");
    r.cmp = it->second;
    if (rhs.size() >= 2 && (rhs.front() == '"' || rhs.front() == '\'') && rhs.back() == rhs.front())
      rhs = rhs.substr(1, rhs.size() - 2);
    if (r.lhs.kind == ValueRef::Kind::Exception) {
      if (r.cmp != Cmp::Eq && r.cmp != Cmp::Ne) fail(node, "an exception is compared with == or !=, e.g. 'exception == TimeoutError'");
      r.rhs_name = rhs;
      r.rhs = rhs == "None" ? 0 : python_name_hash(rhs);  // exception == None: the call did not raise
      return;
    }
    if (r.lhs.kind == ValueRef::Kind::Ret && !r.lhs.len_of && rhs == "None") {
      if (r.cmp != Cmp::Eq && r.cmp != Cmp::Ne) fail(node, "None is compared with == or !=, e.g. 'ret == None'");
      r.lhs.kind = ValueRef::Kind::RetNone;
      r.cmp = r.cmp == Cmp::Eq ? Cmp::Ne : Cmp::Eq;  // ret_none != 0 / == 0
      r.rhs = 0;
      return;
    }
    if (r.lhs.kind == ValueRef::Kind::Duration) {
      auto ns = parse_duration_ns(rhs);
      if (!ns) fail(node, "'" + rhs + "' is not a duration (e.g. 100ms, 2s)");
      r.rhs = *ns;
    } else {
      try {
        size_t used = 0;
        r.rhs = std::stoll(rhs, &used, 0);
        if (used != rhs.size()) throw std::invalid_argument("x");
      } catch (const std::exception&) {
        fail(node, "'" + rhs + "' is not an integer");
      }
    }
  }

  ProbeDef parse_probe(const YAML::Node& n, const Config& c) {
    keys(n, "a probe", {"name", "binary", "pid", "function", "usdt", "offset", "exit", "status", "exception_status", "abandoned_status", "metrics", "python", "select"});
    ProbeDef p;
    p.mark = mark(n);
    p.name = req_str(n, "name", "a probe");
    if (p.name.empty()) fail(n["name"], "a probe name cannot be empty");
    const std::string where = "probe '" + p.name + "'";
    if (n["pid"]) { p.pid = pid_value(n["pid"]); p.pid_mark = mark(n["pid"]); }
    if (auto s = n["select"]) {
      if (n["python"]) fail(s, where + ": 'select' applies to native probes (python: probes select by script or module)");
      keys(s, "'select'", {"container", "cgroup", "namespace", "pod", "executable"});
      Selector sel;
      sel.mark = mark(s);
      if (s["container"]) sel.container = str(s["container"], "'container'");
      if (s["cgroup"]) sel.cgroup = str(s["cgroup"], "'cgroup'");
      if (s["namespace"]) sel.namespace_ = str(s["namespace"], "'namespace'");
      if (s["pod"]) sel.pod = str(s["pod"], "'pod'");
      if (s["executable"]) sel.executable = str(s["executable"], "'executable'");
      if (sel.container.empty() && sel.cgroup.empty() && sel.namespace_.empty() && sel.pod.empty() &&
          sel.executable.empty())
        fail(s, where + ": 'select' needs at least one of container, cgroup, namespace, pod, executable");
      p.select = sel;
    }
    if (auto py = n["python"]) {
      for (const char* k : {"binary", "function", "usdt", "offset", "exit"})
        if (n[k]) fail(n[k], where + ": '" + k + "' does not apply to a python: probe (the interpreter is found from the process)");
      p.python = python(py, where);
      python_ctx_ = true;
      parse_probe_body(n, c, p, where);
      python_ctx_ = false;
      return p;
    }
    p.binary = req_str(n, "binary", where);
    p.binary_mark = mark(n["binary"]);
    int kinds = 0;
    if (n["function"]) { p.function = str(n["function"], "'function'"); p.function_mark = mark(n["function"]); ++kinds; }
    if (n["usdt"]) {
      p.usdt = str(n["usdt"], "'usdt'");
      p.function_mark = mark(n["usdt"]);
      if (p.usdt.find(':') == std::string::npos) fail(n["usdt"], "'usdt' is provider:name");
      ++kinds;
    }
    if (n["offset"]) { p.offset = offset_value(n["offset"]); p.function_mark = mark(n["offset"]); ++kinds; }
    if (kinds != 1) fail(n, where + " needs exactly one of 'function', 'usdt' or 'offset'");
    if (auto e = n["exit"]) {
      p.exit_mark = mark(e);
      auto s = str(e, "'exit'");
      if (s == "return-sites") p.exit = ExitMethod::ReturnSites;
      else if (s == "uretprobe") p.exit = ExitMethod::Uretprobe;
      else fail(e, "'exit' is return-sites (default, safe with C++ exceptions) or uretprobe (C code only)");
    }
    parse_probe_body(n, c, p, where);
    return p;
  }

  PythonDef python(const YAML::Node& n, const std::string& where) {
    keys(n, "'python'", {"script", "module", "file", "function", "interpreter", "source", "mechanism"});
    PythonDef d;
    d.mark = mark(n);
    if (n["script"]) d.script = str(n["script"], "'script'");
    if (n["module"]) d.module = str(n["module"], "'module'");
    if (d.script.empty() == d.module.empty())
      fail(n, where + ": 'python' needs exactly one of 'script' (e.g. worker.py) or 'module' (e.g. pkg.worker)");
    d.function = req_str(n, "function", where + "'s python");
    d.function_mark = mark(n["function"]);
    // Length first: std::regex recurses per character, and a long name would exhaust the stack.
    if (d.function.size() >= INSA_PY_NAME_MAX)
      fail(n["function"], "qualified name longer than " + std::to_string(INSA_PY_NAME_MAX - 1) + " bytes");
    static const std::regex qual(R"([A-Za-z_][A-Za-z0-9_]*(\.(<locals>|[A-Za-z_][A-Za-z0-9_]*))*)");
    if (!std::regex_match(d.function, qual))
      fail(n["function"], "'" + d.function + "' is not a qualified name such as handle, Agent.handle or outer.<locals>.inner");
    if (n["source"]) d.source = str(n["source"], "'source'");
    if (auto m = n["mechanism"]) {
      auto v = str(m, "'mechanism'");
      if (v == "call") d.per_call = true;
      else if (v != "eval") fail(m, "'mechanism' is eval (default: frames entered from C, free for other calls) or call "
                                    "(every call, also inlined ones; about 1 us on every Python call of the process)");
    }
    if (n["file"]) d.file = str(n["file"], "'file'");
    else if (!d.script.empty()) d.file = d.script;
    else {
      d.file = d.module;
      std::replace(d.file.begin(), d.file.end(), '.', '/');
      d.file += ".py";
    }
    if (d.file.size() >= INSA_PY_NAME_MAX)
      fail(n, "the file to match is longer than " + std::to_string(INSA_PY_NAME_MAX - 1) + " bytes: give its last path components with 'file:'");
    if (auto i = n["interpreter"]) {
      if (i.IsScalar()) d.interpreters.push_back(str(i, "'interpreter'"));
      else if (i.IsSequence()) for (const auto& x : i) d.interpreters.push_back(str(x, "'interpreter'"));
      else fail(i, "'interpreter' is a path or a list of paths");
    }
    return d;
  }

  void parse_probe_body(const YAML::Node& n, const Config& c, ProbeDef& p, const std::string& where) {
    if (n["exception_status"]) p.exception_status = str(n["exception_status"], "'exception_status'");
    if (auto a = n["abandoned_status"]) {
      p.abandoned_status = str(a, "'abandoned_status'");
      if (p.abandoned_status.empty()) fail(a, "'abandoned_status' names a status, e.g. error");
    }
    if (auto s = n["status"]) {
      if (!s.IsSequence()) fail(s, "'status' must be a list of rules");
      for (const auto& r : s) {
        auto rr = rule(r);
        if (rr.lhs.kind == ValueRef::Kind::Literal) p.default_status = rr.status;
        else p.status.push_back(rr);
      }
      if (p.status.size() > 4) fail(s, "at most 4 status rules besides 'else'");
    }
    auto m = n["metrics"];
    if (!m || !m.IsSequence() || m.size() == 0) fail(n, where + " needs a non-empty 'metrics' list");
    for (const auto& u : m) p.updates.push_back(update(u, c, p.name));
    if (p.updates.size() > 6) fail(m, "at most 6 metric updates per probe; split it into two probes on the same function");
    if (!p.abandoned_status.empty() && !p.tracked())
      fail(n["abandoned_status"], "'abandoned_status' needs a probe whose calls are followed to their end: an update at exit, "
                                  "e.g. labels {status: $status}");
    if (!p.usdt.empty()) {
      auto exit_only = [](const ValueRef& v) {
        return v.kind == ValueRef::Kind::Ret || v.kind == ValueRef::Kind::Duration || v.kind == ValueRef::Kind::Status;
      };
      for (const auto& u : p.updates)
        if (u.op == UpdateOp::Inflight || u.when == When::Exit || exit_only(u.value) || (u.cond && exit_only(u.cond->lhs)) ||
            std::any_of(u.labels.begin(), u.labels.end(), [&](const LabelBinding& l) { return exit_only(l.value); }))
          fail(n, where + ": a USDT probe is a single point: no exit, $ret or $duration");
    }
    check_python_values(n, p, where);
  }

  /// Python-only values in native probes, and native-only ones in Python probes.
  void check_python_values(const YAML::Node& n, const ProbeDef& p, const std::string& where) {
    auto check = [&](const ValueRef& v) {
      const bool py_only = v.kind == ValueRef::Kind::ArgLen || v.kind == ValueRef::Kind::RetStr ||
                           v.kind == ValueRef::Kind::Exception || v.kind == ValueRef::Kind::RetNone || v.len_of ||
                           !v.name.empty();
      if (py_only && !p.python)
        fail(n, where + ": " + v.str() + " is for python: probes (native probes use $argN, $argN:str, $ret)");
      if (p.python && v.i32) fail(n, where + ": ':i32' is for native probes; Python ints are read whole");
      if (p.python && p.python->per_call &&
          (v.kind == ValueRef::Kind::Ret || v.kind == ValueRef::Kind::RetStr || v.kind == ValueRef::Kind::RetNone))
        fail(n, where + ": " + v.str() + ": 'mechanism: call' does not see return values (the frame is cleared after "
                        "its value left); use the default mechanism for $ret");
    };
    for (const auto& r : p.status) check(r.lhs);
    for (const auto& u : p.updates) {
      check(u.value);
      if (u.cond) check(u.cond->lhs);
      for (const auto& l : u.labels) check(l.value);
      if (p.python && (u.op == UpdateOp::SpanBegin || u.op == UpdateOp::SpanEnd))
        fail(n, where + ": spans are for native probes");
    }
  }

  void check_spans(const Config& c) {
    std::map<std::string, const Update*> begins, ends;
    for (const auto& p : c.probes)
      for (const auto& u : p.updates) {
        if (u.op == UpdateOp::SpanBegin) begins[u.span] = &u;
        if (u.op == UpdateOp::SpanEnd) ends[u.span] = &u;
      }
    for (const auto& [name, u] : begins)
      if (!ends.count(name)) throw ParseError{u->mark.str() + ": span '" + name + "' has no 'span_end: " + name + "' in any probe"};
    for (const auto& [name, u] : ends)
      if (!begins.count(name)) throw ParseError{u->mark.str() + ": span '" + name + "' has no 'span_begin: " + name + "' in any probe"};
  }

  std::string file_;
  bool python_ctx_ = false;  ///< parsing a python: probe: its values are allowed
};

}  // namespace

std::string Mark::str() const { return file + ":" + std::to_string(line) + ":" + std::to_string(col); }

std::string ValueRef::str() const {
  switch (kind) {
    case Kind::Literal: return literal;
    case Kind::Int: return std::to_string(number);
    case Kind::Arg: return (name.empty() ? "$arg" + std::to_string(arg) : "$" + name) + (i32 ? ":i32" : "");
    case Kind::ArgStr: return (name.empty() ? "$arg" + std::to_string(arg) : "$" + name) + ":str" + std::to_string(len);
    case Kind::ArgLen: return (name.empty() ? "$arg" + std::to_string(arg) : "$" + name) + ":len";
    case Kind::Ret: return i32 ? "$ret:i32" : len_of ? "$ret:len" : "$ret";
    case Kind::RetStr: return "$ret:str" + std::to_string(len);
    case Kind::Exception: return "$exception";
    case Kind::RetNone: return "ret == None";
    case Kind::Duration: return "$duration";
    case Kind::Status: return "$status";
    case Kind::Pid: return "$pid";
    case Kind::Container: return "$container";
    case Kind::Pod: return "$pod";
    case Kind::Namespace: return "$namespace";
  }
  return "?";
}

bool ProbeDef::tracked() const {
  if (!usdt.empty()) return false;
  for (const auto& u : updates) {
    if (u.op == UpdateOp::Inflight || u.when == When::Exit) return true;
    if (u.when == When::Entry) continue;
    auto k = u.value.kind;
    if (k == ValueRef::Kind::Ret || k == ValueRef::Kind::Duration || k == ValueRef::Kind::Status) return true;
    if (u.cond && (u.cond->lhs.kind == ValueRef::Kind::Ret || u.cond->lhs.kind == ValueRef::Kind::Duration)) return true;
    for (const auto& l : u.labels)
      if (l.value.kind == ValueRef::Kind::Ret || l.value.kind == ValueRef::Kind::Status) return true;
  }
  return false;
}

const MetricDef* Config::metric(const std::string& name) const {
  if (auto it = metric_index.find(name); it != metric_index.end() && it->second < metrics.size() &&
                                         metrics[it->second].name == name)
    return &metrics[it->second];
  for (const auto& m : metrics)
    if (m.name == name) return &m;
  return nullptr;
}

std::optional<int64_t> parse_duration_ns(const std::string& s) {
  static const std::pair<const char*, double> units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}};
  for (const auto& [suffix, mult] : units) {
    std::string u = suffix;
    if (s.size() > u.size() && s.compare(s.size() - u.size(), u.size(), u) == 0) {
      std::string num = s.substr(0, s.size() - u.size());
      if (u == "s" && !num.empty() && !std::isdigit(static_cast<unsigned char>(num.back())) && num.back() != '.') continue;
      try {
        size_t used = 0;
        double v = std::stod(num, &used);
        // Beyond 2^63 ns (292 years) llround has no answer: refused, not wrapped.
        if (used != num.size() || !(v >= 0) || !(v * mult < 9.2e18)) return std::nullopt;
        return static_cast<int64_t>(std::llround(v * mult));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

std::optional<ValueRef> parse_value(const std::string& s, std::string* why, bool python) {
  ValueRef r;
  if (s.empty()) return std::nullopt;
  if (s[0] != '$') {
    try {
      size_t used = 0;
      long long v = std::stoll(s, &used, 0);
      if (used != s.size()) return std::nullopt;
      r.kind = ValueRef::Kind::Int;
      r.number = v;
      return r;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  std::string body = s.substr(1);
  if (body.size() > 4 && body.compare(body.size() - 4, 4, ":i32") == 0 &&
      (body.rfind("ret", 0) == 0 || body.rfind("arg", 0) == 0)) {
    auto v = parse_value("$" + body.substr(0, body.size() - 4), why, python);
    if (!v || (v->kind != ValueRef::Kind::Ret && v->kind != ValueRef::Kind::Arg)) {
      if (why && (v || why->empty())) *why = "'" + s + "': ':i32' applies to $ret and integer arguments $argN only";
      return std::nullopt;
    }
    v->i32 = true;
    return v;
  }
  // A string capture length: "str" (32) or "strLEN" (2..64); -1 when malformed.
  auto str_len = [](const std::string& suffix) {
    if (suffix == "str") return 32;
    try {
      size_t used = 0;
      int n = std::stoi(suffix.substr(3), &used);
      return used == suffix.size() - 3 && n >= 2 && n <= 64 ? n : -1;
    } catch (const std::exception&) {
      return -1;
    }
  };
  std::string head = body, suffix;
  if (auto colon = body.find(':'); colon != std::string::npos) {
    head = body.substr(0, colon);
    suffix = body.substr(colon + 1);
  }
  const bool is_str = suffix.rfind("str", 0) == 0;
  if (is_str && str_len(suffix) < 0) {
    if (why) *why = "'" + s + "': a string capture is 2 to 64 bytes, e.g. $" + head + ":str32";
    return std::nullopt;
  }
  if (body == "ret") { r.kind = ValueRef::Kind::Ret; return r; }
  if (body == "duration") { r.kind = ValueRef::Kind::Duration; return r; }
  if (body == "status") { r.kind = ValueRef::Kind::Status; return r; }
  if (body == "pid") { r.kind = ValueRef::Kind::Pid; return r; }
  if (body == "container") { r.kind = ValueRef::Kind::Container; return r; }
  if (body == "pod") { r.kind = ValueRef::Kind::Pod; return r; }
  if (body == "namespace") { r.kind = ValueRef::Kind::Namespace; return r; }
  const std::string general =
      "'" + s + "' is not a value ($argN, $argN:str, $ret, $duration, $status, $pid" +
      (python ? "; Python also: $name, $argN:len, $ret:len, $ret:str, $exception)" : ")");
  const std::string arg_help = "'" + s + "' is not a value: arguments are $arg1 .. $arg6, strings $argN:str or $argN:strLEN" +
                               std::string(python ? ", lengths $argN:len" : "");
  if (python && head == "ret" && suffix == "len") { r.kind = ValueRef::Kind::Ret; r.len_of = true; return r; }
  if (python && head == "ret" && is_str) { r.kind = ValueRef::Kind::RetStr; r.len = str_len(suffix); return r; }
  if (python && head == "exception" && (suffix.empty() || is_str)) {
    r.kind = ValueRef::Kind::Exception;
    r.len = suffix.empty() ? 32 : str_len(suffix);
    return r;
  }
  auto with_suffix = [&](ValueRef v) -> std::optional<ValueRef> {
    if (suffix.empty()) { v.kind = ValueRef::Kind::Arg; return v; }
    if (python && suffix == "len") { v.kind = ValueRef::Kind::ArgLen; return v; }
    if (is_str) { v.kind = ValueRef::Kind::ArgStr; v.len = str_len(suffix); return v; }
    if (why) *why = arg_help;
    return std::nullopt;
  };
  if (head.rfind("arg", 0) == 0 && head.size() == 4 && head[3] >= '1' && head[3] <= '6') {
    r.arg = head[3] - '0';
    return with_suffix(r);
  }
  if (head.rfind("arg", 0) == 0 && (head.size() == 3 || std::isdigit(static_cast<unsigned char>(head[3])))) {
    if (why) *why = arg_help;
    return std::nullopt;
  }
  // A Python parameter by name ($request, $self): resolved against the function's source.
  const bool ident = !head.empty() && (std::isalpha(static_cast<unsigned char>(head[0])) || head[0] == '_') &&
                     std::all_of(head.begin(), head.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
  if (python && ident && head != "ret" && head != "duration" && head != "status" && head != "pid" && head != "exception") {
    r.name = head;
    return with_suffix(r);
  }
  if (why) *why = general;
  return std::nullopt;
}

std::string one_line(const std::string& message) {
  std::string out;
  out.reserve(message.size());
  for (unsigned char ch : message) {
    if (ch == '\n') out += "\\n";
    else if (ch == '\r') out += "\\r";
    else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

namespace {

Result<Config> parse_text(const std::string& text, const std::string& file) {
  if (text.size() > kMaxConfigBytes)
    return Error{file + ": " + std::to_string(text.size()) + " bytes, more than the " + std::to_string(kMaxConfigBytes) +
                     " (1 MiB) a config may have (512 probes fit in about 300 KiB): remove what no probe uses",
                 EFBIG};
  try {
    {
      std::istringstream in(text);
      YAML::Parser events(in);
      Lint lint(text, file);
      while (events.HandleNextDocument(lint)) {
      }
      lint.finish();
    }
    YAML::Node root = YAML::Load(text);
    return Parser(file).parse(root);
  } catch (const ParseError& e) {
    return Error{e.message};
  } catch (const YAML::DeepRecursion& e) {
    return Error{where(file, e.mark) + ": YAML nested too deep (a config needs 7 levels): close the open brackets or "
                                       "fix the indentation"};
  } catch (const YAML::Exception& e) {
    return Error{where(file, e.mark) + ": YAML syntax error: " + e.msg};
  } catch (const std::exception& e) {
    // No input should get here; if one does, it still gets one line, not a dead agent.
    return Error{file + ": cannot parse: " + e.what() + " (please report this config as a bug)"};
  }
}

}  // namespace

Result<Config> parse_config(const std::string& text, const std::string& file) {
  auto r = parse_text(text, file);
  if (!r) return Error{one_line(r.error().message), r.error().err};
  return r;
}

Result<Config> load_config(const std::string& path) {
  const std::string hint = " (pass --config.file PATH; see probes.yaml in the repository)";
  auto f = read_regular_file(path, kMaxConfigBytes);
  switch (f.status) {
    case RegularFile::Status::Ok: break;
    case RegularFile::Status::CannotOpen:
    case RegularFile::Status::ReadError:
      return Error{"cannot read config file '" + path + "': " + std::strerror(f.err) + hint, f.err};
    case RegularFile::Status::NotRegular: {
      const char* kind = S_ISDIR(f.mode) ? "a directory" : S_ISFIFO(f.mode) ? "a FIFO" : S_ISSOCK(f.mode) ? "a socket" : "a device";
      return Error{"config file '" + path + "' is " + kind + ", not a regular file" + hint, EINVAL};
    }
    case RegularFile::Status::TooBig:
      return Error{path + ": " + std::to_string(f.size) + " bytes, more than the " + std::to_string(kMaxConfigBytes) +
                       " (1 MiB) a config may have (512 probes fit in about 300 KiB): remove what no probe uses",
                   EFBIG};
  }
  // A file that grew past the bound while being read: parse_config says so.
  return parse_config(f.text, path);
}

}  // namespace insa::config
