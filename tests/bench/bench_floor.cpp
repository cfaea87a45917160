// SPDX-License-Identifier: Apache-2.0
/// @file The benchmark's floor: attaches the empty programs of
/// bpf/bench_floor.bpf.c at the sites the exporter uses for a request probe
/// (the entry site chosen by elf::analyze_function and every return site, so
/// the same exit method that ships), runs a command, detaches.
///
///   bench_floor [--site entry|zero] [--exit sites|uret|none] BINARY FUNCTION... -- COMMAND [ARGS...]
///
/// --site entry (default): the entry probe goes where the exporter puts it
/// (FunctionCode::entry_probe, a cheaper emulated instruction in the entry
/// block when the first one would be single-stepped); --site zero: always on
/// the first instruction, the floor of the entry instruction itself.
/// --exit sites (default): empty uprobes on every return site, as the exporter;
/// --exit uret: one uretprobe instead (what bpftrace pays); --exit none.
/// Prints one `SITE function entry=0x.. (insn) sp_delta=N exits=0x..,..` line
/// per function to stderr.
#include <bpf/libbpf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_floor.skel.h"
#include "elf/elf_file.h"
#include "elf/return_sites.h"

namespace {

struct SkelDeleter {
  void operator()(bench_floor* s) const { bench_floor__destroy(s); }
};
struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

int fail(const std::string& msg) {
  std::fprintf(stderr, "bench_floor: %s\n", msg.c_str());
  return 1;
}

Link attach(bpf_program* prog, const std::string& binary, uint64_t offset, bool ret = false) {
  LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = ret);
  return Link(bpf_program__attach_uprobe_opts(prog, -1, binary.c_str(), offset, &o));
}

std::string hex(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  bool at_zero = false;
  std::string exit_method = "sites";
  int a = 1;
  for (; a + 1 < argc && std::strncmp(argv[a], "--", 2) == 0 && argv[a][2]; a += 2) {
    if (std::strcmp(argv[a], "--site") == 0) at_zero = std::strcmp(argv[a + 1], "zero") == 0;
    else if (std::strcmp(argv[a], "--exit") == 0) exit_method = argv[a + 1];
    else return fail(std::string("unknown option ") + argv[a]);
  }
  std::vector<std::string> funcs;
  std::string binary;
  for (; a < argc && std::strcmp(argv[a], "--") != 0; ++a) {
    if (binary.empty()) binary = argv[a];
    else funcs.push_back(argv[a]);
  }
  if (binary.empty() || funcs.empty() || a + 1 >= argc)
    return fail("usage: bench_floor [--site entry|zero] [--exit sites|uret|none] BINARY FUNCTION... -- COMMAND [ARGS...]");
  char** cmd = argv + a + 1;

  // uprobes need the real path (libbpf resolves only library names).
  if (char* real = realpath(binary.c_str(), nullptr)) {
    binary = real;
    free(real);
  }
  auto file = insa::elf::ElfFile::open(binary);
  if (!file) return fail(file.error().message);
  std::unique_ptr<bench_floor, SkelDeleter> skel(bench_floor__open_and_load());
  if (!skel) return fail(std::string("loading bench_floor.bpf.o: ") + std::strerror(errno));

  std::vector<Link> links;
  for (const auto& f : funcs) {
    auto sym = file->find_function(f);
    if (!sym) return fail(sym.error().message);
    auto code = insa::elf::analyze_function(*file, *sym);
    if (!code) return fail(f + ": " + code.error().message);
    insa::elf::EntrySite site = at_zero ? code->entry_candidates.front() : code->entry_probe;
    std::string line = "SITE " + f + " entry=" + hex(site.file_offset) + " (" + site.insn_text +
                       (site.emulated ? ", emulated" : ", single-stepped") +
                       ") sp_delta=" + std::to_string(site.sp_delta) + " exits=";
    links.push_back(attach(skel->progs.floor_entry, binary, site.file_offset));
    if (exit_method == "uret") {
      links.push_back(attach(skel->progs.floor_exit, binary, sym->file_offset, true));
      line += "uretprobe";
    } else if (exit_method == "sites") {
      for (const auto& x : code->exits) {
        links.push_back(attach(skel->progs.floor_exit, binary, x.file_offset));
        line += hex(x.file_offset) + ",";
      }
    }
    for (const auto& l : links)
      if (!l) return fail("attaching a uprobe to " + binary + ": " + std::strerror(errno));
    std::fprintf(stderr, "%s\n", line.c_str());
  }

  pid_t pid = fork();
  if (pid < 0) return fail(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    execvp(cmd[0], cmd);
    std::fprintf(stderr, "bench_floor: exec %s: %s\n", cmd[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
