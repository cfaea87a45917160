// SPDX-License-Identifier: Apache-2.0
#include "elf/eh_frame.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>

namespace insa::elf {

namespace {

// DW_EH_PE_* pointer encodings.
constexpr uint8_t kOmit = 0xff;
constexpr uint8_t kPcrel = 0x10;

// DWARF register numbers on x86-64 (System V psABI, figure 3.36).
constexpr uint64_t kRsp = 7;
constexpr uint64_t kReturnAddress = 16;

/// A bounds-checked little-endian reader over one record.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> b, size_t at, size_t end, uint64_t vaddr)
      : b_(b), at_(at), end_(end), vaddr_(vaddr) {}
  bool ok() const { return ok_; }
  size_t at() const { return at_; }
  bool done() const { return at_ >= end_; }
  uint64_t vaddr_here() const { return vaddr_ + at_; }

  uint64_t fixed(size_t n) {
    if (!ok_ || n > end_ - std::min(at_, end_)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    std::memcpy(&v, b_.data() + at_, n);  // little-endian host (x86_64 only)
    at_ += n;
    return v;
  }
  int64_t sfixed(size_t n) {
    uint64_t v = fixed(n);
    if (n < 8 && (v >> (n * 8 - 1)) & 1) v |= ~uint64_t{0} << (n * 8);
    return static_cast<int64_t>(v);
  }
  uint64_t uleb() {
    uint64_t v = 0;
    for (unsigned shift = 0; ok_; shift += 7) {
      uint8_t c = static_cast<uint8_t>(fixed(1));
      if (shift < 64) v |= uint64_t{c & 0x7fu} << shift;
      if (!(c & 0x80)) break;
    }
    return v;
  }
  int64_t sleb() {
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t c = 0;
    do {
      c = static_cast<uint8_t>(fixed(1));
      if (shift < 64) v |= uint64_t{c & 0x7fu} << shift;
      shift += 7;
    } while (ok_ && (c & 0x80));
    if (shift < 64 && (c & 0x40)) v |= ~uint64_t{0} << shift;
    return static_cast<int64_t>(v);
  }
  std::string cstr() {
    std::string s;
    while (ok_) {
      char c = static_cast<char>(fixed(1));
      if (!c) break;
      s += c;
    }
    return s;
  }
  void skip(uint64_t n) {
    if (!ok_ || n > end_ - std::min(at_, end_)) {
      ok_ = false;
      return;
    }
    at_ += n;
  }
  /// A pointer in encoding `enc`; nullopt when it cannot be resolved from the
  /// section alone (datarel/textrel/funcrel/aligned) — the value is still
  /// consumed.
  std::optional<uint64_t> pointer(uint8_t enc, bool apply = true) {
    const uint64_t field = vaddr_here();
    uint64_t v = 0;
    switch (enc & 0x0f) {
      case 0x00:
        v = fixed(8);
        break;
      case 0x01:
        v = uleb();
        break;
      case 0x02:
        v = fixed(2);
        break;
      case 0x03:
        v = fixed(4);
        break;
      case 0x04:
        v = fixed(8);
        break;
      case 0x09:
        v = static_cast<uint64_t>(sleb());
        break;
      case 0x0a:
        v = static_cast<uint64_t>(sfixed(2));
        break;
      case 0x0b:
        v = static_cast<uint64_t>(sfixed(4));
        break;
      case 0x0c:
        v = fixed(8);
        break;
      default:
        ok_ = false;
        return std::nullopt;
    }
    if (!apply) return v;
    switch (enc & 0x70) {
      case 0x00:
        return v;
      case kPcrel:
        return v + field;
      default:
        return std::nullopt;
    }
  }

 private:
  std::span<const uint8_t> b_;
  size_t at_, end_;
  uint64_t vaddr_;
  bool ok_ = true;
};

struct Cie {
  uint64_t code_align = 1;
  int64_t data_align = 1;
  uint8_t fde_enc = 0;  // DW_EH_PE_absptr unless 'R'
  uint8_t lsda_enc = kOmit;
  bool has_z = false;
  bool personality = false;
  size_t insns_at = 0, insns_end = 0;
};

/// Frame state the instructions before the first location advance set up.
struct State {
  uint64_t cfa_reg = kRsp;
  int64_t cfa_off = 8;
  bool other_rule = false;  // a register other than the return address has a rule

  void rule(uint64_t reg, bool ra_at_cfa_minus_8) {
    if (reg != kReturnAddress || !ra_at_cfa_minus_8) other_rule = true;
  }
  bool entry() const { return cfa_reg == kRsp && cfa_off == 8 && !other_rule; }
};

/// Runs call frame instructions up to the first location advance (or the end):
/// the rules that hold at the FDE's first byte. An instruction it does not model
/// stops it too, leaving the state as it was (no evidence of a mid-frame start).
void run_until_advance(Cursor& c, const Cie& cie, State& s) {
  while (!c.done() && c.ok()) {
    uint8_t op = static_cast<uint8_t>(c.fixed(1));
    uint8_t hi = op & 0xc0, lo = op & 0x3f;
    if (hi == 0x40) return;  // DW_CFA_advance_loc
    if (hi == 0x80) {        // DW_CFA_offset
      int64_t off = static_cast<int64_t>(c.uleb()) * cie.data_align;
      s.rule(lo, off == -8);
      continue;
    }
    if (hi == 0xc0) continue;  // DW_CFA_restore
    switch (op) {
      case 0x00:
        break;  // nop
      case 0x01:
      case 0x02:
      case 0x03:
      case 0x04:  // set_loc, advance_loc1/2/4
        return;
      case 0x05: {  // offset_extended
        uint64_t r = c.uleb();
        s.rule(r, static_cast<int64_t>(c.uleb()) * cie.data_align == -8);
        break;
      }
      case 0x06:
        c.uleb();
        break;  // restore_extended
      case 0x07:
        s.rule(c.uleb(), false);
        break;  // undefined
      case 0x08:
        c.uleb();
        break;  // same_value
      case 0x09:
        s.rule(c.uleb(), false);
        c.uleb();
        break;  // register
      case 0x0a:
      case 0x0b:
        break;  // remember/restore_state
      case 0x0c:
        s.cfa_reg = c.uleb();
        s.cfa_off = static_cast<int64_t>(c.uleb());
        break;  // def_cfa
      case 0x0d:
        s.cfa_reg = c.uleb();
        break;  // def_cfa_register
      case 0x0e:
        s.cfa_off = static_cast<int64_t>(c.uleb());
        break;  // def_cfa_offset
      case 0x0f:
        s.other_rule = true;
        c.skip(c.uleb());
        break;  // def_cfa_expression
      case 0x10: {
        uint64_t r = c.uleb();
        s.rule(r, false);
        c.skip(c.uleb());
        break;
      }             // expression
      case 0x11: {  // offset_extended_sf
        uint64_t r = c.uleb();
        s.rule(r, c.sleb() * cie.data_align == -8);
        break;
      }
      case 0x12:
        s.cfa_reg = c.uleb();
        s.cfa_off = c.sleb() * cie.data_align;
        break;  // def_cfa_sf
      case 0x13:
        s.cfa_off = c.sleb() * cie.data_align;
        break;  // def_cfa_offset_sf
      case 0x14:
        s.rule(c.uleb(), false);
        c.uleb();
        break;  // val_offset
      case 0x15:
        s.rule(c.uleb(), false);
        c.sleb();
        break;  // val_offset_sf
      case 0x16: {
        uint64_t r = c.uleb();
        s.rule(r, false);
        c.skip(c.uleb());
        break;
      }  // val_expression
      case 0x2e:
        c.uleb();
        break;  // GNU_args_size
      case 0x2f: {
        uint64_t r = c.uleb();
        s.rule(r, false);
        c.uleb();
        break;
      }  // GNU_negative_offset_extended
      default:
        return;
    }
  }
}

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

Result<std::vector<Fde>> parse_eh_frame(std::span<const uint8_t> bytes, uint64_t vaddr) {
  std::vector<Fde> out;
  std::map<size_t, Cie> cies;
  auto bad = [&](size_t at, const char* what) {
    return Error{std::string(".eh_frame record at ") + hex(vaddr + at) + ": " + what, EINVAL};
  };
  auto parse_cie = [&](size_t at) -> std::optional<Cie> {
    if (auto it = cies.find(at); it != cies.end()) return it->second;
    Cursor c(bytes, at, bytes.size(), vaddr);
    uint64_t len = c.fixed(4);
    if (len == 0xffffffff) len = c.fixed(8);
    const size_t end = c.at() + len;
    if (!c.ok() || end > bytes.size()) return std::nullopt;
    Cursor r(bytes, c.at(), end, vaddr);
    if (r.fixed(4) != 0) return std::nullopt;  // CIE id is 0 in .eh_frame
    Cie cie;
    uint8_t version = static_cast<uint8_t>(r.fixed(1));
    std::string aug = r.cstr();
    if (aug.find("eh") != std::string::npos) r.fixed(8);
    cie.code_align = r.uleb();
    cie.data_align = r.sleb();
    if (version == 1)
      r.fixed(1);
    else
      r.uleb();  // return address register
    if (!aug.empty() && aug[0] == 'z') {
      cie.has_z = true;
      uint64_t alen = r.uleb();
      size_t aend = r.at() + alen;
      for (size_t i = 1; i < aug.size() && r.ok(); ++i) {
        switch (aug[i]) {
          case 'L':
            cie.lsda_enc = static_cast<uint8_t>(r.fixed(1));
            break;
          case 'R':
            cie.fde_enc = static_cast<uint8_t>(r.fixed(1));
            break;
          case 'P': {
            uint8_t enc = static_cast<uint8_t>(r.fixed(1));
            r.pointer(enc & 0x7f, false);
            cie.personality = true;
            break;
          }
          default:
            break;  // 'S', 'B', 'G': no data, or skipped via aend below
        }
      }
      if (r.at() > aend) return std::nullopt;
      r = Cursor(bytes, aend, end, vaddr);
    }
    if (!r.ok()) return std::nullopt;
    cie.insns_at = r.at();
    cie.insns_end = end;
    cies.emplace(at, cie);
    return cie;
  };

  size_t at = 0;
  while (at + 4 <= bytes.size()) {
    Cursor c(bytes, at, bytes.size(), vaddr);
    uint64_t len = c.fixed(4);
    if (len == 0) break;  // terminator
    if (len == 0xffffffff) len = c.fixed(8);
    const size_t body = c.at();
    if (!c.ok() || len > bytes.size() - body) return bad(at, "length runs past the section");
    const size_t end = body + len;
    Cursor r(bytes, body, end, vaddr);
    const uint64_t id = r.fixed(4);
    if (!r.ok()) return bad(at, "truncated");
    if (id != 0) {  // an FDE: id is the distance back to its CIE
      if (id > body) return bad(at, "CIE pointer before the section");
      auto cie = parse_cie(body - id);
      if (!cie) return bad(body - id, "malformed CIE");
      auto begin = r.pointer(cie->fde_enc);
      auto range = r.pointer(cie->fde_enc & 0x0f, false);
      Fde f;
      if (cie->has_z) {
        uint64_t alen = r.uleb();
        size_t aend = r.at() + alen;
        if (cie->lsda_enc != kOmit) {
          Cursor l(bytes, r.at(), aend, vaddr);
          auto p = l.pointer(cie->lsda_enc & 0x7f, false);
          f.lsda = p && *p != 0;
        }
        r = Cursor(bytes, aend, end, vaddr);
      }
      if (!r.ok() || !begin || !range) return bad(at, "FDE with an unreadable address range");
      f.begin = *begin;
      f.size = *range;
      f.personality = cie->personality;
      State s;
      Cursor ci(bytes, cie->insns_at, cie->insns_end, vaddr);
      run_until_advance(ci, *cie, s);
      run_until_advance(r, *cie, s);
      f.entry_state = s.entry();
      if (f.size != 0 && f.begin != 0) out.push_back(f);
    } else if (!parse_cie(at)) {
      return bad(at, "malformed CIE");
    }
    at = end;
  }
  std::sort(out.begin(), out.end(), [](const Fde& a, const Fde& b) { return a.begin < b.begin; });
  return out;
}

const Fde* fde_containing(const std::vector<Fde>& fdes, uint64_t vaddr) {
  auto it = std::upper_bound(fdes.begin(), fdes.end(), vaddr, [](uint64_t v, const Fde& f) { return v < f.begin; });
  if (it == fdes.begin()) return nullptr;
  --it;
  return vaddr - it->begin < it->size ? &*it : nullptr;
}

}  // namespace insa::elf
