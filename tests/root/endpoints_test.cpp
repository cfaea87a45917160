// SPDX-License-Identifier: Apache-2.0
// Operational endpoints the deployment relies on (landing page, /-/healthy,
// /-/ready) and reload on SIGHUP, against the real exporter.
#include <gtest/gtest.h>

#include "harness.h"

namespace insa::testing {
namespace {

TEST(Endpoints, LandingHealthyReady) {
  require_root();
  Exporter exp(source_dir() + "/tests/root/configs/request.yaml", 19361);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  EXPECT_EQ(http_get(exp.port(), "/-/healthy"), std::make_pair(200, std::string("OK\n")));
  EXPECT_EQ(http_get(exp.port(), "/-/ready"), std::make_pair(200, std::string("Ready\n")));
  auto [code, page] = http_get(exp.port(), "/");
  EXPECT_EQ(code, 200);
  EXPECT_NE(page.find("<h1>insa-exporter 0.1.0</h1>"), std::string::npos) << page;
  EXPECT_NE(page.find("<a href=\"/metrics\">/metrics</a>"), std::string::npos);
  // One table row per probe with attach state and event count.
  EXPECT_NE(page.find("<tr><td>request</td><td>" + binary_dir() + "/tests/workers/request_worker</td>"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("</td><td>1</td><td>yes</td><td>0</td><td>0</td>"), std::string::npos) << page;
  EXPECT_EQ(http_get(exp.port(), "/nope").first, 404);
}

TEST(Endpoints, ReloadOnSighupKeepsServing) {
  require_root();
  Exporter exp(source_dir() + "/tests/root/configs/request.yaml", 19362);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  exp.child().signal(SIGHUP);
  // Ready again after the reload, probes attached again, and counting.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [st, out] = run_capture({binary_dir() + "/tests/workers/request_worker", "--seed", "5", "--requests", "10"});
  ASSERT_EQ(st, 0) << out;
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_probe_attached{probe=\"request\"}"), 1);
  EXPECT_EQ(s.at("insa_exporter_probe_events_total{probe=\"request\"}"), 10);
  EXPECT_NE(exp.log().find("SIGHUP: reloading"), std::string::npos);
}

}  // namespace
}  // namespace insa::testing
