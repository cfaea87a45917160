// SPDX-License-Identifier: Apache-2.0
// Return-site analysis on the fixtures, cross-checked against objdump.
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "../test_util.h"
#include "elf/return_sites.h"

namespace insa::elf {
namespace {

using insa::test::run_command;

std::string fixture(const std::string& name) {
  return std::string(INSA_BINARY_DIR) + "/tests/fixtures/" + name;
}


struct Disasm {
  std::set<uint64_t> rets;
  std::map<uint64_t, std::string> jmps;  // address -> operand text
};

// objdump's view of `symbol` and its ".cold" part.
Disasm objdump(const std::string& path, const std::string& symbol) {
  Disasm d;
  std::istringstream in(
      run_command("objdump -d --no-show-raw-insn -M intel '" + path + "'"));
  std::string line;
  bool inside = false;
  static const std::regex insn(R"(^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$)");
  while (std::getline(in, line)) {
    if (line.find(">:") != std::string::npos) {
      inside = line.find("<" + symbol + ">:") != std::string::npos ||
               line.find("<" + symbol + ".cold>:") != std::string::npos;
      continue;
    }
    std::smatch m;
    if (!inside || !std::regex_match(line, m, insn)) continue;
    uint64_t a = std::stoull(m[1], nullptr, 16);
    if (m[2] == "ret") d.rets.insert(a);
    if (m[2] == "jmp") d.jmps[a] = m[3];
  }
  return d;
}

struct Case {
  ElfFile file;
  FunctionCode code;
  Disasm truth;
};

Case analyze(const std::string& bin, const std::string& fn) {
  std::string path = fixture(bin);
  auto f = ElfFile::open(path);
  if (!f) {
    ADD_FAILURE() << f.error().message << " (build the insa_fixtures target)";
    std::abort();
  }
  auto s = f->find_function(fn);
  EXPECT_TRUE(s.ok()) << s.error().message;
  auto c = analyze_function(*f, *s);
  if (!c) {
    ADD_FAILURE() << c.error().message;
    std::abort();
  }
  Disasm truth = objdump(path, s->name);
  return {std::move(f).value(), std::move(c).value(), truth};
}

std::set<uint64_t> exits_of(const FunctionCode& c, ExitSite::Kind kind) {
  std::set<uint64_t> out;
  for (const auto& e : c.exits) {
    if (e.kind == kind) out.insert(e.vaddr);
  }
  return out;
}

class Variant : public ::testing::TestWithParam<std::string> {};

TEST_P(Variant, EveryRetIsAnExitAndFileOffsetsMatch) {
  for (const char* fn :
       {"several_returns", "tail_caller", "tail_callee", "recurse",
        "switch_table", "reads_global_first", "patchable_entry", "long_jumper",
        "thread_exiter", "usdt_fn", "main"}) {
    Case c = analyze("fixture_c_" + GetParam(), fn);
    if (std::string(fn) != "tail_caller")
      EXPECT_FALSE(c.truth.rets.empty()) << fn;
    EXPECT_EQ(exits_of(c.code, ExitSite::Kind::Ret), c.truth.rets) << fn;
    for (const auto& e : c.code.exits) {
      auto off = c.file.vaddr_to_offset(e.vaddr);
      ASSERT_TRUE(off.ok());
      EXPECT_EQ(e.file_offset, *off);
    }
  }
  for (const char* fn :
       {"insa_fx::boom", "insa_fx::descend", "insa_fx::catcher",
        "insa_fx::rethrower", "insa_fx::catch_rethrow", "insa_fx::maybe_throw",
        "insa_fx::Worker::handle"}) {
    Case c = analyze("fixture_cpp_" + GetParam(), fn);
    EXPECT_EQ(exits_of(c.code, ExitSite::Kind::Ret), c.truth.rets) << fn;
    EXPECT_TRUE(exits_of(c.code, ExitSite::Kind::TailJmp).empty()) << fn;
  }
}

TEST_P(Variant, TailCallIsAnExitOnlyWhenOptimized) {
  Case c = analyze("fixture_c_" + GetParam(), "tail_caller");
  auto tails = exits_of(c.code, ExitSite::Kind::TailJmp);
  std::set<uint64_t> expected;
  for (const auto& [addr, operand] : c.truth.jmps) {
    if (operand.find("<tail_callee>") != std::string::npos)
      expected.insert(addr);
  }
  EXPECT_EQ(tails, expected);
  EXPECT_EQ(tails.size(), GetParam().find("O2") != std::string::npos ? 1u : 0u);
}

TEST_P(Variant, JumpTableIsInternalAndColdPartCounts) {
  Case c = analyze("fixture_c_" + GetParam(), "switch_table");
  EXPECT_TRUE(exits_of(c.code, ExitSite::Kind::TailJmp).empty());
  if (GetParam().find("O2") != std::string::npos) {
    ASSERT_EQ(c.code.ranges.size(), 2u);  // GCC split the default case off
    EXPECT_TRUE(c.code.ranges[1].cold);
    EXPECT_TRUE(std::any_of(c.code.exits.begin(), c.code.exits.end(),
                            [](const ExitSite& e) { return e.cold; }));
    // Only offset 0 is offered as entry in a function with a jump table.
    EXPECT_EQ(c.code.entry_candidates.size(), 1u);
  }
}

TEST_P(Variant, IndirectTailCall) {
  Case c = analyze("fixture_c_" + GetParam(), "indirect_tail");
  if (GetParam().find("O2") == std::string::npos) {
    EXPECT_TRUE(exits_of(c.code, ExitSite::Kind::TailJmp).empty());
    return;
  }
  auto tails = exits_of(c.code, ExitSite::Kind::TailJmp);
  ASSERT_EQ(tails.size(), 1u);
  ASSERT_EQ(c.truth.jmps.count(*tails.begin()), 1u);
  EXPECT_EQ(c.truth.jmps[*tails.begin()], "rax");
}

TEST_P(Variant, EntrySites) {
  {
    Case c = analyze("fixture_c_" + GetParam(), "nop5_entry");
    ASSERT_FALSE(c.code.entry_candidates.empty());
    EXPECT_EQ(c.code.entry_candidates[0].insn_text,
              "nop dword ptr [rax + rax]");
    EXPECT_TRUE(c.code.entry_probe.emulated);
    EXPECT_EQ(c.code.entry_probe.vaddr, c.code.symbol.vaddr);
    EXPECT_EQ(c.code.entry_probe.file_offset, c.code.symbol.file_offset);
  }
  {
    Case c = analyze("fixture_c_" + GetParam(), "patchable_entry");
    EXPECT_EQ(c.code.entry_probe.insn_text, "nop");
    EXPECT_EQ(c.code.entry_probe.vaddr, c.code.symbol.vaddr);
  }
  {
    Case c = analyze("fixture_c_" + GetParam(), "reads_global_first");
    const EntrySite& e0 = c.code.entry_candidates.at(0);
    EXPECT_EQ(e0.vaddr, c.code.symbol.vaddr);
    EXPECT_EQ(e0.sp_delta, 0);
    if (GetParam().find("O2") != std::string::npos) {
      // mov eax, [g_counter]: single-stepped, and nothing later is emulated.
      EXPECT_EQ(e0.insn_text.rfind("mov eax, dword ptr [", 0), 0u)
          << e0.insn_text;
      EXPECT_FALSE(e0.emulated);
      EXPECT_EQ(c.code.entry_probe.vaddr, c.code.symbol.vaddr);
    } else {
      EXPECT_EQ(e0.insn_text, "push rbp");  // -O0 frame setup, emulated
      EXPECT_TRUE(e0.emulated);
    }
  }
  {
    // die_now: a noreturn function (ends in call exit).
    Case c = analyze("fixture_c_" + GetParam(), "die_now");
    EXPECT_TRUE(c.code.noreturn);
    EXPECT_TRUE(c.code.exits.empty());
    ASSERT_GE(c.code.entry_candidates.size(), 2u);
    EXPECT_EQ(c.code.entry_candidates[1].sp_delta,
              8);  // after push rbp or sub rsp, 8
  }
}

INSTANTIATE_TEST_SUITE_P(Elf, Variant,
                         ::testing::Values("pie_O0", "pie_O2", "nopie_O0",
                                           "nopie_O2"));

std::string refusal(const std::string& fn) {
  std::string path = fixture("fixture_c_pie_O2");
  auto f = ElfFile::open(path);
  EXPECT_TRUE(f.ok());
  auto s = f->find_function(fn);
  EXPECT_TRUE(s.ok());
  auto c = analyze_function(*f, *s);
  EXPECT_FALSE(c.ok()) << fn;
  return c.ok() ? "" : c.error().message;
}

TEST(Refusal, Reasons) {
  std::string path = fixture("fixture_c_pie_O2");
  std::string tail =
      "; not probing it (probe a caller, count calls at entry only, or use "
      "'exit: uretprobe' (C code))";
  auto f = ElfFile::open(path);
  ASSERT_TRUE(f.ok());
  auto bad = f->find_function("fx_bad_bytes");
  ASSERT_TRUE(bad.ok());
  char at[32];
  std::snprintf(at, sizeof at, "0x%llx",
                static_cast<unsigned long long>(bad->vaddr + 1));
  EXPECT_EQ(refusal("fx_bad_bytes"),
            "cannot find the exits of 'fx_bad_bytes' in '" + path +
                "': bytes at " + at + " do not decode as x86-64 instructions" +
                tail);
  EXPECT_NE(
      refusal("fx_cond_tail").find("conditional jump leaves the function"),
      std::string::npos);
  EXPECT_EQ(refusal("fx_spin"),
            "cannot find the exits of 'fx_spin' in '" + path +
                "': no ret or tail jump found, and it does not end in a "
                "call to a noreturn function" +
                tail);
  EXPECT_NE(refusal("fx_odd_table")
                .find("looks like a jump table whose targets cannot"),
            std::string::npos);
  EXPECT_NE(refusal("fx_computed_goto").find("takes addresses of its own code"),
            std::string::npos);

  // A symbol without a size takes the size of the FDE that starts at it...
  const Symbol sized = *f->find_function("tail_caller");
  Symbol empty = sized;
  empty.size = 0;
  auto c = analyze_function(*f, empty);
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto want = analyze_function(*f, sized);
  ASSERT_TRUE(want.ok());
  ASSERT_EQ(c->exits.size(), want->exits.size());
  for (size_t i = 0; i < c->exits.size(); ++i)
    EXPECT_EQ(c->exits[i].vaddr, want->exits[i].vaddr);
  EXPECT_EQ(c->ranges.front().size, sized.size);
  // ...and without one there is no extent.
  empty.vaddr += 1;
  c = analyze_function(*f, empty);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "cannot find the exits of 'tail_caller' in '" + path +
                "': the symbol has size 0 and no .eh_frame FDE starts at it "
                "(no extent to decode)" +
                tail);
}

TEST(Refusal, CxxCodeIsNeverPointedAtAUretprobe) {
  std::string path = fixture("fixture_cpp_pie_O2");
  auto f = ElfFile::open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->cxx_runtime(), "needs libstdc++.so.6");
  Symbol s = *f->find_function("insa_fx::boom");
  s.vaddr += 1;
  s.size = 0;
  auto c = analyze_function(*f, s);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "cannot find the exits of '" + s.demangled + "' in '" + path +
                "': the symbol has size 0 and no .eh_frame FDE starts at it "
                "(no extent to decode); not probing it (probe a caller, or "
                "count calls at entry only)");
  EXPECT_EQ(c.error().message.find("uretprobe"), std::string::npos);
}

bool emulated(std::initializer_list<uint8_t> bytes) {
  csh h;
  EXPECT_EQ(cs_open(CS_ARCH_X86, CS_MODE_64, &h), CS_ERR_OK);
  std::vector<uint8_t> b(bytes);
  cs_insn* insn = nullptr;
  size_t n = cs_disasm(h, b.data(), b.size(), 0x1000, 1, &insn);
  EXPECT_EQ(n, 1u);
  bool r = n == 1 && is_kernel_emulated(insn[0]);
  if (n) cs_free(insn, n);
  cs_close(&h);
  return r;
}

TEST(KernelEmulation, MatchesArchX86Uprobes) {
  EXPECT_TRUE(emulated({0x55}));                          // push rbp
  EXPECT_TRUE(emulated({0x41, 0x54}));                    // push r12
  EXPECT_TRUE(emulated({0x90}));                          // nop
  EXPECT_TRUE(emulated({0x0f, 0x1f, 0x44, 0x00, 0x00}));  // nop5 (6.16+)
  EXPECT_TRUE(emulated({0xe8, 0, 0, 0, 0}));              // call rel32
  EXPECT_TRUE(emulated({0xeb, 0x10}));                    // jmp rel8
  EXPECT_TRUE(emulated({0x0f, 0x84, 0, 0, 0, 0}));        // je rel32
  EXPECT_FALSE(emulated({0x66, 0xe9, 0, 0}));        // jmp with 0x66: rejected
  EXPECT_FALSE(emulated({0x48, 0x89, 0xe5}));        // mov rbp, rsp
  EXPECT_FALSE(emulated({0x48, 0x83, 0xec, 0x08}));  // sub rsp, 8
  EXPECT_FALSE(emulated({0xc3}));                    // ret
  EXPECT_FALSE(emulated({0xf3, 0x0f, 0x1e, 0xfa}));  // endbr64
  EXPECT_FALSE(emulated({0xff, 0xe0}));              // jmp rax
}

TEST(KernelEmulation, ChooseEntrySite) {
  std::vector<EntrySite> c = {{0x10, 0x10, 0, false, "mov"},
                              {0x13, 0x13, 0, true, "push rbp"}};
  EXPECT_EQ(choose_entry_site(c).vaddr, 0x13u);
  c[0].emulated = true;
  EXPECT_EQ(choose_entry_site(c).vaddr, 0x10u);
  c[0].emulated = c[1].emulated = false;
  EXPECT_EQ(choose_entry_site(c).vaddr, 0x10u);
}

}  // namespace
}  // namespace insa::elf
