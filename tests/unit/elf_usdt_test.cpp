// SPDX-License-Identifier: Apache-2.0
// USDT notes, cross-checked against readelf -n.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "elf/usdt.h"

namespace insa::elf {
namespace {

using insa::test::run_command;


struct Note {
  std::string provider, name, args;
  uint64_t location = 0, semaphore = 0;
};

// readelf -n prints Provider/Name/Location.../Arguments lines per stapsdt note.
std::vector<Note> readelf_notes(const std::string& path) {
  std::vector<Note> notes;
  std::istringstream in(run_command("readelf -nW '" + path + "'"));
  std::string line;
  while (std::getline(in, line)) {
    auto value = [&](const std::string& key) {
      auto at = line.find(key);
      return at == std::string::npos ? std::string()
                                     : line.substr(at + key.size());
    };
    if (line.find("Provider: ") != std::string::npos) {
      notes.push_back({});
      notes.back().provider = value("Provider: ");
    } else if (line.find("Name: ") != std::string::npos && !notes.empty()) {
      notes.back().name = value("Name: ");
    } else if (line.find("Location: ") != std::string::npos && !notes.empty()) {
      notes.back().location = std::stoull(value("Location: "), nullptr, 16);
      notes.back().semaphore = std::stoull(value("Semaphore: "), nullptr, 16);
    } else if (line.find("Arguments: ") != std::string::npos &&
               !notes.empty()) {
      notes.back().args = value("Arguments: ");
    }
  }
  return notes;
}

void expect_same_as_readelf(const std::string& path) {
  auto f = ElfFile::open(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  auto probes = read_usdt_probes(*f);
  ASSERT_TRUE(probes.ok()) << probes.error().message;
  auto notes = readelf_notes(path);
  ASSERT_EQ(probes->size(), notes.size());
  for (size_t i = 0; i < notes.size(); ++i) {
    const UsdtProbe& p = (*probes)[i];
    EXPECT_EQ(p.provider, notes[i].provider);
    EXPECT_EQ(p.name, notes[i].name);
    EXPECT_EQ(p.args, notes[i].args);
    // No prelinking here: .stapsdt.base is where the note says it was.
    EXPECT_EQ(p.pc_vaddr, notes[i].location);
    EXPECT_EQ(p.semaphore_vaddr, notes[i].semaphore);
    auto off = f->vaddr_to_offset(p.pc_vaddr);
    ASSERT_TRUE(off.ok());
    EXPECT_EQ(p.file_offset, *off);
  }
}

TEST(Usdt, LibstdcxxCatchThrowRethrow) {
  const std::string path = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";
  expect_same_as_readelf(path);
  auto f = ElfFile::open(path);
  ASSERT_TRUE(f.ok());
  auto probes = read_usdt_probes(*f);
  ASSERT_TRUE(probes.ok());
  std::vector<std::string> names;
  for (const auto& p : *probes) names.push_back(p.provider + ":" + p.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"libstdcxx:catch", "libstdcxx:throw",
                                      "libstdcxx:rethrow"}));
  EXPECT_EQ((*probes)[1].args, "8@%rdi 8@%rsi");
}

TEST(Usdt, FixturesWithAndWithoutSemaphore) {
  for (const char* v : {"pie_O0", "pie_O2", "nopie_O0", "nopie_O2"}) {
    std::string dir = std::string(INSA_BINARY_DIR) + "/tests/fixtures/";
    std::string c = dir + "fixture_c_" + v;
    std::string cpp = dir + "fixture_cpp_" + v;
    expect_same_as_readelf(c);
    expect_same_as_readelf(cpp);
    auto fc = ElfFile::open(c);
    ASSERT_TRUE(fc.ok()) << fc.error().message;
    auto pc = read_usdt_probes(*fc);
    ASSERT_TRUE(pc.ok());
    ASSERT_EQ(pc->size(), 2u);
    EXPECT_EQ((*pc)[0].provider + ":" + (*pc)[0].name, "insa_fx:request");
    EXPECT_EQ((*pc)[0].semaphore_vaddr, 0u);
    EXPECT_EQ((*pc)[1].name, "done");

    auto fx = ElfFile::open(cpp);
    ASSERT_TRUE(fx.ok());
    auto px = read_usdt_probes(*fx);
    ASSERT_TRUE(px.ok());
    ASSERT_EQ(px->size(), 1u);
    EXPECT_EQ((*px)[0].name, "cpp_request");
    EXPECT_NE((*px)[0].semaphore_vaddr, 0u);
    auto sema_off = fx->vaddr_to_offset((*px)[0].semaphore_vaddr);
    ASSERT_TRUE(sema_off.ok());
    EXPECT_EQ((*px)[0].semaphore_offset, *sema_off);
    auto probes_section = fx->section(".probes");
    ASSERT_TRUE(probes_section.has_value());
    EXPECT_EQ((*px)[0].semaphore_vaddr, probes_section->vaddr);
  }
}

TEST(Usdt, NoNotesIsEmpty) {
  auto f = ElfFile::open("/usr/lib/x86_64-linux-gnu/libsqlite3.so.0");
  ASSERT_TRUE(f.ok());
  auto probes = read_usdt_probes(*f);
  ASSERT_TRUE(probes.ok());
  EXPECT_TRUE(probes->empty());
}

}  // namespace
}  // namespace insa::elf
