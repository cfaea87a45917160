// SPDX-License-Identifier: Apache-2.0
// Probes land in the file that was analysed: the engine attaches through a
// descriptor whose device and inode match the plan's, so a binary swapped on
// disk between analysis and attach is refused (no breakpoints at offsets computed
// for another file), and the exporter re-plans it at its next scan.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "attach/engine.h"
#include "attach/plan.h"
#include "config/config.h"
#include "harness.h"

namespace insa::testing {
namespace {

namespace fs = std::filesystem;

TEST(AttachIdentity, AFileSwappedAfterAnalysisIsNotAttached) {
  require_root();
  const std::string dir = "/tmp/insa-attach-identity";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bin = dir + "/worker";
  fs::copy_file(binary_dir() + "/tests/fixtures/fixture_c_pie_O2", bin);
  const std::string yaml =
      "metrics:\n  - name: calls_total\n    type: counter\n    labels: [status]\nprobes:\n"
      "  - name: sr\n    binary: " +
      bin +
      "\n    function: several_returns\n"
      "    metrics: [{metric: calls_total, labels: {status: $status}}]\n";
  auto cfg = config::parse_config(yaml, dir + "/p.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  auto analysed = plan::build_plan(*cfg);
  ASSERT_TRUE(analysed.ok()) << analysed.error().message;
  struct stat st {};
  ASSERT_EQ(stat(bin.c_str(), &st), 0);
  for (const auto& pt : analysed->probes.at(0).points) {
    EXPECT_EQ(pt.dev, st.st_dev);
    EXPECT_EQ(pt.ino, st.st_ino);
  }

  // Another build renamed over it (new inode, different code) after the analysis.
  fs::copy_file(binary_dir() + "/tests/fixtures/fixture_c_nopie_O0", bin + ".new");
  fs::rename(bin + ".new", bin);
  auto eng = attach::Engine::load(*analysed, {});
  ASSERT_TRUE(eng.ok()) << eng.error().message;
  EXPECT_EQ((*eng)->attach_all(), 0u);
  const auto& state = (*eng)->states().at(0);
  EXPECT_FALSE(state.attached);
  EXPECT_EQ(state.points_attached, 0u);
  EXPECT_EQ(state.error, cfg->probes.at(0).mark.str() + ": probe 'sr': cannot attach to " + bin +
                             ": the file was replaced after it was analysed (it is analysed again at the next scan)");

  // Analysed again: attached, and counting the new file's calls exactly.
  auto fresh = plan::build_plan(*cfg);
  ASSERT_TRUE(fresh.ok());
  auto eng2 = attach::Engine::load(*fresh, {});
  ASSERT_TRUE(eng2.ok());
  EXPECT_EQ((*eng2)->attach_all(), 1u);
  fs::remove_all(dir);
}

// End to end: the exporter started on a file, the file replaced at once: every call of
// the new file is counted (the swap is noticed by device and inode, re-planned, attached).
TEST(AttachIdentity, ExporterCountsTheReplacedFileExactly) {
  require_root();
  const std::string dir = "/tmp/insa-attach-identity-e2e";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bin = dir + "/worker";
  fs::copy_file(binary_dir() + "/tests/fixtures/fixture_c_pie_O2", bin);
  const std::string config = dir + "/p.yaml";
  std::ofstream(config) << "metrics:\n  - name: calls_total\n    type: counter\nprobes:\n"
                           "  - name: sr\n    binary: " +
                               bin +
                               "\n    function: several_returns\n"
                               "    metrics: [{metric: calls_total, when: exit}]\n";
  Exporter exp(config, 19366);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  fs::copy_file(binary_dir() + "/tests/fixtures/fixture_c_nopie_O0", bin + ".new");
  fs::rename(bin + ".new", bin);
  const std::string done = "probe 'sr' attached to the new " + bin;
  for (int i = 0; i < 50 && exp.log().find(done) == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_NE(exp.log().find(done), std::string::npos) << exp.log();
  auto [rst, out] = run_capture({bin, "returns", "9"});
  ASSERT_EQ(rst, 0) << out;
  EXPECT_EQ(exp.scrape().at("calls_total"), 9) << exp.log();
  EXPECT_EQ(exp.scrape().at("insa_exporter_probe_attached{probe=\"sr\"}"), 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace insa::testing
