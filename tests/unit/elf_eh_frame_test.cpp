// SPDX-License-Identifier: Apache-2.0
// .eh_frame FDEs, separate debug files and the unnamed cold parts of stripped
// C++ code, cross-checked against readelf and against the same file with its
// debug symbols.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "../test_util.h"
#include "elf/return_sites.h"

namespace insa::elf {
namespace {

namespace fs = std::filesystem;
using insa::test::run_command;

std::string fixture(const std::string& name) { return std::string(INSA_BINARY_DIR) + "/tests/fixtures/" + name; }

/// readelf's FDE ranges: {begin, end}.
std::set<std::pair<uint64_t, uint64_t>> readelf_fdes(const std::string& path) {
  std::set<std::pair<uint64_t, uint64_t>> out;
  std::istringstream in(run_command("readelf --debug-dump=frames '" + path + "'"));
  static const std::regex re(R"(FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+))");
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, re)) {
      uint64_t b = std::stoull(m[1], nullptr, 16), e = std::stoull(m[2], nullptr, 16);
      if (e > b) out.emplace(b, e);
    }
  }
  return out;
}

TEST(EhFrame, FdesAreReadelfs) {
  for (const char* name :
       {"fixture_cpp_stripped_O2", "fixture_cpp_pie_O2", "fixture_c_nopie_O0", "fixture_cpp_static_O2"}) {
    SCOPED_TRACE(name);
    auto f = ElfFile::open(fixture(name));
    ASSERT_TRUE(f.ok()) << f.error().message;
    EXPECT_EQ(f->eh_frame_error(), "");
    std::set<std::pair<uint64_t, uint64_t>> got;
    for (const auto& d : f->fdes()) got.emplace(d.begin, d.begin + d.size);
    EXPECT_EQ(got, readelf_fdes(fixture(name)));
    EXPECT_GT(got.size(), 10u);
  }
}

TEST(EhFrame, ColdPartsStartMidFrameAndCxxCodeHasTables) {
  // In the unstripped build, every named ".cold" part has its own FDE.
  auto f = ElfFile::open(fixture("fixture_cpp_pie_O2"));
  ASSERT_TRUE(f.ok());
  auto catcher = f->find_function("insa_fx::catcher");
  ASSERT_TRUE(catcher.ok());
  const Fde* hot = fde_containing(f->fdes(), catcher->vaddr);
  ASSERT_NE(hot, nullptr);
  EXPECT_EQ(hot->begin, catcher->vaddr);
  EXPECT_EQ(hot->size, catcher->size);
  EXPECT_TRUE(hot->entry_state);
  EXPECT_TRUE(hot->personality);  // try/catch: __gxx_personality_v0 and an LSDA
  EXPECT_TRUE(hot->lsda);
  size_t cold = 0;
  for (const auto& s : f->functions()) {
    if (s.name.find(".cold") == std::string::npos) continue;
    SCOPED_TRACE(s.name);
    const Fde* d = fde_containing(f->fdes(), s.vaddr);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->begin, s.vaddr);
    ++cold;
  }
  EXPECT_GE(cold, 6u);
  // catcher's cold part is entered after its prologue: not an entry state.
  auto part = f->find_function("_ZN7insa_fx7catcherEi.cold");
  ASSERT_TRUE(part.ok()) << part.error().message;
  EXPECT_FALSE(fde_containing(f->fdes(), part->vaddr)->entry_state);

  auto c = ElfFile::open(fixture("fixture_c_pie_O2"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->cxx_runtime(), "");
  auto s = c->find_function("several_returns");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(fde_containing(c->fdes(), s->vaddr)->personality);
  auto st = ElfFile::open(fixture("fixture_cpp_static_O2"));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->cxx_runtime(), "contains __gxx_personality_v0");
}

TEST(DebugFile, DebuglinkNextToTheBinaryGivesLocalSymbols) {
  const std::string path = fixture("fixture_cpp_debuglink_O2");
  auto f = ElfFile::open(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->debug_file(), fixture(".debug/fixture_cpp_debuglink_O2.debug"));
  auto cold = f->find_function("_ZN7insa_fx4boomEi.cold");
  ASSERT_TRUE(cold.ok()) << cold.error().message;
  EXPECT_EQ(cold->demangled, "insa_fx::boom(int) [clone .cold]");
  // The stripped build has neither the symbol nor a debug file.
  auto s = ElfFile::open(fixture("fixture_cpp_stripped_O2"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->debug_file(), "");
  EXPECT_FALSE(s->find_function("_ZN7insa_fx4boomEi.cold").ok());
  EXPECT_TRUE(s->find_function("insa_fx::boom").ok());  // -rdynamic: in .dynsym
}

TEST(DebugFile, BuildIdUnderTheDebugRoot) {
  const fs::path root = fs::temp_directory_path() / ("insa-debug-root-" + std::to_string(getpid()));
  fs::remove_all(root);
  const std::string path = fixture("fixture_cpp_debuglink_O2");
  std::string id = run_command("readelf -n '" + path + "' | sed -n 's/.*Build ID: //p'");
  while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
  ASSERT_GT(id.size(), 8u);
  // A copy without the .debug/ directory beside it: only the build-id path can find it.
  fs::create_directories(root / "bin");
  fs::create_directories(root / ".build-id" / id.substr(0, 2));
  fs::copy_file(path, root / "bin" / "daemon");
  fs::copy_file(fixture(".debug/fixture_cpp_debuglink_O2.debug"),
                root / ".build-id" / id.substr(0, 2) / (id.substr(2) + ".debug"));
  auto f = ElfFile::open((root / "bin" / "daemon").string(), root.string());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->debug_file(), (root / ".build-id" / id.substr(0, 2) / (id.substr(2) + ".debug")).string());
  EXPECT_TRUE(f->find_function("_ZN7insa_fx4boomEi.cold").ok());
  auto none = ElfFile::open((root / "bin" / "daemon").string(), (root / "nothing").string());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->debug_file(), "");
  fs::remove_all(root);
}

/// Exits and ranges of `fn` in `file`, as comparable values.
struct Shape {
  std::vector<std::tuple<uint64_t, int, bool>> exits;  // vaddr, kind, cold
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  bool operator==(const Shape&) const = default;
};
Shape shape(const ElfFile& f, const std::string& fn, bool* unnamed = nullptr) {
  Shape s;
  auto sym = f.find_function(fn);
  EXPECT_TRUE(sym.ok()) << sym.error().message;
  if (!sym) return s;
  auto c = analyze_function(f, *sym);
  EXPECT_TRUE(c.ok()) << c.error().message;
  if (!c) return s;
  for (const auto& e : c->exits) s.exits.emplace_back(e.vaddr, static_cast<int>(e.kind), e.cold);
  for (const auto& r : c->ranges) {
    s.ranges.emplace_back(r.vaddr, r.size);
    if (unnamed && r.unnamed) *unnamed = true;
  }
  std::sort(s.ranges.begin(), s.ranges.end());
  return s;
}

TEST(StrippedCxx, UnnamedColdPartsAreTheFunctionsOwn) {
  // The same file twice: with its debug symbols (named ".cold" parts) and as a
  // copy without them (only .eh_frame). Both must find the same code and exits.
  const fs::path dir = fs::temp_directory_path() / ("insa-stripped-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(fixture("fixture_cpp_debuglink_O2"), dir / "daemon");
  auto named = ElfFile::open(fixture("fixture_cpp_debuglink_O2"));
  auto bare = ElfFile::open((dir / "daemon").string(), (dir / "none").string());
  ASSERT_TRUE(named.ok() && bare.ok());
  ASSERT_EQ(bare->debug_file(), "");
  size_t with_cold = 0;
  for (const char* fn :
       {"insa_fx::boom", "insa_fx::maybe_throw", "insa_fx::catcher", "insa_fx::rethrower", "insa_fx::catch_rethrow",
        "insa_fx::nap_then_throw", "insa_fx::descend", "insa_fx::Parser::parse"}) {
    SCOPED_TRACE(fn);
    bool unnamed = false;
    Shape want = shape(*named, fn), got = shape(*bare, fn, &unnamed);
    EXPECT_EQ(got, want);
    EXPECT_EQ(unnamed, want.ranges.size() > 1);
    if (want.ranges.size() > 1) ++with_cold;
  }
  EXPECT_GE(with_cold, 5u);  // GCC split the throw paths of the throwing functions
  fs::remove_all(dir);
}

}  // namespace
}  // namespace insa::elf
