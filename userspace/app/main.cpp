// SPDX-License-Identifier: Apache-2.0
/// @file insa-exporter: CLI, signals and the wiring of the stages
/// (config → plan → engine → reader → collector → http).
#include <CLI/CLI.hpp>
#include <prometheus/text_serializer.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "app/agent.h"
#include "common/log_format.h"
#include "attach/engine.h"
#include "attach/plan.h"
#include "config/config.h"
#include "elf/elf_file.h"
#include "elf/describe.h"
#include "python/interp.h"
#include "python/procs.h"
#include "python/source.h"
#include "reader/map_reader.h"

using namespace insa;

namespace {

constexpr const char* kListTakes =
    "list-probes takes an ELF binary, a Python script, or the PID of a Python process (1234 or pid:1234)";

int fail_line(const std::string& message) {
  std::fprintf(stderr, "insa-exporter: %s\n", message.c_str());
  return 1;
}

/// "1234" or "pid:1234".
std::optional<int> pid_arg(const std::string& s) {
  std::string digits = s.rfind("pid:", 0) == 0 ? s.substr(4) : s;
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  int pid = std::stoi(digits);
  return pid > 0 ? std::optional<int>(pid) : std::nullopt;
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// A Python script: a *.py path, or a file whose first line is a python #! line.
bool is_python_script(const std::string& arg) {
  if (arg.size() > 3 && arg.compare(arg.size() - 3, 3, ".py") == 0) return true;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(arg, ec)) return false;
  const std::string l = first_line(arg);
  return l.rfind("#!", 0) == 0 && l.find("python") != std::string::npos;
}

/// The interpreter a #! line names, `/usr/bin/env python3` looked up in PATH.
std::string shebang_interpreter(const std::string& shebang) {
  std::istringstream in(shebang.substr(2));
  std::string prog, arg;
  in >> prog >> arg;
  if (prog.size() < 4 || prog.compare(prog.size() - 4, 4, "/env") != 0) return prog;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string cand = (dir.empty() ? "." : dir) + "/" + arg;
    if (access(cand.c_str(), X_OK) == 0) return cand;
  }
  return arg;
}

/// "/usr/bin/python3.11 (CPython 3.11.2)", or the reason it cannot be probed. `shown`
/// is the path as the user knows it, `path` where this process can read it.
std::string describe_interpreter(const std::string& shown, const std::string& path) {
  if (first_line(path).rfind("#!", 0) == 0)
    return shown +
           " is a wrapper script (a pyenv shim?), not the interpreter; the exporter finds the interpreter "
           "from the process running the script";
  auto in = python::inspect(path);
  if (!in) {
    std::string why = in.error().message;
    if (shown != path && why.rfind(path, 0) == 0) why = shown + why.substr(path.size());
    return why + " (python: probes cannot attach to it)";
  }
  std::string file = in->path;
  if (shown != path && file == path) file = shown;
  std::error_code ec;
  if (file == shown && std::filesystem::is_symlink(path, ec))
    file += " -> " + std::filesystem::canonical(path, ec).string();
  return file + " (CPython " + in->version_str() + ")";
}

/// "async def", "generator", ...: how the function runs.
std::string kind_of(const python::PyFunction& f) {
  if (f.is_async) return f.is_generator ? "async generator" : "async def";
  return f.is_generator ? "generator" : "def";
}

void print_python_functions(const std::vector<python::PyFunction>& funcs, const std::string& target,
                            const std::string& pid_note) {
  std::printf(
      "# probe one in probes.yaml with  python: {%s, function: QUALNAME}%s; its parameters are values "
      "$NAME, $NAME:len, $NAME:str\n",
      target.c_str(), pid_note.c_str());
  for (const auto& f : funcs) {
    std::string params;
    for (const auto& p : f.params) params += (params.empty() ? "" : ", ") + p;
    std::printf("%s %s(%s)  line %d\n", kind_of(f).c_str(), f.qualname.c_str(), params.c_str(), f.line);
  }
  if (funcs.empty()) std::printf("# no def or async def in this file\n");
}

std::string base_name(const std::string& p) { return p.substr(p.rfind('/') + 1); }

int list_python_script(const std::string& arg) {
  std::error_code ec;  // no working directory: the path as given
  const std::string path = std::filesystem::absolute(arg, ec).lexically_normal().string();
  auto funcs = python::scan_file(path);
  if (!funcs) return fail_line(funcs.error().message);
  std::printf("# %s: Python functions\n", path.c_str());
  const std::string shebang = first_line(path);
  if (shebang.rfind("#!", 0) == 0) {
    const std::string interp = shebang_interpreter(shebang);
    std::printf("# interpreter (%s): %s\n", shebang.c_str(), describe_interpreter(interp, interp).c_str());
  } else {
    std::printf("# interpreter: not named (no #! line); the exporter finds it from the process running the script\n");
  }
  print_python_functions(*funcs, "script: " + base_name(path), "");
  return 0;
}

int list_python_pid(int pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  struct stat st {};
  if (stat(proc.c_str(), &st) != 0) return fail_line("pid " + std::to_string(pid) + ": no such process; " + kListTakes);
  auto p = python::describe_process(pid);
  if (!p) {
    std::ifstream in(proc + "/cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.size() > 80) cmd = cmd.substr(0, 77) + "...";
    return fail_line("pid " + std::to_string(pid) + " is not a Python process (" +
                     (cmd.empty() ? std::string("no command line") : "'" + cmd + "'") + "); " + kListTakes);
  }
  // Files as the process sees them: through its root, for processes in a container.
  std::error_code ec;
  const std::string root = std::filesystem::read_symlink(proc + "/root", ec).string();
  const std::string via = ec || root == "/" ? "" : proc + "/root";
  const std::string interp = p->interpreter.empty() ? "unknown: cannot read " + proc + "/maps or " + proc +
                                                          "/exe (run as root, as the exporter does)"
                                                    : describe_interpreter(p->interpreter, via + p->interpreter);
  std::string source, target;
  if (!p->script_path.empty()) {
    source = p->script_path;
    target = "script: " + base_name(p->script_path);
  } else if (!p->module.empty()) {
    // `-m pkg.mod` runs pkg/mod.py or the package's pkg/mod/__main__.py, found from its working directory.
    std::string rel = p->module;
    std::replace(rel.begin(), rel.end(), '.', '/');
    const std::string cwd = std::filesystem::read_symlink(proc + "/cwd", ec).string();
    for (const auto& cand : {cwd + "/" + rel + ".py", cwd + "/" + rel + "/__main__.py"})
      if (std::filesystem::is_regular_file(via + cand, ec)) {
        source = cand;
        break;
      }
    if (source.empty())
      return fail_line("pid " + std::to_string(pid) + " runs module " + p->module + ", whose source is not under its " +
                       "working directory " + cwd + "; run 'insa-exporter list-probes PATH/TO/" + rel + ".py'");
    // A package's __main__.py is not the file a module: probe matches by default: name it.
    target = "module: " + p->module +
             (source.size() > 12 && source.compare(source.size() - 12, 12, "/__main__.py") == 0
                  ? ", file: " + rel + "/__main__.py"
                  : "");
  } else {
    return fail_line("pid " + std::to_string(pid) + " runs Python without a script file (-c, stdin or interactive); " +
                     "python: probes match a script or a module");
  }
  auto funcs = python::scan_file(via + source);
  if (!funcs) return fail_line("pid " + std::to_string(pid) + ": " + funcs.error().message);
  std::printf("# pid %d: Python functions of %s\n", pid, source.c_str());
  std::printf("# interpreter: %s\n", interp.c_str());
  print_python_functions(*funcs, target, " (and pid: " + std::to_string(pid) + " for this process only)");
  return 0;
}

int list_probes(const std::string& binary) {
  if (auto pid = pid_arg(binary)) return list_python_pid(*pid);
  if (is_python_script(binary)) return list_python_script(binary);
  auto path = plan::resolve_binary(binary, "./x");
  if (!path) {
    std::fprintf(stderr, "insa-exporter: %s\n", path.error().message.c_str());
    return 1;
  }
  auto f = elf::ElfFile::open(*path);
  if (!f) {
    std::fprintf(stderr, "insa-exporter: %s\n", f.error().message.c_str());
    return 1;
  }
  auto lines = elf::describe(*f);
  if (!lines) {
    std::fprintf(stderr, "insa-exporter: %s\n", lines.error().message.c_str());
    return 1;
  }
  std::printf("# %s: functions (demangled, then mangled) and USDT probes; name them in probes.yaml\n", path->c_str());
  for (const auto& l : *lines) std::printf("%s\n", l.c_str());
  return 0;
}

/// The kernel memory budget: each metric's series quota, each aggregation map's size and
/// the most it can take at this machine's CPU count (attach/map_budget.h).
void print_budget(const config::Config& cfg, const plan::Plan& p) {
  const int ncpus = std::max(1, libbpf_num_possible_cpus());
  for (size_t mi = 0; mi < cfg.metrics.size() && mi < p.budget.metrics.size(); ++mi) {
    const auto& q = p.budget.metrics[mi];
    std::printf("metric %-27s %u series in the kernel%s\n", cfg.metrics[mi].name.c_str(), q.quota,
                q.captured     ? ", then its label values count as 'other'"
                : q.quota == 0 ? " (no kernel update: derived from the probes' own counts, or unused)"
                               : " (every label is fixed)");
  }
  uint64_t total = 0;
  std::string maps;
  for (size_t k = 0; k < plan::kMapKinds; ++k) {
    const auto kind = static_cast<plan::MapKind>(k);
    const auto shape = plan::map_shape(kind, p.budget);
    const uint64_t bytes = plan::hash_map_bytes(shape, shape.max_entries, ncpus);
    total += bytes;
    maps += std::string(k ? ", " : "") + plan::map_name(kind) + " " + std::to_string(shape.max_entries) + " (" +
            plan::human_bytes(bytes) + ")";
  }
  std::printf("kernel maps at most %s at %d CPUs (max_series %u): %s\n", plan::human_bytes(total).c_str(), ncpus,
              cfg.max_series, maps.c_str());
}

int check(const std::string& file) {
  auto cfg = config::load_config(file);
  if (!cfg) {
    std::fprintf(stderr, "insa-exporter: %s\n", cfg.error().message.c_str());
    return 1;
  }
  auto p = plan::build_plan(*cfg);
  if (!p) {
    std::fprintf(stderr, "insa-exporter: %s\n", p.error().message.c_str());
    return 1;
  }
  // Workers are resolved as the agent resolves them at start and on reload.
  std::vector<std::string> workers;
  for (const auto& w : cfg->workers) {
    if (w.binary.empty()) {
      workers.push_back("worker " + w.name + ": Python processes running " + w.script);
      continue;
    }
    auto b = plan::resolve_binary(w.binary, cfg->file);
    if (!b) {
      std::fprintf(stderr, "insa-exporter: %s: worker '%s': %s\n", w.mark.str().c_str(), w.name.c_str(),
                   b.error().message.c_str());
      return 1;
    }
    workers.push_back("worker " + w.name + ": " + *b);
  }
  std::printf("listen %s\n", cfg->listen_address.c_str());
  for (const auto& w : workers) std::printf("%s\n", w.c_str());
  for (const auto& pp : p->probes) {
    if (pp.python)
      std::printf("probe %-28s %s", pp.name.c_str(), pp.target.c_str());
    else
      std::printf("probe %-28s %s: %s", pp.name.c_str(), pp.binary.c_str(), pp.target.c_str());
    if (pp.tracked && !pp.python) std::printf(", %zu return site%s", pp.exit_sites, pp.exit_sites == 1 ? "" : "s");
    std::printf("\n");
    if (!pp.exit_method.empty()) std::printf("      exit: %s\n", pp.exit_method.c_str());
    if (!pp.sites.empty()) std::printf("      %s\n", pp.sites.c_str());
  }
  print_budget(*cfg, *p);
  if (auto why = app::privilege_problem(); !why.empty()) {
    std::fprintf(stderr, "insa-exporter: config and symbols OK, but cannot load BPF to verify: %s\n", why.c_str());
    return 1;
  }
  attach::install_libbpf_logger();
  auto eng = attach::Engine::load(*p, {});
  if (!eng) {
    std::fprintf(stderr, "insa-exporter: %s\n", eng.error().message.c_str());
    return 1;
  }
  // What the loaded maps are charged now (preallocated ones in full), by the kernel's count.
  uint64_t now_bytes = 0;
  for (const auto& [name, fd] : (*eng)->map_fds().all) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::stringstream text;
    text << in.rdbuf();
    now_bytes += reader::fdinfo_memlock(text.str());
  }
  std::printf("kernel memory of all BPF maps once loaded: %s (the aggregation maps grow with their series)\n",
              plan::human_bytes(now_bytes).c_str());
  std::printf("OK: %zu probes, %zu metrics, BPF programs verified by the kernel\n", p->probes.size(),
              cfg->metrics.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"insa-exporter: Prometheus metrics from unmodified processes, measured with eBPF uprobes and USDT"};
  cli.set_version_flag("--version", std::string("insa-exporter ") + INSA_VERSION);
  app::AgentOptions opt;
  std::string level = "info";
  std::string log_format = "logfmt";
  cli.add_option("--config.file", opt.config_file, "probes.yaml to load")->capture_default_str();
  cli.add_option("--web.listen-address", opt.listen,
                 "address to serve /metrics on (default :9091, or exporter.listen_address)");
  cli.add_option("--web.config.file", opt.web_config_file,
                 "exporter-toolkit web config: TLS, basic auth, headers (reloaded when it changes)");
  cli.add_option("--web.telemetry-path", opt.telemetry_path, "path of the metrics endpoint")->capture_default_str();
  cli.add_flag("--web.enable-lifecycle", opt.enable_lifecycle, "serve POST /-/reload (reloads the config, as SIGHUP)");
  cli.add_option("--log.level", level, "debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  cli.add_option("--log.format", log_format, "logfmt or json")
      ->check(CLI::IsMember({"logfmt", "json"}))
      ->capture_default_str();
  auto* check_cmd =
      cli.add_subcommand("check", "validate a config: binaries, symbols, return sites, BPF verifier; no attach");
  std::string check_file;
  check_cmd->add_option("file", check_file, "probes.yaml")->required();
  auto* list_cmd = cli.add_subcommand(
      "list-probes",
      "list the functions (demangled) and USDT probes of a binary, or the functions of a Python script or process");
  std::string list_bin;
  list_cmd
      ->add_option("target", list_bin,
                   "executable or shared library (path or soname), Python script, or PID (1234, pid:1234)")
      ->required();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  auto logger = spdlog::stderr_color_mt("insa");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_formatter(std::make_unique<ExporterFormatter>(log_format == "json" ? LogFormat::Json : LogFormat::Logfmt));

  try {
    if (*list_cmd) return list_probes(list_bin);
    if (*check_cmd) return check(check_file);
    if (opt.telemetry_path.empty() || opt.telemetry_path[0] != '/' ||
        opt.telemetry_path.find_first_of("?# ") != std::string::npos || opt.telemetry_path == "/" ||
        opt.telemetry_path.rfind("/-/", 0) == 0) {
      std::fprintf(stderr,
                   "insa-exporter: --web.telemetry-path '%s' is not a path of its own: give one starting with '/', "
                   "e.g. /metrics (not /, not under /-/, no '?', '#' or spaces)\n",
                   opt.telemetry_path.c_str());
      return 1;
    }
    return app::run_agent(opt);
  } catch (const FatalError& e) {
    std::fprintf(stderr, "insa-exporter: %s\n", e.error.message.c_str());
    return 1;
  } catch (const std::exception& e) {
    // Input errors are FatalError lines where they are raised; anything else still ends
    // as one line and exit code 1, never "terminate called after throwing".
    std::fprintf(stderr, "insa-exporter: unexpected error: %s\n", e.what());
    return 1;
  }
}
