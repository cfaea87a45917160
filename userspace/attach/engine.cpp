// SPDX-License-Identifier: Apache-2.0
#include "attach/engine.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>

#include "insa_probes.skel.h"
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

std::string privilege_hint(int e) {
  if (e == EPERM || e == EACCES)
    return " (run as root, or grant CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)";
  return "";
}

}  // namespace

void install_libbpf_logger() { libbpf_set_print(libbpf_print); }

Engine::Engine(plan::Plan plan, std::unique_ptr<::insa_probes, SkeletonDeleter> skel)
    : plan_(std::move(plan)), skel_(std::move(skel)) {
  links_.resize(plan_.probes.size());
  states_.resize(plan_.probes.size());
}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::load(const plan::Plan& plan, const EngineOptions& opts) {
  std::unique_ptr<::insa_probes, SkeletonDeleter> skel(insa_probes__open());
  if (!skel) return Error::from_errno("cannot open the BPF object");
  bpf_map__set_max_entries(skel->maps.counters, opts.max_series);
  bpf_map__set_max_entries(skel->maps.gauges, opts.max_series);
  skel->rodata->py_ntargets = static_cast<uint32_t>(plan.py_targets.size());
  if (int err = insa_probes__load(skel.get())) {
    return Error{"cannot load the BPF programs: " + std::string(strerror(-err)) + privilege_hint(-err) +
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
  return std::unique_ptr<Engine>(new Engine(plan, std::move(skel)));
}

Result<Link> Engine::attach_point(const plan::AttachPoint& p) {
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
      l = bpf_program__attach_uprobe_opts(prog, p.pid, p.binary.c_str(), p.offset, &o);
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

Result<void> Engine::attach_probe(size_t i) {
  const auto& pp = plan_.probes[i];
  if (pp.python) {
    update_python_states();
    return states_[i].attached ? Result<void>{} : Result<void>{Error{states_[i].error}};
  }
  std::vector<Link> links;
  for (const auto& point : pp.points) {
    auto l = attach_point(point);
    if (!l) {
      states_[i].attached = false;
      states_[i].error = pp.mark.str() + ": probe '" + pp.name + "': " + l.error().message;
      return Error{states_[i].error, l.error().err};
    }
    links.push_back(std::move(*l));
  }
  links_[i] = std::move(links);
  states_[i] = ProbeState{true, links_[i].size(), ""};
  return {};
}

Result<void> Engine::replace_probe(size_t i, const plan::ProbePlan& pp, const insa_probe_spec& spec) {
  uint32_t key = static_cast<uint32_t>(i);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.specs), &key, &spec, BPF_ANY))
    return Error::from_errno("cannot update the spec of probe '" + pp.name + "'");
  plan_.specs[i] = spec;
  for (auto& l : links_[i]) retired_links_.push_back(std::move(l));
  links_[i].clear();
  plan_.probes[i] = pp;
  return attach_probe(i);
}

void Engine::detach_probe(size_t i) {
  links_[i].clear();
  states_[i].attached = false;
  states_[i].points_attached = 0;
}

size_t Engine::attach_all() {
  if (catch_links_.empty()) {
    // C++ exceptions: a tracked call unwound by a throw ends at the catch.
    if (plan_.needs_catch && plan_.catch_points.empty())
      spdlog::warn("C++ exception tracking off: no __cxa_begin_catch found (no libstdc++ on this host?)");
    for (const auto& p : plan_.catch_points) {
      auto l = attach_point(p);
      if (l) {
        catch_links_.push_back(std::move(*l));
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
    if (r) {
      ++ok;
      spdlog::info("probe '{}' attached: {} ({} points, {} return sites)", plan_.probes[i].name,
                   plan_.probes[i].target, states_[i].points_attached, plan_.probes[i].exit_sites);
    } else {
      spdlog::error("{}", r.error().message);
    }
  }
  return ok;
}

Result<void> Engine::watch_exits(std::function<void(const ExitEvent&)> cb) {
  exit_cb_ = std::move(cb);
  bpf_link* l = bpf_program__attach(skel_->progs.insa_task_exit);
  if (!l) return Error::from_errno("cannot attach the sched_process_exit tracepoint");
  shared_links_.emplace_back(l);
  auto handler = [](void* ctx, void* data, size_t size) -> int {
    if (size < sizeof(insa_exit_event)) return 0;
    auto* self = static_cast<Engine*>(ctx);
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

Result<void> Engine::attach_interpreter(const python::Interpreter& in) {
  if (std::find(py_hooked_.begin(), py_hooked_.end(), in.path) != py_hooked_.end()) return {};
  if (py_hooked_.size() >= INSA_MAX_PY_LAYOUTS)
    return Error{"python: more than " + std::to_string(INSA_MAX_PY_LAYOUTS) + " interpreter files; not hooking " + in.path};
  uint32_t idx = static_cast<uint32_t>(py_hooked_.size());
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.py_layouts), &idx, &in.layout, BPF_ANY))
    return Error::from_errno("cannot fill the python layout map");
  plan::AttachPoint a;
  a.role = plan::Role::PyEntry;
  a.binary = in.path;
  a.offset = in.eval_offset;
  a.cookie = idx;
  auto entry = attach_point(a);
  if (!entry) return Error{"python: " + entry.error().message, entry.error().err};
  a.role = plan::Role::PyExit;
  auto ret = attach_point(a);
  if (!ret) return Error{"python: " + ret.error().message, ret.error().err};
  py_links_.push_back(std::move(*entry));
  py_links_.push_back(std::move(*ret));
  py_hooked_.push_back(in.path);
  py_interps_.push_back(in);
  spdlog::info("python: hooked CPython {} at {} (_PyEval_EvalFrameDefault @0x{:x})", in.version_str(), in.path,
               in.eval_offset);
  update_python_states();
  return {};
}

size_t Engine::rescan_python() {
  if (plan_.py_targets.empty()) return 0;
  size_t hooked = 0;
  auto procs = python::scan_processes();
  // The per-call mechanism is attached per process: release the links of processes gone.
  for (auto it = py_call_links_.begin(); it != py_call_links_.end();) {
    bool alive = std::any_of(procs.begin(), procs.end(), [&](const auto& p) { return p.pid == it->first; });
    it = alive ? std::next(it) : py_call_links_.erase(it);
  }
  for (const auto& proc : procs) {
    bool wanted = false, per_call = false;
    for (const auto& pp : plan_.probes)
      if (plan::python_matches(pp, proc.pid, proc.script_path, proc.module)) {
        wanted = true;
        per_call |= pp.python->per_call;
      }
    if (!wanted) continue;
    auto hooked_at = std::find(py_hooked_.begin(), py_hooked_.end(), proc.interpreter);
    if (hooked_at != py_hooked_.end()) {
      if (per_call) attach_per_call(proc.pid, static_cast<size_t>(hooked_at - py_hooked_.begin()));
      continue;
    }
    if (py_refused_.count(proc.interpreter)) continue;
    auto in = python::inspect(proc.interpreter);
    if (!in) {
      spdlog::error("python: pid {}: {}", proc.pid, in.error().message);
      py_refused_.insert(proc.interpreter);
      continue;
    }
    if (auto v = python::verify_live(proc.pid, *in, in->pie ? proc.interpreter_base : 0); !v) {
      spdlog::warn("python: {}", v.error().message);  // retried on the next scan
      continue;
    }
    if (auto r = attach_interpreter(*in); !r) {
      spdlog::error("{}", r.error().message);
      py_refused_.insert(proc.interpreter);
      continue;
    }
    ++hooked;
    if (per_call) attach_per_call(proc.pid, py_hooked_.size() - 1);
  }
  update_python_states();
  return hooked;
}

void Engine::attach_per_call(int pid, size_t layout) {
  if (py_call_links_.count(pid) || py_call_refused_.count(pid)) return;
  const auto& in = py_interps_[layout];
  if (!in.call_sites) {
    spdlog::error("python: pid {}: 'mechanism: call' is not available for {} (CPython {}): {}", pid, in.path,
                  in.version_str(), in.call_error);
    py_call_refused_.insert(pid);
    return;
  }
  std::vector<Link> links;
  plan::AttachPoint a;
  a.binary = in.path;
  a.pid = pid;
  a.role = plan::Role::PyResume;
  for (size_t i = 0; i < in.call_sites->resume.size(); ++i) {
    a.offset = in.call_sites->resume[i].offset;
    a.cookie = static_cast<uint32_t>(layout | (i << 8));
    auto l = attach_point(a);
    if (!l) {
      spdlog::error("python: pid {}: {}", pid, l.error().message);
      py_call_refused_.insert(pid);
      return;
    }
    links.push_back(std::move(*l));
  }
  a.role = plan::Role::PyClear;
  a.offset = in.call_sites->clear.offset;
  a.cookie = static_cast<uint32_t>(layout);
  auto l = attach_point(a);
  if (!l) {
    spdlog::error("python: pid {}: {}", pid, l.error().message);
    py_call_refused_.insert(pid);
    return;
  }
  links.push_back(std::move(*l));
  py_call_links_[pid] = std::move(links);
  spdlog::info("python: per-call mechanism on pid {} ({} RESUME site{}, frame clear @0x{:x})", pid,
               in.call_sites->resume.size(), in.call_sites->resume.size() == 1 ? "" : "s", in.call_sites->clear.offset);
}

void Engine::update_python_states() {
  for (size_t i = 0; i < plan_.probes.size(); ++i) {
    const auto& pp = plan_.probes[i];
    if (!pp.python) continue;
    auto& st = states_[i];
    st.attached = !py_hooked_.empty();
    st.points_attached = py_hooked_.size() * 2;
    st.error = st.attached ? "" : pp.mark.str() + ": probe '" + pp.name + "': no process runs " +
                                      (pp.python->script.empty() ? "module " + pp.python->module : pp.python->script) +
                                      " yet; its interpreter is hooked when one starts (or name it in python.interpreter)";
  }
}

int Engine::poll_exits(int timeout_ms) { return exits_ ? ring_buffer__poll(exits_.get(), timeout_ms) : 0; }

int Engine::counters_fd() const { return bpf_map__fd(skel_->maps.counters); }
int Engine::gauges_fd() const { return bpf_map__fd(skel_->maps.gauges); }
int Engine::stats_fd() const { return bpf_map__fd(skel_->maps.stats); }

}  // namespace insa::attach
