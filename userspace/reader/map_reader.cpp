// SPDX-License-Identifier: Apache-2.0
#include "reader/map_reader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>

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
  }
  return total;
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

BpfMapReader::BpfMapReader(int counters_fd, int gauges_fd, int stats_fd, uint32_t nprobes)
    : counters_fd_(counters_fd), gauges_fd_(gauges_fd), stats_fd_(stats_fd), nprobes_(nprobes),
      ncpus_(libbpf_num_possible_cpus()) {}

namespace {

/// Batch-reads a whole hash map. `value_bytes` is the size of one key's value
/// (all CPUs for per-CPU maps). Falls back to key-by-key iteration when the
/// kernel has no batch ops for the map.
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

}  // namespace

Result<void> BpfMapReader::read(Snapshot& out) {
  const size_t hist_bytes = percpu_stride(sizeof(insa_hist)) * ncpus_;
  auto n = read_hash(counters_fd_, hist_bytes, keys_, values_);
  if (!n) return n.error();
  out.counters.clear();
  out.counters.reserve(*n);
  for (size_t i = 0; i < *n; ++i)
    out.counters.emplace_back(keys_[i], sum_hist({values_.data() + i * hist_bytes, hist_bytes}, ncpus_));

  auto g = read_hash(gauges_fd_, sizeof(int64_t), keys_, values_);
  if (!g) return g.error();
  out.gauges.clear();
  out.gauges.reserve(*g);
  for (size_t i = 0; i < *g; ++i) {
    int64_t v;
    std::memcpy(&v, values_.data() + i * sizeof v, sizeof v);
    out.gauges.emplace_back(keys_[i], v);
  }

  const size_t stat_bytes = percpu_stride(sizeof(insa_probe_stats)) * ncpus_;
  std::vector<uint8_t> buf(stat_bytes);
  out.stats.assign(nprobes_, insa_probe_stats{});
  for (uint32_t i = 0; i < nprobes_; ++i) {
    if (bpf_map_lookup_elem(stats_fd_, &i, buf.data())) return Error::from_errno("reading probe stats");
    out.stats[i] = sum_stats(buf, ncpus_);
  }
  return {};
}

}  // namespace insa::reader
