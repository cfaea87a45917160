// SPDX-License-Identifier: Apache-2.0
// The attach plan over real binaries built in the tree: the demo request
// worker (C++, return-site exits) and the C fixture (USDT, uretprobe). Checks
// every kernel spec field the BPF side reads, the series table the collector
// reads, the attach points, and the one-line errors naming probes.yaml:line:col.
// Exit sites are cross-checked against objdump.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>

#include "../test_util.h"
#include "attach/plan.h"
#include "config/config.h"
#include "elf/elf_file.h"
#include "elf/return_sites.h"

namespace insa::plan {
namespace {

using insa::test::run_command;
namespace fs = std::filesystem;

const std::string kWorkers = std::string(INSA_BINARY_DIR) + "/tests/workers";
const std::string kWorker = kWorkers + "/request_worker";
const std::string kFixtureC = std::string(INSA_BINARY_DIR) + "/tests/fixtures/fixture_c_pie_O2";
// The config "lives" in the build's tests/ directory, so `workers/request_worker`
// is relative to it.
const std::string kConfigFile = std::string(INSA_BINARY_DIR) + "/tests/probes.yaml";


/// "line:col" of the first occurrence of `needle`.
std::string at(const std::string& text, const std::string& needle, int nth = 1) {
  std::string lc = insa::test::line_col(text, needle, nth);
  if (lc == "?:?") ADD_FAILURE() << "'" << needle << "' (#" << nth << ") not in the test text";
  return lc;
}

struct Built {
  config::Config cfg;
  Result<Plan> plan = Error{"not built"};
};

Built build(const std::string& yaml, const std::string& file = kConfigFile) {
  Built b;
  auto c = config::parse_config(yaml, file);
  if (!c) {
    ADD_FAILURE() << "config rejected: " << c.error().message;
    return b;
  }
  b.cfg = std::move(c).value();
  b.plan = build_plan(b.cfg);
  return b;
}

bool have_binaries() {
  return fs::exists(kWorker) && fs::exists(kFixtureC);
}

#define REQUIRE_BINARIES()                                                                          \
  ASSERT_TRUE(have_binaries()) << "build the tree first (cmake --build build): missing " << kWorker \
                               << " or " << kFixtureC

const std::string kRequest = R"yaml(metrics:
  - name: insa_agent_requests_total
    type: counter
    labels: [agent_type, status]
  - name: insa_agent_request_duration_seconds
    type: histogram
    labels: [agent_type]
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5]
  - name: insa_agent_request_size_bytes
    type: histogram
    labels: [agent_type]
    buckets: [50, 500, 1000, 5000, 10000, 50000, 100000]
  - name: insa_agent_response_size_bytes
    type: histogram
    labels: [agent_type]
    buckets: [50, 500, 1000, 5000, 10000, 50000, 100000]
  - name: insa_worker_active_requests
    type: gauge
    labels: [worker_name]
probes:
  - name: request
    binary: workers/request_worker
    function: insa_demo::handle_request
    status:
      - {if: ret < 0, then: error}
      - {if: duration > 100ms, then: timeout}
      - {else: success}
    metrics:
      - metric: insa_agent_requests_total
        labels: {agent_type: $arg2:str32, status: $status}
      - metric: insa_agent_request_duration_seconds
        observe: $duration
        labels: {agent_type: $arg2:str32}
      - metric: insa_agent_request_size_bytes
        observe: $arg3
        labels: {agent_type: $arg2:str32}
      - metric: insa_agent_response_size_bytes
        observe: $ret
        labels: {agent_type: $arg2:str32}
      - metric: insa_worker_active_requests
        inflight: true
        labels: {worker_name: request_worker}
)yaml";

TEST(Plan, RequestProbeSpec) {
  REQUIRE_BINARIES();
  auto b = build(kRequest);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const Plan& p = *b.plan;
  ASSERT_EQ(p.specs.size(), 1u);
  ASSERT_EQ(p.probes.size(), 1u);
  EXPECT_EQ(p.statuses, (std::vector<std::string>{"success", "error", "timeout"}));
  EXPECT_TRUE(p.needs_catch);

  const insa_probe_spec& s = p.specs[0];
  EXPECT_EQ(s.flags, INSA_PROBE_TRACKED);
  EXPECT_EQ(s.owner, 0u);
  EXPECT_EQ(s.default_status, 0);    // success
  EXPECT_EQ(s.exception_status, 1);  // error
  ASSERT_EQ(s.nrules, 2);
  EXPECT_EQ(s.rules[0].src, INSA_SRC_RET);
  EXPECT_EQ(s.rules[0].arg, 0);
  EXPECT_EQ(s.rules[0].cmp, INSA_CMP_LT);
  EXPECT_EQ(s.rules[0].value, 0);
  EXPECT_EQ(s.rules[0].status, 1);
  EXPECT_EQ(s.rules[1].src, INSA_SRC_DURATION);
  EXPECT_EQ(s.rules[1].cmp, INSA_CMP_GT);
  EXPECT_EQ(s.rules[1].value, 100'000'000);
  EXPECT_EQ(s.rules[1].status, 2);
  // The in-flight gauge (static label) is derived from the probe's stats: no kernel action.
  ASSERT_EQ(s.nactions, 4);

  // requests_total: count 1 at exit, agent_type string slot + status slot after it.
  const insa_action& count = s.actions[0];
  EXPECT_EQ(count.op, INSA_OP_COUNT);
  EXPECT_EQ(count.when, INSA_AT_EXIT);
  EXPECT_EQ(count.value_src, INSA_SRC_CONST);
  EXPECT_EQ(count.value_const, 1);
  EXPECT_EQ(count.series, 0u);
  EXPECT_EQ(count.nbounds, 0);
  ASSERT_EQ(count.nlabels, 2);
  EXPECT_EQ(count.labels[0].src, INSA_SRC_ARG_STR);
  EXPECT_EQ(count.labels[0].arg, 2);
  EXPECT_EQ(count.labels[0].offset, 0);
  EXPECT_EQ(count.labels[0].len, 32);
  EXPECT_EQ(count.labels[1].src, INSA_SRC_STATUS);
  EXPECT_EQ(count.labels[1].arg, 0);
  EXPECT_EQ(count.labels[1].offset, 32);
  EXPECT_EQ(count.labels[1].len, 8);

  // duration: seconds bounds become ns.
  const insa_action& dur = s.actions[1];
  EXPECT_EQ(dur.op, INSA_OP_OBSERVE);
  EXPECT_EQ(dur.when, INSA_AT_EXIT);
  EXPECT_EQ(dur.value_src, INSA_SRC_DURATION);
  EXPECT_EQ(dur.series, 1u);
  ASSERT_EQ(dur.nbounds, 9);
  const int64_t ns[] = {1'000'000, 5'000'000, 10'000'000, 50'000'000, 100'000'000,
                        250'000'000, 500'000'000, 1'000'000'000, 5'000'000'000};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(dur.bounds[i], ns[i]) << i;
  EXPECT_EQ(dur.bounds[9], 0);
  ASSERT_EQ(dur.nlabels, 1);
  EXPECT_EQ(dur.labels[0].src, INSA_SRC_ARG_STR);
  EXPECT_EQ(dur.labels[0].offset, 0);
  EXPECT_EQ(dur.labels[0].len, 32);

  // sizes: raw bounds, value from an argument and from the return value.
  const int64_t raw[] = {50, 500, 1000, 5000, 10000, 50000, 100000};
  const insa_action& req = s.actions[2];
  EXPECT_EQ(req.op, INSA_OP_OBSERVE);
  EXPECT_EQ(req.value_src, INSA_SRC_ARG);
  EXPECT_EQ(req.value_arg, 3);
  EXPECT_EQ(req.series, 2u);
  ASSERT_EQ(req.nbounds, 7);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(req.bounds[i], raw[i]) << i;
  const insa_action& resp = s.actions[3];
  EXPECT_EQ(resp.value_src, INSA_SRC_RET);
  EXPECT_EQ(resp.when, INSA_AT_EXIT);
  EXPECT_EQ(resp.series, 3u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(resp.bounds[i], raw[i]) << i;

  EXPECT_EQ(s.actions[4].op, 0);  // unused slot stays zero
}

TEST(Plan, RequestSeriesTable) {
  REQUIRE_BINARIES();
  auto b = build(kRequest);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const auto& series = b.plan->series;
  ASSERT_EQ(series.size(), 5u);
  for (size_t i = 0; i < series.size(); ++i) {
    EXPECT_EQ(series[i].metric, i);
    EXPECT_EQ(series[i].probe, 0);
  }
  EXPECT_EQ(series[0].scale, 1.0);
  EXPECT_EQ(series[1].scale, 1e-9);
  EXPECT_EQ(series[2].scale, 1.0);
  EXPECT_EQ(series[3].scale, 1.0);
  EXPECT_FALSE(series[0].gauge);
  EXPECT_TRUE(series[4].gauge);
  EXPECT_TRUE(series[4].derived_inflight);
  EXPECT_FALSE(series[0].derived_inflight);

  ASSERT_EQ(series[0].labels.size(), 2u);
  EXPECT_EQ(series[0].labels[0].name, "agent_type");
  EXPECT_EQ(series[0].labels[0].kind, LabelDecoder::Kind::Str);
  EXPECT_EQ(series[0].labels[0].offset, 0u);
  EXPECT_EQ(series[0].labels[0].len, 32u);
  EXPECT_EQ(series[0].labels[1].name, "status");
  EXPECT_EQ(series[0].labels[1].kind, LabelDecoder::Kind::Status);
  EXPECT_EQ(series[0].labels[1].offset, 32u);
  EXPECT_EQ(series[0].labels[1].len, 8u);

  ASSERT_EQ(series[4].labels.size(), 1u);
  EXPECT_EQ(series[4].labels[0].name, "worker_name");
  EXPECT_EQ(series[4].labels[0].kind, LabelDecoder::Kind::Static);
  EXPECT_EQ(series[4].labels[0].static_value, "request_worker");
}

TEST(Plan, RequestAttachPointsMatchObjdump) {
  REQUIRE_BINARIES();
  auto b = build(kRequest);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const ProbePlan& pp = b.plan->probes.at(0);
  const std::string canon = fs::canonical(kWorker).string();
  EXPECT_EQ(pp.name, "request");
  EXPECT_EQ(pp.binary, canon);  // resolved against the config file's directory
  EXPECT_EQ(pp.cookie, 0u);
  EXPECT_TRUE(pp.tracked);
  EXPECT_EQ(pp.mark.str(), kConfigFile + ":" + at(kRequest, "name: request"));

  auto elf = elf::ElfFile::open(canon);
  ASSERT_TRUE(elf.ok()) << elf.error().message;
  auto sym = elf->find_function("insa_demo::handle_request");
  ASSERT_TRUE(sym.ok()) << sym.error().message;
  EXPECT_EQ(sym->name, "_ZN9insa_demo14handle_requestElPKcl");
  char hex[32];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(sym->file_offset));
  EXPECT_EQ(pp.target, "insa_demo::handle_request(long, char const*, long) (_ZN9insa_demo14handle_requestElPKcl) @0x" +
                           std::string(hex));

  // Ground truth: every `ret` of the function in objdump (it is built with
  // -fno-optimize-sibling-calls, so no tail jmp leaves it), as file offsets
  // through the PT_LOAD table.
  std::istringstream dis(run_command("objdump -d --no-show-raw-insn '" + canon + "' --disassemble=" + sym->name));
  std::set<uint64_t> rets;
  std::string line;
  while (std::getline(dis, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string insn = line.substr(colon + 1);
    auto first = insn.find_first_not_of(" \t");
    if (first == std::string::npos || insn.compare(first, 3, "ret") != 0) continue;
    auto vaddr = std::stoull(line.substr(0, colon), nullptr, 16);
    auto off = elf->vaddr_to_offset(vaddr);
    ASSERT_TRUE(off.ok());
    rets.insert(*off);
  }
  ASSERT_FALSE(rets.empty()) << "objdump found no ret in " << sym->name;

  EXPECT_EQ(pp.exit_sites, rets.size());
  std::set<uint64_t> exits;
  size_t entries = 0;
  for (const AttachPoint& a : pp.points) {
    EXPECT_EQ(a.binary, canon);
    EXPECT_EQ(a.pid, -1);
    EXPECT_EQ(a.cookie, 0u);  // return sites share the entry's cookie; no URET bit
    EXPECT_EQ(a.probe, 0);
    EXPECT_TRUE(a.usdt_provider.empty());
    if (a.role == Role::Entry) {
      ++entries;
      // The entry may move into the straight-line prologue, never out of the function.
      EXPECT_GE(a.offset, sym->file_offset);
      EXPECT_LT(a.offset, sym->file_offset + sym->size);
      EXPECT_EQ(b.plan->specs[0].entry_sp_delta == 0, a.offset == sym->file_offset)
          << "sp_delta " << b.plan->specs[0].entry_sp_delta;
    } else {
      EXPECT_EQ(a.role, Role::Exit);
      exits.insert(a.offset);
    }
  }
  EXPECT_EQ(entries, 1u);
  EXPECT_EQ(exits, rets);
  EXPECT_EQ(pp.points.size(), 1 + rets.size());
  EXPECT_EQ(pp.points.front().role, Role::Entry);
}

TEST(Plan, RelativeBinaryResolvedAgainstConfigDirectory) {
  REQUIRE_BINARIES();
  char tmpl[] = "/tmp/insa_plan_test_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  fs::create_directories(dir / "bin");
  fs::create_symlink(kWorker, dir / "bin" / "worker");
  const std::string yaml = R"yaml(metrics:
  - name: calls_total
    type: counter
probes:
  - name: p
    binary: bin/worker
    function: insa_demo::handle_request
    metrics: [{metric: calls_total}]
)yaml";
  auto b = build(yaml, (dir / "probes.yaml").string());
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  EXPECT_EQ(b.plan->probes.at(0).binary, fs::canonical(kWorker).string());
  // The same relative path from a config elsewhere does not exist.
  auto other = build(yaml, "/nonexistent-dir/probes.yaml");
  ASSERT_FALSE(other.plan.ok());
  EXPECT_EQ(other.plan.error().message,
            "/nonexistent-dir/probes.yaml:" + at(yaml, "bin/worker") +
                ": binary 'bin/worker' not found: No such file or directory (paths are relative to the config "
                "file's directory)");
  fs::remove_all(dir);

  auto direct = resolve_binary("workers/request_worker", kConfigFile);
  ASSERT_TRUE(direct.ok()) << direct.error().message;
  EXPECT_EQ(*direct, fs::canonical(kWorker).string());
  auto abs = resolve_binary(kWorker, "/elsewhere/probes.yaml");
  ASSERT_TRUE(abs.ok()) << abs.error().message;
  EXPECT_EQ(*abs, fs::canonical(kWorker).string());
}

TEST(Plan, UntrackedProbeIsOneEntryPoint) {
  REQUIRE_BINARIES();
  // A PID must name a live process other than the exporter: our parent.
  const std::string yaml = R"yaml(metrics:
  - name: calls_total
    type: counter
    labels: [size]
probes:
  - name: calls
    binary: workers/request_worker
    pid: )yaml" + std::to_string(getppid()) + R"yaml(
    function: _ZN9insa_demo14handle_requestElPKcl
    metrics:
      - metric: calls_total
        count: $arg3
        labels: {size: $arg3}
)yaml";
  auto b = build(yaml);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const Plan& p = *b.plan;
  EXPECT_FALSE(p.needs_catch);
  EXPECT_EQ(p.statuses, (std::vector<std::string>{"success", "error"}));  // defaults
  const auto& s = p.specs.at(0);
  EXPECT_EQ(s.flags, 0u);
  EXPECT_EQ(s.nrules, 0);
  EXPECT_EQ(s.entry_sp_delta, 0);
  ASSERT_EQ(s.nactions, 1);
  EXPECT_EQ(s.actions[0].op, INSA_OP_COUNT);
  EXPECT_EQ(s.actions[0].when, INSA_AT_ENTRY);
  EXPECT_EQ(s.actions[0].value_src, INSA_SRC_ARG);
  EXPECT_EQ(s.actions[0].value_arg, 3);
  ASSERT_EQ(s.actions[0].nlabels, 1);
  EXPECT_EQ(s.actions[0].labels[0].src, INSA_SRC_ARG);
  EXPECT_EQ(s.actions[0].labels[0].arg, 3);
  EXPECT_EQ(s.actions[0].labels[0].offset, 0);
  EXPECT_EQ(s.actions[0].labels[0].len, 8);
  EXPECT_EQ(p.series.at(0).labels.at(0).kind, LabelDecoder::Kind::Int);

  auto elf = elf::ElfFile::open(kWorker);
  ASSERT_TRUE(elf.ok());
  auto sym = elf->find_function("insa_demo::handle_request");
  ASSERT_TRUE(sym.ok());
  const ProbePlan& pp = p.probes.at(0);
  EXPECT_FALSE(pp.tracked);
  EXPECT_EQ(pp.exit_sites, 0u);
  ASSERT_EQ(pp.points.size(), 1u);
  EXPECT_EQ(pp.points[0].role, Role::Entry);
  EXPECT_EQ(pp.points[0].offset, sym->file_offset);
  EXPECT_EQ(pp.points[0].pid, getppid());
  EXPECT_EQ(pp.points[0].cookie, 0u);
}

TEST(Plan, LabelSlotsShareAlignAndOverflow) {
  REQUIRE_BINARIES();
  // Two labels from the same $arg2:str32 share one slot; integers are 8-aligned.
  const std::string yaml = R"yaml(metrics:
  - name: calls_total
    type: counter
    labels: [agent, model, id, tag, size]
probes:
  - name: p
    binary: workers/request_worker
    function: insa_demo::handle_request
    metrics:
      - metric: calls_total
        labels:
          agent: $arg2:str32
          model: {value: $arg2:str32, regex: "^([a-z]+)_"}
          id: $arg1
          tag: $arg2:str5
          size: $arg3
)yaml";
  auto b = build(yaml);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const auto& a = b.plan->specs.at(0).actions[0];
  ASSERT_EQ(a.nlabels, 4);
  EXPECT_EQ(a.labels[0].src, INSA_SRC_ARG_STR);
  EXPECT_EQ(a.labels[0].offset, 0);
  EXPECT_EQ(a.labels[0].len, 32);
  EXPECT_EQ(a.labels[1].src, INSA_SRC_ARG);  // id
  EXPECT_EQ(a.labels[1].arg, 1);
  EXPECT_EQ(a.labels[1].offset, 32);
  EXPECT_EQ(a.labels[1].len, 8);
  EXPECT_EQ(a.labels[2].src, INSA_SRC_ARG_STR);  // tag: 5 bytes at 40
  EXPECT_EQ(a.labels[2].offset, 40);
  EXPECT_EQ(a.labels[2].len, 5);
  EXPECT_EQ(a.labels[3].src, INSA_SRC_ARG);  // size: 45 aligned up to 48
  EXPECT_EQ(a.labels[3].arg, 3);
  EXPECT_EQ(a.labels[3].offset, 48);
  EXPECT_EQ(a.labels[3].len, 8);
  const auto& d = b.plan->series.at(0).labels;
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d[0].offset, 0u);
  EXPECT_EQ(d[1].offset, 0u);  // shared with agent
  EXPECT_EQ(d[1].len, 32u);
  EXPECT_TRUE(d[1].regex.has_value());
  EXPECT_FALSE(d[0].regex.has_value());
  EXPECT_EQ(d[2].offset, 32u);
  EXPECT_EQ(d[3].offset, 40u);
  EXPECT_EQ(d[3].len, 5u);
  EXPECT_EQ(d[4].offset, 48u);

  const std::string bytes = R"yaml(metrics:
  - name: calls_total
    type: counter
    labels: [a, b, c]
probes:
  - name: p
    binary: workers/request_worker
    function: insa_demo::handle_request
    metrics:
      - metric: calls_total
        labels: {a: $arg1:str64, b: $arg2:str64, c: $arg3:str8}
)yaml";
  auto over = build(bytes);
  ASSERT_FALSE(over.plan.ok());
  EXPECT_EQ(over.plan.error().message,
            kConfigFile + ":" + at(bytes, "$arg3:str8") +
                ": labels captured in the kernel exceed 128 bytes or 4 slots; shorten string captures ($argN:str16)");

  const std::string slots = R"yaml(metrics:
  - name: calls_total
    type: counter
    labels: [a, b, c, d, e]
probes:
  - name: p
    binary: workers/request_worker
    function: insa_demo::handle_request
    metrics:
      - metric: calls_total
        labels: {a: $arg1, b: $arg2, c: $arg3, d: $arg4, e: $arg5}
)yaml";
  auto five = build(slots);
  ASSERT_FALSE(five.plan.ok());
  EXPECT_EQ(five.plan.error().message,
            kConfigFile + ":" + at(slots, "$arg5") +
                ": labels captured in the kernel exceed 128 bytes or 4 slots; shorten string captures ($argN:str16)");
}

TEST(Plan, BoundsConversion) {
  REQUIRE_BINARIES();
  const std::string yaml = R"yaml(metrics:
  - name: d_seconds
    type: histogram
    buckets: [0.0000000015, 0.000001, 0.3, 2.5]
  - name: s_bytes
    type: histogram
    buckets: [0.5, 1, 2.9999999999, 1024.7]
probes:
  - name: p
    binary: workers/request_worker
    function: insa_demo::handle_request
    metrics:
      - metric: d_seconds
        observe: $duration
      - metric: s_bytes
        observe: $arg3
        when: entry
      - metric: d_seconds
        observe: $arg1
)yaml";
  auto b = build(yaml);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const auto& s = b.plan->specs.at(0);
  ASSERT_EQ(s.nactions, 3);
  // seconds → ns, rounded to the nearest ns
  EXPECT_EQ(s.actions[0].nbounds, 4);
  EXPECT_EQ(s.actions[0].bounds[0], 2);
  EXPECT_EQ(s.actions[0].bounds[1], 1'000);
  EXPECT_EQ(s.actions[0].bounds[2], 300'000'000);
  EXPECT_EQ(s.actions[0].bounds[3], 2'500'000'000);
  // integer values: v <= 0.5 means v <= 0, v <= 1024.7 means v <= 1024
  EXPECT_EQ(s.actions[1].when, INSA_AT_ENTRY);
  EXPECT_EQ(s.actions[1].bounds[0], 0);
  EXPECT_EQ(s.actions[1].bounds[1], 1);
  EXPECT_EQ(s.actions[1].bounds[2], 3);
  EXPECT_EQ(s.actions[1].bounds[3], 1024);
  // the same seconds histogram observed from a plain value keeps raw bounds
  EXPECT_EQ(s.actions[2].bounds[2], 0);
  EXPECT_EQ(s.actions[2].bounds[3], 2);
  EXPECT_EQ(b.plan->series.at(0).scale, 1e-9);
  EXPECT_EQ(b.plan->series.at(1).scale, 1.0);
  EXPECT_EQ(b.plan->series.at(2).scale, 1.0);
}

TEST(Plan, UsdtUretprobeAndSpans) {
  REQUIRE_BINARIES();
  const std::string yaml = "metrics:\n"
                           "  - name: usdt_total\n    type: counter\n    labels: [x]\n"
                           "  - name: handoff_seconds\n    type: histogram\n    buckets: [0.001, 1]\n"
                           "  - name: ret_total\n    type: counter\n    labels: [code]\n"
                           "probes:\n"
                           "  - name: u\n    binary: " + kFixtureC + "\n    usdt: insa_fx:request\n    metrics:\n"
                           "      - metric: usdt_total\n        count: $arg2\n        labels: {x: $arg1}\n"
                           "  - name: begin\n    binary: " + kFixtureC + "\n    function: several_returns\n    metrics:\n"
                           "      - metric: handoff_seconds\n        span_begin: h\n        span_key: $arg1\n"
                           "  - name: end\n    binary: " + kFixtureC + "\n    function: recurse\n    exit: uretprobe\n"
                           "    status:\n      - {if: ret != 0, then: nonzero}\n    metrics:\n"
                           "      - metric: handoff_seconds\n        span_end: h\n        span_key: $arg1\n"
                           "      - metric: ret_total\n        labels: {code: {value: $ret, map: {0: zero}, default: other}}\n";
  auto b = build(yaml);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const Plan& p = *b.plan;
  ASSERT_EQ(p.specs.size(), 3u);
  ASSERT_EQ(p.probes.size(), 3u);
  const std::string canon = fs::canonical(kFixtureC).string();
  auto elf = elf::ElfFile::open(canon);
  ASSERT_TRUE(elf.ok());

  // USDT: one point, provider and name, cookie == spec index.
  const ProbePlan& u = p.probes[0];
  EXPECT_EQ(u.cookie, 0u);
  EXPECT_EQ(u.target, "usdt insa_fx:request");
  EXPECT_FALSE(u.tracked);
  ASSERT_EQ(u.points.size(), 1u);
  EXPECT_EQ(u.points[0].role, Role::Usdt);
  EXPECT_EQ(u.points[0].usdt_provider, "insa_fx");
  EXPECT_EQ(u.points[0].usdt_name, "request");
  EXPECT_EQ(u.points[0].cookie, 0u);
  EXPECT_EQ(u.points[0].binary, canon);
  EXPECT_EQ(p.specs[0].flags, 0u);
  EXPECT_EQ(p.specs[0].actions[0].when, INSA_AT_ENTRY);
  EXPECT_EQ(p.specs[0].actions[0].value_src, INSA_SRC_ARG);
  EXPECT_EQ(p.specs[0].actions[0].value_arg, 2);

  // Span begin: entry only, keyed by arg1, pointing at the end's series.
  const ProbePlan& bg = p.probes[1];
  EXPECT_EQ(bg.cookie, 1u);
  EXPECT_FALSE(bg.tracked);
  ASSERT_EQ(bg.points.size(), 1u);
  auto sr = elf->find_function("several_returns");
  ASSERT_TRUE(sr.ok());
  EXPECT_EQ(bg.points[0].offset, sr->file_offset);
  EXPECT_EQ(bg.points[0].cookie, 1u);
  const auto& begin = p.specs[1].actions[0];
  EXPECT_EQ(begin.op, INSA_OP_SPAN_BEGIN);
  EXPECT_EQ(begin.when, INSA_AT_ENTRY);
  EXPECT_EQ(begin.span_arg, 1);

  // Span end on a uretprobe probe: entry + uretprobe with the URET cookie bit.
  const ProbePlan& en = p.probes[2];
  EXPECT_EQ(en.cookie, 2u);
  EXPECT_TRUE(en.tracked);
  EXPECT_EQ(en.exit_sites, 1u);
  auto rc = elf->find_function("recurse");
  ASSERT_TRUE(rc.ok());
  ASSERT_EQ(en.points.size(), 2u);
  EXPECT_EQ(en.points[0].role, Role::Entry);
  EXPECT_EQ(en.points[0].offset, rc->file_offset);
  EXPECT_EQ(en.points[0].cookie, 2u);
  EXPECT_EQ(en.points[1].role, Role::Uretprobe);
  EXPECT_EQ(en.points[1].offset, rc->file_offset);
  EXPECT_EQ(en.points[1].cookie, 2u | INSA_COOKIE_URET);
  const auto& end = p.specs[2].actions[0];
  EXPECT_EQ(end.op, INSA_OP_SPAN_END);
  EXPECT_EQ(end.when, INSA_AT_ENTRY);
  EXPECT_EQ(end.span_arg, 1);
  EXPECT_EQ(end.nbounds, 2);
  EXPECT_EQ(end.bounds[0], 1'000'000);  // ns: span ends observe a duration
  EXPECT_EQ(end.bounds[1], 1'000'000'000);
  EXPECT_EQ(begin.span_series, end.series);
  EXPECT_EQ(end.series, 1u);
  EXPECT_EQ(p.series.at(end.series).scale, 1e-9);
  EXPECT_EQ(p.series.at(end.series).probe, 2);

  const auto& ret = p.specs[2].actions[1];
  EXPECT_EQ(ret.when, INSA_AT_EXIT);
  ASSERT_EQ(ret.nlabels, 1);
  EXPECT_EQ(ret.labels[0].src, INSA_SRC_RET);
  const auto& dec = p.series.at(ret.series).labels.at(0);
  EXPECT_EQ(dec.kind, LabelDecoder::Kind::Int);
  EXPECT_EQ(dec.value_map, (std::map<int64_t, std::string>{{0, "zero"}}));
  EXPECT_EQ(dec.map_default, "other");
  EXPECT_EQ(p.specs[2].rules[0].cmp, INSA_CMP_NE);
  EXPECT_EQ(p.statuses, (std::vector<std::string>{"success", "error", "nonzero"}));
  EXPECT_EQ(p.specs[2].rules[0].status, 2);
  EXPECT_FALSE(p.needs_catch);  // no return-site probe
}

TEST(Plan, StatusIndicesSharedAcrossProbes) {
  REQUIRE_BINARIES();
  const std::string yaml = R"yaml(metrics:
  - name: r_total
    type: counter
    labels: [status]
probes:
  - name: a
    binary: workers/request_worker
    function: insa_demo::handle_request
    exception_status: crashed
    status:
      - {if: $arg1 >= 10, then: big}
      - {else: fine}
    metrics:
      - metric: r_total
        labels: {status: $status}
  - name: b
    binary: workers/request_worker
    function: insa_demo::handle_request
    status:
      - {if: duration <= 2s, then: fine}
      - {if: ret == -1, then: big}
    metrics:
      - metric: r_total
        labels: {status: $status}
)yaml";
  auto b = build(yaml);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const Plan& p = *b.plan;
  EXPECT_EQ(p.statuses, (std::vector<std::string>{"fine", "crashed", "big", "success", "error"}));
  EXPECT_EQ(p.specs[0].default_status, 0);
  EXPECT_EQ(p.specs[0].exception_status, 1);
  EXPECT_EQ(p.specs[0].rules[0].src, INSA_SRC_ARG);
  EXPECT_EQ(p.specs[0].rules[0].arg, 1);
  EXPECT_EQ(p.specs[0].rules[0].cmp, INSA_CMP_GE);
  EXPECT_EQ(p.specs[0].rules[0].value, 10);
  EXPECT_EQ(p.specs[0].rules[0].status, 2);
  EXPECT_EQ(p.specs[1].default_status, 3);
  EXPECT_EQ(p.specs[1].exception_status, 4);
  EXPECT_EQ(p.specs[1].rules[0].cmp, INSA_CMP_LE);
  EXPECT_EQ(p.specs[1].rules[0].value, 2'000'000'000);
  EXPECT_EQ(p.specs[1].rules[0].status, 0);
  EXPECT_EQ(p.specs[1].rules[1].cmp, INSA_CMP_EQ);
  EXPECT_EQ(p.specs[1].rules[1].value, -1);
  EXPECT_EQ(p.specs[1].rules[1].status, 2);
  EXPECT_EQ(p.probes[1].cookie, 1u);
  for (const auto& a : p.probes[1].points) EXPECT_EQ(a.cookie, 1u);
  EXPECT_EQ(p.series.at(1).probe, 1);
}

TEST(PlanErrors, MissingBinary) {
  const std::string yaml = R"yaml(metrics:
  - name: calls_total
    type: counter
probes:
  - name: p
    binary: nonexistent/worker
    function: f
    metrics: [{metric: calls_total}]
)yaml";
  // (An absolute path missing here names a file inside containers: container_test.cpp.)
  auto b = build(yaml);
  ASSERT_FALSE(b.plan.ok());
  EXPECT_EQ(b.plan.error().message,
            kConfigFile + ":" + at(yaml, "nonexistent/worker") +
                ": binary 'nonexistent/worker' not found: No such file or directory (paths are relative to the "
                "config file's directory)");
  EXPECT_EQ(b.plan.error().err, ENOENT);
}

TEST(PlanErrors, MissingSymbol) {
  REQUIRE_BINARIES();
  const std::string yaml = R"yaml(metrics:
  - name: calls_total
    type: counter
probes:
  - name: p
    binary: workers/request_worker
    function: zzz_not_there
    metrics: [{metric: calls_total}]
)yaml";
  auto b = build(yaml);
  ASSERT_FALSE(b.plan.ok());
  const std::string canon = fs::canonical(kWorker).string();
  EXPECT_EQ(b.plan.error().message, kConfigFile + ":" + at(yaml, "zzz_not_there") + ": function 'zzz_not_there' not found in '" +
                                        canon + "' (run 'insa-exporter list-probes " + canon +
                                        "' to see what can be probed)");
}

TEST(PlanErrors, MissingUsdt) {
  REQUIRE_BINARIES();
  const std::string yaml = "metrics:\n  - name: calls_total\n    type: counter\nprobes:\n  - name: p\n    binary: " +
                           kFixtureC + "\n    usdt: insa_fx:nope\n    metrics: [{metric: calls_total}]\n";
  auto b = build(yaml);
  ASSERT_FALSE(b.plan.ok());
  const std::string canon = fs::canonical(kFixtureC).string();
  EXPECT_EQ(b.plan.error().message, kConfigFile + ":" + at(yaml, "insa_fx:nope") + ": no USDT probe 'insa_fx:nope' in " +
                                        canon + " (run: insa-exporter list-probes " + canon + ")");
}

TEST(PlanErrors, TrackedRawOffsetNeedsAFunction) {
  REQUIRE_BINARIES();
  // 0x3c20: an instruction start inside request_worker's code (checked below).
  auto worker = elf::ElfFile::open(kWorker);
  ASSERT_TRUE(worker.ok());
  auto fn = worker->find_function("_ZN9insa_demo14handle_requestElPKcl");
  ASSERT_TRUE(fn.ok());
  const std::string off = "0x" + [&] {
    char b[32];
    std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(fn->file_offset));
    return std::string(b);
  }();
  const std::string yaml = R"yaml(metrics:
  - name: d_seconds
    type: histogram
    buckets: [1]
probes:
  - name: p
    binary: workers/request_worker
    offset: )yaml" + off + R"yaml(
    metrics: [{metric: d_seconds, observe: $duration}]
)yaml";
  auto b = build(yaml);
  ASSERT_FALSE(b.plan.ok());
  // C++ code: the advice never mentions a uretprobe.
  EXPECT_EQ(b.plan.error().message,
            kConfigFile + ":" + at(yaml, off) +
                ": a raw offset has no known extent, so its return sites cannot be found; use 'function:', or count "
                "calls at entry only");
  // A uretprobe on C++ code is refused where 'exit:' is written.
  std::string ur = yaml;
  ur.replace(ur.find("    offset: " + off + "\n"), 13 + off.size(), "    offset: " + off + "\n    exit: uretprobe\n");
  auto refused = build(ur);
  ASSERT_FALSE(refused.plan.ok());
  EXPECT_EQ(refused.plan.error().message,
            kConfigFile + ":" + at(ur, "uretprobe") + ": 'exit: uretprobe' refused for probe 'p': '" +
                fs::canonical(kWorker).string() +
                "' needs libstdc++.so.6 (C++ code), and a C++ exception unwinding through a uretprobe's return "
                "trampoline ends in std::terminate; remove 'exit:' (return sites, the default, follow exceptions)");

  // C code: the advice offers the uretprobe, and a uretprobe exit plans (entry at the raw offset).
  auto cfile = elf::ElfFile::open(kFixtureC);
  ASSERT_TRUE(cfile.ok());
  auto cfn = cfile->find_function("several_returns");
  ASSERT_TRUE(cfn.ok());
  std::string c = yaml;
  c.replace(c.find("workers/request_worker"), 22, kFixtureC);
  c.replace(c.find(off), off.size(), std::to_string(cfn->file_offset));
  auto cb = build(c);
  ASSERT_FALSE(cb.plan.ok());
  EXPECT_NE(cb.plan.error().message.find("use 'function:', or 'exit: uretprobe' (C code), or count calls at entry "
                                         "only"),
            std::string::npos)
      << cb.plan.error().message;
  c.replace(c.find("    metrics:"), 0, "    exit: uretprobe\n");
  auto ok = build(c);
  ASSERT_TRUE(ok.plan.ok()) << ok.plan.error().message;
  const auto& pp = ok.plan->probes.at(0);
  EXPECT_EQ(pp.target, "offset 0x" + [&] {
    char b[32];
    std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(cfn->file_offset));
    return std::string(b);
  }() + " (several_returns: " + pp.target.substr(pp.target.find(": ") + 2));
  EXPECT_EQ(pp.target.rfind(")"), pp.target.size() - 1);
  ASSERT_EQ(pp.points.size(), 2u);
  EXPECT_EQ(pp.points[0].offset, cfn->file_offset);
  EXPECT_EQ(pp.points[1].role, Role::Uretprobe);
  EXPECT_EQ(pp.points[1].cookie, INSA_COOKIE_URET);
  EXPECT_EQ(pp.exit_method.rfind("uretprobe ('exit: uretprobe'; allowed: C code", 0), 0u) << pp.exit_method;
}

TEST(PlanErrors, ExitOnlyValuesAtEntry) {
  REQUIRE_BINARIES();
  const std::string dur = R"yaml(metrics:
  - name: d_seconds
    type: histogram
    buckets: [1]
probes:
  - name: p
    binary: workers/request_worker
    function: insa_demo::handle_request
    metrics:
      - metric: d_seconds
        observe: $duration
        when: entry
)yaml";
  auto b = build(dur);
  ASSERT_FALSE(b.plan.ok());
  EXPECT_EQ(b.plan.error().message,
            kConfigFile + ":" + at(dur, "metric: d_seconds") + ": $duration is only known at exit; drop 'when: entry'");

  const std::string label = R"yaml(metrics:
  - name: r_total
    type: counter
    labels: [status]
probes:
  - name: p
    binary: workers/request_worker
    function: insa_demo::handle_request
    metrics:
      - metric: r_total
        when: entry
        labels: {status: $status}
)yaml";
  auto l = build(label);
  ASSERT_FALSE(l.plan.ok());
  EXPECT_EQ(l.plan.error().message, kConfigFile + ":" + at(label, "$status}") + ": $status is only known at exit");
}

TEST(Plan, UpdateConditionSpec) {
  REQUIRE_BINARIES();
  // Both configs: these metrics and one probe on the request worker; updates follow.
  const std::string head = R"yaml(metrics:
  - name: r_bytes
    type: histogram
    buckets: [100, 1000]
  - name: big_total
    type: counter
probes:
  - name: p
    binary: workers/request_worker
    function: insa_demo::handle_request
    metrics:
)yaml";
  const std::string yaml = head + R"yaml(      - metric: r_bytes
        observe: $ret
        if: ret >= 0
      - metric: big_total
        when: entry
        if: arg3:i32 > 4096
      - metric: big_total
)yaml";
  auto b = build(yaml);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  const auto& s = b.plan->specs.at(0);
  ASSERT_EQ(s.nactions, 3);
  EXPECT_EQ(s.actions[0].when, INSA_AT_EXIT);
  EXPECT_EQ(s.actions[0].cond.src, INSA_SRC_RET);
  EXPECT_EQ(s.actions[0].cond.cmp, INSA_CMP_GE);
  EXPECT_EQ(s.actions[0].cond.value, 0);
  EXPECT_EQ(s.actions[1].when, INSA_AT_ENTRY);
  EXPECT_EQ(s.actions[1].cond.src, INSA_SRC_ARG | INSA_SRC_I32);
  EXPECT_EQ(s.actions[1].cond.arg, 3);
  EXPECT_EQ(s.actions[1].cond.cmp, INSA_CMP_GT);
  EXPECT_EQ(s.actions[1].cond.value, 4096);
  EXPECT_EQ(s.actions[2].cond.cmp, 0);  // no condition: always

  const std::string at_entry = head + R"yaml(      - metric: big_total
        when: entry
        if: ret < 0
)yaml";
  auto e = build(at_entry);
  ASSERT_FALSE(e.plan.ok());
  EXPECT_EQ(e.plan.error().message, kConfigFile + ":" + at(at_entry, "ret < 0") +
                                        ": 'if' tests $ret, which is only known at exit; drop 'when: entry'");
}

}  // namespace
}  // namespace insa::plan

namespace insa::plan {
namespace {

std::string hex_of(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

std::string raw_offset_yaml(const std::string& bin, const std::string& off, const std::string& extra = "") {
  return "metrics:\n  - name: calls_total\n    type: counter\nprobes:\n  - name: p\n    binary: " + bin +
         "\n    offset: " + off + "\n" + extra + "    metrics: [{metric: calls_total}]\n";
}

TEST(PlanErrors, RawOffsetMustStartAnInstructionInsideReadableCode) {
  REQUIRE_BINARIES();
  auto f = elf::ElfFile::open(kFixtureC);
  ASSERT_TRUE(f.ok());
  auto fn = f->find_function("several_returns");
  ASSERT_TRUE(fn.ok());
  // objdump's instruction starts of the function: ground truth for boundaries.
  std::istringstream dis(run_command("objdump -d --no-show-raw-insn --start-address=" + hex_of(fn->vaddr) +
                                     " --stop-address=" + hex_of(fn->vaddr + fn->size) + " '" + kFixtureC + "'"));
  std::set<uint64_t> starts;
  std::string line;
  while (std::getline(dis, line)) {
    unsigned long long a;
    char colon;
    std::istringstream l(line);
    if (l >> std::hex >> a >> colon && colon == ':') starts.insert(a);
  }
  ASSERT_GT(starts.size(), 3u);
  const std::string canon = fs::canonical(kFixtureC).string();
  size_t refused = 0, accepted = 0;
  for (uint64_t v = fn->vaddr; v < fn->vaddr + fn->size; ++v) {
    const uint64_t off = fn->file_offset + (v - fn->vaddr);
    const std::string yaml = raw_offset_yaml(kFixtureC, hex_of(off));
    auto b = build(yaml);
    if (starts.count(v)) {
      EXPECT_TRUE(b.plan.ok()) << hex_of(off) << ": " << b.plan.error().message;
      if (b.plan.ok()) {
        EXPECT_EQ(b.plan->probes.at(0).target.rfind("offset " + hex_of(off) + " (several_returns", 0), 0u);
        ++accepted;
      }
    } else {
      ASSERT_FALSE(b.plan.ok()) << hex_of(off);
      const std::string& m = b.plan.error().message;
      EXPECT_EQ(m.rfind(kConfigFile + ":" + at(yaml, hex_of(off)) + ": offset " + hex_of(off) +
                            " is not an instruction boundary: it is byte ",
                        0),
                0u)
          << m;
      EXPECT_NE(m.find(" in 'several_returns' (a breakpoint there would corrupt the instruction); give an offset"),
                std::string::npos)
          << m;
      EXPECT_EQ(m.find('\n'), std::string::npos);
      ++refused;
    }
  }
  EXPECT_EQ(accepted, starts.size());
  EXPECT_GT(refused, 0u);

  // Past the end of the file, and in data rather than code.
  const uint64_t size = fs::file_size(kFixtureC);
  auto past = build(raw_offset_yaml(kFixtureC, hex_of(size + 16)));
  ASSERT_FALSE(past.plan.ok());
  EXPECT_NE(past.plan.error().message.find("offset " + hex_of(size + 16) + " is not in any loadable segment of '" +
                                           canon + "'"),
            std::string::npos)
      << past.plan.error().message;
  auto rodata = f->section(".rodata");
  ASSERT_TRUE(rodata.has_value());
  auto data = build(raw_offset_yaml(kFixtureC, hex_of(rodata->offset)));
  ASSERT_FALSE(data.plan.ok());
  EXPECT_NE(data.plan.error().message.find("is not code (section '.rodata')"), std::string::npos)
      << data.plan.error().message;
}

TEST(PlanErrors, PidMustBeALiveProcessOtherThanTheExporter) {
  REQUIRE_BINARIES();
  auto yaml = [](int pid) {
    return "metrics:\n  - name: calls_total\n    type: counter\nprobes:\n  - name: p\n    binary: " + kFixtureC +
           "\n    pid: " + std::to_string(pid) + "\n    function: several_returns\n    metrics: [{metric: calls_total}]\n";
  };
  auto self = build(yaml(getpid()));
  ASSERT_FALSE(self.plan.ok());
  EXPECT_EQ(self.plan.error().message, kConfigFile + ":7:10: pid " + std::to_string(getpid()) +
                                           " is insa-exporter itself; give the worker's PID");
  // A PID that just exited (a reaped child) names no process.
  pid_t child = fork();
  if (child == 0) _exit(0);
  int st = 0;
  waitpid(child, &st, 0);
  auto gone = build(yaml(child));
  ASSERT_FALSE(gone.plan.ok());
  EXPECT_EQ(gone.plan.error().message,
            kConfigFile + ":7:10: pid " + std::to_string(child) +
                ": no such process; start the worker first, or drop 'pid:' to probe every process of the binary");
}

TEST(PlanErrors, HistogramBoundsFitTheKernelsSigned64BitValues) {
  REQUIRE_BINARIES();
  auto yaml = [](const std::string& buckets, const std::string& value) {
    return "metrics:\n  - name: h\n    type: histogram\n    buckets: [" + buckets + "]\nprobes:\n  - name: p\n    binary: " +
           kFixtureC + "\n    function: several_returns\n    metrics: [{metric: h, observe: " + value + "}]\n";
  };
  // Durations: seconds become ns; 9.3e9 s is beyond 2^63 ns, 9.2e9 s is not.
  auto over = build(yaml("1, 9.3e9", "$duration"));
  ASSERT_FALSE(over.plan.ok());
  EXPECT_EQ(over.plan.error().message,
            kConfigFile + ":2:5: bucket bound 9.3e+09 of histogram 'h' is beyond 2^63 ns (292 years), more than the "
                          "kernel's signed 64-bit bounds hold; lower it (+Inf is implied)");
  auto fits = build(yaml("1, 9.2e9", "$duration"));
  ASSERT_TRUE(fits.plan.ok()) << fits.plan.error().message;
  EXPECT_EQ(fits.plan->specs.at(0).actions[0].bounds[1], 9200000000000000000LL);
  // Plain values: the bound itself.
  auto plain = build(yaml("1, 1e19", "$arg1"));
  ASSERT_FALSE(plain.plan.ok());
  EXPECT_EQ(plain.plan.error().message,
            kConfigFile + ":2:5: bucket bound 1e+19 of histogram 'h' is beyond 2^63, more than the kernel's signed "
                          "64-bit bounds hold; lower it (+Inf is implied)");
  auto neg = build(yaml("-1e19, 1", "$arg1"));
  ASSERT_FALSE(neg.plan.ok());
}

TEST(Plan, TailJumpExitsCarryTheTailCookieAndEveryProbeSaysItsExitMethod) {
  REQUIRE_BINARIES();
  const std::string yaml = "metrics:\n  - name: calls_total\n    type: counter\n    labels: [status]\n"
                           "  - name: entries_total\n    type: counter\nprobes:\n"
                           "  - name: t\n    binary: " + kFixtureC + "\n    function: tail_caller\n"
                           "    metrics: [{metric: calls_total, labels: {status: $status}}]\n"
                           "  - name: e\n    binary: " + kFixtureC + "\n    function: tail_caller\n"
                           "    metrics: [{metric: entries_total, when: entry}]\n";
  auto b = build(yaml);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  auto f = elf::ElfFile::open(kFixtureC);
  auto code = elf::analyze_function(*f, *f->find_function("tail_caller"));
  ASSERT_TRUE(code.ok());
  const auto& pp = b.plan->probes.at(0);
  size_t tails = 0;
  for (const auto& x : code->exits) {
    auto it = std::find_if(pp.points.begin(), pp.points.end(), [&](const AttachPoint& a) {
      return a.role == Role::Exit && a.offset == x.file_offset;
    });
    ASSERT_NE(it, pp.points.end());
    const bool tail = x.kind == elf::ExitSite::Kind::TailJmp;
    EXPECT_EQ(it->cookie, tail ? (pp.cookie | INSA_COOKIE_TAIL) : pp.cookie);
    tails += tail;
  }
  EXPECT_GE(tails, 1u);
  EXPECT_EQ(pp.exit_method.rfind("return sites (default", 0), 0u);
  EXPECT_EQ(b.plan->probes.at(1).exit_method, "none: no update needs the end of the call (entry only)");
}

}  // namespace
}  // namespace insa::plan

namespace insa::plan {
namespace {

TEST(Plan, AbandonedStatusSetsTheSpec) {
  REQUIRE_BINARIES();
  const std::string yaml = "metrics:\n  - name: calls_total\n    type: counter\n    labels: [status]\nprobes:\n"
                           "  - name: j\n    binary: " + kFixtureC + "\n    function: long_jumper\n"
                           "    abandoned_status: aborted\n"
                           "    metrics: [{metric: calls_total, labels: {status: $status}}]\n"
                           "  - name: k\n    binary: " + kFixtureC + "\n    function: several_returns\n"
                           "    metrics: [{metric: calls_total, labels: {status: $status}}]\n";
  auto b = build(yaml);
  ASSERT_TRUE(b.plan.ok()) << b.plan.error().message;
  EXPECT_EQ(b.plan->statuses, (std::vector<std::string>{"success", "error", "aborted"}));
  EXPECT_EQ(b.plan->specs.at(0).flags, INSA_PROBE_TRACKED | INSA_PROBE_ABANDON_STATUS);
  EXPECT_EQ(b.plan->specs.at(0).abandoned_status, 2);
  EXPECT_EQ(b.plan->specs.at(1).flags, INSA_PROBE_TRACKED);
}

}  // namespace
}  // namespace insa::plan
