// SPDX-License-Identifier: Apache-2.0
#include "attach/engine.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <sys/mman.h>
#include <sys/stat.h>

#include "elf/elf_file.h"
#include "elf/plt.h"

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/privileges.h"
#include "insa_probes.skel.h"
#include "process/containers.h"
#include "python/procs.h"

namespace insa::attach {

Link& Link::operator=(Link&& o) noexcept {
  if (this != &o) {
    if (l_) bpf_link__destroy(l_);
    l_ = o.l_;
    o.l_ = nullptr;
  }
  return *this;
}

Link::~Link() {
  if (l_) bpf_link__destroy(l_);
}

void SkeletonDeleter::operator()(::insa_probes* s) const { insa_probes__destroy(s); }
void RingBufferDeleter::operator()(ring_buffer* r) const { ring_buffer__free(r); }

namespace {

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[2048];
  int n = vsnprintf(buf, sizeof buf, fmt, args);
  while (n > 0 && n < static_cast<int>(sizeof buf) && buf[n - 1] == '\n') buf[--n] = 0;
  if (level == LIBBPF_WARN)
    spdlog::warn("libbpf: {}", buf);
  else
    spdlog::debug("libbpf: {}", buf);
  return 0;
}

const char* role_name(plan::Role r) {
  switch (r) {
    case plan::Role::Entry: return "entry";
    case plan::Role::Exit: return "return site";
    case plan::Role::Uretprobe: return "uretprobe";
    case plan::Role::Catch: return "catch hook";
    case plan::Role::Usdt: return "usdt";
    case plan::Role::PyEntry: return "python frame entry";
    case plan::Role::PyExit: return "python frame return";
    case plan::Role::PyResume: return "python RESUME handler";
    case plan::Role::PyClear: return "python frame clear";
  }
  return "?";
}

std::string privilege_hint(int e) { return privileges::attach_hint(e, privileges::effective(), geteuid()); }

std::string load_hint(int e) {
  if (e != EPERM && e != EACCES) return "";
  const std::string why = privileges::load_problem(privileges::effective(), geteuid());
  return why.empty() ? privilege_hint(e) : " (" + why + ")";
}

}  // namespace

void install_libbpf_logger() { libbpf_set_print(libbpf_print); }

Engine::Engine(plan::Plan plan, std::unique_ptr<::insa_probes, SkeletonDeleter> skel)
    : plan_(std::move(plan)), skel_(std::move(skel)) {
  links_.resize(plan_.probes.size());
  states_.resize(plan_.probes.size());
  probe_files_.resize(plan_.probes.size());
}

Engine::~Engine() = default;

Engine::Mapping::~Mapping() {
  if (addr) munmap(addr, len);
}

Result<std::unique_ptr<Engine>> Engine::load(const plan::Plan& plan, const EngineOptions& opts) {
  std::unique_ptr<::insa_probes, SkeletonDeleter> skel(insa_probes__open());
  if (!skel) return Error::from_errno("cannot open the BPF object");
  // Sizes from the budget (attach/map_budget.h): each metric's quota plus its `other` keys.
  const auto& b = plan.budget;
  bpf_map__set_max_entries(skel->maps.counters, b.entries[static_cast<size_t>(plan::MapKind::Counters)]);
  bpf_map__set_max_entries(skel->maps.histograms, b.entries[static_cast<size_t>(plan::MapKind::Histograms)]);
  bpf_map__set_max_entries(skel->maps.gauges, b.entries[static_cast<size_t>(plan::MapKind::Gauges)]);
  const uint32_t nmetrics = std::max<uint32_t>(1, static_cast<uint32_t>(b.metrics.size()));
  bpf_map__set_max_entries(skel->maps.quotas, nmetrics);
  bpf_map__set_max_entries(skel->maps.metric_stats, nmetrics);
  skel->rodata->py_ntargets = static_cast<uint32_t>(plan.py_targets.size());
  if (int err = insa_probes__load(skel.get())) {
    return Error{"cannot load the BPF programs: " + std::string(strerror(-err)) + load_hint(-err) +
                     " (run with --log.level debug for the verifier log)",
                 -err};
  }
  int fd = bpf_map__fd(skel->maps.specs);
  for (uint32_t i = 0; i < plan.specs.size(); ++i) {
    if (bpf_map_update_elem(fd, &i, &plan.specs[i], BPF_ANY))
      return Error::from_errno("cannot fill the probe spec map");
  }
  fd = bpf_map__fd(skel->maps.py_targets);
  for (uint32_t i = 0; i < plan.py_targets.size(); ++i) {
    if (bpf_map_update_elem(fd, &i, &plan.py_targets[i], BPF_ANY))
      return Error::from_errno("cannot fill the python target map");
  }
  fd = bpf_map__fd(skel->maps.quotas);
  for (uint32_t i = 0; i < b.metrics.size(); ++i) {
    // A metric whose labels are all fixed can only have its `quota` distinct keys, but
    // CPUs inserting its first keys at once each take a slot before inserting (and give
    // it back when another CPU's insert won): room for one slot per CPU in flight, so
    // such a race never folds into `other` (the maps hold the keys themselves anyway).
    const int ncpus = libbpf_num_possible_cpus();
    const int64_t slack = b.metrics[i].captured ? 0 : std::max(ncpus, 1);
    insa_quota q{0, static_cast<int64_t>(b.metrics[i].quota) + slack};
    if (bpf_map_update_elem(fd, &i, &q, BPF_ANY)) return Error::from_errno("cannot fill the series quota map");
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t len = (nmetrics * sizeof(insa_quota) + page - 1) / page * page;
  void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return Error::from_errno("cannot map the series quota map");
  std::unique_ptr<Engine> e(new Engine(plan, std::move(skel)));
  e->quotas_.addr = addr;
  e->quotas_.len = len;
  e->config_ = opts.config;
  for (const auto& pp : plan.probes) e->delta_known_.push_back(pp.host_file || pp.python);
  return e;
}

Result<Link> Engine::attach_point(const plan::AttachPoint& p) {
  // Attach through a descriptor of the very file that was analysed: the kernel
  // resolves /proc/self/fd/N to the open file, so a binary swapped on disk since the
  // analysis can never receive breakpoints at offsets computed for another file.
  std::string path = p.binary;
  int fd = -1;
  if (p.ino != 0) {
    fd = ::open(p.binary.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO put there never blocks
    struct stat st {};
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != p.dev || st.st_ino != p.ino) {
      int e = fd < 0 ? errno : ESTALE;
      if (fd >= 0) ::close(fd);
      return Error{"cannot attach to " + p.binary + ": " +
                       (fd < 0 && e != ESTALE ? std::string(strerror(e))
                                              : std::string("the file was replaced after it was analysed (it is "
                                                            "analysed again at the next scan)")),
                   e};
    }
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  struct FdCloser {
    int fd;
    ~FdCloser() {
      if (fd >= 0) ::close(fd);
    }
  } closer{fd};
  bpf_link* l = nullptr;
  switch (p.role) {
    case plan::Role::Entry:
    case plan::Role::Exit:
    case plan::Role::Uretprobe:
    case plan::Role::Catch: {
      LIBBPF_OPTS(bpf_uprobe_opts, o, .bpf_cookie = p.cookie, .retprobe = p.role == plan::Role::Uretprobe);
      bpf_program* prog = p.role == plan::Role::Entry     ? skel_->progs.insa_entry
                          : p.role == plan::Role::Catch ? skel_->progs.insa_catch
                                                        : skel_->progs.insa_exit;
      l = bpf_program__attach_uprobe_opts(prog, p.pid, path.c_str(), p.offset, &o);
      break;
    }
    case plan::Role::PyEntry:
    case plan::Role::PyExit:
    case plan::Role::PyResume:
    case plan::Role::PyClear: {
      LIBBPF_OPTS(bpf_uprobe_opts, o, .bpf_cookie = p.cookie, .retprobe = p.role == plan::Role::PyExit);
      bpf_program* prog = p.role == plan::Role::PyEntry    ? skel_->progs.insa_py_entry
                          : p.role == plan::Role::PyExit   ? skel_->progs.insa_py_exit
                          : p.role == plan::Role::PyResume ? skel_->progs.insa_py_resume
                                                           : skel_->progs.insa_py_clear;
      l = bpf_program__attach_uprobe_opts(prog, p.pid, p.binary.c_str(), p.offset, &o);
      break;
    }
    case plan::Role::Usdt: {
      LIBBPF_OPTS(bpf_usdt_opts, o, .usdt_cookie = p.cookie);
      // By path (checked just above): libbpf matches a library's path in /proc/PID/maps
      // to place USDT probes of one process, which a /proc/self/fd path would not match.
      l = bpf_program__attach_usdt(skel_->progs.insa_usdt, p.pid, p.binary.c_str(), p.usdt_provider.c_str(),
                                   p.usdt_name.c_str(), &o);
      break;
    }
  }
  if (!l) {
    int e = errno;
    char off[32];
    std::snprintf(off, sizeof off, "0x%llx", static_cast<unsigned long long>(p.offset));
    return Error{std::string("cannot attach ") + role_name(p.role) + " to " + p.binary + " at " +
                     (p.role == plan::Role::Usdt ? p.usdt_provider + ":" + p.usdt_name : std::string(off)) +
                     (p.pid > 0 ? " pid " + std::to_string(p.pid) : "") + ": " + strerror(e) + privilege_hint(e),
                 e};
  }
  return Link(l);
}

Result<std::vector<Link>> Engine::attach_points(const plan::ProbePlan& pp) {
  std::vector<Link> links;
  for (const auto& point : pp.points) {
    auto l = attach_point(point);
    if (!l) return Error{pp.mark.str() + ": probe '" + pp.name + "': " + l.error().message, l.error().err};
    links.push_back(std::move(*l));
  }
  return links;
}

namespace {

std::pair<uint64_t, uint64_t> analysed_file(const plan::ProbePlan& pp) {
  struct stat st {};
  if (!pp.points.empty() && pp.points.front().ino != 0) return {pp.points.front().dev, pp.points.front().ino};
  return stat(pp.binary.c_str(), &st) == 0 ? std::make_pair(uint64_t{st.st_dev}, uint64_t{st.st_ino})
                                           : std::make_pair(uint64_t{0}, uint64_t{0});
}

}  // namespace

Result<void> Engine::attach_probe(size_t i) {
  const auto& pp = plan_.probes[i];
  if (pp.python) {
    update_python_states();
    return states_[i].attached ? Result<void>{} : Result<void>{Error{states_[i].error}};
  }
  if (pp.per_process()) {  // in containers, or select: attached per process (rescan_files)
    if (pp.host_file && !pp.points.empty()) probe_files_[i] = {pp.points.front().dev, pp.points.front().ino};
    update_file_states();
    return {};
  }
  auto links = attach_points(pp);
  if (!links) {
    states_[i].attached = false;
    states_[i].error = links.error().message;
    return links.error();
  }
  links_[i] = std::move(*links);
  states_[i] = ProbeState{true, links_[i].size(), ""};
  probe_files_[i] = analysed_file(pp);
  return {};
}

namespace {

/// Whether any process maps the file (dev, ino): /proc/PID/maps lines read
/// "start-end perms offset MAJ:MIN inode path".
bool file_mapped(uint64_t dev, uint64_t ino) {
  char want_dev[32];
  std::snprintf(want_dev, sizeof want_dev, "%02x:%02x", major(static_cast<dev_t>(dev)),
                minor(static_cast<dev_t>(dev)));
  const std::string want_ino = std::to_string(ino);
  DIR* d = opendir("/proc");
  if (!d) return true;  // cannot tell: keep the links
  bool found = false;
  while (!found) {
    dirent* e = readdir(d);
    if (!e) break;
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    std::ifstream maps(std::string("/proc/") + e->d_name + "/maps");
    std::string line;
    while (std::getline(maps, line)) {
      std::istringstream in(line);
      std::string range, perms, off, mdev, mino;
      if (!(in >> range >> perms >> off >> mdev >> mino)) continue;
      if (mino == want_ino && mdev == want_dev) {
        found = true;
        break;
      }
    }
  }
  closedir(d);
  return found;
}

}  // namespace

size_t Engine::release_retired() {
  size_t released = 0;
  for (auto it = retired_.begin(); it != retired_.end();) {
    if (file_mapped(it->dev, it->ino)) {
      ++it;
      continue;
    }
    spdlog::info("no process runs the replaced {} (inode {}) any more: releasing its {} links", it->path, it->ino,
                 it->links.size());
    released += it->links.size();
    it = retired_.erase(it);
  }
  return released;
}

size_t Engine::retired_links() const {
  size_t n = 0;
  for (const auto& r : retired_) n += r.links.size();
  return n;
}

Result<void> Engine::replace_probe(size_t i, const plan::ProbePlan& pp, const insa_probe_spec& spec) {
  uint32_t key = pp.cookie;  // the probe's spec index, kept across reloads (plan::rebase_plan)
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.specs), &key, &spec, BPF_ANY))
    return Error::from_errno("cannot update the spec of probe '" + pp.name + "'");
  plan_.specs[key] = spec;
  // Processes still running the old file keep being measured through these links
  // until the last of them exits (release_retired).
  if (!links_[i].empty()) {
    Retired r{probe_files_[i].first, probe_files_[i].second, plan_.probes[i].binary, std::move(links_[i])};
    auto same = std::find_if(retired_.begin(), retired_.end(),
                             [&](const Retired& o) { return o.dev == r.dev && o.ino == r.ino; });
    if (same == retired_.end()) {
      retired_.push_back(std::move(r));
    } else {
      for (auto& l : r.links) same->links.push_back(std::move(l));
    }
  }
  links_[i].clear();
  plan_.probes[i] = pp;
  return attach_probe(i);
}

void Engine::detach_probe(size_t i) {
  links_[i].clear();
  for (auto& [pid, pl] : procs_) pl.probes.erase(i);
  states_[i].attached = false;
  states_[i].points_attached = 0;
}

size_t Engine::attach_all() {
  if (catch_links_.empty()) {
    // C++ exceptions: a tracked call unwound by a throw ends at the catch. Here the
    // copies inside -static-libstdc++ binaries; libstdc++.so per process (rescan_files).
    for (const auto& p : plan_.catch_points) {
      auto l = attach_point(p);
      if (l) {
        catch_links_.push_back(std::move(*l));
        catch_hooked_.push_back(p);
        spdlog::info("C++ exceptions: catch hook on {} __cxa_begin_catch @0x{:x}", p.binary, p.offset);
      } else {
        spdlog::warn("C++ exception tracking off for {}: {}", p.binary, l.error().message);
      }
    }
  }
  for (const auto& in : plan_.py_interpreters) {
    if (auto r = attach_interpreter(in); !r) spdlog::error("{}", r.error().message);
  }
  rescan_python();
  size_t ok = 0;
  for (size_t i = 0; i < plan_.probes.size(); ++i) {
    auto r = attach_probe(i);
    if (r && states_[i].waiting) {
      spdlog::info("{}", states_[i].error);
    } else if (r) {
      ++ok;
      spdlog::info("probe '{}' attached: {} ({} points, {} return sites)", plan_.probes[i].name,
                   plan_.probes[i].target, states_[i].points_attached, plan_.probes[i].exit_sites);
    } else {
      spdlog::error("{}", r.error().message);
    }
  }
  // After the probes: the per-process hooks need the files they were attached to.
  rescan_files();
  return ok;
}

Result<void> Engine::watch_exits(std::function<void(const ExitEvent&)> cb,
                                 std::function<void(const ExecEvent&)> exec_cb) {
  const bool exec_hooked = exits_ && shared_links_.size() > 1;
  exit_cb_ = std::move(cb);
  exec_cb_ = std::move(exec_cb);
  if (exits_) {
    // Again (a reload kept this engine): new callbacks; the exec tracepoint once needed.
    if (exec_cb_ && !exec_hooked) {
      bpf_link* x = bpf_program__attach(skel_->progs.insa_task_exec);
      if (!x) return Error::from_errno("cannot attach the sched_process_exec tracepoint");
      shared_links_.emplace_back(x);
    }
    return {};
  }
  bpf_link* l = bpf_program__attach(skel_->progs.insa_task_exit);
  if (!l) return Error::from_errno("cannot attach the sched_process_exit tracepoint");
  shared_links_.emplace_back(l);
  if (exec_cb_ || wants_exec()) {
    bpf_link* x = bpf_program__attach(skel_->progs.insa_task_exec);
    if (!x) return Error::from_errno("cannot attach the sched_process_exec tracepoint");
    shared_links_.emplace_back(x);
  }
  auto handler = [](void* ctx, void* data, size_t size) -> int {
    auto* self = static_cast<Engine*>(ctx);
    if (size == sizeof(insa_exec_event)) {
      const auto* x = static_cast<const insa_exec_event*>(data);
      // The kernel's dev_t is MAJOR << 20 | MINOR (include/linux/kdev_t.h).
      const uint64_t dev = makedev(static_cast<unsigned>(x->dev >> 20), static_cast<unsigned>(x->dev & 0xfffff));
      self->exec_seen(x->tgid, dev, x->ino);
      if (self->exec_cb_) self->exec_cb_(ExecEvent{x->tgid, dev, x->ino});
      return 0;
    }
    if (size < sizeof(insa_exit_event)) return 0;
    const auto* e = static_cast<const insa_exit_event*>(data);
    ExitEvent ev{e->tgid, e->exit_code, std::string(e->comm, strnlen(e->comm, sizeof e->comm))};
    if (self->exit_cb_) self->exit_cb_(ev);
    return 0;
  };
  ring_buffer* rb = ring_buffer__new(bpf_map__fd(skel_->maps.exits), handler, this, nullptr);
  if (!rb) return Error::from_errno("cannot open the exit ring buffer");
  exits_.reset(rb);
  return {};
}

Result<size_t> Engine::py_layout(const python::Interpreter& in) {
  // One layout per file (device + inode): the same interpreter seen through several
  // containers' roots is one; two builds at the same path in two containers are two.
  struct stat want {};
  const bool known = ::stat(in.path.c_str(), &want) == 0;
  for (size_t i = 0; i < py_layouts_.size(); ++i) {
    struct stat have {};
    if (py_layouts_[i].path == in.path ||
        (known && ::stat(py_layouts_[i].path.c_str(), &have) == 0 && have.st_dev == want.st_dev && have.st_ino == want.st_ino))
      return i;
  }
  if (py_layouts_.size() >= INSA_MAX_PY_LAYOUTS)
    return Error{"python: more than " + std::to_string(INSA_MAX_PY_LAYOUTS) + " interpreter files; not hooking " + in.path};
  uint32_t idx = static_cast<uint32_t>(py_layouts_.size());
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.py_layouts), &idx, &in.layout, BPF_ANY))
    return Error::from_errno("cannot fill the python layout map");
  py_layouts_.push_back(in);
  return static_cast<size_t>(idx);
}

Result<void> Engine::attach_interpreter(const python::Interpreter& in) {
  auto idx = py_layout(in);
  if (!idx) return idx.error();
  if (py_host_wide_.count(*idx)) return {};
  plan::AttachPoint a;
  a.binary = in.path;
  a.offset = in.eval_offset;
  a.cookie = static_cast<uint32_t>(*idx);
  std::vector<Link> links;
  for (auto role : {plan::Role::PyEntry, plan::Role::PyExit}) {
    a.role = role;
    auto l = attach_point(a);
    if (!l) return Error{"python: " + l.error().message, l.error().err};
    links.push_back(std::move(*l));
  }
  for (auto& l : links) py_host_links_.push_back(std::move(l));
  py_host_wide_.insert(*idx);
  spdlog::info("python: hooked CPython {} at {} for every process that runs it (_PyEval_EvalFrameDefault @0x{:x})",
               in.version_str(), in.path, in.eval_offset);
  update_python_states();
  return {};
}

Result<void> Engine::attach_python_pid(int pid, size_t layout, const std::string& file, bool eval, bool per_call) {
  const auto& in = py_layouts_[layout];
  plan::AttachPoint a;
  a.binary = file;
  a.pid = pid;
  std::vector<Link> links;
  auto add = [&](plan::Role role, uint64_t offset, uint32_t cookie) -> Result<void> {
    a.role = role;
    a.offset = offset;
    a.cookie = cookie;
    auto l = attach_point(a);
    if (!l) return Error{"python: " + l.error().message, l.error().err};
    links.push_back(std::move(*l));
    return {};
  };
  if (eval) {
    if (auto r = add(plan::Role::PyEntry, in.eval_offset, static_cast<uint32_t>(layout)); !r) return r;
    if (auto r = add(plan::Role::PyExit, in.eval_offset, static_cast<uint32_t>(layout)); !r) return r;
  }
  if (per_call) {
    if (!in.call_sites)
      return Error{"python: pid " + std::to_string(pid) + ": 'mechanism: call' is not available for " + in.path +
                   " (CPython " + in.version_str() + "): " + in.call_error};
    for (size_t i = 0; i < in.call_sites->resume.size(); ++i)
      if (auto r = add(plan::Role::PyResume, in.call_sites->resume[i].offset, static_cast<uint32_t>(layout | (i << 8))); !r)
        return r;
    if (auto r = add(plan::Role::PyClear, in.call_sites->clear.offset, static_cast<uint32_t>(layout)); !r) return r;
  }
  py_pid_links_[pid] = std::move(links);
  spdlog::info("python: hooked pid {} (CPython {}, {}){}", pid, in.version_str(), file,
               per_call ? " with the per-call mechanism (" + std::to_string(in.call_sites->resume.size()) +
                              " RESUME sites, frame clear)"
                        : "");
  return {};
}

Result<python::Interpreter> Engine::inspect_cached(const std::string& file) {
  // Reading an interpreter (symbols, opcode table, decoding) takes tens of milliseconds:
  // once per file (device, inode, size, mtime), not once per process.
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return python::inspect(file);
  const auto key = std::make_tuple(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                                   static_cast<uint64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec),
                                   static_cast<int64_t>(st.st_mtim.tv_nsec));
  auto it = py_inspected_.find(key);
  if (it == py_inspected_.end()) {
    auto in = python::inspect(file);
    if (!in) return in.error();
    it = py_inspected_.emplace(key, std::move(*in)).first;
  }
  python::Interpreter in = it->second;
  // The same file may be reached through another path (another container's root): the
  // caller attaches through this one.
  in.path = file;
  return in;
}

size_t Engine::rescan_python(std::mutex* mu) {
  if (plan_.py_targets.empty()) return 0;
  // Without the lock: which processes to hook, their interpreters read and checked.
  struct Candidate {
    python::PyProcess proc;
    python::Interpreter in;
    bool eval, per_call;
  };
  std::vector<Candidate> todo;
  auto procs = python::scan_processes();
  static_assert(INSA_MAX_PY_TARGETS <= 32, "py_pid_targets masks are __u32");
  for (const auto& proc : procs) {
    if (py_pid_links_.count(proc.pid) || py_pid_refused_.count(proc.pid)) continue;
    bool eval = false, per_call = false;
    uint32_t mask = 0;  // the targets of the probes that select this process
    for (const auto& pp : plan_.probes)
      if (plan::python_matches(pp, proc.pid, proc.script_path, proc.module)) {
        (pp.python->per_call ? per_call : eval) = true;
        if (pp.py_target >= 0) mask |= 1u << pp.py_target;
      }
    if (!eval && !per_call) continue;
    // Before any hook of this process fires: its code objects match only these targets.
    uint32_t tgid = static_cast<uint32_t>(proc.pid);
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.py_pid_targets), &tgid, &mask, BPF_ANY) != 0)
      spdlog::warn("python: pid {}: cannot restrict its probes to its script ({}); it may match every probe's function",
                   proc.pid, std::strerror(errno));
    const std::string file = proc.host_path(proc.interpreter);
    if (py_refused_.count(file)) continue;
    auto in = inspect_cached(file);
    if (!in) {
      spdlog::error("python: pid {}: {}", proc.pid, in.error().message);
      py_refused_.insert(file);
      continue;
    }
    if (auto v = python::verify_live(proc.pid, *in, in->pie ? proc.interpreter_base : 0); !v) {
      spdlog::warn("python: {}", v.error().message);  // a process still starting: retried on the next scan
      continue;
    }
    todo.push_back({proc, std::move(*in), eval, per_call});
  }
  std::unique_lock<std::mutex> lock;
  if (mu) lock = std::unique_lock<std::mutex>(*mu);
  // The per-process hooks (and target masks) of processes gone are released.
  for (auto it = py_pid_links_.begin(); it != py_pid_links_.end();) {
    bool alive = std::any_of(procs.begin(), procs.end(), [&](const auto& p) { return p.pid == it->first; });
    if (!alive) {
      uint32_t tgid = static_cast<uint32_t>(it->first);
      bpf_map_delete_elem(bpf_map__fd(skel_->maps.py_pid_targets), &tgid);
    }
    it = alive ? std::next(it) : py_pid_links_.erase(it);
  }
  size_t hooked = 0;
  for (auto& c : todo) {
    auto idx = py_layout(c.in);
    if (!idx) {
      spdlog::error("{}", idx.error().message);
      continue;
    }
    // A file hooked host-wide already sees this process's frame entries.
    if (py_host_wide_.count(*idx)) c.eval = false;
    if (!c.eval && !c.per_call) continue;
    if (auto r = attach_python_pid(c.proc.pid, *idx, c.in.path, c.eval, c.per_call); !r) {
      spdlog::error("{}", r.error().message);
      py_pid_refused_.insert(c.proc.pid);
      continue;
    }
    ++hooked;
  }
  update_python_states();
  return hooked;
}

void Engine::update_python_states() {
  const bool any = !py_host_wide_.empty() || !py_pid_links_.empty();
  size_t points = py_host_links_.size();
  for (const auto& [pid, links] : py_pid_links_) points += links.size();
  for (size_t i = 0; i < plan_.probes.size(); ++i) {
    const auto& pp = plan_.probes[i];
    if (!pp.python) continue;
    auto& st = states_[i];
    st.attached = any;
    st.waiting = !any;
    st.points_attached = points;
    st.error = any ? "" : pp.mark.str() + ": probe '" + pp.name + "': no process runs " +
                              (pp.python->script.empty() ? "module " + pp.python->module : pp.python->script) +
                              " yet; it is hooked when one starts (within a second), or from its start when "
                              "python.interpreter names its interpreter";
  }
}

bool Engine::wants_exec() const {
  if (!config_) return false;
  return std::any_of(plan_.probes.begin(), plan_.probes.end(),
                     [](const plan::ProbePlan& pp) { return !pp.python && (pp.tracked || pp.per_process() || !pp.own_path.empty()); });
}

void Engine::exec_seen(uint32_t tgid, uint64_t dev, uint64_t ino) {
  if (!config_) return;
  // Only processes a native probe may target: its host file, or its path in a container.
  const int pid = static_cast<int>(tgid);
  std::string exe;
  for (size_t i = 0; i < plan_.probes.size(); ++i) {
    const auto& pp = plan_.probes[i];
    if (pp.python || (!pp.tracked && !pp.per_process())) continue;
    if (pp.pid > 0 && pp.pid != pid) continue;
    if ((pp.tracked || pp.select) && pp.host_file && probe_files_[i] == std::make_pair(dev, ino)) {
      pending_execs_.insert(pid);
      return;
    }
    if (pp.own_path.empty()) continue;
    if (exe.empty()) exe = process::process_exe(pid);
    if (exe == pp.own_path) {
      pending_execs_.insert(pid);
      return;
    }
  }
}

std::vector<bpf_map*> Engine::series_maps() const {
  // insa_key and insa_span_key both begin with the series id.
  return {skel_->maps.counters, skel_->maps.histograms, skel_->maps.gauges, skel_->maps.spans};
}

size_t Engine::delete_series(const std::map<uint32_t, uint32_t>& metric_of) {
  if (metric_of.empty()) return 0;
  const reader::MapFds fds = map_fds();
  size_t deleted = 0;
  for (bpf_map* m : series_maps()) {
    const int fd = bpf_map__fd(m);
    const bool aggregation = m != skel_->maps.spans;  // keyed by insa_key, under a quota
    const size_t ksz = bpf_map__key_size(m);
    // Collect first: deleting while walking a hash map restarts the walk.
    std::vector<uint8_t> keys, key(ksz), next(ksz);
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
      uint32_t series;
      std::memcpy(&series, next.data(), sizeof series);
      if (metric_of.count(series)) keys.insert(keys.end(), next.begin(), next.end());
      key.swap(next);
      prev = key.data();
    }
    for (size_t off = 0; off < keys.size(); off += ksz) {
      if (bpf_map_delete_elem(fd, keys.data() + off) != 0) continue;
      ++deleted;
      if (!aggregation) continue;
      insa_key k;
      std::memcpy(&k, keys.data() + off, sizeof k);
      reader::release_quota(fds, metric_of.at(k.series), k);
    }
  }
  return deleted;
}

Result<void> Engine::write_spec(uint32_t index, const insa_probe_spec& spec) {
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.specs), &index, &spec, BPF_ANY))
    return Error::from_errno("cannot write probe spec " + std::to_string(index));
  return {};
}

Result<void> Engine::zero_stats(uint32_t index) {
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return Error{"cannot count the possible CPUs", -ncpus};
  // A per-CPU array takes one value per possible CPU, each rounded up to 8 bytes.
  std::vector<uint8_t> zero(static_cast<size_t>(ncpus) * ((sizeof(insa_probe_stats) + 7) & ~size_t{7}), 0);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.stats), &index, zero.data(), BPF_ANY))
    return Error::from_errno("cannot reset the statistics of probe spec " + std::to_string(index));
  return {};
}

namespace {

/// Whether /proc/PID/maps maps one of `files` (device, inode).
bool maps_any(int pid, const std::set<std::pair<uint64_t, uint64_t>>& files) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, off, mdev;
    uint64_t ino = 0;
    if (!(in >> range >> perms >> off >> mdev >> ino) || ino == 0) continue;
    auto colon = mdev.find(':');
    if (colon == std::string::npos) continue;
    const uint64_t dev = makedev(std::stoul(mdev.substr(0, colon), nullptr, 16), std::stoul(mdev.substr(colon + 1), nullptr, 16));
    if (files.count({dev, ino})) return true;
  }
  return false;
}

/// Where `path` runs __cxa_begin_catch: its own copy (libstdc++, -static-libstdc++), else
/// its PLT stub of it (0: neither).
uint64_t catch_offset_of(const std::string& path) {
  auto f = elf::ElfFile::open(path);
  if (!f) return 0;
  if (auto sym = f->find_function("__cxa_begin_catch")) return sym->file_offset;
  auto stub = elf::plt_stub_offset(*f, "__cxa_begin_catch");
  return stub ? *stub : 0;
}

bool same_catch_point(const plan::AttachPoint& a, const plan::AttachPoint& b) {
  return a.binary == b.binary && a.offset == b.offset && a.dev == b.dev && a.ino == b.ino;
}

}  // namespace

size_t Engine::rescan_files(std::mutex* mu) {
  if (!config_) return 0;
  pending_execs_.clear();
  bool any = false;
  // Tracked probes on shared libraries: their processes are those that map the file.
  std::set<std::pair<uint64_t, uint64_t>> tracked_libs;
  for (size_t i = 0; i < plan_.probes.size(); ++i) {
    const auto& pp = plan_.probes[i];
    if (pp.python) continue;
    any = any || pp.tracked || !pp.own_path.empty() || pp.per_process();
    if (pp.tracked && !pp.per_process() && pp.pid <= 0 && probe_files_[i].second != 0 && pp.library)
      tracked_libs.insert(probe_files_[i]);
  }
  if (!any) return 0;
  // Files whose own catch hook (a -static-libstdc++ copy, or the PLT stub every catch in
  // that file calls) is attached file-wide from the start: their processes need no
  // per-process hook on libstdc++, whose late attachment (from the exec event, while the
  // process already runs) would stall it for a moment.
  std::set<std::pair<uint64_t, uint64_t>> covered;
  for (const auto& c : plan_.catch_points) covered.insert({c.dev, c.ino});
  // Without the lock: the processes, what targets them, their files analysed.
  struct Todo {
    process::ExeProcess proc;
    std::vector<std::pair<size_t, plan::FilePlan>> probes;
    std::vector<plan::AttachPoint> catches;
  };
  std::vector<Todo> todo;
  const auto procs = process::scan_executables();
  for (const auto& proc : procs) {
    auto have = procs_.find(proc.pid);
    const bool same = have != procs_.end() && have->second.dev == proc.dev && have->second.ino == proc.ino;
    Todo t{proc, {}, {}};
    bool wants_catch = false, covers_self = false, remembered = false;
    // The container of the process, for probes with `select:` (read once, when needed).
    std::optional<std::pair<process::CgroupInfo, process::ContainerLabels>> where;
    auto selected = [&](const plan::ProbePlan& pp) {
      if (!pp.select) return true;
      if (!where) where.emplace(process::process_cgroup(proc.pid), process::container_labels(proc.pid));
      return process::selector_matches(*pp.select, where->first, where->second, proc.exe);
    };
    for (size_t i = 0; i < plan_.probes.size(); ++i) {
      const auto& pp = plan_.probes[i];
      if (pp.python || (pp.pid > 0 && pp.pid != proc.pid)) continue;
      bool targets = false;
      const bool own_file = probe_files_[i] == std::make_pair(proc.dev, proc.ino);
      // A library with select: the selected processes that map it.
      const bool maps_lib = pp.select && pp.host_file && pp.library && probe_files_[i].second != 0 &&
                            selected(pp) && maps_any(proc.pid, {probe_files_[i]});
      if (pp.select && pp.host_file && (own_file || maps_lib)) {
        // The host's file in a selected container (bind-mounted or the same image layer).
        if (!selected(pp)) continue;
        targets = true;
        if (!(same && have->second.probes.count(i))) {
          plan::FilePlan fp{pp, plan_.specs[i].entry_sp_delta};
          t.probes.emplace_back(i, std::move(fp));
          if (pp.tracked && (!same || have->second.catch_links.empty())) {
            auto off = catch_offsets_.find(probe_files_[i]);
            if (off == catch_offsets_.end()) off = catch_offsets_.emplace(probe_files_[i], catch_offset_of(pp.binary)).first;
            if (off->second) {
              plan::AttachPoint c = pp.points.front();
              c.role = plan::Role::Catch;
              c.offset = off->second;
              c.cookie = 0;
              c.probe = -1;
              c.pid = proc.pid;
              t.catches.push_back(c);
            }
          }
        }
        if (own_file && catch_offsets_.count(probe_files_[i]) && catch_offsets_[probe_files_[i]]) covers_self = true;
      } else if (!pp.own_path.empty() && !proc.root.empty() && proc.exe == pp.own_path && !own_file) {
        if (!selected(pp)) continue;
        targets = true;
        if (file_refused_.count({proc.pid, i}) || (same && have->second.probes.count(i))) {
          // attached already (or refused)
        } else {
          const std::string file = proc.host_path();
          struct stat st {};
          if (::stat(file.c_str(), &st) != 0) continue;  // gone meanwhile
          const auto key = std::make_tuple(uint64_t{st.st_dev}, uint64_t{st.st_ino}, uint64_t(st.st_size),
                                           int64_t{st.st_mtim.tv_sec}, i);
          auto it = analysed_.find(key);
          if (it == analysed_.end()) {
            FileAnalysis a;
            auto fp = plan::plan_probe_file(*config_, i, file);
            if (fp)
              a.plan = std::move(*fp);
            else
              a.error = fp.error().message;
            if (pp.tracked) a.catch_offset = catch_offset_of(file);
            it = analysed_.emplace(key, std::move(a)).first;
          }
          if (!it->second.plan) {
            spdlog::error("{}: probe '{}': pid {} ({}): {}", pp.mark.str(), pp.name, proc.pid, file, it->second.error);
            file_refused_.insert({proc.pid, i});
          } else if (delta_known_[i] && it->second.plan->entry_sp_delta != plan_.specs[i].entry_sp_delta) {
            spdlog::error("{}: probe '{}': pid {} ({}): this build's entry probe sits {} bytes of stack from the "
                          "function's entry, the probe's other files' {}; one probe has one such delta: give "
                          "this build its own probe (pid: {})",
                          pp.mark.str(), pp.name, proc.pid, file, it->second.plan->entry_sp_delta,
                          plan_.specs[i].entry_sp_delta, proc.pid);
            file_refused_.insert({proc.pid, i});
          } else {
            t.probes.emplace_back(i, *it->second.plan);
            if (it->second.catch_offset) covers_self = true;
            if (it->second.catch_offset && (!same || have->second.catch_links.empty())) {
              plan::AttachPoint c;
              c.role = plan::Role::Catch;
              c.binary = file;
              c.offset = it->second.catch_offset;
              c.pid = proc.pid;
              c.dev = st.st_dev;
              c.ino = st.st_ino;
              t.catches.push_back(c);
            }
          }
        }
      } else if (pp.host_file && !pp.select && own_file) {
        targets = true;
        if (covered.count(probe_files_[i])) covers_self = true;
      } else if (pp.pid > 0 && pp.pid == proc.pid) {
        targets = true;
      }
      wants_catch = wants_catch || (targets && pp.tracked);
      // $container/$pod/$namespace of its series stay known after it exits.
      if (targets && !remembered) {
        process::remember_container_labels(proc.pid);
        remembered = true;
      }
    }
    // Probes in the executable itself, whose catches its own hook sees.
    // (Catches in a tracked library go through that library's own hook.)
    if (covers_self) wants_catch = false;
    if (!wants_catch && !covers_self && !tracked_libs.empty() && maps_any(proc.pid, tracked_libs)) wants_catch = true;
    if (wants_catch && !(same && !have->second.catch_links.empty())) {
      // The libstdc++ this process maps, else (just exec'd: not mapped yet) the one its
      // loader will find; the uprobe with a pid filter is placed when it maps it.
      std::string lib = process::mapped_file(
          proc.pid, [](const std::string& p) { return process::is_library_file(p, "libstdc++.so.6"); });
      lib = lib.empty() ? process::find_library_in_root(proc.root, "libstdc++.so.6") : proc.root + lib;
      struct stat st {};
      if (!lib.empty() && ::stat(lib.c_str(), &st) == 0) {
        auto key = std::make_pair(uint64_t{st.st_dev}, uint64_t{st.st_ino});
        auto off = catch_offsets_.find(key);
        if (off == catch_offsets_.end()) off = catch_offsets_.emplace(key, catch_offset_of(lib)).first;
        if (off->second) {
          plan::AttachPoint c;
          c.role = plan::Role::Catch;
          c.binary = lib;
          c.offset = off->second;
          c.pid = proc.pid;
          c.dev = key.first;
          c.ino = key.second;
          t.catches.push_back(c);
        }
      }
    }
    if (!t.probes.empty() || !t.catches.empty()) todo.push_back(std::move(t));
  }
  std::unique_lock<std::mutex> lock;
  if (mu) lock = std::unique_lock<std::mutex>(*mu);
  // Processes gone, or running another file now: their links go.
  for (auto it = procs_.begin(); it != procs_.end();) {
    auto p = std::find_if(procs.begin(), procs.end(), [&](const auto& x) { return x.pid == it->first; });
    if (p != procs.end() && p->dev == it->second.dev && p->ino == it->second.ino) {
      ++it;
      continue;
    }
    spdlog::info("pid {} exited (or exec'd another file): releasing its {} container probes and {} catch hooks",
                 it->first, it->second.probes.size(), it->second.catch_links.size());
    it = procs_.erase(it);
  }
  for (auto it = file_refused_.begin(); it != file_refused_.end();)
    it = std::any_of(procs.begin(), procs.end(), [&](const auto& x) { return x.pid == it->first; })
             ? std::next(it)
             : file_refused_.erase(it);
  size_t attached = 0;
  for (auto& t : todo) {
    auto& pl = procs_[t.proc.pid];
    pl.dev = t.proc.dev;
    pl.ino = t.proc.ino;
    for (auto& [i, fp] : t.probes) {
      const auto& pp = plan_.probes[i];
      if (!delta_known_[i]) {
        plan_.specs[i].entry_sp_delta = fp.entry_sp_delta;
        uint32_t key = static_cast<uint32_t>(i);
        if (bpf_map_update_elem(bpf_map__fd(skel_->maps.specs), &key, &plan_.specs[i], BPF_ANY) != 0) {
          spdlog::error("probe '{}': cannot update its spec: {}", pp.name, std::strerror(errno));
          continue;
        }
        delta_known_[i] = true;
      }
      std::vector<Link> links;
      bool ok = true;
      for (auto point : fp.probe.points) {
        point.pid = t.proc.pid;
        auto l = attach_point(point);
        if (!l) {
          spdlog::error("{}: probe '{}': pid {}: {}", pp.mark.str(), pp.name, t.proc.pid, l.error().message);
          file_refused_.insert({t.proc.pid, i});
          ok = false;
          break;
        }
        links.push_back(std::move(*l));
      }
      if (!ok) continue;
      spdlog::info("probe '{}' attached to pid {} in a container: {} ({}, {} points)", pp.name, t.proc.pid,
                   t.proc.host_path(), fp.probe.target, links.size());
      pl.probes[i] = std::move(links);
      ++attached;
    }
    for (const auto& c : t.catches) {
      auto l = attach_point(c);
      if (!l) {
        spdlog::warn("C++ exception tracking off for pid {}: {}", t.proc.pid, l.error().message);
        continue;
      }
      spdlog::info("C++ exceptions: catch hook for pid {} on {} __cxa_begin_catch @0x{:x}", t.proc.pid, c.binary,
                   c.offset);
      pl.catch_links.push_back(std::move(*l));
    }
    if (pl.probes.empty() && pl.catch_links.empty()) procs_.erase(t.proc.pid);
  }
  update_file_states();
  return attached;
}

void Engine::update_file_states() {
  for (size_t i = 0; i < plan_.probes.size(); ++i) {
    const auto& pp = plan_.probes[i];
    if (pp.python || !pp.per_process()) continue;
    size_t points = 0, n = 0;
    for (const auto& [pid, pl] : procs_)
      if (auto it = pl.probes.find(i); it != pl.probes.end()) {
        points += it->second.size();
        ++n;
      }
    auto& st = states_[i];
    st.attached = n > 0;
    st.waiting = n == 0;
    st.points_attached = points;
    st.error = n ? ""
               : pp.host_file
                   ? pp.mark.str() + ": probe '" + pp.name + "': no process of the selected containers runs " +
                         pp.binary + " yet; it is attached when one starts"
                   : pp.mark.str() + ": probe '" + pp.name + "': " + pp.own_path +
                         " is not on this host and no container runs it yet; it is attached when one starts";
  }
}

Result<void> Engine::stage_reload(plan::Plan fresh, plan::ReloadDiff diff) {
  abort_reload();
  auto p = std::make_unique<PendingReload>();
  p->plan = std::move(fresh);
  p->diff = std::move(diff);
  const size_t n = p->plan.probes.size();
  p->links.resize(n);
  p->states.resize(n);
  p->probe_files.resize(n);
  pending_ = std::move(p);
  auto& pr = *pending_;
  // The ids new and changed probes count into start empty.
  std::map<uint32_t, uint32_t> fresh_ids;  // id → metric (same indices: rebase_plan kept the budget)
  for (size_t id = 0; id < pr.plan.series.size(); ++id) {
    const auto& s = pr.plan.series[id];
    if (!s.unused && s.probe >= 0 && pr.diff.kept[static_cast<size_t>(s.probe)] < 0)
      fresh_ids.emplace(static_cast<uint32_t>(id), static_cast<uint32_t>(s.metric));
  }
  delete_series(fresh_ids);
  for (size_t j = 0; j < n; ++j) {
    const auto& pp = pr.plan.probes[j];
    const int i = pr.diff.kept[j];
    if (i >= 0) {
      // Continues untouched; its links move over at commit. One that failed to attach
      // (its file was missing) is tried again, with the same spec.
      pr.states[j] = states_[static_cast<size_t>(i)];
      pr.probe_files[j] = probe_files_[static_cast<size_t>(i)];
      if (pp.python || states_[static_cast<size_t>(i)].attached) continue;
    } else {
      auto z = zero_stats(pp.cookie);
      if (z) z = write_spec(pp.cookie, pr.plan.specs[pp.cookie]);
      if (!z) {
        abort_reload();
        return z.error();
      }
      pr.new_specs.push_back(pp.cookie);
      if (pp.python) continue;  // hooked per interpreter (rescan_python)
    }
    auto links = attach_points(pp);
    if (!links) {
      spdlog::error("{}", links.error().message);
      pr.states[j] = ProbeState{false, 0, links.error().message};
      continue;
    }
    pr.states[j] = ProbeState{true, links->size(), ""};
    pr.probe_files[j] = analysed_file(pp);
    pr.links[j] = std::move(*links);
    spdlog::info("probe '{}' attached: {} ({} points, {} return sites)", pp.name, pp.target,
                 pr.states[j].points_attached, pp.exit_sites);
  }
  if (pr.plan.needs_catch && pr.plan.catch_points.empty())
    spdlog::warn("C++ exception tracking off: no __cxa_begin_catch found (no libstdc++ on this host?)");
  for (const auto& cp : pr.plan.catch_points) {
    if (std::any_of(catch_hooked_.begin(), catch_hooked_.end(), [&](const auto& h) { return same_catch_point(h, cp); }))
      continue;
    auto l = attach_point(cp);
    if (!l) {
      spdlog::warn("C++ exception tracking off for {}: {}", cp.binary, l.error().message);
      continue;
    }
    spdlog::info("C++ exceptions: catch hook on {} __cxa_begin_catch @0x{:x}", cp.binary, cp.offset);
    pr.catch_links.push_back(std::move(*l));
    pr.catch_points.push_back(cp);
  }
  return {};
}

void Engine::commit_reload(const config::Config* cfg) {
  if (!pending_) return;
  auto& pr = *pending_;
  const size_t n = pr.plan.probes.size();
  // Per probe: whether its entry stack delta is known (kept probes keep theirs). Configs
  // with per-process probes reload whole (plan::rebase_plan), so no per-process links
  // are indexed by the old numbering here.
  std::vector<bool> delta(n);
  for (size_t j = 0; j < n; ++j) {
    const int i = pr.diff.kept[j];
    const auto& pp = pr.plan.probes[j];
    delta[j] = i >= 0 && static_cast<size_t>(i) < delta_known_.size() ? delta_known_[static_cast<size_t>(i)]
                                                                       : (pp.host_file || pp.python);
  }
  delta_known_ = std::move(delta);
  config_ = cfg;
  std::vector<std::vector<Link>> links(n);
  for (size_t j = 0; j < n; ++j) {
    const int i = pr.diff.kept[j];
    if (i >= 0 && pr.links[j].empty())
      links[j] = std::move(links_[static_cast<size_t>(i)]);
    else
      links[j] = std::move(pr.links[j]);
  }
  for (size_t i : pr.diff.removed) pr.dropped.push_back(std::move(links_[i]));
  // Per-process links (a probe's absolute path run in containers) are renumbered like
  // the probes; those of removed or changed probes go at finish_reload (a changed probe
  // is attached per process again by the next rescan_files). File analyses are per
  // probe index: forgotten.
  std::vector<int> new_index(links_.size(), -1);
  for (size_t j = 0; j < n; ++j)
    if (pr.diff.kept[j] >= 0 && static_cast<size_t>(pr.diff.kept[j]) < new_index.size())
      new_index[static_cast<size_t>(pr.diff.kept[j])] = static_cast<int>(j);
  for (auto& [pid, pl] : procs_) {
    std::map<size_t, std::vector<Link>> renumbered;
    for (auto& [i, l] : pl.probes) {
      if (i < new_index.size() && new_index[i] >= 0)
        renumbered[static_cast<size_t>(new_index[i])] = std::move(l);
      else
        pr.dropped.push_back(std::move(l));
    }
    pl.probes = std::move(renumbered);
  }
  analysed_.clear();
  file_refused_.clear();
  // Catch hooks: the new plan's, kept or new; the others are released at finish.
  std::vector<Link> catch_links;
  std::vector<plan::AttachPoint> hooked;
  for (size_t k = 0; k < catch_hooked_.size(); ++k) {
    const bool wanted = std::any_of(pr.plan.catch_points.begin(), pr.plan.catch_points.end(),
                                    [&](const auto& cp) { return same_catch_point(cp, catch_hooked_[k]); });
    if (wanted) {
      catch_links.push_back(std::move(catch_links_[k]));
      hooked.push_back(catch_hooked_[k]);
    } else {
      pr.dropped_catch.push_back(std::move(catch_links_[k]));
    }
  }
  for (size_t k = 0; k < pr.catch_links.size(); ++k) {
    catch_links.push_back(std::move(pr.catch_links[k]));
    hooked.push_back(pr.catch_points[k]);
  }
  catch_links_ = std::move(catch_links);
  catch_hooked_ = std::move(hooked);
  // The metric of each freed series, which only the outgoing plan knows: its keys take
  // their metric's quota slots until finish_reload deletes them.
  for (uint32_t id : pr.diff.freed_series)
    if (id < plan_.series.size()) pr.freed.emplace(id, static_cast<uint32_t>(plan_.series[id].metric));
  plan_ = std::move(pr.plan);
  links_ = std::move(links);
  states_ = std::move(pr.states);
  probe_files_ = std::move(pr.probe_files);
  pr.new_specs.clear();  // theirs now
  update_python_states();
}

size_t Engine::finish_reload() {
  if (!pending_) return 0;
  auto& pr = *pending_;
  // Detach first (the kernel waits for running handlers), then clear what they updated.
  pr.dropped.clear();
  pr.dropped_catch.clear();
  for (uint32_t c : pr.diff.freed_specs)
    if (auto r = write_spec(c, insa_probe_spec{}); !r) spdlog::warn("reload: {}", r.error().message);
  const size_t keys = delete_series(pr.freed);
  spdlog::debug("reload: {} probes removed or changed, {} series keys deleted", pr.diff.removed.size(), keys);
  pending_.reset();
  return keys;
}

void Engine::abort_reload() {
  if (!pending_) return;
  auto& pr = *pending_;
  pr.links.clear();
  pr.catch_links.clear();
  for (uint32_t c : pr.new_specs) (void)write_spec(c, insa_probe_spec{});
  pending_.reset();
}

int Engine::poll_exits(int timeout_ms) { return exits_ ? ring_buffer__poll(exits_.get(), timeout_ms) : 0; }

int Engine::counters_fd() const { return bpf_map__fd(skel_->maps.counters); }
int Engine::gauges_fd() const { return bpf_map__fd(skel_->maps.gauges); }
int Engine::stats_fd() const { return bpf_map__fd(skel_->maps.stats); }

reader::MapFds Engine::map_fds() const {
  reader::MapFds m;
  m.counters = bpf_map__fd(skel_->maps.counters);
  m.histograms = bpf_map__fd(skel_->maps.histograms);
  m.gauges = bpf_map__fd(skel_->maps.gauges);
  m.stats = bpf_map__fd(skel_->maps.stats);
  m.metric_stats = bpf_map__fd(skel_->maps.metric_stats);
  m.lost = bpf_map__fd(skel_->maps.lost);
  m.spans = bpf_map__fd(skel_->maps.spans);
  m.nprobes = static_cast<uint32_t>(plan_.specs.size());
  m.nmetrics = static_cast<uint32_t>(plan_.budget.metrics.size());
  m.quotas = static_cast<insa_quota*>(quotas_.addr);
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    const std::string name = bpf_map__name(map);
    if (name.find('.') == std::string::npos) m.all.emplace_back(name, bpf_map__fd(map));  // not .rodata/.bss
  }
  return m;
}

}  // namespace insa::attach
