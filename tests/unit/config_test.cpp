// SPDX-License-Identifier: Apache-2.0
// probes.yaml parsing and validation: a full valid config read back field by
// field, and every validation error with its exact one-line message. Positions
// are computed from the test text itself (`at`), so each message is checked to
// the column of the token it must point at.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>

#include "../test_util.h"
#include "config/config.h"

namespace insa::config {
namespace {

constexpr const char* kFile = "probes.yaml";

/// "line:col" (1-based) of the `nth` occurrence of `needle` in `text`.
std::string at(const std::string& text, const std::string& needle, int nth = 1) {
  std::string lc = insa::test::line_col(text, needle, nth);
  if (lc == "?:?") ADD_FAILURE() << "'" << needle << "' (#" << nth << ") not in the test text";
  return lc;
}

/// The error message of a config that must be rejected.
std::string error_of(const std::string& text) {
  auto r = parse_config(text, kFile);
  if (r.ok()) return "<accepted>";
  return r.error().message;
}

/// "probes.yaml:L:C: what" with L:C the position of `needle` in `text`.
std::string msg(const std::string& text, const std::string& needle, const std::string& what, int nth = 1) {
  return std::string(kFile) + ":" + at(text, needle, nth) + ": " + what;
}

// Metrics shared by the error cases; probes follow on line 15.
const std::string kMetrics = R"(metrics:
  - name: insa_requests_total
    type: counter
    labels: [agent_type, status]
  - name: insa_duration_seconds
    type: histogram
    labels: [agent_type]
    buckets: [0.001, 0.1, 1]
  - name: insa_active
    type: gauge
    labels: [worker_name]
  - name: insa_plain_total
    type: counter
probes:
)";

const std::string kFull = R"yaml(exporter:
  listen_address: 127.0.0.1:9100
  label_limit: 50
  max_series: 1024
  system_info:
    version: "1.2.3"
    environment: staging
    platform: linux-test
metrics:
  - name: insa_agent_requests_total
    type: counter
    help: Requests handled.
    labels: [agent_type, status]
  - name: insa_agent_request_duration_seconds
    type: histogram
    labels: [agent_type]
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5]
  - name: insa_agent_request_size_bytes
    type: histogram
    labels: [agent_type]
    buckets: [50, 500, 1000]
  - name: insa_worker_active_requests
    type: gauge
    labels: [worker_name]
  - name: insa_queue_depth
    type: gauge
    labels: [queue]
  - name: insa_errors_total
    type: counter
    labels: [code]
  - name: insa_model_calls_total
    type: counter
    labels: [model]
  - name: insa_handoff_seconds
    type: histogram
    buckets: [0.01, 0.1, 1]
workers:
  - name: request_worker
    type: agent
    binary: ./request_worker
  - name: crm
    binary: /usr/bin/crm
probes:
  - name: request
    binary: ./request_worker
    function: insa_demo::handle_request
    status:
      - {if: ret < 0, then: error}
      - {if: duration > 100ms, then: timeout}
      - {if: duration >= 2s, then: very_slow}
      - {else: ok}
    exception_status: crashed
    metrics:
      - metric: insa_agent_requests_total
        labels: {agent_type: $arg2:str32, status: $status}
      - metric: insa_agent_request_duration_seconds
        observe: $duration
        labels: {agent_type: $arg2:str32}
      - metric: insa_agent_request_size_bytes
        observe: $arg3
        when: entry
        labels: {agent_type: $arg2:str32}
      - metric: insa_worker_active_requests
        inflight: true
        labels: {worker_name: request_worker}
  - name: queue
    binary: /usr/lib/libq.so
    pid: 1234
    usdt: q:push
    metrics:
      - metric: insa_queue_depth
        add: 1
        labels: {queue: $arg1:str16}
      - metric: insa_errors_total
        count: $arg2
        labels:
          code:
            value: $arg1
            map: {0: ok, 1: retry, -1: failed}
            default: other
  - name: pop
    binary: libq.so
    offset: 0x1234
    exit: uretprobe
    metrics:
      - metric: insa_queue_depth
        sub: 1
        labels: {queue: $arg1:str16}
      - metric: insa_queue_depth
        set: $ret
        when: exit
        labels: {queue: main}
  - name: model
    binary: ./agent
    function: call_model
    metrics:
      - metric: insa_model_calls_total
        labels:
          model:
            value: $arg1:str64
            regex: "model=([a-z0-9-]+)"
            drop_unmatched: true
      - metric: insa_handoff_seconds
        span_begin: handoff
        span_key: $arg2
  - name: receive
    binary: ./agent
    function: receive_handoff
    metrics:
      - metric: insa_handoff_seconds
        span_end: handoff
        span_key: $arg1
)yaml";

TEST(ConfigFull, ExporterSection) {
  auto r = parse_config(kFull, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.file, "probes.yaml");
  EXPECT_EQ(c.listen_address, "127.0.0.1:9100");
  EXPECT_EQ(c.label_limit, 50u);
  EXPECT_EQ(c.max_series, 1024u);
  EXPECT_EQ(c.system_info, (std::map<std::string, std::string>{
                               {"version", "1.2.3"}, {"environment", "staging"}, {"platform", "linux-test"}}));
}

TEST(ConfigFull, Defaults) {
  auto r = parse_config(kMetrics + R"(  - name: a
    binary: ./a
    function: f
    metrics:
      - metric: insa_plain_total
)",
                        kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->listen_address, ":9091");
  EXPECT_EQ(r->label_limit, 100u);
  EXPECT_EQ(r->max_series, 16384u);
  EXPECT_TRUE(r->system_info.empty());
  EXPECT_TRUE(r->workers.empty());
  const auto& p = r->probes.at(0);
  EXPECT_EQ(p.pid, -1);
  EXPECT_EQ(p.exit, ExitMethod::ReturnSites);
  EXPECT_EQ(p.default_status, "success");
  EXPECT_EQ(p.exception_status, "error");
  EXPECT_TRUE(p.status.empty());
  EXPECT_FALSE(p.tracked());
  ASSERT_EQ(p.updates.size(), 1u);
  EXPECT_EQ(p.updates[0].op, UpdateOp::Count);
  EXPECT_EQ(p.updates[0].when, When::Default);
  EXPECT_EQ(p.updates[0].value.kind, ValueRef::Kind::Int);
  EXPECT_EQ(p.updates[0].value.number, 1);
  EXPECT_EQ(r->metrics.at(3).help, "insa_plain_total");  // help defaults to the name
}

TEST(ConfigFull, Metrics) {
  auto r = parse_config(kFull, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = *r;
  ASSERT_EQ(c.metrics.size(), 8u);
  const auto& req = c.metrics[0];
  EXPECT_EQ(req.name, "insa_agent_requests_total");
  EXPECT_EQ(req.type, MetricType::Counter);
  EXPECT_EQ(req.help, "Requests handled.");
  EXPECT_EQ(req.labels, (std::vector<std::string>{"agent_type", "status"}));
  EXPECT_TRUE(req.buckets.empty());
  EXPECT_EQ(req.mark.str(), "probes.yaml:" + at(kFull, "name: insa_agent_requests_total"));
  const auto& dur = c.metrics[1];
  EXPECT_EQ(dur.type, MetricType::Histogram);
  EXPECT_EQ(dur.buckets, (std::vector<double>{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5}));
  EXPECT_EQ(c.metrics[2].buckets, (std::vector<double>{50, 500, 1000}));
  EXPECT_EQ(c.metrics[3].type, MetricType::Gauge);
  EXPECT_EQ(c.metrics[7].labels.size(), 0u);
  EXPECT_EQ(c.metric("insa_queue_depth"), &c.metrics[4]);
  EXPECT_EQ(c.metric("nope"), nullptr);
}

TEST(ConfigFull, Workers) {
  auto r = parse_config(kFull, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->workers.size(), 2u);
  EXPECT_EQ(r->workers[0].name, "request_worker");
  EXPECT_EQ(r->workers[0].type, "agent");
  EXPECT_EQ(r->workers[0].binary, "./request_worker");
  EXPECT_EQ(r->workers[0].mark.str(), "probes.yaml:" + at(kFull, "name: request_worker"));
  EXPECT_EQ(r->workers[1].name, "crm");
  EXPECT_EQ(r->workers[1].type, "");
  EXPECT_EQ(r->workers[1].binary, "/usr/bin/crm");
}

TEST(ConfigFull, FunctionProbeWithStatusRules) {
  auto r = parse_config(kFull, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->probes.size(), 5u);
  const auto& p = r->probes[0];
  EXPECT_EQ(p.name, "request");
  EXPECT_EQ(p.binary, "./request_worker");
  EXPECT_EQ(p.function, "insa_demo::handle_request");
  EXPECT_EQ(p.usdt, "");
  EXPECT_FALSE(p.offset.has_value());
  EXPECT_EQ(p.pid, -1);
  EXPECT_EQ(p.mark.str(), "probes.yaml:" + at(kFull, "name: request\n"));
  EXPECT_EQ(p.binary_mark.str(), "probes.yaml:" + at(kFull, "./request_worker", 2));
  EXPECT_EQ(p.function_mark.str(), "probes.yaml:" + at(kFull, "insa_demo::handle_request"));
  EXPECT_TRUE(p.tracked());

  ASSERT_EQ(p.status.size(), 3u);
  EXPECT_EQ(p.status[0].lhs.kind, ValueRef::Kind::Ret);
  EXPECT_EQ(p.status[0].cmp, Cmp::Lt);
  EXPECT_EQ(p.status[0].rhs, 0);
  EXPECT_EQ(p.status[0].status, "error");
  EXPECT_EQ(p.status[1].lhs.kind, ValueRef::Kind::Duration);
  EXPECT_EQ(p.status[1].cmp, Cmp::Gt);
  EXPECT_EQ(p.status[1].rhs, 100'000'000);
  EXPECT_EQ(p.status[1].status, "timeout");
  EXPECT_EQ(p.status[2].cmp, Cmp::Ge);
  EXPECT_EQ(p.status[2].rhs, 2'000'000'000);
  EXPECT_EQ(p.status[2].status, "very_slow");
  EXPECT_EQ(p.default_status, "ok");
  EXPECT_EQ(p.exception_status, "crashed");

  ASSERT_EQ(p.updates.size(), 4u);
  const auto& count = p.updates[0];
  EXPECT_EQ(count.metric, "insa_agent_requests_total");
  EXPECT_EQ(count.op, UpdateOp::Count);
  EXPECT_EQ(count.value.kind, ValueRef::Kind::Int);
  EXPECT_EQ(count.value.number, 1);
  ASSERT_EQ(count.labels.size(), 2u);
  EXPECT_EQ(count.labels[0].label, "agent_type");
  EXPECT_EQ(count.labels[0].value.kind, ValueRef::Kind::ArgStr);
  EXPECT_EQ(count.labels[0].value.arg, 2);
  EXPECT_EQ(count.labels[0].value.len, 32);
  EXPECT_EQ(count.labels[1].label, "status");
  EXPECT_EQ(count.labels[1].value.kind, ValueRef::Kind::Status);

  const auto& obs = p.updates[1];
  EXPECT_EQ(obs.op, UpdateOp::Observe);
  EXPECT_EQ(obs.value.kind, ValueRef::Kind::Duration);
  EXPECT_EQ(obs.when, When::Default);

  const auto& size = p.updates[2];
  EXPECT_EQ(size.op, UpdateOp::Observe);
  EXPECT_EQ(size.value.kind, ValueRef::Kind::Arg);
  EXPECT_EQ(size.value.arg, 3);
  EXPECT_EQ(size.when, When::Entry);

  const auto& inflight = p.updates[3];
  EXPECT_EQ(inflight.op, UpdateOp::Inflight);
  ASSERT_EQ(inflight.labels.size(), 1u);
  EXPECT_EQ(inflight.labels[0].value.kind, ValueRef::Kind::Literal);
  EXPECT_EQ(inflight.labels[0].value.literal, "request_worker");
  EXPECT_FALSE(inflight.labels[0].value.kernel());
}

TEST(ConfigFull, UsdtProbeWithValueMap) {
  auto r = parse_config(kFull, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& p = r->probes[1];
  EXPECT_EQ(p.name, "queue");
  EXPECT_EQ(p.binary, "/usr/lib/libq.so");
  EXPECT_EQ(p.pid, 1234);
  EXPECT_EQ(p.usdt, "q:push");
  EXPECT_EQ(p.function, "");
  EXPECT_EQ(p.function_mark.str(), "probes.yaml:" + at(kFull, "q:push"));
  EXPECT_FALSE(p.tracked());
  ASSERT_EQ(p.updates.size(), 2u);
  EXPECT_EQ(p.updates[0].op, UpdateOp::Add);
  EXPECT_EQ(p.updates[0].value.kind, ValueRef::Kind::Int);
  EXPECT_EQ(p.updates[0].value.number, 1);
  EXPECT_EQ(p.updates[0].labels[0].value.kind, ValueRef::Kind::ArgStr);
  EXPECT_EQ(p.updates[0].labels[0].value.len, 16);
  const auto& errs = p.updates[1];
  EXPECT_EQ(errs.op, UpdateOp::Count);
  EXPECT_EQ(errs.value.kind, ValueRef::Kind::Arg);
  EXPECT_EQ(errs.value.arg, 2);
  ASSERT_EQ(errs.labels.size(), 1u);
  const auto& code = errs.labels[0];
  EXPECT_EQ(code.label, "code");
  EXPECT_EQ(code.value.kind, ValueRef::Kind::Arg);
  EXPECT_EQ(code.value.arg, 1);
  EXPECT_EQ(code.value_map, (std::map<int64_t, std::string>{{0, "ok"}, {1, "retry"}, {-1, "failed"}}));
  EXPECT_EQ(code.map_default, "other");
  EXPECT_FALSE(code.regex.has_value());
  EXPECT_FALSE(code.drop_unmatched);
  EXPECT_EQ(code.mark.str(), "probes.yaml:" + at(kFull, "value: $arg1\n"));
}

TEST(ConfigFull, OffsetProbeWithGaugeOps) {
  auto r = parse_config(kFull, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& p = r->probes[2];
  EXPECT_EQ(p.name, "pop");
  EXPECT_EQ(p.binary, "libq.so");
  ASSERT_TRUE(p.offset.has_value());
  EXPECT_EQ(*p.offset, 0x1234u);
  EXPECT_EQ(p.exit, ExitMethod::Uretprobe);
  EXPECT_TRUE(p.tracked());  // set: $ret at exit
  ASSERT_EQ(p.updates.size(), 2u);
  EXPECT_EQ(p.updates[0].op, UpdateOp::Sub);
  EXPECT_EQ(p.updates[0].value.number, 1);
  EXPECT_EQ(p.updates[1].op, UpdateOp::Set);
  EXPECT_EQ(p.updates[1].value.kind, ValueRef::Kind::Ret);
  EXPECT_EQ(p.updates[1].when, When::Exit);
  EXPECT_EQ(p.updates[1].labels[0].value.literal, "main");
}

TEST(ConfigFull, RegexLabelAndSpans) {
  auto r = parse_config(kFull, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& model = r->probes[3];
  EXPECT_FALSE(model.tracked());
  const auto& l = model.updates[0].labels.at(0);
  EXPECT_EQ(l.value.kind, ValueRef::Kind::ArgStr);
  EXPECT_EQ(l.value.arg, 1);
  EXPECT_EQ(l.value.len, 64);
  EXPECT_EQ(l.regex_src, "model=([a-z0-9-]+)");
  EXPECT_TRUE(l.drop_unmatched);
  ASSERT_TRUE(l.regex.has_value());
  EXPECT_EQ(l.regex->extract("call MODEL=gpt-4o now"), "gpt-4o");  // case-insensitive

  const auto& begin = model.updates[1];
  EXPECT_EQ(begin.op, UpdateOp::SpanBegin);
  EXPECT_EQ(begin.span, "handoff");
  EXPECT_EQ(begin.span_key.kind, ValueRef::Kind::Arg);
  EXPECT_EQ(begin.span_key.arg, 2);
  EXPECT_TRUE(begin.labels.empty());

  const auto& end = r->probes[4].updates.at(0);
  EXPECT_EQ(end.op, UpdateOp::SpanEnd);
  EXPECT_EQ(end.span, "handoff");
  EXPECT_EQ(end.span_key.arg, 1);
  EXPECT_FALSE(r->probes[4].tracked());
}

TEST(ConfigFull, LoadConfigFromFile) {
  char path[] = "/tmp/insa_config_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, kFull.data(), kFull.size()), static_cast<ssize_t>(kFull.size()));
  close(fd);
  auto r = load_config(path);
  unlink(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->file, path);
  EXPECT_EQ(r->probes[0].mark.file, path);
  EXPECT_EQ(r->probes.size(), 5u);
}

TEST(ConfigFull, TheRootTestConfigParses) {
  auto r = load_config(std::string(INSA_SOURCE_DIR) + "/tests/root/configs/request.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->probes.empty());  // its content belongs to the root tests
}

// ---------------------------------------------------------------- errors

TEST(ConfigErrors, MissingFile) {
  auto r = load_config("/nonexistent/dir/probes.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "cannot read config file '/nonexistent/dir/probes.yaml': No such file or directory "
            "(pass --config.file PATH; see probes.yaml in the repository)");
  EXPECT_EQ(r.error().err, ENOENT);
}

TEST(ConfigErrors, EmptyFile) {
  EXPECT_EQ(error_of(""), "probes.yaml:1:1: the file is empty; see probes.yaml in the repository for an example");
  EXPECT_EQ(error_of("# only a comment\n"),
            "probes.yaml:1:1: the file is empty; see probes.yaml in the repository for an example");
}

TEST(ConfigErrors, YamlSyntax) {
  const std::string t = "metrics: [a, b\nprobes: []\n";
  auto m = error_of(t);
  // yaml-cpp reports where it gave up; the line must be one line with file:line:col.
  EXPECT_TRUE(m.rfind("probes.yaml:", 0) == 0) << m;
  EXPECT_NE(m.find(": YAML syntax error: "), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;

  const std::string tab = "probes:\n  - name: a\n\t binary: b\n";
  auto m2 = error_of(tab);
  EXPECT_NE(m2.find(": YAML syntax error: "), std::string::npos) << m2;
  EXPECT_EQ(m2.rfind("probes.yaml:3:", 0), 0u) << m2;
}

TEST(ConfigErrors, YamlSyntaxExact) {
  const std::string t = "probes:\n  - name: a\n    binary: b: c\n";
  EXPECT_EQ(error_of(t), "probes.yaml:3:14: YAML syntax error: illegal map value");
  const std::string flow = "metrics: [a, b\nprobes: []\n";
  EXPECT_EQ(error_of(flow), "probes.yaml:2:7: YAML syntax error: end of sequence flow not found");
}

TEST(ConfigErrors, TopLevelNotAMapping) {
  EXPECT_EQ(error_of("- a\n- b\n"), "probes.yaml:1:1: the top level must be a mapping");
}

TEST(ConfigErrors, UnknownTopLevelKey) {
  const std::string t = kMetrics + "  - name: a\n    binary: b\n    function: f\n    metrics: [{metric: insa_plain_total}]\nmetrix: 1\n";
  EXPECT_EQ(error_of(t), msg(t, "metrix", "unknown key 'metrix' in the top level (allowed: exporter, metrics, workers, probes)"));
}

TEST(ConfigErrors, UnknownKeyInProbe) {
  const std::string t = kMetrics + R"(  - name: a
    binary: b
    function: f
    retrun: 1
    metrics: [{metric: insa_plain_total}]
)";
  EXPECT_EQ(error_of(t), msg(t, "retrun",
                             "unknown key 'retrun' in a probe (allowed: name, binary, pid, function, usdt, offset, exit, "
                             "status, exception_status, abandoned_status, metrics, python)"));
}

TEST(ConfigErrors, UnknownKeyInUpdate) {
  const std::string t = kMetrics + R"(  - name: a
    binary: b
    function: f
    metrics:
      - metric: insa_plain_total
        obsreve: $duration
)";
  EXPECT_EQ(error_of(t), msg(t, "obsreve",
                             "unknown key 'obsreve' in a metric update (allowed: metric, labels, observe, add, sub, set, "
                             "inflight, count, when, span_begin, span_end, span_key, if)"));
}

TEST(ConfigErrors, UnknownKeysElsewhere) {
  const std::string e = "exporter:\n  port: 9091\nprobes: []\n";
  EXPECT_EQ(error_of(e), msg(e, "port:", "unknown key 'port' in 'exporter' (allowed: listen_address, label_limit, max_series, series_expiry, system_info)"));
  const std::string s = "exporter:\n  system_info:\n    owner: me\nprobes: []\n";
  EXPECT_EQ(error_of(s), msg(s, "owner", "unknown key 'owner' in 'system_info' (allowed: version, environment, platform)"));
  const std::string m = "metrics:\n  - name: a_total\n    type: counter\n    unit: s\nprobes: []\n";
  EXPECT_EQ(error_of(m), msg(m, "unit", "unknown key 'unit' in a metric (allowed: name, type, help, labels, buckets, max_series)"));
  const std::string w = "workers:\n  - name: w\n    binary: b\n    pid: 1\nprobes: []\n";
  EXPECT_EQ(error_of(w), msg(w, "pid", "unknown key 'pid' in a worker (allowed: name, type, binary, script)"));
  const std::string l = kMetrics + R"(  - name: a
    binary: b
    function: f
    metrics:
      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1, mapping: {1: a}}
)";
  EXPECT_EQ(error_of(l), msg(l, "mapping", "unknown key 'mapping' in label 'worker_name' (allowed: value, map, default, regex, drop_unmatched)"));
  const std::string r = kMetrics + R"(  - name: a
    binary: b
    function: f
    status:
      - {if: ret < 0, then: error, else: ok}
    metrics: [{metric: insa_plain_total}]
)";
  EXPECT_EQ(error_of(r), msg(r, "if:", "unknown key 'if' in a status rule (allowed: else)"));
}

TEST(ConfigErrors, WrongTypes) {
  const std::string limit = "exporter:\n  label_limit: many\nprobes: []\n";
  EXPECT_EQ(error_of(limit), msg(limit, "many", "'label_limit' must be an integer, got 'many'"));
  const std::string zero = "exporter:\n  label_limit: 0\nprobes: []\n";
  EXPECT_EQ(error_of(zero), msg(zero, "0", "'label_limit' must be at least 1"));
  const std::string addr = "exporter:\n  listen_address: [a]\nprobes: []\n";
  EXPECT_EQ(error_of(addr), msg(addr, "[a]", "'listen_address' must be a string"));
  const std::string metrics = "metrics: 5\nprobes: []\n";
  EXPECT_EQ(error_of(metrics), msg(metrics, "5", "'metrics' must be a list"));
  const std::string probes = "probes: {a: 1}\n";
  EXPECT_EQ(error_of(probes), msg(probes, "{a", "'probes' must be a list"));
  const std::string workers = "workers: w\nprobes: []\n";
  EXPECT_EQ(error_of(workers), msg(workers, "w\n", "'workers' must be a list"));
  const std::string probe = "probes:\n  - just a string\n";
  EXPECT_EQ(error_of(probe), msg(probe, "just", "a probe must be a mapping"));

  const std::string pid = kMetrics + "  - name: a\n    binary: b\n    pid: abc\n    function: f\n    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(pid), msg(pid, "abc", "'pid' must be a process ID in decimal, 1 to 4194304, got 'abc'"));
  const std::string bin = kMetrics + "  - name: a\n    binary: [x]\n    function: f\n    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(bin), msg(bin, "[x]", "'binary' must be a string"));
  const std::string off = kMetrics + "  - name: a\n    binary: b\n    offset: 12x\n    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(off), msg(off, "12x",
                               "'offset' must be a file offset above 0 in decimal or 0x-hex (see insa-exporter "
                               "list-probes), got '12x'"));
  const std::string bucket = "metrics:\n  - name: h\n    type: histogram\n    buckets: [1, two]\nprobes: []\n";
  EXPECT_EQ(error_of(bucket), msg(bucket, "two", "a bucket bound must be a number, got 'two'"));
  const std::string inf = "metrics:\n  - name: h\n    type: histogram\n    buckets: [1, inf]\nprobes: []\n";
  EXPECT_EQ(error_of(inf), msg(inf, "inf", "a bucket bound must be a number, got 'inf'"));
  const std::string labels = "metrics:\n  - name: a_total\n    type: counter\n    labels: status\nprobes: []\n";
  EXPECT_EQ(error_of(labels), msg(labels, "status", "'labels' must be a list of label names"));
  const std::string buckets = "metrics:\n  - name: h\n    type: histogram\n    buckets: 5\nprobes: []\n";
  EXPECT_EQ(error_of(buckets), msg(buckets, "5", "'buckets' must be a non-empty list of numbers"));
  const std::string nobuckets = "metrics:\n  - name: h\n    type: histogram\n    buckets: []\nprobes: []\n";
  EXPECT_EQ(error_of(nobuckets), msg(nobuckets, "[]", "'buckets' must be a non-empty list of numbers"));
  const std::string status = kMetrics + "  - name: a\n    binary: b\n    function: f\n    status: error\n    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(status), msg(status, "error", "'status' must be a list of rules"));
  const std::string ulabels = kMetrics + "  - name: a\n    binary: b\n    function: f\n    metrics:\n      - metric: insa_plain_total\n        labels: [x]\n";
  EXPECT_EQ(error_of(ulabels), msg(ulabels, "[x]", "'labels' must map label names to values"));
  const std::string map = kMetrics + R"(  - name: a
    binary: b
    function: f
    metrics:
      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1, map: [a, b]}
)";
  EXPECT_EQ(error_of(map), msg(map, "[a, b]", "'map' must map integers to names"));
  const std::string mapkey = kMetrics + R"(  - name: a
    binary: b
    function: f
    metrics:
      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1, map: {one: a}}
)";
  EXPECT_EQ(error_of(mapkey), msg(mapkey, "one", "a map key must be an integer, got 'one'"));
  const std::string type = "metrics:\n  - name: a_total\n    type: summary\nprobes: []\n";
  EXPECT_EQ(error_of(type), msg(type, "summary", "unknown metric type 'summary' (use counter, gauge or histogram)"));
}

TEST(ConfigErrors, MissingRequiredKeys) {
  const std::string noprobes = "metrics: []\n";
  EXPECT_EQ(error_of(noprobes), "probes.yaml:1:1: no 'probes' list: nothing to measure");
  const std::string noname = kMetrics + "  - binary: b\n    function: f\n    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(noname), msg(noname, "binary: b", "a probe needs 'name'"));
  const std::string nobinary = kMetrics + "  - name: a\n    function: f\n    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(nobinary), msg(nobinary, "name: a", "probe 'a' needs 'binary'"));
  const std::string nometrics = kMetrics + "  - name: a\n    binary: b\n    function: f\n";
  EXPECT_EQ(error_of(nometrics), msg(nometrics, "name: a", "probe 'a' needs a non-empty 'metrics' list"));
  const std::string emptymetrics = kMetrics + "  - name: a\n    binary: b\n    function: f\n    metrics: []\n";
  EXPECT_EQ(error_of(emptymetrics), msg(emptymetrics, "name: a", "probe 'a' needs a non-empty 'metrics' list"));
  const std::string nometric = kMetrics + "  - name: a\n    binary: b\n    function: f\n    metrics:\n      - count: 1\n";
  EXPECT_EQ(error_of(nometric), msg(nometric, "count: 1", "a metric update of probe 'a' needs 'metric'"));
  const std::string notype = "metrics:\n  - name: a_total\nprobes: []\n";
  EXPECT_EQ(error_of(notype), msg(notype, "name: a_total", "metric 'a_total' needs 'type'"));
  const std::string noname_metric = "metrics:\n  - type: counter\nprobes: []\n";
  EXPECT_EQ(error_of(noname_metric), msg(noname_metric, "type", "a metric needs 'name'"));
  const std::string worker = "workers:\n  - name: w\nprobes: []\n";
  EXPECT_EQ(error_of(worker), msg(worker, "name: w", "a worker needs 'binary' (its executable) or 'script' (the main script of a Python worker, e.g. worker.py)"));
  const std::string emptyname = kMetrics + "  - name: \"\"\n    binary: b\n    function: f\n    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(emptyname), msg(emptyname, "\"\"", "a probe name cannot be empty"));
  const std::string nothen = kMetrics + "  - name: a\n    binary: b\n    function: f\n    status:\n      - {if: ret < 0}\n    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(nothen),
            msg(nothen, "{if", "a status rule is {if: \"ret < 0\", then: error} or {else: success}"));
  const std::string novalue = kMetrics + R"(  - name: a
    binary: b
    function: f
    metrics:
      - metric: insa_active
        inflight: true
        labels:
          worker_name: {map: {1: a}}
)";
  EXPECT_EQ(error_of(novalue), msg(novalue, "{map", "label 'worker_name' needs 'value'"));
}

TEST(ConfigErrors, DuplicateProbeNameMentionsFirstLocation) {
  const std::string t = kMetrics + R"(  - name: dup
    binary: b
    function: f
    metrics: [{metric: insa_plain_total}]
  - name: other
    binary: b
    function: g
    metrics: [{metric: insa_plain_total}]
  - name: dup
    binary: b
    function: h
    metrics: [{metric: insa_plain_total}]
)";
  EXPECT_EQ(error_of(t), msg(t, "dup", "duplicate probe name 'dup' (first at probes.yaml:" + at(t, "name: dup") + ")", 2));
  EXPECT_EQ(error_of(t), "probes.yaml:23:11: duplicate probe name 'dup' (first at probes.yaml:15:5)");
}

TEST(ConfigErrors, DuplicateWorker) {
  const std::string t = "workers:\n  - name: w\n    binary: a\n  - name: w\n    binary: b\nprobes: []\n";
  EXPECT_EQ(error_of(t), msg(t, "w\n", "duplicate worker name 'w'", 2));
}

TEST(ConfigErrors, MetricDefinitions) {
  const std::string dup = "metrics:\n  - name: a_total\n    type: counter\n  - name: a_total\n    type: counter\nprobes: []\n";
  EXPECT_EQ(error_of(dup), msg(dup, "a_total", "duplicate metric 'a_total' (first at probes.yaml:2:5)", 2));
  const std::string bad = "metrics:\n  - name: bad-name_total\n    type: counter\nprobes: []\n";
  EXPECT_EQ(error_of(bad), msg(bad, "bad-name", "'bad-name_total' is not a valid Prometheus metric name"));
  const std::string digit = "metrics:\n  - name: 1st_total\n    type: counter\nprobes: []\n";
  EXPECT_EQ(error_of(digit), msg(digit, "1st", "'1st_total' is not a valid Prometheus metric name"));
  const std::string total = "metrics:\n  - name: insa_requests\n    type: counter\nprobes: []\n";
  EXPECT_EQ(error_of(total), msg(total, "insa_requests", "counter 'insa_requests' must end in _total"));
  const std::string only_total = "metrics:\n  - name: _total\n    type: counter\nprobes: []\n";
  EXPECT_EQ(error_of(only_total), msg(only_total, "_total", "counter '_total' is only the suffix: name what it counts, e.g. insa_requests_total"));
  const std::string hist = "metrics:\n  - name: h_seconds\n    type: histogram\nprobes: []\n";
  EXPECT_EQ(error_of(hist), msg(hist, "name: h_seconds", "histogram 'h_seconds' needs 'buckets'"));
  const std::string asc = "metrics:\n  - name: h\n    type: histogram\n    buckets: [0.1, 0.5, 0.5, 1]\nprobes: []\n";
  EXPECT_EQ(error_of(asc), msg(asc, "0.5", "bucket bounds must be strictly ascending", 2));
  const std::string desc = "metrics:\n  - name: h\n    type: histogram\n    buckets: [5, 1]\nprobes: []\n";
  EXPECT_EQ(error_of(desc), msg(desc, "1]", "bucket bounds must be strictly ascending"));
  const std::string many =
      "metrics:\n  - name: h\n    type: histogram\n    buckets: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]\n"
      "probes: []\n";
  EXPECT_EQ(error_of(many), msg(many, "[1,", "at most 16 bucket bounds (+Inf is implied)"));
  const std::string sixteen =
      "metrics:\n  - name: h\n    type: histogram\n    buckets: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]\n"
      "probes: []\n";
  auto ok16 = parse_config(sixteen, kFile);
  ASSERT_TRUE(ok16.ok()) << ok16.error().message;
  EXPECT_EQ(ok16->metrics.at(0).buckets.size(), 16u);
  const std::string cbuckets = "metrics:\n  - name: a_total\n    type: counter\n    buckets: [1]\nprobes: []\n";
  EXPECT_EQ(error_of(cbuckets), msg(cbuckets, "[1]", "'buckets' only applies to histograms"));
  const std::string label = "metrics:\n  - name: a_total\n    type: counter\n    labels: [ok, bad-label]\nprobes: []\n";
  EXPECT_EQ(error_of(label), msg(label, "bad-label", "'bad-label' is not a valid label name"));
  const std::string le = "metrics:\n  - name: a_total\n    type: counter\n    labels: [le]\nprobes: []\n";
  EXPECT_EQ(error_of(le), msg(le, "le]", "'le' is not a valid label name"));
  const std::string reserved = "metrics:\n  - name: a_total\n    type: counter\n    labels: [__x]\nprobes: []\n";
  EXPECT_EQ(error_of(reserved), msg(reserved, "__x", "'__x' is not a valid label name"));
  const std::string duplabel = "metrics:\n  - name: a_total\n    type: counter\n    labels: [x, y, x]\nprobes: []\n";
  EXPECT_EQ(error_of(duplabel), msg(duplabel, "x]", "duplicate label 'x'"));
}

/// A probe with one update, `update` indented as a list item under metrics.
std::string with_update(const std::string& update, const std::string& probe_extra = "    function: f\n") {
  return kMetrics + "  - name: p\n    binary: b\n" + probe_extra + "    metrics:\n" + update;
}

TEST(ConfigErrors, Updates) {
  const std::string undeclared = with_update("      - metric: nope_total\n");
  EXPECT_EQ(error_of(undeclared), msg(undeclared, "nope_total", "metric 'nope_total' is not declared under 'metrics'"));
  const std::string unknown_label =
      with_update("      - metric: insa_active\n        inflight: true\n        labels: {worker_name: w, zone: x}\n");
  EXPECT_EQ(error_of(unknown_label), msg(unknown_label, "zone", "metric 'insa_active' has no label 'zone'"));
  const std::string missing_label =
      with_update("      - metric: insa_requests_total\n        labels: {agent_type: $arg2:str32}\n");
  EXPECT_EQ(error_of(missing_label), msg(missing_label, "metric: insa_requests_total",
                                         "metric 'insa_requests_total' needs a value for label 'status'"));
  const std::string no_labels = with_update("      - metric: insa_active\n        inflight: true\n");
  EXPECT_EQ(error_of(no_labels), msg(no_labels, "metric: insa_active", "metric 'insa_active' needs a value for label 'worker_name'"));
}

TEST(ConfigErrors, WrongOpForMetricType) {
  const std::string observe_counter = with_update("      - metric: insa_plain_total\n        observe: $duration\n");
  EXPECT_EQ(error_of(observe_counter),
            msg(observe_counter, "metric: insa_plain", "'observe' needs a histogram; 'insa_plain_total' is not one"));
  const std::string count_gauge = with_update("      - metric: insa_active\n        labels: {worker_name: w}\n");
  EXPECT_EQ(error_of(count_gauge),
            msg(count_gauge, "metric: insa_active", "'insa_active' is not a counter: use observe/add/sub/set/inflight"));
  const std::string add_counter = with_update("      - metric: insa_plain_total\n        add: 1\n");
  EXPECT_EQ(error_of(add_counter), msg(add_counter, "metric: insa_plain", "'insa_plain_total' is not a gauge"));
  const std::string inflight_hist =
      with_update("      - metric: insa_duration_seconds\n        inflight: true\n        labels: {agent_type: a}\n");
  EXPECT_EQ(error_of(inflight_hist),
            msg(inflight_hist, "metric: insa_duration", "'insa_duration_seconds' is not a gauge"));
  const std::string hist_no_observe =
      with_update("      - metric: insa_duration_seconds\n        labels: {agent_type: a}\n");
  EXPECT_EQ(error_of(hist_no_observe), msg(hist_no_observe, "metric: insa_duration",
                                           "histogram 'insa_duration_seconds' needs 'observe: $duration' (or another value)"));
  const std::string span_end_counter =
      with_update("      - metric: insa_plain_total\n        span_end: s\n        span_key: $arg1\n");
  EXPECT_EQ(error_of(span_end_counter),
            msg(span_end_counter, "metric: insa_plain", "'span_end' observes into a histogram; 'insa_plain_total' is not one"));
  const std::string two_ops = with_update("      - metric: insa_active\n        add: 1\n        sub: 1\n        labels: {worker_name: w}\n");
  EXPECT_EQ(error_of(two_ops), msg(two_ops, "metric: insa_active",
                                   "a metric update does one of count, observe, add, sub, set, inflight, span_begin, span_end"));
  const std::string inflight_false = with_update("      - metric: insa_active\n        inflight: yes\n        labels: {worker_name: w}\n");
  EXPECT_EQ(error_of(inflight_false), msg(inflight_false, "yes", "'inflight' takes true"));
  const std::string when = with_update("      - metric: insa_plain_total\n        when: later\n");
  EXPECT_EQ(error_of(when), msg(when, "later", "'when' is entry or exit"));
}

TEST(ConfigErrors, BadValueExpressions) {
  const std::string arg7 = with_update("      - metric: insa_plain_total\n        count: $arg7\n");
  EXPECT_EQ(error_of(arg7), msg(arg7, "$arg7", "'$arg7' is not a value: arguments are $arg1 .. $arg6, strings $argN:str or $argN:strLEN"));
  const std::string str100 = with_update(
      "      - metric: insa_requests_total\n        labels: {agent_type: $arg1:str100, status: $status}\n");
  EXPECT_EQ(error_of(str100), msg(str100, "$arg1:str100", "'$arg1:str100': a string capture is 2 to 64 bytes, e.g. $arg1:str32"));
  const std::string unknown = with_update("      - metric: insa_plain_total\n        count: $retval\n");
  EXPECT_EQ(error_of(unknown), msg(unknown, "$retval", "'$retval' is not a value ($argN, $argN:str, $ret, $duration, $status, $pid)"));
  const std::string literal = with_update("      - metric: insa_plain_total\n        count: lots\n");
  EXPECT_EQ(error_of(literal), msg(literal, "lots",
                                   "'count': 'lots' is not a value ($argN, $argN:str, $ret, $duration, $status, $pid or an integer)"));
  const std::string strval = with_update("      - metric: insa_plain_total\n        count: $arg1:str8\n");
  EXPECT_EQ(error_of(strval), msg(strval, "$arg1:str8", "a metric value must be an integer, not a string"));
  const std::string label_value = with_update(R"(      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: literal}
)");
  EXPECT_EQ(error_of(label_value), msg(label_value, "literal",
                                       "label 'worker_name': 'literal' is not a value ($argN, $argN:str, $ret, $duration, "
                                       "$status, $pid or an integer)"));
  const std::string label_bad = with_update(
      "      - metric: insa_requests_total\n        labels: {agent_type: $arg0, status: $status}\n");
  EXPECT_EQ(error_of(label_bad), msg(label_bad, "$arg0", "'$arg0' is not a value: arguments are $arg1 .. $arg6, strings $argN:str or $argN:strLEN"));
  const std::string map_str = with_update(R"(      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1:str8, map: {1: a}}
)");
  EXPECT_EQ(error_of(map_str), msg(map_str, "{1: a}", "'map' needs an integer value, not a string"));
}

TEST(ConfigErrors, BadRegex) {
  const std::string t = with_update(R"(      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1:str32, regex: "([a-z"}
)");
  EXPECT_EQ(error_of(t), msg(t, "\"([a-z\"", "invalid regex '([a-z': missing ]: [a-z (RE2 syntax)"));
  // Backreferences need backtracking: RE2 refuses them.
  const std::string backref = with_update(R"(      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1:str32, regex: "(a)\\1"}
)");
  EXPECT_EQ(error_of(backref),
            msg(backref, "\"(a)", "invalid regex '(a)\\1': invalid escape sequence: \\1 (RE2 syntax)"));

  const std::string on_int = with_update(R"yaml(      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1, regex: "(a)"}
)yaml");
  EXPECT_EQ(error_of(on_int), msg(on_int, "\"(a)\"", "'regex' needs a string value such as $arg2:str64"));
}

TEST(ConfigErrors, StatusRules) {
  auto rule = [](const std::string& r) {
    return with_update("      - metric: insa_plain_total\n", "    function: f\n    status:\n      - " + r + "\n");
  };
  const std::string malformed = rule("{if: ret<0, then: error}");
  EXPECT_EQ(error_of(malformed), msg(malformed, "ret<0",
                                     "a condition is '<ret|duration|argN> <op> <value>', e.g. 'ret < 0' or 'duration > 100ms'"));
  const std::string extra = rule("{if: ret < 0 or 1, then: error}");
  EXPECT_EQ(error_of(extra), msg(extra, "ret < 0 or", "a condition is '<ret|duration|argN> <op> <value>', e.g. 'ret < 0' or 'duration > 100ms'"));
  const std::string lhs = rule("{if: status == 1, then: error}");
  EXPECT_EQ(error_of(lhs), msg(lhs, "status ==", "a condition tests ret, duration or argN, not 'status'"));
  const std::string lhs2 = rule("{if: foo == 1, then: error}");
  EXPECT_EQ(error_of(lhs2), msg(lhs2, "foo ==", "a condition tests ret, duration or argN, not 'foo'"));
  const std::string op = rule("{if: ret => 1, then: error}");
  EXPECT_EQ(error_of(op), msg(op, "ret =>", "unknown comparison '=>' (use < <= == != > >=)"));
  const std::string dur = rule("{if: duration > 100, then: timeout}");
  EXPECT_EQ(error_of(dur), msg(dur, "duration > 100", "'100' is not a duration (e.g. 100ms, 2s)"));
  const std::string num = rule("{if: ret < zero, then: error}");
  EXPECT_EQ(error_of(num), msg(num, "ret < zero", "'zero' is not an integer"));
  const std::string arg = rule("{if: $arg3 != 0x10, then: odd}");
  auto ok = parse_config(arg, kFile);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->probes[0].status.at(0).lhs.kind, ValueRef::Kind::Arg);
  EXPECT_EQ(ok->probes[0].status.at(0).lhs.arg, 3);
  EXPECT_EQ(ok->probes[0].status.at(0).cmp, Cmp::Ne);
  EXPECT_EQ(ok->probes[0].status.at(0).rhs, 16);
  const std::string five = with_update("      - metric: insa_plain_total\n",
                                       "    function: f\n    status:\n"
                                       "      - {if: ret == 1, then: a}\n      - {if: ret == 2, then: b}\n"
                                       "      - {if: ret == 3, then: c}\n      - {if: ret == 4, then: d}\n"
                                       "      - {if: ret == 5, then: e}\n");
  EXPECT_EQ(error_of(five), msg(five, "- {if: ret == 1", "at most 4 status rules besides 'else'"));
  const std::string scalar = rule("error");
  EXPECT_EQ(error_of(scalar), msg(scalar, "error\n", "a status rule must be a mapping"));
  const std::string all_ops = with_update("      - metric: insa_plain_total\n",
                                          "    function: f\n    status:\n"
                                          "      - {if: ret <= -2, then: a}\n      - {if: $arg1 == 3, then: b}\n"
                                          "      - {if: duration < 250us, then: c}\n      - {if: duration >= 1.5s, then: d}\n");
  auto all = parse_config(all_ops, kFile);
  ASSERT_TRUE(all.ok()) << all.error().message;
  const auto& s = all->probes[0].status;
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].cmp, Cmp::Le);
  EXPECT_EQ(s[0].rhs, -2);
  EXPECT_EQ(s[1].cmp, Cmp::Eq);
  EXPECT_EQ(s[2].cmp, Cmp::Lt);
  EXPECT_EQ(s[2].rhs, 250'000);
  EXPECT_EQ(s[3].rhs, 1'500'000'000);
  EXPECT_EQ(s[3].mark.str(), "probes.yaml:" + at(all_ops, "{if: duration >= 1.5s"));
}

TEST(ConfigFull, UpdateCondition) {
  const std::string t = with_update("      - metric: insa_plain_total\n        if: ret:i32 != 0\n"
                                    "      - metric: insa_plain_total\n        if: $arg2 >= 5\n        when: entry\n");
  auto c = parse_config(t, kFile);
  ASSERT_TRUE(c.ok()) << c.error().message;
  const auto& u = c->probes[0].updates;
  ASSERT_TRUE(u[0].cond.has_value());
  EXPECT_EQ(u[0].cond->lhs.kind, ValueRef::Kind::Ret);
  EXPECT_TRUE(u[0].cond->lhs.i32);
  EXPECT_EQ(u[0].cond->cmp, Cmp::Ne);
  EXPECT_EQ(u[0].cond->rhs, 0);
  EXPECT_EQ(u[0].cond->mark.str(), "probes.yaml:" + at(t, "ret:i32"));
  EXPECT_EQ(u[1].cond->lhs.kind, ValueRef::Kind::Arg);
  EXPECT_EQ(u[1].cond->lhs.arg, 2);
  EXPECT_EQ(u[1].cond->cmp, Cmp::Ge);
  EXPECT_EQ(u[1].cond->rhs, 5);
  // A condition on $ret makes the probe track its exit; one on an argument does not.
  EXPECT_TRUE(c->probes[0].tracked());
  auto entry_only = parse_config(with_update("      - metric: insa_plain_total\n        if: arg1 == 3\n"), kFile);
  ASSERT_TRUE(entry_only.ok()) << entry_only.error().message;
  EXPECT_FALSE(entry_only->probes[0].tracked());
}

TEST(ConfigErrors, UpdateConditions) {
  const std::string bad = with_update("      - metric: insa_plain_total\n        if: ret <> 0\n");
  EXPECT_EQ(error_of(bad), msg(bad, "ret <>", "unknown comparison '<>' (use < <= == != > >=)"));
  const std::string what = with_update("      - metric: insa_plain_total\n        if: status == 1\n");
  EXPECT_EQ(error_of(what), msg(what, "status ==", "a condition tests ret, duration or argN, not 'status'"));
  const std::string inflight =
      with_update("      - metric: insa_active\n        inflight: true\n        if: ret == 0\n        labels: {worker_name: w}\n");
  EXPECT_EQ(error_of(inflight),
            msg(inflight, "ret == 0", "'if' applies to count, observe, add, sub and set updates, not to inflight or spans"));
  const std::string usdt = with_update("      - metric: insa_plain_total\n        if: duration > 1ms\n", "    usdt: p:n\n");
  EXPECT_EQ(error_of(usdt), msg(usdt, "name: p", "probe 'p': a USDT probe is a single point: no exit, $ret or $duration"));
}

TEST(ConfigErrors, UnmatchedSpans) {
  const std::string begin = with_update(
      "      - metric: insa_duration_seconds\n        span_begin: handoff\n        span_key: $arg1\n");
  EXPECT_EQ(error_of(begin), msg(begin, "metric: insa_duration", "span 'handoff' has no 'span_end: handoff' in any probe"));
  const std::string end = with_update(
      "      - metric: insa_duration_seconds\n        span_end: handoff\n        span_key: $arg1\n        labels: {agent_type: a}\n");
  EXPECT_EQ(error_of(end), msg(end, "metric: insa_duration", "span 'handoff' has no 'span_begin: handoff' in any probe"));
  const std::string nokey = with_update("      - metric: insa_duration_seconds\n        span_begin: handoff\n");
  EXPECT_EQ(error_of(nokey), msg(nokey, "metric: insa_duration",
                                 "a span needs 'span_key: $argN' naming the argument that pairs begin and end"));
  const std::string strkey = with_update(
      "      - metric: insa_duration_seconds\n        span_begin: handoff\n        span_key: $arg1:str8\n");
  EXPECT_EQ(error_of(strkey), msg(strkey, "$arg1:str8", "'span_key' must be an integer argument $argN"));
}

TEST(ConfigErrors, UsdtProbes) {
  const std::string ret = with_update("      - metric: insa_active\n        set: $ret\n        labels: {worker_name: w}\n",
                                      "    usdt: q:push\n");
  EXPECT_EQ(error_of(ret), msg(ret, "name: p", "probe 'p': a USDT probe is a single point: no exit, $ret or $duration"));
  const std::string dur = with_update("      - metric: insa_duration_seconds\n        observe: $duration\n        labels: {agent_type: a}\n",
                                      "    usdt: q:push\n");
  EXPECT_EQ(error_of(dur), msg(dur, "name: p", "probe 'p': a USDT probe is a single point: no exit, $ret or $duration"));
  const std::string inflight = with_update("      - metric: insa_active\n        inflight: true\n        labels: {worker_name: w}\n",
                                           "    usdt: q:push\n");
  EXPECT_EQ(error_of(inflight), msg(inflight, "name: p", "probe 'p': a USDT probe is a single point: no exit, $ret or $duration"));
  const std::string exit = with_update("      - metric: insa_plain_total\n        when: exit\n", "    usdt: q:push\n");
  EXPECT_EQ(error_of(exit), msg(exit, "name: p", "probe 'p': a USDT probe is a single point: no exit, $ret or $duration"));
  const std::string colon = with_update("      - metric: insa_plain_total\n", "    usdt: qpush\n");
  EXPECT_EQ(error_of(colon), msg(colon, "qpush", "'usdt' is provider:name"));
}

// A USDT point has no return value: $ret/$status as a *label* must be refused
// by the validator too, like $ret as the value (today only build_plan refuses it).
TEST(ConfigErrors, UsdtProbeWithRetLabel) {
  const std::string t = with_update(
      "      - metric: insa_requests_total\n        labels: {agent_type: $arg1:str8, status: $ret}\n", "    usdt: q:push\n");
  EXPECT_EQ(error_of(t), msg(t, "name: p", "probe 'p': a USDT probe is a single point: no exit, $ret or $duration"));
  const std::string st = with_update(
      "      - metric: insa_requests_total\n        labels: {agent_type: $arg1:str8, status: $status}\n", "    usdt: q:push\n");
  EXPECT_EQ(error_of(st), msg(st, "name: p", "probe 'p': a USDT probe is a single point: no exit, $ret or $duration"));
}

TEST(ConfigErrors, ProbeTargets) {
  const std::string two = with_update("      - metric: insa_plain_total\n", "    function: f\n    usdt: a:b\n");
  EXPECT_EQ(error_of(two), msg(two, "name: p", "probe 'p' needs exactly one of 'function', 'usdt' or 'offset'"));
  const std::string three = with_update("      - metric: insa_plain_total\n", "    function: f\n    usdt: a:b\n    offset: 16\n");
  EXPECT_EQ(error_of(three), msg(three, "name: p", "probe 'p' needs exactly one of 'function', 'usdt' or 'offset'"));
  const std::string fo = with_update("      - metric: insa_plain_total\n", "    function: f\n    offset: 16\n");
  EXPECT_EQ(error_of(fo), msg(fo, "name: p", "probe 'p' needs exactly one of 'function', 'usdt' or 'offset'"));
  const std::string none = with_update("      - metric: insa_plain_total\n", "    pid: 1\n");
  EXPECT_EQ(error_of(none), msg(none, "name: p", "probe 'p' needs exactly one of 'function', 'usdt' or 'offset'"));
  const std::string exit = with_update("      - metric: insa_plain_total\n", "    function: f\n    exit: kretprobe\n");
  EXPECT_EQ(error_of(exit), msg(exit, "kretprobe",
                                "'exit' is return-sites (default, safe with C++ exceptions) or uretprobe (C code only)"));
}

TEST(ConfigErrors, TooManyUpdates) {
  std::string updates;
  for (int i = 0; i < 7; ++i) updates += "      - metric: insa_plain_total\n";
  const std::string t = with_update(updates);
  EXPECT_EQ(error_of(t), msg(t, "- metric: insa_plain_total",
                             "at most 6 metric updates per probe; split it into two probes on the same function"));
  std::string six;
  for (int i = 0; i < 6; ++i) six += "      - metric: insa_plain_total\n";
  EXPECT_TRUE(parse_config(with_update(six), kFile).ok());
}

TEST(ConfigErrors, MaxSeries) {
  const std::string small = "exporter:\n  max_series: 15\nprobes: []\n";
  EXPECT_EQ(error_of(small), msg(small, "15", "'max_series' must be between 16 and 4194304"));
  const std::string big = "exporter:\n  max_series: 4194305\nprobes: []\n";
  EXPECT_EQ(error_of(big), msg(big, "4194305", "'max_series' must be between 16 and 4194304"));
  const std::string word = "exporter:\n  max_series: lots\nprobes: []\n";
  EXPECT_EQ(error_of(word), msg(word, "lots", "'max_series' must be an integer, got 'lots'"));
  auto lo = parse_config("exporter:\n  max_series: 16\nprobes: []\n", kFile);
  ASSERT_TRUE(lo.ok()) << lo.error().message;
  EXPECT_EQ(lo->max_series, 16u);
  auto hi = parse_config("exporter:\n  max_series: 4194304\nprobes: []\n", kFile);
  ASSERT_TRUE(hi.ok()) << hi.error().message;
  EXPECT_EQ(hi->max_series, 4194304u);
}

TEST(ConfigErrors, SeriesExpiry) {
  auto def = parse_config("probes: []\n", kFile);
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->series_expiry_ns, 600'000'000'000);  // 10 minutes
  auto ten = parse_config("exporter:\n  series_expiry: 90s\nprobes: []\n", kFile);
  ASSERT_TRUE(ten.ok()) << ten.error().message;
  EXPECT_EQ(ten->series_expiry_ns, 90'000'000'000);
  auto min = parse_config("exporter:\n  series_expiry: 30m\nprobes: []\n", kFile);
  ASSERT_TRUE(min.ok());
  EXPECT_EQ(min->series_expiry_ns, 1'800'000'000'000);
  auto off = parse_config("exporter:\n  series_expiry: 0\nprobes: []\n", kFile);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->series_expiry_ns, 0);
  for (const std::string bad : {"500ms", "soon", "-5s", "10"}) {
    const std::string text = "exporter:\n  series_expiry: " + bad + "\nprobes: []\n";
    EXPECT_EQ(error_of(text), msg(text, bad, "'series_expiry' must be a duration of at least 1s (e.g. 10m, 90s), or 0 "
                                             "to keep series forever, got '" + bad + "'"));
  }
  // A metric's own quota.
  auto own = parse_config("metrics:\n  - name: m_total\n    type: counter\n    max_series: 300\nprobes: []\n", kFile);
  ASSERT_TRUE(own.ok()) << own.error().message;
  EXPECT_EQ(own->metrics.at(0).max_series, 300u);
  EXPECT_EQ(own->metrics.at(0).max_series_mark.str(), std::string(kFile) + ":4:17");
  const std::string zero = "metrics:\n  - name: m_total\n    type: counter\n    max_series: 0\nprobes: []\n";
  EXPECT_EQ(error_of(zero), msg(zero, "0\n", "'max_series' must be between 1 and 4194304"));
  // Where max_series was written, for the budget's message.
  auto ms = parse_config("exporter:\n  max_series: 64\nprobes: []\n", kFile);
  ASSERT_TRUE(ms.ok());
  EXPECT_EQ(ms->max_series_mark.str(), std::string(kFile) + ":2:15");
}

TEST(ConfigErrors, DropUnmatched) {
  const std::string noregex = with_update(R"yaml(      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1:str8, drop_unmatched: true}
)yaml");
  EXPECT_EQ(error_of(noregex), msg(noregex, "true}", "'drop_unmatched' needs a 'regex'"));
  const std::string notbool = with_update(R"yaml(      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1:str8, regex: "(a)", drop_unmatched: maybe}
)yaml");
  EXPECT_EQ(error_of(notbool), msg(notbool, "maybe", "'drop_unmatched' is true or false"));
  const std::string off = with_update(R"yaml(      - metric: insa_active
        inflight: true
        labels:
          worker_name: {value: $arg1:str8, regex: "(a)", drop_unmatched: false}
)yaml");
  auto r = parse_config(off, kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->probes[0].updates[0].labels[0].drop_unmatched);
}

// ------------------------------------------------------- parse_duration_ns

TEST(ParseDuration, Units) {
  EXPECT_EQ(parse_duration_ns("100ms"), 100'000'000);
  EXPECT_EQ(parse_duration_ns("2s"), 2'000'000'000);
  EXPECT_EQ(parse_duration_ns("1.5s"), 1'500'000'000);
  EXPECT_EQ(parse_duration_ns("250us"), 250'000);
  EXPECT_EQ(parse_duration_ns("10ns"), 10);
  EXPECT_EQ(parse_duration_ns("1m"), 60'000'000'000);
  EXPECT_EQ(parse_duration_ns("0s"), 0);
  EXPECT_EQ(parse_duration_ns("0.5ms"), 500'000);
  EXPECT_EQ(parse_duration_ns(".5s"), 500'000'000);
  EXPECT_EQ(parse_duration_ns("5.s"), 5'000'000'000);
  EXPECT_EQ(parse_duration_ns("1.0000000004s"), 1'000'000'000);  // rounded to the ns
  EXPECT_EQ(parse_duration_ns("1.0000000006s"), 1'000'000'001);
}

TEST(ParseDuration, Rejects) {
  for (const char* s : {"", "s", "ms", "100", "-1s", "-5ms", "5h", "2 s", "1.5.s", "abc", "5xs", "s5", "1d", "100 ms"})
    EXPECT_EQ(parse_duration_ns(s), std::nullopt) << "'" << s << "'";
}

// ------------------------------------------------------------- parse_value

TEST(ParseValue, Expressions) {
  std::string why;
  auto v = parse_value("$ret", &why);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->kind, ValueRef::Kind::Ret);
  EXPECT_EQ(parse_value("$duration", &why)->kind, ValueRef::Kind::Duration);
  EXPECT_EQ(parse_value("$status", &why)->kind, ValueRef::Kind::Status);
  EXPECT_EQ(parse_value("$pid", &why)->kind, ValueRef::Kind::Pid);
  auto a1 = parse_value("$arg1", &why);
  EXPECT_EQ(a1->kind, ValueRef::Kind::Arg);
  EXPECT_EQ(a1->arg, 1);
  EXPECT_EQ(parse_value("$arg6", &why)->arg, 6);
  auto s = parse_value("$arg2:str", &why);
  EXPECT_EQ(s->kind, ValueRef::Kind::ArgStr);
  EXPECT_EQ(s->arg, 2);
  EXPECT_EQ(s->len, 32);
  EXPECT_EQ(parse_value("$arg2:str2", &why)->len, 2);
  EXPECT_EQ(parse_value("$arg2:str64", &why)->len, 64);
  auto i = parse_value("42", &why);
  EXPECT_EQ(i->kind, ValueRef::Kind::Int);
  EXPECT_EQ(i->number, 42);
  EXPECT_EQ(parse_value("-5", &why)->number, -5);
  EXPECT_EQ(parse_value("0x10", &why)->number, 16);
  EXPECT_TRUE(why.empty());
}

TEST(ParseValue, Errors) {
  auto err = [](const std::string& s) {
    std::string why;
    auto v = parse_value(s, &why);
    EXPECT_FALSE(v.has_value()) << s;
    return why;
  };
  const std::string args = "is not a value: arguments are $arg1 .. $arg6, strings $argN:str or $argN:strLEN";
  EXPECT_EQ(err("$arg0"), "'$arg0' " + args);
  EXPECT_EQ(err("$arg7"), "'$arg7' " + args);
  EXPECT_EQ(err("$arg12"), "'$arg12' " + args);
  EXPECT_EQ(err("$arg"), "'$arg' " + args);
  EXPECT_EQ(err("$arg1:int"), "'$arg1:int' " + args);
  EXPECT_EQ(err("$arg1:str100"), "'$arg1:str100': a string capture is 2 to 64 bytes, e.g. $arg1:str32");
  EXPECT_EQ(err("$arg1:str1"), "'$arg1:str1': a string capture is 2 to 64 bytes, e.g. $arg1:str32");
  EXPECT_EQ(err("$arg3:str65"), "'$arg3:str65': a string capture is 2 to 64 bytes, e.g. $arg3:str32");
  EXPECT_EQ(err("$arg3:strx"), "'$arg3:strx': a string capture is 2 to 64 bytes, e.g. $arg3:str32");
  EXPECT_EQ(err("$foo"), "'$foo' is not a value ($argN, $argN:str, $ret, $duration, $status, $pid)");
  EXPECT_EQ(err("$"), "'$' is not a value ($argN, $argN:str, $ret, $duration, $status, $pid)");
  // Not expressions at all: no reason, the caller may take them as literals.
  EXPECT_EQ(err(""), "");
  EXPECT_EQ(err("abc"), "");
  EXPECT_EQ(err("12abc"), "");
  EXPECT_FALSE(parse_value("$ret", nullptr) == std::nullopt);
  EXPECT_FALSE(parse_value("$arg9", nullptr).has_value());  // a null `why` is allowed
}

// "$arg2:str16x" must not be taken as a 16-byte capture: trailing junk is an error.
TEST(ParseValue, TrailingJunkInStringLength) {
  std::string why;
  EXPECT_FALSE(parse_value("$arg2:str16x", &why).has_value());
  EXPECT_EQ(why, "'$arg2:str16x': a string capture is 2 to 64 bytes, e.g. $arg2:str32");
}

TEST(ParseValue, I32) {
  std::string why;
  auto r = parse_value("$ret:i32", &why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->kind, ValueRef::Kind::Ret);
  EXPECT_TRUE(r->i32);
  EXPECT_EQ(r->str(), "$ret:i32");
  auto a = parse_value("$arg3:i32", &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->kind, ValueRef::Kind::Arg);
  EXPECT_EQ(a->arg, 3);
  EXPECT_TRUE(a->i32);
  EXPECT_EQ(a->str(), "$arg3:i32");
  EXPECT_FALSE(parse_value("$ret", &why)->i32);
  EXPECT_FALSE(parse_value("$arg3", &why)->i32);
  EXPECT_TRUE(why.empty());
  EXPECT_FALSE(parse_value("$arg7:i32", &why).has_value());
  EXPECT_EQ(why, "'$arg7' is not a value: arguments are $arg1 .. $arg6, strings $argN:str or $argN:strLEN");
}

// ":i32" on a string capture is not a value; it must be an error with a reason,
// never silently a literal label value "$arg2:str8:i32".
TEST(ParseValue, I32OnAStringIsAnError) {
  std::string why;
  EXPECT_FALSE(parse_value("$arg2:str8:i32", &why).has_value());
  EXPECT_EQ(why, "'$arg2:str8:i32': ':i32' applies to $ret and integer arguments $argN only");
  EXPECT_FALSE(parse_value("$duration:i32", &why).has_value());
  EXPECT_EQ(why, "'$duration:i32' is not a value ($argN, $argN:str, $ret, $duration, $status, $pid)");
  const std::string t = with_update(
      "      - metric: insa_requests_total\n        labels: {agent_type: $arg2:str8:i32, status: $status}\n");
  auto r = parse_config(t, kFile);
  ASSERT_FALSE(r.ok()) << "accepted as the literal label value '"
                       << r->probes[0].updates[0].labels[0].value.literal << "'";
  EXPECT_EQ(r.error().message,
            msg(t, "$arg2:str8:i32", "'$arg2:str8:i32': ':i32' applies to $ret and integer arguments $argN only"));
}

TEST(ParseValue, RoundTripsToYamlSpelling) {
  for (const char* s : {"$ret", "$duration", "$status", "$pid", "$arg4", "$arg2:str16", "42", "-7"}) {
    auto v = parse_value(s, nullptr);
    ASSERT_TRUE(v) << s;
    EXPECT_EQ(v->str(), s);
  }
  EXPECT_EQ(parse_value("$arg2:str", nullptr)->str(), "$arg2:str32");
  EXPECT_EQ(parse_value("0x10", nullptr)->str(), "16");
  ValueRef lit;
  lit.literal = "hello";
  EXPECT_EQ(lit.str(), "hello");
  EXPECT_FALSE(lit.kernel());
}

TEST(Mark, Str) {
  Mark m{"probes.yaml", 12, 5};
  EXPECT_EQ(m.str(), "probes.yaml:12:5");
}

TEST(Config, PythonWorkers) {
  const std::string base = R"(metrics:
  - {name: insa_x_total, type: counter}
probes:
  - {name: p, binary: ./w, function: f, metrics: [{metric: insa_x_total}]}
workers:
)";
  auto r = parse_config(base + "  - {name: bus, type: bus, script: agent_message_bus.py}\n"
                               "  - {name: crm, script: crm.py, binary: /usr/bin/python3.11}\n",
                        kFile);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->workers.size(), 2u);
  EXPECT_EQ(r->workers[0].script, "agent_message_bus.py");
  EXPECT_EQ(r->workers[0].binary, "");
  EXPECT_EQ(r->workers[1].script, "crm.py");
  EXPECT_EQ(r->workers[1].binary, "/usr/bin/python3.11");
  const std::string none = base + "  - {name: bus, type: bus}\n";
  EXPECT_EQ(error_of(none), msg(none, "{name: bus", "a worker needs 'binary' (its executable) or 'script' (the main "
                                                    "script of a Python worker, e.g. worker.py)"));
}

}  // namespace
}  // namespace insa::config

namespace insa::config {
namespace {

TEST(ConfigErrors, PidIsDecimalAndInRange) {
  auto probe = [](const std::string& pid) {
    return kMetrics + "  - name: a\n    binary: b\n    pid: " + pid + "\n    function: f\n    metrics: [{metric: insa_plain_total}]\n";
  };
  for (const std::string bad : {"010", "0", "-1", "0x10", "4194305", "4294967297", "99999999999", "1.5", "+5"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(error_of(probe(bad)),
              "probes.yaml:17:10: 'pid' must be a process ID in decimal, 1 to 4194304, got '" + bad + "'");
  }
  for (const auto& [text, want] : std::vector<std::pair<std::string, int>>{{"10", 10}, {"4194304", 4194304}}) {
    auto c = parse_config(probe(text), kFile);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->probes.at(0).pid, want);
  }
}

TEST(ConfigErrors, OffsetIsAboveZeroDecimalOrHex) {
  auto probe = [](const std::string& off) {
    return kMetrics + "  - name: a\n    binary: b\n    offset: " + off + "\n    metrics: [{metric: insa_plain_total}]\n";
  };
  for (const std::string bad : {"0", "-1", "0x0", "010", "0x", "0x1g", "18446744073709551616", "0x10000000000000000"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(error_of(probe(bad)),
              "probes.yaml:17:13: 'offset' must be a file offset above 0 in decimal or 0x-hex (see insa-exporter "
              "list-probes), got '" + bad + "'");
  }
  for (const auto& [text, want] : std::vector<std::pair<std::string, uint64_t>>{
           {"4640", 4640}, {"0x1220", 0x1220}, {"0XfFfFfFfFfFfFfFfF", ~uint64_t{0}}}) {
    auto c = parse_config(probe(text), kFile);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->probes.at(0).offset, want);
  }
}

}  // namespace
}  // namespace insa::config

namespace insa::config {
namespace {

TEST(Config, AbandonedStatus) {
  const std::string ok = kMetrics + "  - name: a\n    binary: b\n    function: f\n    abandoned_status: aborted\n"
                                    "    metrics: [{metric: insa_requests_total, labels: {agent_type: x, status: $status}}]\n";
  auto c = parse_config(ok, kFile);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->probes.at(0).abandoned_status, "aborted");
  const std::string entry_only = kMetrics + "  - name: a\n    binary: b\n    function: f\n    abandoned_status: aborted\n"
                                            "    metrics: [{metric: insa_plain_total}]\n";
  EXPECT_EQ(error_of(entry_only),
            "probes.yaml:18:23: 'abandoned_status' needs a probe whose calls are followed to their end: an update at "
            "exit, e.g. labels {status: $status}");
}

}  // namespace
}  // namespace insa::config
