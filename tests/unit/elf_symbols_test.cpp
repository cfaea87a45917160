// SPDX-License-Identifier: Apache-2.0
// Symbol lookup on the fixture binaries and system libraries, cross-checked
// against nm and readelf. Fixtures come from tests/fixtures (target
// insa_fixtures).
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>

#include "../test_util.h"
#include "elf/describe.h"
#include "elf/elf_file.h"

namespace insa::elf {
namespace {

using insa::test::run_command;

std::string fixture(const std::string& name) {
  return std::string(INSA_BINARY_DIR) + "/tests/fixtures/" + name;
}


ElfFile open_or_die(const std::string& path) {
  auto f = ElfFile::open(path);
  if (!f) {
    ADD_FAILURE() << f.error().message << " (build the insa_fixtures target)";
    std::abort();
  }
  return std::move(f).value();
}

// Ground truth: symbol -> vaddr from nm, translated with readelf's PT_LOAD
// table.
struct NmTruth {
  std::map<std::string, uint64_t> vaddr;
  uint64_t offset_of(uint64_t v) const {
    for (const auto& [pv, po, fs] : loads) {
      if (v >= pv && v < pv + fs) return v - pv + po;
    }
    return ~0ull;
  }
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>>
      loads;  // vaddr, offset, filesz
};

NmTruth nm_truth(const std::string& path) {
  NmTruth t;
  std::istringstream nm(run_command("nm --defined-only '" + path + "'"));
  std::string addr, type, name;
  while (nm >> addr >> type >> name) {
    if (type == "T" || type == "t" || type == "W" || type == "w") {
      t.vaddr[name] = std::stoull(addr, nullptr, 16);
    }
  }
  std::istringstream re(run_command("readelf -lW '" + path + "'"));
  std::string line;
  while (std::getline(re, line)) {
    std::istringstream ls(line);
    std::string kind, off, va, pa, fsz;
    if (ls >> kind >> off >> va >> pa >> fsz && kind == "LOAD") {
      t.loads.emplace_back(std::stoull(va, nullptr, 16),
                           std::stoull(off, nullptr, 16),
                           std::stoull(fsz, nullptr, 16));
    }
  }
  return t;
}

class FixtureVariant : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureVariant, CFunctionsMatchNmAndReadelf) {
  std::string path = fixture("fixture_c_" + GetParam());
  ElfFile f = open_or_die(path);
  NmTruth truth = nm_truth(path);
  ASSERT_FALSE(truth.loads.empty());
  for (const char* name :
       {"several_returns", "tail_caller", "tail_callee", "recurse",
        "switch_table", "reads_global_first", "nop5_entry", "main"}) {
    auto s = f.find_function(name);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->name, name);
    EXPECT_EQ(s->demangled, name);
    ASSERT_TRUE(truth.vaddr.count(name)) << name;
    EXPECT_EQ(s->vaddr, truth.vaddr[name]) << name;
    EXPECT_EQ(s->file_offset, truth.offset_of(s->vaddr)) << name;
    auto off = f.vaddr_to_offset(s->vaddr);
    ASSERT_TRUE(off.ok());
    EXPECT_EQ(*off, s->file_offset);
  }
  EXPECT_EQ(f.is_dyn(), GetParam().rfind("pie", 0) == 0);
}

TEST_P(FixtureVariant, CppFunctionsByEveryNamingForm) {
  std::string path = fixture("fixture_cpp_" + GetParam());
  ElfFile f = open_or_die(path);
  NmTruth truth = nm_truth(path);
  const std::string mangled = "_ZN7insa_fx6Worker6handleEiPKc";
  for (const char* q : {"_ZN7insa_fx6Worker6handleEiPKc",
                        "insa_fx::Worker::handle(int, char const*)",
                        "insa_fx::Worker::handle"}) {
    auto s = f.find_function(q);
    ASSERT_TRUE(s.ok()) << q << ": " << s.error().message;
    EXPECT_EQ(s->name, mangled);
    EXPECT_EQ(s->demangled, "insa_fx::Worker::handle(int, char const*)");
    EXPECT_EQ(s->short_name, "insa_fx::Worker::handle");
    EXPECT_EQ(s->vaddr, truth.vaddr[mangled]);
    EXPECT_EQ(s->file_offset, truth.offset_of(s->vaddr));
  }
  auto over_int = f.find_function("insa_fx::over(int)");
  ASSERT_TRUE(over_int.ok());
  EXPECT_EQ(over_int->name, "_ZN7insa_fx4overEi");
  auto over_double = f.find_function("insa_fx::over(double)");
  ASSERT_TRUE(over_double.ok());
  EXPECT_EQ(over_double->name, "_ZN7insa_fx4overEd");
}

TEST_P(FixtureVariant, AmbiguousOverloadListsCandidates) {
  std::string path = fixture("fixture_cpp_" + GetParam());
  ElfFile f = open_or_die(path);
  auto s = f.find_function("insa_fx::over");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message,
            "function 'insa_fx::over' is ambiguous in '" + path +
                "': 'insa_fx::over(double)', 'insa_fx::over(int)'; "
                "use the full signature");
}

INSTANTIATE_TEST_SUITE_P(Elf, FixtureVariant,
                         ::testing::Values("pie_O0", "pie_O2", "nopie_O0",
                                           "nopie_O2"));

TEST(ElfOpen, MissingBinary) {
  auto f = ElfFile::open("/nonexistent/insa/worker");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(
      f.error().message,
      "binary '/nonexistent/insa/worker' not found: No such file or directory "
      "(check the path in probes.yaml)");
  EXPECT_EQ(f.error().err, ENOENT);
}

TEST(ElfOpen, NotElf) {
  std::string path =
      std::string(INSA_SOURCE_DIR) + "/tests/fixtures/fixture_c.c";
  auto f = ElfFile::open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().message, "'" + path + "' is not an ELF file");
}

TEST(ElfOpen, MovedFileStaysUsable) {
  ElfFile a = open_or_die(fixture("fixture_c_pie_O2"));
  ElfFile b = std::move(a);
  EXPECT_TRUE(b.find_function("main").ok());
}

TEST(FindFunction, MissingSymbolSuggestsListProbes) {
  std::string path = fixture("fixture_c_pie_O2");
  ElfFile f = open_or_die(path);
  auto s = f.find_function("no_such_function");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "function 'no_such_function' not found in '" +
                                   path + "' (run 'insa-exporter list-probes " +
                                   path + "' to see what can be probed)");
}

TEST(FindFunction, MissingSymbolNamesCloseNames) {
  std::string path = fixture("fixture_c_pie_O2");
  ElfFile f = open_or_die(path);
  auto s = f.find_function("tail_c");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message,
            "function 'tail_c' not found in '" + path +
                "'; did you mean 'tail_callee', 'tail_caller'? "
                "(run 'insa-exporter list-probes " +
                path + "' to see what can be probed)");
}

TEST(FindFunction, SharedLibraryDynsym) {
  auto lib = resolve_library("sqlite3");
  ASSERT_TRUE(lib.ok()) << lib.error().message;
  ElfFile f = open_or_die(*lib);
  auto s = f.find_function("sqlite3_prepare_v2");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_TRUE(s->global);
  std::istringstream nm(run_command("nm -D --defined-only '" + *lib + "'"));
  std::string addr, type, name;
  uint64_t expected = 0;
  while (nm >> addr >> type >> name) {
    if (name == "sqlite3_prepare_v2") expected = std::stoull(addr, nullptr, 16);
  }
  ASSERT_NE(expected, 0u);
  EXPECT_EQ(s->vaddr, expected);
  EXPECT_EQ(s->file_offset, nm_truth(*lib).offset_of(expected));
}

TEST(ResolveLibrary, BySonameAndBareName) {
  auto by_soname = resolve_library("libsqlite3.so.0");
  ASSERT_TRUE(by_soname.ok()) << by_soname.error().message;
  EXPECT_NE(by_soname->find("libsqlite3.so.0"), std::string::npos);
  auto bare = resolve_library("sqlite3");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(*bare, *by_soname);
  auto stdcxx = resolve_library("stdc++");
  ASSERT_TRUE(stdcxx.ok());
  EXPECT_NE(stdcxx->find("libstdc++.so.6"), std::string::npos);
  auto missing = resolve_library("insa_no_such_lib");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message,
            "library 'insa_no_such_lib' not found in /etc/ld.so.cache or the "
            "standard "
            "library directories (give its full path)");
}

TEST(StripParameters, Forms) {
  EXPECT_EQ(strip_parameters("ns::C::f(int, char const*)"), "ns::C::f");
  EXPECT_EQ(strip_parameters("ns::C::g() const"), "ns::C::g");
  EXPECT_EQ(strip_parameters("int ns::h<int>(int)"), "ns::h<int>");
  EXPECT_EQ(strip_parameters("ns::k(std::function<void (int)>)"), "ns::k");
  EXPECT_EQ(strip_parameters("(anonymous namespace)::f(int)"),
            "(anonymous namespace)::f");
  EXPECT_EQ(strip_parameters("ns::C::operator()(int)"), "ns::C::operator()");
  EXPECT_EQ(strip_parameters("f(int) [clone .cold]"), "");
  EXPECT_EQ(strip_parameters("plain_c"), "plain_c");
}

TEST(Describe, ListsFunctionsAndUsdtSorted) {
  std::string path = fixture("fixture_cpp_pie_O2");
  ElfFile f = open_or_die(path);
  auto lines = describe(f);
  ASSERT_TRUE(lines.ok()) << lines.error().message;
  EXPECT_TRUE(std::is_sorted(lines->begin(), lines->end()));
  auto handle = f.find_function("insa_fx::Worker::handle");
  ASSERT_TRUE(handle.ok());
  char want[256];
  std::snprintf(want, sizeof want,
                "function insa_fx::Worker::handle(int, char const*)  "
                "(_ZN7insa_fx6Worker6handleEiPKc) offset 0x%llx size %llu",
                static_cast<unsigned long long>(handle->file_offset),
                static_cast<unsigned long long>(handle->size));
  EXPECT_NE(std::find(lines->begin(), lines->end(), want), lines->end())
      << want;
  bool usdt = false;
  for (const auto& l : *lines)
    usdt |= l.rfind("usdt insa_fx:cpp_request ", 0) == 0;
  EXPECT_TRUE(usdt);
}

}  // namespace
}  // namespace insa::elf
