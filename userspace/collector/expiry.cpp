// SPDX-License-Identifier: Apache-2.0
#include "collector/expiry.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>

namespace insa::collector {
namespace {

/// bpf_ktime_get_ns()'s clock.
uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

bool captured(const plan::Series& s) {
  // A `$container`/`$pod`/`$namespace` series is the sum of its processes' keys (the kernel
  // keys by host PID): removing one process's key would lower it, so such series stay.
  for (const auto& l : s.labels)
    if (l.kind == plan::LabelDecoder::Kind::Container) return false;
  for (const auto& l : s.labels)
    if (l.kind == plan::LabelDecoder::Kind::Int || l.kind == plan::LabelDecoder::Kind::Str) return true;
  return false;
}

int64_t int_at(const insa_key& key, uint32_t offset) {
  int64_t v = 0;
  if (offset + sizeof v <= sizeof key.data) std::memcpy(&v, key.data + offset, sizeof v);
  return v;
}

}  // namespace

Verdict judge(const plan::Series& s, const insa_key& key, uint64_t last_ns, int64_t gauge, uint64_t now_ns,
              int64_t expiry_ns, const std::function<bool(uint32_t)>& alive, int64_t dead_grace_ns) {
  if (!captured(s)) return Verdict::Keep;  // fixed labels: always exported, never reset
  if (!(key.flags & INSA_KEY_OTHER))
    for (const auto& l : s.labels) {
      if (!l.pid) continue;
      const int64_t pid = int_at(key, l.offset);
      if (pid > 0 && pid <= INT32_MAX && !alive(static_cast<uint32_t>(pid))) {
        if (last_ns <= now_ns && now_ns - last_ns >= static_cast<uint64_t>(dead_grace_ns)) return Verdict::DeadPid;
        return Verdict::Keep;  // gone, but its final value is shown a little longer
      }
    }
  if (expiry_ns <= 0 || last_ns > now_ns || now_ns - last_ns < static_cast<uint64_t>(expiry_ns)) return Verdict::Keep;
  // A running balance (in-flight calls, add/sub) that is not zero still means something.
  if (s.additive && gauge != 0) return Verdict::Keep;
  return Verdict::Idle;
}

uint64_t Expiry::period_ns(int64_t expiry_ns) {
  constexpr uint64_t kSecond = 1'000'000'000ULL;
  if (expiry_ns <= 0) return 60 * kSecond;
  uint64_t p = static_cast<uint64_t>(expiry_ns) / 10;
  return p < kSecond ? kSecond : p > 60 * kSecond ? 60 * kSecond : p;
}

Expiry::Expiry(const plan::Plan& plan, reader::MapFds fds, int64_t expiry_ns, int64_t dead_grace_ns)
    : plan_(plan),
      fds_(std::move(fds)),
      expiry_ns_(expiry_ns),
      dead_grace_ns_(dead_grace_ns),
      ncpus_(libbpf_num_possible_cpus()) {
  if (ncpus_ < 1) ncpus_ = 1;
  expired_.assign(plan_.budget.metrics.size(), 0);
  follow(expiry_ns, dead_grace_ns);
}

void Expiry::follow(int64_t expiry_ns, int64_t dead_grace_ns) {
  expiry_ns_ = expiry_ns;
  dead_grace_ns_ = dead_grace_ns;
  pid_series_ = false;
  for (const auto& s : plan_.series)
    for (const auto& l : s.labels) pid_series_ |= !s.unused && l.pid;
  {
    // An incremental reload keeps the metrics (and so their indices): counts continue.
    std::lock_guard<std::mutex> lock(mu_);
    expired_.resize(plan_.budget.metrics.size(), 0);
  }
  next_sweep_ = monotonic_ns() + period_ns(expiry_ns_);
}

void Expiry::forget_deleted(size_t keys) {
  if (keys) generation_.fetch_add(1);
}

void Expiry::note_exit(uint32_t tgid) {
  if (pid_series_) exited_.insert(tgid);
}

size_t Expiry::tick() {
  const uint64_t now = monotonic_ns();
  bool due = now >= next_sweep_;
  if (!due && !exited_.empty()) {
    for (uint32_t p : exited_) due |= known_pids_.count(p) > 0;
    // A process whose series appeared since the last sweep: a walk over the keys alone
    // (no per-CPU values) finds out whether one of them names it.
    if (!due) due = exited_pid_in_keys();
    if (!due) exited_.clear();
  }
  return due ? sweep() : 0;
}

bool Expiry::exited_pid_in_keys() const {
  for (int fd : {fds_.counters, fds_.histograms, fds_.gauges}) {
    if (fd < 0) continue;
    insa_key k{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      k = next;
      prev = &k;
      if (k.series >= plan_.series.size() || plan_.series[k.series].unused || (k.flags & INSA_KEY_OTHER)) continue;
      for (const auto& l : plan_.series[k.series].labels)
        if (l.pid && exited_.count(static_cast<uint32_t>(int_at(k, l.offset)))) return true;
    }
  }
  return false;
}

size_t Expiry::sweep() {
  const uint64_t now = monotonic_ns();
  std::map<uint32_t, bool> cache;
  auto alive = [&cache](uint32_t pid) {
    auto it = cache.find(pid);
    if (it != cache.end()) return it->second;
    const bool a = kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
    cache.emplace(pid, a);
    return a;
  };
  std::set<uint32_t> pids;
  size_t removed = sweep_map(fds_.counters, 0, now, alive, pids);
  removed += sweep_map(fds_.histograms, 1, now, alive, pids);
  removed += sweep_map(fds_.gauges, 2, now, alive, pids);
  sweep_spans(now, alive);
  known_pids_ = std::move(pids);
  exited_.clear();
  next_sweep_ = now + period_ns(expiry_ns_);
  if (removed) {
    generation_.fetch_add(1);
    spdlog::debug("series expiry: {} kernel series removed", removed);
  }
  return removed;
}

size_t Expiry::sweep_map(int fd, int kind, uint64_t now, const std::function<bool(uint32_t)>& alive,
                         std::set<uint32_t>& pids) {
  if (fd < 0) return 0;
  const size_t vbytes = kind == 0   ? reader::percpu_stride(sizeof(insa_count)) * ncpus_
                        : kind == 1 ? reader::percpu_stride(sizeof(insa_hist)) * ncpus_
                                    : sizeof(insa_gauge);
  auto n = reader::read_hash(fd, vbytes, keys_, values_);
  if (!n) {
    spdlog::warn("series expiry: {}", n.error().message);
    return 0;
  }
  // Latest update and (gauges) value of one key's bytes.
  auto decode = [&](const uint8_t* p, uint64_t& last, int64_t& gauge) {
    const std::span<const uint8_t> b(p, vbytes);
    gauge = 0;
    if (kind == 0) {
      last = reader::sum_count(b, ncpus_).last;
    } else if (kind == 1) {
      last = reader::sum_hist(b, ncpus_).last;
    } else {
      insa_gauge g;
      std::memcpy(&g, p, sizeof g);
      last = g.last;
      gauge = g.value;
    }
  };
  std::vector<uint8_t> buf(vbytes);
  size_t removed = 0;
  for (size_t i = 0; i < *n; ++i) {
    const insa_key key = keys_[i];
    // A series no probe updates (a reload's hole): its keys are the engine's to delete.
    if (key.series >= plan_.series.size() || plan_.series[key.series].unused) continue;
    const auto& s = plan_.series[key.series];
    for (const auto& l : s.labels)
      if (l.pid && !(key.flags & INSA_KEY_OTHER)) pids.insert(static_cast<uint32_t>(int_at(key, l.offset)));
    uint64_t last;
    int64_t gauge;
    decode(values_.data() + i * vbytes, last, gauge);
    const Verdict v = judge(s, key, last, gauge, now, expiry_ns_, alive, dead_grace_ns_);
    if (v == Verdict::Keep) continue;
    // Delete and look at what was deleted: an update that came after the read above
    // makes an idle series live again, so it is put back.
    if (bpf_map_lookup_and_delete_elem(fd, &key, buf.data()) != 0) continue;  // already gone
    if (v == Verdict::Idle) {
      decode(buf.data(), last, gauge);
      if (judge(s, key, last, gauge, now, expiry_ns_, alive, dead_grace_ns_) == Verdict::Keep) {
        if (bpf_map_update_elem(fd, &key, buf.data(), BPF_NOEXIST) == 0) continue;
        // A program created the key again in between: the deleted copy's updates are lost.
        raced_.fetch_add(1);
      }
    }
    reader::release_quota(fds_, s.metric, key);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (s.metric < expired_.size()) ++expired_[s.metric];
    }
    ++removed;
  }
  return removed;
}

size_t Expiry::sweep_spans(uint64_t now, const std::function<bool(uint32_t)>& alive) {
  if (fds_.spans < 0) return 0;
  // Collect first: deleting while walking with get_next_key could restart the walk.
  std::vector<insa_span_key> stale;
  insa_span_key k{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fds_.spans, prev, &next) == 0) {
    k = next;
    prev = &k;
    uint64_t begin = 0;
    if (bpf_map_lookup_elem(fds_.spans, &k, &begin) != 0) continue;
    const bool old = expiry_ns_ > 0 && begin <= now && now - begin >= static_cast<uint64_t>(expiry_ns_);
    if (old || !alive(k.tgid)) stale.push_back(k);
  }
  size_t removed = 0;
  for (const auto& s : stale)
    if (bpf_map_delete_elem(fds_.spans, &s) == 0) ++removed;
  spans_expired_.fetch_add(removed);
  return removed;
}

std::vector<uint64_t> Expiry::expired() const {
  std::lock_guard<std::mutex> lock(mu_);
  return expired_;
}

}  // namespace insa::collector
