// SPDX-License-Identifier: Apache-2.0
// Root test of the probe engine (issue 2): the real exporter attaches to the
// unmodified request_worker, which writes its own ground truth; counts by
// status, every histogram bucket, sums of sizes and the in-flight gauge must
// equal it exactly.
#include <gtest/gtest.h>

#include "harness.h"

namespace insa::testing {
namespace {

const std::vector<double> kDurationLe{0.001, 0.008, 0.03, 0.1, 0.5, 1, 2.5, 5, 10};
const std::vector<double> kSizeLe{50, 500, 1000, 5000, 10000, 50000, 100000};

void expect_histogram(const Samples& got, const std::string& name, const std::string& labels,
                      const std::vector<double>& observed, const std::vector<double>& le, bool exact_sum) {
  auto want = expected_buckets(observed, le);
  for (size_t i = 0; i <= le.size(); ++i) {
    std::string key = name + "_bucket{" + labels + ",le=\"" + (i == le.size() ? "+Inf" : le_str(le[i])) + "\"}";
    ASSERT_TRUE(got.count(key)) << "missing " << key;
    EXPECT_EQ(got.at(key), want[i]) << key;
  }
  EXPECT_EQ(got.at(name + "_count{" + labels + "}"), observed.size());
  if (exact_sum) {
    double sum = 0;
    for (double v : observed) sum += v;
    EXPECT_EQ(got.at(name + "_sum{" + labels + "}"), sum) << name;
  }
}

void run_workload(const std::string& worker, const std::string& agent, int threads, const std::string& errors) {
  require_root();
  const int port = 19300 + threads + (errors == "throw" ? 10 : 0) + (worker.find("nopie") != std::string::npos ? 20 : 0);
  Exporter exp(source_dir() + "/tests/root/configs/request.yaml", port);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const std::string truth = "/tmp/insa-request-truth-" + std::to_string(port) + ".txt";
  std::remove(truth.c_str());
  auto [status, out] = run_capture({binary_dir() + "/tests/workers/" + worker, "--seed", "11", "--requests", "80",
                                    "--threads", std::to_string(threads), "--agent", agent, "--errors", errors,
                                    "--truth", truth});
  ASSERT_TRUE(WIFEXITED(status)) << out;
  ASSERT_EQ(WEXITSTATUS(status), 0) << out;
  Truth t = read_truth({truth});
  ASSERT_FALSE(t.values.empty()) << "worker wrote no truth";
  Samples got = exp.scrape();

  const std::string a = "agent_type=\"" + agent + "\"";
  double total = 0;
  for (const char* st : {"success", "error", "timeout"}) {
    std::string key = "insa_agent_requests_total{" + a + ",status=\"" + st + "\"}";
    double want = t.values.count(key) ? t.values.at(key) : 0;
    total += want;
    if (want == 0) {
      EXPECT_FALSE(got.count(key) && got.at(key) != 0) << key;
    } else {
      ASSERT_TRUE(got.count(key)) << "missing " << key << "\n" << exp.log();
      EXPECT_EQ(got.at(key), want) << key;
    }
  }
  EXPECT_EQ(total, 80);
  // Durations are planned sleeps, chosen well inside the bounds; the sum is measured.
  expect_histogram(got, "insa_agent_request_duration_seconds", a,
                   t.observed.at("insa_agent_request_duration_seconds{" + a + "}"), kDurationLe, false);
  expect_histogram(got, "insa_agent_request_size_bytes", a, t.observed.at("insa_agent_request_size_bytes{" + a + "}"),
                   kSizeLe, true);
  // Response sizes exist only for calls that returned a size: errors return -1, which the
  // update's `if: ret >= 0` leaves out, or throw (no $ret at all).
  auto responses = t.observed["insa_agent_response_size_bytes{" + a + "}"];
  expect_histogram(got, "insa_agent_response_size_bytes", a, responses, kSizeLe, true);
  EXPECT_EQ(got.at("insa_worker_active_requests{worker_name=\"request_worker\"}"), 0);
  const std::string probe = worker.find("nopie") != std::string::npos ? "request_nopie" : "request";
  EXPECT_EQ(got.at("insa_exporter_probe_attached{probe=\"" + probe + "\"}"), 1);
  EXPECT_EQ(got.at("insa_exporter_probe_events_total{probe=\"" + probe + "\"}"), 80);
  EXPECT_EQ(got.at("insa_exporter_abandoned_calls_total{probe=\"" + probe + "\"}"), 0);
  EXPECT_EQ(got.at("insa_exporter_unmatched_exits_total{probe=\"" + probe + "\"}"), 0);
}

TEST(RequestProbe, SingleThreadExactCounts) { run_workload("request_worker", "sizing_agent", 1, "return"); }
TEST(RequestProbe, FourThreadsExactCounts) { run_workload("request_worker", "crm_agent", 4, "return"); }
TEST(RequestProbe, NonPieBinary) { run_workload("request_worker_nopie", "sizing_agent", 2, "return"); }
// Errors leave by a C++ exception: counted as error at the catch, the worker unharmed.
TEST(RequestProbe, ThrowingErrorsCountedAndWorkerSurvives) { run_workload("request_worker", "sizing_agent", 2, "throw"); }

TEST(RequestProbe, InflightGaugeDuringSlowCalls) {
  require_root();
  Exporter exp(source_dir() + "/tests/root/configs/request.yaml", 19350);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  // 3 threads, each in a request at every instant; sample mid-run.
  Child w = Child::spawn({binary_dir() + "/tests/workers/request_worker", "--seed", "3", "--forever", "--threads", "3"},
                         "/tmp/insa-inflight-worker.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Samples mid = exp.scrape();
  EXPECT_EQ(mid.at("insa_worker_active_requests{worker_name=\"request_worker\"}"), 3);
  w.signal(SIGKILL);
  w.wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Samples after = exp.scrape();
  // Killed mid-request: the open calls are reclaimed, the gauge returns to the truth.
  EXPECT_EQ(after.at("insa_worker_active_requests{worker_name=\"request_worker\"}"), 0);
  EXPECT_EQ(after.at("insa_exporter_abandoned_calls_total{probe=\"request\"}"), 3);
}

}  // namespace
}  // namespace insa::testing
