// SPDX-License-Identifier: Apache-2.0
// plan::rebase_plan, the diff behind incremental reloads, over real plans of the
// request worker and the C fixture: which probes keep their kernel spec index and
// series ids (and so their values), which are new, changed or removed, how new ones
// are numbered (never an index a running probe uses, holes of earlier reloads first),
// the status table extended without reordering, and when a whole reload is needed.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <string>

#include "attach/plan.h"
#include "config/config.h"

namespace insa::plan {
namespace {

namespace fs = std::filesystem;

const std::string kConfigFile = std::string(INSA_BINARY_DIR) + "/tests/probes.yaml";
const std::string kWorker = std::string(INSA_BINARY_DIR) + "/tests/workers/request_worker";
const std::string kFixtureC = std::string(INSA_BINARY_DIR) + "/tests/fixtures/fixture_c_pie_O2";

struct Built {
  config::Config cfg;
  Plan plan;
};

Built build(const std::string& yaml) {
  Built b;
  auto c = config::parse_config(yaml, kConfigFile);
  if (!c) {
    ADD_FAILURE() << "config rejected: " << c.error().message;
    return b;
  }
  b.cfg = std::move(*c);
  auto p = build_plan(b.cfg);
  if (!p) {
    ADD_FAILURE() << "plan failed: " << p.error().message;
    return b;
  }
  b.plan = std::move(*p);
  return b;
}

const std::string kMetrics = R"yaml(metrics:
  - name: calls_total
    type: counter
    help: Calls.
    labels: [status]
  - name: sizes_bytes
    type: histogram
    help: Sizes.
    labels: [agent_type]
    buckets: [50, 500, 5000]
  - name: extra_total
    type: counter
    help: HELP_EXTRA
    labels: [kind]
  - name: c_calls_total
    type: counter
    labels: [fn]
)yaml";

// Probe texts, combined per test.
const std::string kCalls = R"yaml(  - name: calls
    binary: workers/request_worker
    function: insa_demo::handle_request
    status:
      - {if: ret < 0, then: error}
      - {else: success}
    metrics:
      - metric: calls_total
        labels: {status: $status}
)yaml";
const std::string kSizes = R"yaml(  - name: sizes
    binary: workers/request_worker
    function: insa_demo::handle_request
    metrics:
      - metric: sizes_bytes
        observe: $arg3
        labels: {agent_type: $arg2:str16}
)yaml";
const std::string kExtra = R"yaml(  - name: extra
    binary: workers/request_worker
    function: insa_demo::handle_request
    status:
      - {if: ret < 0, then: EXTRA_STATUS}
      - {else: success}
    metrics:
      - metric: extra_total
        labels: {kind: $status}
)yaml";
const std::string kFixture = R"yaml(  - name: fixture
    binary: fixtures/fixture_c_pie_O2
    function: several_returns
    metrics:
      - metric: c_calls_total
        labels: {fn: several_returns}
)yaml";

std::string config(const std::string& probes, const std::string& extra_help = "Extra.") {
  std::string m = kMetrics;
  m.replace(m.find("HELP_EXTRA"), 10, extra_help);
  return m + "probes:\n" + probes;
}

std::string with_status(std::string probe, const std::string& status) {
  probe.replace(probe.find("EXTRA_STATUS"), 12, status);
  return probe;
}

/// The config with metric c_calls_total given its own max_series: its quota then does not
/// depend on the probes that feed it, so a reload may add one (budget_misfit).
std::string own_quota(std::string text) {
  const std::string m = "  - name: c_calls_total\n    type: counter\n";
  text.replace(text.find(m), m.size(), m + "    max_series: 8\n");
  return text;
}

size_t index_of(const Plan& p, const std::string& name) {
  for (size_t i = 0; i < p.probes.size(); ++i)
    if (p.probes[i].name == name) return i;
  ADD_FAILURE() << "no probe " << name;
  return 0;
}

/// Series ids of a probe, ascending.
std::vector<uint32_t> ids_of(const Plan& p, const std::string& name) {
  std::vector<uint32_t> out;
  const int i = static_cast<int>(index_of(p, name));
  for (uint32_t id = 0; id < p.series.size(); ++id)
    if (!p.series[id].unused && p.series[id].probe == i) out.push_back(id);
  return out;
}

const insa_probe_spec& spec_of(const Plan& p, const std::string& name) {
  return p.specs[p.probes[index_of(p, name)].cookie];
}

#define REQUIRE_BINARIES() \
  ASSERT_TRUE(fs::exists(kWorker) && fs::exists(kFixtureC)) << "build the tree first (cmake --build build)"

TEST(ReloadDiff, SameConfigKeepsEverything) {
  REQUIRE_BINARIES();
  auto run = build(config(kCalls + kSizes + with_status(kExtra, "error")));
  auto next = build(config(kCalls + kSizes + with_status(kExtra, "error")));
  ASSERT_EQ(run.plan.probes.size(), 3u);
  auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
  ASSERT_TRUE(d.incremental) << d.why;
  EXPECT_EQ(d.kept, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(d.removed.empty());
  EXPECT_TRUE(d.freed_specs.empty());
  EXPECT_TRUE(d.freed_series.empty());
  EXPECT_EQ(next.plan.statuses, run.plan.statuses);
  ASSERT_EQ(next.plan.specs.size(), run.plan.specs.size());
  for (size_t c = 0; c < run.plan.specs.size(); ++c)
    EXPECT_EQ(std::memcmp(&next.plan.specs[c], &run.plan.specs[c], sizeof(insa_probe_spec)), 0) << "spec " << c;
  ASSERT_EQ(next.plan.series.size(), run.plan.series.size());
  for (size_t i = 0; i < run.plan.probes.size(); ++i) {
    EXPECT_EQ(next.plan.probes[i].cookie, run.plan.probes[i].cookie);
    for (size_t k = 0; k < run.plan.probes[i].points.size(); ++k)
      EXPECT_EQ(next.plan.probes[i].points[k].cookie, run.plan.probes[i].points[k].cookie);
  }
}

TEST(ReloadDiff, AddedProbeTakesUnusedNumbersAndOthersKeepTheirs) {
  REQUIRE_BINARIES();
  auto run = build(own_quota(config(kCalls + kSizes)));
  // The new probe comes first in the file: numbers follow names, not positions.
  auto next = build(own_quota(config(kFixture + kCalls + kSizes)));
  auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
  ASSERT_TRUE(d.incremental) << d.why;
  EXPECT_EQ(d.kept, (std::vector<int>{-1, 0, 1}));
  EXPECT_TRUE(d.removed.empty());
  EXPECT_EQ(next.plan.probes[1].cookie, 0u);
  EXPECT_EQ(next.plan.probes[2].cookie, 1u);
  EXPECT_EQ(next.plan.probes[0].cookie, 2u);
  for (const auto& pt : next.plan.probes[0].points) EXPECT_EQ(pt.cookie & ~(INSA_COOKIE_URET | INSA_COOKIE_TAIL), 2u);
  EXPECT_EQ(ids_of(next.plan, "calls"), ids_of(run.plan, "calls"));
  EXPECT_EQ(ids_of(next.plan, "sizes"), ids_of(run.plan, "sizes"));
  const auto fixture_ids = ids_of(next.plan, "fixture");
  ASSERT_EQ(fixture_ids.size(), 1u);
  EXPECT_EQ(fixture_ids[0], run.plan.series.size());  // beyond every running id
  EXPECT_EQ(spec_of(next.plan, "fixture").actions[0].series, fixture_ids[0]);
  EXPECT_EQ(std::memcmp(&spec_of(next.plan, "calls"), &spec_of(run.plan, "calls"), sizeof(insa_probe_spec)), 0);
  // The series table says which probe (by its new position) updates each id.
  EXPECT_EQ(next.plan.series[fixture_ids[0]].probe, 0);
  EXPECT_EQ(next.plan.series[ids_of(next.plan, "calls")[0]].probe, 1);
}

TEST(ReloadDiff, RemovedProbeFreesItsNumbersWhichTheNextReloadReuses) {
  REQUIRE_BINARIES();
  auto run = build(config(kCalls + kSizes + kFixture));
  auto next = build(config(kCalls + kFixture));
  const auto sizes_ids = ids_of(run.plan, "sizes");
  const uint32_t sizes_cookie = run.plan.probes[1].cookie;
  auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
  ASSERT_TRUE(d.incremental) << d.why;
  EXPECT_EQ(d.kept, (std::vector<int>{0, 2}));
  EXPECT_EQ(d.removed, (std::vector<size_t>{1}));
  EXPECT_EQ(d.freed_specs, (std::vector<uint32_t>{sizes_cookie}));
  EXPECT_EQ(d.freed_series, sizes_ids);
  // The hole stays a hole (a zeroed spec, unused series) while nobody needs it.
  ASSERT_EQ(next.plan.specs.size(), 3u);
  insa_probe_spec zero{};
  EXPECT_EQ(std::memcmp(&next.plan.specs[sizes_cookie], &zero, sizeof zero), 0);
  for (uint32_t id : sizes_ids) EXPECT_TRUE(next.plan.series[id].unused);
  EXPECT_EQ(next.plan.probes[1].cookie, run.plan.probes[2].cookie);

  // The next reload adds a probe: it takes the hole.
  auto third = build(config(kCalls + kFixture + kSizes));
  auto d2 = rebase_plan(next.plan, next.cfg, third.plan, third.cfg);
  ASSERT_TRUE(d2.incremental) << d2.why;
  EXPECT_EQ(d2.kept, (std::vector<int>{0, 1, -1}));
  EXPECT_EQ(third.plan.probes[2].cookie, sizes_cookie);
  EXPECT_EQ(ids_of(third.plan, "sizes"), sizes_ids);
  EXPECT_EQ(third.plan.specs.size(), 3u);
}

TEST(ReloadDiff, ChangedMetricDefinitionRestartsOnlyItsProbe) {
  REQUIRE_BINARIES();
  auto run = build(config(kCalls + with_status(kExtra, "error")));
  // Only the help text of the metric `extra` updates changes.
  auto next = build(config(kCalls + with_status(kExtra, "error"), "Extra, reworded."));
  auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
  ASSERT_TRUE(d.incremental) << d.why;
  EXPECT_EQ(d.kept, (std::vector<int>{0, -1}));
  EXPECT_EQ(d.removed, (std::vector<size_t>{1}));
  EXPECT_EQ(next.plan.probes[0].cookie, run.plan.probes[0].cookie);
  // A changed probe never takes a number it had: its old links still fire until the swap.
  EXPECT_EQ(next.plan.probes[1].cookie, 2u);
  const auto old_ids = ids_of(run.plan, "extra"), new_ids = ids_of(next.plan, "extra");
  ASSERT_EQ(new_ids.size(), 1u);
  EXPECT_EQ(std::set<uint32_t>(old_ids.begin(), old_ids.end()).count(new_ids[0]), 0u);
  EXPECT_EQ(new_ids[0], run.plan.series.size());
  EXPECT_EQ(d.freed_series, old_ids);
}

TEST(ReloadDiff, ChangedSpecOrAttachPointIsNotKept) {
  REQUIRE_BINARIES();
  auto run = build(config(kCalls + kSizes));
  // A different capture length changes the series (label slot) and the spec.
  std::string sizes = kSizes;
  sizes.replace(sizes.find("str16"), 5, "str8");
  auto next = build(config(kCalls + sizes));
  auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
  ASSERT_TRUE(d.incremental) << d.why;
  EXPECT_EQ(d.kept, (std::vector<int>{0, -1}));
  // Another function of another file under the same probe name.
  std::string moved = kCalls;
  moved.replace(moved.find("workers/request_worker"), 22, "fixtures/fixture_c_pie_O2");
  moved.replace(moved.find("insa_demo::handle_request"), 25, "several_returns");
  auto other = build(config(moved + kSizes));
  auto d2 = rebase_plan(run.plan, run.cfg, other.plan, other.cfg);
  ASSERT_TRUE(d2.incremental) << d2.why;
  EXPECT_EQ(d2.kept, (std::vector<int>{-1, 1}));
}

TEST(ReloadDiff, StatusTableIsExtendedNeverReordered) {
  REQUIRE_BINARIES();
  auto run = build(config(kCalls + with_status(kExtra, "failed")));
  ASSERT_EQ(run.plan.statuses, (std::vector<std::string>{"success", "error", "failed"}));
  // The new config names statuses in another order and a new one.
  auto next = build(config(with_status(kExtra, "broken") + kCalls));
  ASSERT_EQ(next.plan.statuses[0], "success");
  ASSERT_EQ(next.plan.statuses[2], "broken");
  auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
  ASSERT_TRUE(d.incremental) << d.why;
  EXPECT_EQ(d.kept, (std::vector<int>{-1, 0}));
  EXPECT_EQ(next.plan.statuses, (std::vector<std::string>{"success", "error", "failed", "broken"}));
  // The kept probe's spec is the running one byte for byte; the new one reads the extended table.
  EXPECT_EQ(std::memcmp(&spec_of(next.plan, "calls"), &spec_of(run.plan, "calls"), sizeof(insa_probe_spec)), 0);
  const auto& extra = spec_of(next.plan, "extra");
  EXPECT_EQ(next.plan.statuses[extra.rules[0].status], "broken");
  EXPECT_EQ(next.plan.statuses[extra.default_status], "success");
  EXPECT_EQ(next.plan.statuses[extra.exception_status], "error");
}

TEST(ReloadDiff, RenamedProbeIsNewAndTheOldOneRemoved) {
  REQUIRE_BINARIES();
  auto run = build(config(kCalls));
  std::string renamed = kCalls;
  renamed.replace(renamed.find("name: calls"), 11, "name: calls2");
  auto next = build(config(renamed));
  auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
  ASSERT_TRUE(d.incremental) << d.why;
  EXPECT_EQ(d.kept, (std::vector<int>{-1}));
  EXPECT_EQ(d.removed, (std::vector<size_t>{0}));
  EXPECT_EQ(next.plan.probes[0].cookie, 1u);
}

TEST(ReloadDiff, IdsOnlyKeepsNumberingOfAMovedProbe) {
  REQUIRE_BINARIES();
  // A binary replaced on disk: same config, other attach points. ids_only keeps numbers.
  auto run = build(config(kFixture + kCalls + kSizes));
  auto added = build(config(kSizes + kFixture + kCalls));
  ASSERT_TRUE(rebase_plan(run.plan, run.cfg, added.plan, added.cfg).incremental);
  auto again = build(config(kSizes + kFixture + kCalls));
  for (auto& pt : again.plan.probes[1].points) pt.ino += 1;  // "another file"
  Plan copy = again.plan;
  auto strict = rebase_plan(added.plan, added.cfg, copy, again.cfg);
  EXPECT_EQ(strict.kept, (std::vector<int>{0, -1, 2}));
  auto d = rebase_plan(added.plan, added.cfg, again.plan, again.cfg, /*ids_only=*/true);
  ASSERT_TRUE(d.incremental) << d.why;
  EXPECT_EQ(d.kept, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(again.plan.probes[1].cookie, added.plan.probes[1].cookie);
  EXPECT_EQ(ids_of(again.plan, "fixture"), ids_of(added.plan, "fixture"));
  EXPECT_EQ(spec_of(again.plan, "fixture").actions[0].series, ids_of(added.plan, "fixture")[0]);
}

TEST(ReloadDiff, TooManySpecIndicesNeedsAWholeReload) {
  REQUIRE_BINARIES();
  // 300 running probes, 300 other ones: together beyond the kernel's 512 spec entries.
  std::string a, b;
  for (int i = 0; i < 300; ++i) {
    std::string p = kFixture;
    p.replace(p.find("name: fixture"), 13, "name: a" + std::to_string(i));
    a += p;
    p.replace(p.find("name: a"), 7, "name: b");
    b += p;
  }
  auto run = build(config(a));
  auto next = build(config(b));
  ASSERT_EQ(run.plan.probes.size(), 300u);
  const auto before = next.plan.probes[0].cookie;
  auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
  EXPECT_FALSE(d.incremental);
  EXPECT_EQ(d.why, "the probes of the running and the new config together need more than 512 kernel spec entries");
  EXPECT_EQ(next.plan.probes[0].cookie, before);  // untouched: loaded whole
  EXPECT_EQ(next.plan.specs.size(), 300u);
}

// The kernel series budget is fixed at load: a config it holds keeps it (quotas and map
// sizes of the running plan), one it does not hold is loaded whole, untouched, with why.
TEST(ReloadDiff, BudgetOfTheLoadedMapsDecides) {
  REQUIRE_BINARIES();
  auto run = build(config(kCalls + kSizes + kFixture));
  // Without `sizes`: a config alone would give its share to nobody; the loaded one stays.
  auto fewer = build(config(kCalls + kFixture));
  ASSERT_NE(fewer.plan.budget.entries[1], run.plan.budget.entries[1]);
  auto d = rebase_plan(run.plan, run.cfg, fewer.plan, fewer.cfg);
  ASSERT_TRUE(d.incremental) << d.why;
  ASSERT_EQ(fewer.plan.budget.metrics.size(), run.plan.budget.metrics.size());
  for (size_t m = 0; m < run.plan.budget.metrics.size(); ++m) {
    EXPECT_EQ(fewer.plan.budget.metrics[m].quota, run.plan.budget.metrics[m].quota) << m;
    EXPECT_EQ(fewer.plan.budget.metrics[m].other_keys, run.plan.budget.metrics[m].other_keys) << m;
  }
  for (size_t k = 0; k < kMapKinds; ++k) EXPECT_EQ(fewer.plan.budget.entries[k], run.plan.budget.entries[k]);

  // c_calls_total (fixed labels, sharing the budget) fed twice: more keys than its quota.
  std::string twice = kFixture;
  twice.replace(twice.find("name: fixture"), 13, "name: fixture2");
  auto more = build(config(kCalls + kSizes + kFixture + twice));
  const auto before = more.plan.budget.metrics[3].quota;
  auto d2 = rebase_plan(run.plan, run.cfg, more.plan, more.cfg);
  EXPECT_FALSE(d2.incremental);
  EXPECT_EQ(d2.why,
            "the kernel series budget does not hold the new config: metric 'c_calls_total' now has 2 series with fixed "
            "labels, more than its quota of 1");
  EXPECT_EQ(more.plan.budget.metrics[3].quota, before);  // untouched: loaded whole

  // A metric added (or removed, or moved): metric indices would mean other quotas.
  std::string text = config(kCalls + kSizes + kFixture);
  text.replace(text.find("probes:\n"), 8, "  - name: new_total\n    type: counter\nprobes:\n");
  auto added = build(text);
  auto d3 = rebase_plan(run.plan, run.cfg, added.plan, added.cfg);
  EXPECT_FALSE(d3.incremental);
  EXPECT_EQ(d3.why,
            "the kernel series budget does not hold the new config: metric 'new_total' was added (metrics index the "
            "kernel's series quotas)");

  // A budget setting changed.
  std::string bigger = config(kCalls + kSizes + kFixture);
  bigger.insert(0, "exporter:\n  max_series: 20000\n");
  auto big = build(bigger);
  auto d4 = rebase_plan(run.plan, run.cfg, big.plan, big.cfg);
  EXPECT_FALSE(d4.incremental);
  EXPECT_EQ(d4.why,
            "the kernel series budget does not hold the new config: exporter.max_series changed (the kernel maps are "
            "sized at load)");

  // Captured labels for a metric that had no share: sizes_bytes, loaded without `sizes`.
  auto d5 = rebase_plan(fewer.plan, fewer.cfg, run.plan, run.cfg);
  ASSERT_TRUE(d5.incremental) << "fewer carries the budget loaded with sizes: " << d5.why;
  auto bare = build(config(kCalls + kFixture));
  auto with_sizes = build(config(kCalls + kFixture + kSizes));
  auto d6 = rebase_plan(bare.plan, bare.cfg, with_sizes.plan, with_sizes.cfg);
  EXPECT_FALSE(d6.incremental);
  EXPECT_EQ(d6.why,
            "the kernel series budget does not hold the new config: metric 'sizes_bytes' now has labels captured from "
            "the process and no share of max_series yet");
}

}  // namespace
}  // namespace insa::plan

namespace insa::plan {
namespace {

// Many reloads in a row (the root test's sequence: same, add, remove, change): after
// each, every spec names series of its own probe, kept probes never move, and the
// renumbered plan describes the same series as a fresh build of the same config.
TEST(ReloadDiff, SequenceKeepsEverySpecPointingAtItsOwnSeries) {
  REQUIRE_BINARIES();
  auto gen = [](int g) {
    std::string p = with_status(kExtra, "error");
    p.replace(p.find("name: extra"), 11, "name: gen");
    p.replace(p.find("labels: {kind: $status}"), 23, "labels: {kind: g" + std::to_string(g) + "}");
    return p;
  };
  int g = 0;
  // Loaded with `sizes`, so the kernel series budget holds the config with or without it.
  bool extra = true;
  auto text = [&] { return config(kCalls + gen(g) + (extra ? kSizes : "")); };
  auto run = build(text());
  extra = false;
  const uint32_t calls_cookie = run.plan.probes[0].cookie;
  const auto calls_ids = ids_of(run.plan, "calls");
  for (int i = 0; i < 25; ++i) {
    switch (i % 5) {
      case 1: extra = true; break;
      case 2: extra = false; break;
      case 3: ++g; break;
      default: break;
    }
    auto next = build(text());
    const Plan reference = next.plan;  // as built, before renumbering
    auto d = rebase_plan(run.plan, run.cfg, next.plan, next.cfg);
    ASSERT_TRUE(d.incremental) << d.why;
    EXPECT_EQ(d.kept[0], 0) << "reload " << i;
    EXPECT_EQ(next.plan.probes[0].cookie, calls_cookie) << "reload " << i;
    EXPECT_EQ(ids_of(next.plan, "calls"), calls_ids) << "reload " << i;
    std::set<uint32_t> cookies;
    for (size_t j = 0; j < next.plan.probes.size(); ++j) {
      const auto& pp = next.plan.probes[j];
      EXPECT_TRUE(cookies.insert(pp.cookie).second) << "reload " << i << ": cookie " << pp.cookie << " twice";
      const auto& spec = next.plan.specs[pp.cookie];
      const auto& ref = reference.specs[reference.probes[j].cookie];
      ASSERT_EQ(spec.nactions, ref.nactions);
      for (unsigned k = 0; k < spec.nactions; ++k) {
        const uint32_t id = spec.actions[k].series;
        ASSERT_LT(id, next.plan.series.size()) << "reload " << i;
        const auto& s = next.plan.series[id];
        EXPECT_FALSE(s.unused) << "reload " << i << " probe " << pp.name;
        EXPECT_EQ(s.probe, static_cast<int>(j)) << "reload " << i << " probe " << pp.name << " series " << id;
        const auto& rs = reference.series[ref.actions[k].series];
        EXPECT_EQ(next.cfg.metrics[s.metric].name, next.cfg.metrics[rs.metric].name) << "reload " << i;
        ASSERT_EQ(s.labels.size(), rs.labels.size());
        for (size_t l = 0; l < s.labels.size(); ++l) EXPECT_EQ(s.labels[l].static_value, rs.labels[l].static_value);
      }
      for (const auto& pt : pp.points)
        EXPECT_EQ(pt.cookie & ~(INSA_COOKIE_URET | INSA_COOKIE_TAIL), pp.cookie) << "reload " << i;
    }
    run = std::move(next);
  }
}

}  // namespace
}  // namespace insa::plan
