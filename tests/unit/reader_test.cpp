// SPDX-License-Identifier: Apache-2.0
// Per-CPU decoding of the kernel maps from byte fixtures
// (tests/unit/data/{hist,count,stats}_cpu{1,2,4}.bin, written by
// make_percpu_fixtures.py, which documents the values). CPU c holds k = c + 1
// times a base pattern, so the sum over n CPUs is S = n(n+1)/2 times it.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "reader/map_reader.h"

namespace insa::reader {
namespace {

std::vector<uint8_t> fixture(const std::string& name) {
  const std::string path = std::string(INSA_SOURCE_DIR) + "/tests/unit/data/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

constexpr uint64_t tri(uint64_t n) { return n * (n + 1) / 2; }

// The latest update among the first `cpus` CPUs: CPU 1 (k = 2) holds 2^50.
uint64_t latest(uint64_t cpus) { return cpus >= 2 ? uint64_t{1} << 50 : cpus == 1 ? 1000 : 0; }

void expect_hist(const insa_hist& h, uint64_t s, uint64_t cpus) {
  EXPECT_EQ(h.count, 100 * s + cpus);
  EXPECT_EQ(h.sum, (12345 - (int64_t{1} << 40)) * static_cast<int64_t>(s));
  for (int b = 0; b < INSA_MAX_BUCKETS; ++b) EXPECT_EQ(h.buckets[b], (b + 1) * s) << "bucket " << b;
  EXPECT_EQ(h.buckets[INSA_MAX_BUCKETS], (uint64_t{1} << 33) * s);
  EXPECT_EQ(h.last, latest(cpus)) << "last is the latest CPU's, not a sum";
}

void expect_stats(const insa_probe_stats& st, uint64_t s) {
  EXPECT_EQ(st.hits, 1000 * s);
  EXPECT_EQ(st.completed, 900 * s);
  EXPECT_EQ(st.exceptions, s);
  EXPECT_EQ(st.abandoned, 2 * s);
  EXPECT_EQ(st.unmatched, 3 * s);
  EXPECT_EQ(st.overflow, (uint64_t{1} << 35) * s);
  EXPECT_EQ(st.dropped, 7 * s);
}

TEST(Reader, PercpuStride) {
  static_assert(percpu_stride(0) == 0);
  static_assert(percpu_stride(1) == 8);
  static_assert(percpu_stride(8) == 8);
  static_assert(percpu_stride(13) == 16);
  static_assert(percpu_stride(17) == 24);
  EXPECT_EQ(percpu_stride(sizeof(insa_hist)), 160u);
  EXPECT_EQ(percpu_stride(sizeof(insa_count)), 16u);
  EXPECT_EQ(percpu_stride(sizeof(insa_probe_stats)), 56u);
  EXPECT_EQ(percpu_stride(sizeof(int64_t)), 8u);
}

TEST(Reader, FixtureSizesMatchTheLayout) {
  for (int n : {1, 2, 4}) {
    EXPECT_EQ(fixture("hist_cpu" + std::to_string(n) + ".bin").size(), n * percpu_stride(sizeof(insa_hist)));
    EXPECT_EQ(fixture("count_cpu" + std::to_string(n) + ".bin").size(), n * percpu_stride(sizeof(insa_count)));
    EXPECT_EQ(fixture("stats_cpu" + std::to_string(n) + ".bin").size(), n * percpu_stride(sizeof(insa_probe_stats)));
  }
  // First CPU's count and sum, read by hand (little-endian): 101 and 12345 - 2^40.
  auto b = fixture("hist_cpu1.bin");
  ASSERT_EQ(b.size(), 160u);
  EXPECT_EQ(b[0], 101);
  EXPECT_EQ(b[1], 0);
  int64_t sum;
  std::memcpy(&sum, b.data() + 8, 8);
  EXPECT_EQ(sum, 12345 - (int64_t{1} << 40));
}

TEST(Reader, SumHistOneCpu) {
  auto b = fixture("hist_cpu1.bin");
  expect_hist(sum_hist(b, 1), tri(1), 1);
}

TEST(Reader, SumHistTwoCpus) {
  auto b = fixture("hist_cpu2.bin");
  auto h = sum_hist(b, 2);
  expect_hist(h, tri(2), 2);
  EXPECT_EQ(h.count, 302u);
  EXPECT_EQ(h.buckets[0], 3u);
  EXPECT_EQ(h.buckets[15], 48u);
}

TEST(Reader, SumHistFourCpus) {
  auto b = fixture("hist_cpu4.bin");
  auto h = sum_hist(b, 4);
  expect_hist(h, tri(4), 4);
  EXPECT_EQ(h.count, 1004u);
  EXPECT_EQ(h.sum, (12345 - (int64_t{1} << 40)) * 10);
  EXPECT_EQ(h.buckets[16], (uint64_t{1} << 33) * 10);
}

TEST(Reader, SumHistReadsOnlyTheCpusAsked) {
  auto b = fixture("hist_cpu4.bin");
  expect_hist(sum_hist(b, 2), tri(2), 2);
  expect_hist(sum_hist(b, 1), tri(1), 1);
  auto zero = sum_hist(b, 0);
  EXPECT_EQ(zero.count, 0u);
  EXPECT_EQ(zero.sum, 0);
  EXPECT_EQ(zero.buckets[16], 0u);
}

TEST(Reader, SumHistIgnoresATruncatedSlot) {
  // 2.5 CPUs of bytes for 4 CPUs: only the two complete slots count.
  auto b = fixture("hist_cpu4.bin");
  std::span<const uint8_t> part(b.data(), 2 * 160 + 76);
  expect_hist(sum_hist(part, 4), tri(2), 2);
  EXPECT_EQ(sum_hist(std::span<const uint8_t>(), 4).count, 0u);
}

TEST(Reader, SumHistUsesTheStride) {
  // Slot c starts at c * stride: bytes appended after CPU 1 do not shift CPU 2.
  auto one = fixture("hist_cpu1.bin");
  auto two = fixture("hist_cpu2.bin");
  std::vector<uint8_t> buf(two);
  buf.insert(buf.end(), one.begin(), one.end());  // CPU 2 == CPU 0's pattern (k = 1)
  auto h = sum_hist(buf, 3);
  EXPECT_EQ(h.count, 101u + 201u + 101u);
  EXPECT_EQ(h.buckets[0], 1u + 2u + 1u);
  EXPECT_EQ(h.buckets[16], (uint64_t{1} << 33) * 4);
}

TEST(Reader, SumCountOneTwoFourCpus) {
  // Counters carry only a sum and the time of the last update (no buckets, no count).
  for (int n : {1, 2, 4}) {
    auto c = sum_count(fixture("count_cpu" + std::to_string(n) + ".bin"), n);
    EXPECT_EQ(c.sum, (3 - (int64_t{1} << 41)) * static_cast<int64_t>(tri(n))) << n << " CPUs";
    EXPECT_EQ(c.last, latest(n)) << n << " CPUs";
  }
  auto b = fixture("count_cpu4.bin");
  EXPECT_EQ(sum_count(b, 1).sum, 3 - (int64_t{1} << 41));
  EXPECT_EQ(sum_count(std::span<const uint8_t>(b.data(), 16 + 15), 4).sum, 3 - (int64_t{1} << 41));
}

TEST(Reader, FdinfoMemlock) {
  // As the kernel prints /proc/PID/fdinfo/FD of a BPF map.
  const std::string text =
      "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t2078\nmap_type:\t5\nkey_size:\t136\n"
      "value_size:\t16\nmax_entries:\t65\nmap_flags:\t0x1\nmap_extra:\t0x0\nmemlock:\t19064\n"
      "map_id:\t311\nfrozen:\t0\n";
  EXPECT_EQ(fdinfo_memlock(text), 19064u);
  EXPECT_EQ(fdinfo_memlock("pos:\t0\n"), 0u);
}

TEST(Reader, SumStatsOneTwoFourCpus) {
  expect_stats(sum_stats(fixture("stats_cpu1.bin"), 1), tri(1));
  expect_stats(sum_stats(fixture("stats_cpu2.bin"), 2), tri(2));
  auto s4 = sum_stats(fixture("stats_cpu4.bin"), 4);
  expect_stats(s4, tri(4));
  EXPECT_EQ(s4.hits, 10000u);
  EXPECT_EQ(s4.abandoned, 20u);
}

TEST(Reader, SumStatsPartial) {
  auto b = fixture("stats_cpu4.bin");
  expect_stats(sum_stats(b, 3), tri(3));
  std::span<const uint8_t> part(b.data(), 48 + 47);
  expect_stats(sum_stats(part, 4), tri(1));
  auto none = sum_stats(b, 0);
  EXPECT_EQ(none.hits, 0u);
  EXPECT_EQ(none.overflow, 0u);
}

TEST(Reader, SumHistUnalignedBuffer) {
  // Batch buffers are not guaranteed to be aligned for insa_hist: decode by copy.
  auto b = fixture("hist_cpu2.bin");
  std::vector<uint8_t> shifted(b.size() + 1);
  std::memcpy(shifted.data() + 1, b.data(), b.size());
  expect_hist(sum_hist(std::span<const uint8_t>(shifted.data() + 1, b.size()), 2), tri(2), 2);
}

}  // namespace
}  // namespace insa::reader
