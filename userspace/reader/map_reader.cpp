// SPDX-License-Identifier: Apache-2.0
#include "reader/map_reader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

namespace insa::reader {

insa_hist sum_hist(std::span<const uint8_t> bytes, int ncpus) {
  insa_hist total{};
  const size_t stride = percpu_stride(sizeof(insa_hist));
  for (int c = 0; c < ncpus && (c + 1) * stride <= bytes.size(); ++c) {
    insa_hist h;
    std::memcpy(&h, bytes.data() + c * stride, sizeof h);
    total.count += h.count;
    total.sum += h.sum;
    for (int b = 0; b <= INSA_MAX_BUCKETS; ++b) total.buckets[b] += h.buckets[b];
    total.last = std::max(total.last, h.last);
  }
  return total;
}

insa_count sum_count(std::span<const uint8_t> bytes, int ncpus) {
  insa_count total{};
  const size_t stride = percpu_stride(sizeof(insa_count));
  for (int c = 0; c < ncpus && (c + 1) * stride <= bytes.size(); ++c) {
    insa_count v;
    std::memcpy(&v, bytes.data() + c * stride, sizeof v);
    total.sum += v.sum;
    total.last = std::max(total.last, v.last);
  }
  return total;
}

uint64_t fdinfo_memlock(const std::string& fdinfo) {
  std::istringstream in(fdinfo);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("memlock:", 0) == 0) return std::stoull(line.substr(8));
  return 0;
}

void release_quota(const MapFds& fds, uint32_t metric, const insa_key& key) {
  if ((key.flags & INSA_KEY_OTHER) || !fds.quotas || metric >= fds.nmetrics) return;
  __atomic_fetch_sub(&fds.quotas[metric].live, 1, __ATOMIC_SEQ_CST);
}

insa_probe_stats sum_stats(std::span<const uint8_t> bytes, int ncpus) {
  insa_probe_stats total{};
  const size_t stride = percpu_stride(sizeof(insa_probe_stats));
  for (int c = 0; c < ncpus && (c + 1) * stride <= bytes.size(); ++c) {
    insa_probe_stats s;
    std::memcpy(&s, bytes.data() + c * stride, sizeof s);
    total.hits += s.hits;
    total.completed += s.completed;
    total.exceptions += s.exceptions;
    total.abandoned += s.abandoned;
    total.unmatched += s.unmatched;
    total.overflow += s.overflow;
    total.dropped += s.dropped;
  }
  return total;
}

BpfMapReader::BpfMapReader(MapFds fds) : fds_(std::move(fds)), ncpus_(libbpf_num_possible_cpus()) {}

Result<size_t> read_hash(int fd, size_t value_bytes, std::vector<insa_key>& keys, std::vector<uint8_t>& values) {
  size_t total = 0;
  uint32_t chunk = 4096;
  insa_key out_batch{};
  void* in = nullptr;
  for (;;) {
    // Buffers only grow: they are reused by every scrape, never cleared.
    if (keys.size() < total + chunk) keys.resize(total + chunk);
    if (values.size() < (total + chunk) * value_bytes) values.resize((total + chunk) * value_bytes);
    uint32_t count = chunk;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd, in, &out_batch, keys.data() + total, values.data() + total * value_bytes,
                                   &count, &opts);
    int e = errno;
    total += count;
    if (err) {
      if (e == ENOENT) break;
      if (e == ENOSPC) {  // a bucket bigger than chunk: grow and retry
        chunk *= 2;
        continue;
      }
      return Error::from_errno("reading a BPF map in batches", e);
    }
    in = &out_batch;
  }
  return total;
}

Result<void> BpfMapReader::read(Snapshot& out) {
  const size_t count_bytes = percpu_stride(sizeof(insa_count)) * ncpus_;
  auto n = read_hash(fds_.counters, count_bytes, keys_, values_);
  if (!n) return n.error();
  out.counters.clear();
  out.counters.reserve(*n);
  for (size_t i = 0; i < *n; ++i)
    out.counters.emplace_back(keys_[i], sum_count({values_.data() + i * count_bytes, count_bytes}, ncpus_));

  const size_t hist_bytes = percpu_stride(sizeof(insa_hist)) * ncpus_;
  auto h = read_hash(fds_.histograms, hist_bytes, keys_, values_);
  if (!h) return h.error();
  out.histograms.clear();
  out.histograms.reserve(*h);
  for (size_t i = 0; i < *h; ++i)
    out.histograms.emplace_back(keys_[i], sum_hist({values_.data() + i * hist_bytes, hist_bytes}, ncpus_));

  auto g = read_hash(fds_.gauges, sizeof(insa_gauge), keys_, values_);
  if (!g) return g.error();
  out.gauges.clear();
  out.gauges.reserve(*g);
  for (size_t i = 0; i < *g; ++i) {
    insa_gauge v;
    std::memcpy(&v, values_.data() + i * sizeof v, sizeof v);
    out.gauges.emplace_back(keys_[i], v);
  }

  const size_t stat_bytes = percpu_stride(sizeof(insa_probe_stats)) * ncpus_;
  std::vector<uint8_t> buf(stat_bytes);
  out.stats.assign(fds_.nprobes, insa_probe_stats{});
  for (uint32_t i = 0; i < fds_.nprobes; ++i) {
    if (bpf_map_lookup_elem(fds_.stats, &i, buf.data())) return Error::from_errno("reading probe stats");
    out.stats[i] = sum_stats(buf, ncpus_);
  }

  // Per-CPU u64 counters: one 8-byte slot per CPU.
  std::vector<uint64_t> slots(static_cast<size_t>(ncpus_));
  auto sum_u64 = [&](int fd, uint32_t i, uint64_t& total) -> Result<void> {
    if (bpf_map_lookup_elem(fd, &i, slots.data())) return Error::from_errno("reading a per-CPU counter map");
    total = 0;
    for (uint64_t v : slots) total += v;
    return {};
  };
  out.folded.assign(fds_.nmetrics, 0);
  for (uint32_t i = 0; i < fds_.nmetrics; ++i)
    if (auto r = sum_u64(fds_.metric_stats, i, out.folded[i]); !r) return r;
  for (uint32_t i = 0; i < INSA_LOST_MAX; ++i)
    if (auto r = sum_u64(fds_.lost, i, out.lost[i]); !r) return r;

  out.map_bytes.clear();
  for (const auto& [name, fd] : fds_.all) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::stringstream text;
    text << in.rdbuf();
    out.map_bytes.emplace_back(name, fdinfo_memlock(text.str()));
  }
  return {};
}

}  // namespace insa::reader
