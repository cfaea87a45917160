// SPDX-License-Identifier: Apache-2.0
/// @file insa-exporter: CLI, signals and the wiring of the stages
/// (config → plan → engine → reader → collector → http).
#include <CLI/CLI.hpp>
#include <prometheus/text_serializer.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "app/agent.h"
#include "common/log_format.h"
#include "attach/engine.h"
#include "attach/plan.h"
#include "config/config.h"
#include "elf/elf_file.h"
#include "elf/describe.h"

using namespace insa;

namespace {

int list_probes(const std::string& binary) {
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
  for (const auto& pp : p->probes) {
    std::printf("probe %-28s %s: %s", pp.name.c_str(), pp.binary.c_str(), pp.target.c_str());
    if (pp.tracked) std::printf(", %zu return site%s", pp.exit_sites, pp.exit_sites == 1 ? "" : "s");
    std::printf("\n");
    if (!pp.sites.empty()) std::printf("      %s\n", pp.sites.c_str());
  }
  if (auto why = app::privilege_problem(); !why.empty()) {
    std::fprintf(stderr, "insa-exporter: config and symbols OK, but cannot load BPF to verify: %s\n", why.c_str());
    return 1;
  }
  attach::install_libbpf_logger();
  auto eng = attach::Engine::load(*p, {cfg->max_series});
  if (!eng) {
    std::fprintf(stderr, "insa-exporter: %s\n", eng.error().message.c_str());
    return 1;
  }
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
  auto* check_cmd = cli.add_subcommand("check", "validate a config: binaries, symbols, return sites, BPF verifier; no attach");
  std::string check_file;
  check_cmd->add_option("file", check_file, "probes.yaml")->required();
  auto* list_cmd = cli.add_subcommand("list-probes", "list the functions (demangled) and USDT probes of a binary");
  std::string list_bin;
  list_cmd->add_option("binary", list_bin, "executable or shared library (path or soname)")->required();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  auto logger = spdlog::stderr_color_mt("insa");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_formatter(std::make_unique<ExporterFormatter>(log_format == "json" ? LogFormat::Json : LogFormat::Logfmt));

  if (*list_cmd) return list_probes(list_bin);
  if (*check_cmd) return check(check_file);
  try {
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
  }
}
