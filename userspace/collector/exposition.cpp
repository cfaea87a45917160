// SPDX-License-Identifier: Apache-2.0
#include "collector/exposition.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace insa::exposition {
namespace pm = prometheus;

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  if (v == 0) {  // also -0, as Go's writeFloat does
    out += '0';
    return;
  }
  // Shortest round-trip digits and exponent, then Go's 'g' layout: %e when the
  // decimal exponent is < -4 or >= 6 (the shortest-precision rule of strconv), else %f.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  bool neg = sci[0] == '-';
  if (neg) sci.remove_prefix(1);
  const size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits += c;
  const int exp = std::atoi(std::string(sci.substr(e + 1)).c_str());
  const int nd = static_cast<int>(digits.size());
  if (neg) out += '-';
  if (exp < -4 || exp >= 6) {
    out += digits[0];
    if (nd > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += 'e';
    out += exp < 0 ? '-' : '+';
    int a = std::abs(exp);
    if (a < 10) out += '0';
    out += std::to_string(a);
    return;
  }
  const int dp = exp + 1;  // digits before the decimal point
  if (dp > 0) {
    for (int i = 0; i < dp; ++i) out += i < nd ? digits[i] : '0';
  } else {
    out += '0';
  }
  const int frac = std::max(nd - dp, 0);
  if (frac > 0) {
    out += '.';
    for (int i = 0; i < frac; ++i) {
      int j = dp + i;
      out += j >= 0 && j < nd ? digits[j] : '0';
    }
  }
}

std::string format_number(double v) {
  std::string s;
  append_number(s, v);
  return s;
}

namespace {
/// Length of the valid UTF-8 sequence at s[i], or 0 when invalid (RFC 3629: no
/// overlongs, no surrogates, nothing above U+10FFFF).
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c == 0xE0)
    n = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC)
    n = 3;
  else if (c == 0xED)
    n = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF)
    n = 3;
  else if (c == 0xF0)
    n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3)
    n = 4;
  else if (c == 0xF4)
    n = 4, hi = 0x8F;
  else
    return 0;
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

template <typename F>
void each_valid(std::string_view s, F&& emit) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_len(s, i);
    if (n == 0) {
      emit(std::string_view("\xEF\xBF\xBD"));
      ++i;
      // One replacement per run of invalid bytes, as strings.ToValidUTF8.
      while (i < s.size() && utf8_len(s, i) == 0) ++i;
      continue;
    }
    emit(s.substr(i, n));
    i += n;
  }
}
}  // namespace

std::string valid_utf8(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  each_valid(s, [&](std::string_view c) { o.append(c); });
  return o;
}

void append_label_value(std::string& out, std::string_view v) {
  each_valid(v, [&](std::string_view c) {
    if (c.size() == 1 && c[0] == '\\')
      out += "\\\\";
    else if (c.size() == 1 && c[0] == '"')
      out += "\\\"";
    else if (c.size() == 1 && c[0] == '\n')
      out += "\\n";
    else
      out.append(c);
  });
}

namespace {
void append_help(std::string& out, std::string_view help) {
  each_valid(help, [&](std::string_view c) {
    if (c.size() == 1 && c[0] == '\\')
      out += "\\\\";
    else if (c.size() == 1 && c[0] == '\n')
      out += "\\n";
    else
      out.append(c);
  });
}

const char* type_name(pm::MetricType t) {
  switch (t) {
    case pm::MetricType::Counter:
      return "counter";
    case pm::MetricType::Gauge:
      return "gauge";
    case pm::MetricType::Summary:
      return "summary";
    case pm::MetricType::Histogram:
      return "histogram";
    default:
      return "untyped";
  }
}

std::vector<std::string> sample_names(const std::string& name, pm::MetricType t) {
  if (t == pm::MetricType::Histogram) return {name, name + "_bucket", name + "_count", name + "_sum"};
  if (t == pm::MetricType::Summary) return {name, name + "_count", name + "_sum"};
  return {name};
}

void labels(std::string& out, const std::vector<pm::ClientMetric::Label>& ls, const char* extra = nullptr,
            const std::string& extra_value = "") {
  if (ls.empty() && !extra) return;
  out += '{';
  bool first = true;
  for (const auto& l : ls) {
    if (!first) out += ',';
    first = false;
    out += l.name;
    out += "=\"";
    append_label_value(out, l.value);
    out += '"';
  }
  if (extra) {
    if (!first) out += ',';
    out += extra;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void sample(std::string& out, const std::string& name, const char* suffix, const pm::ClientMetric& m, double v,
            const char* extra = nullptr, const std::string& extra_value = "") {
  out += name;
  out += suffix;
  labels(out, m.label, extra, extra_value);
  out += ' ';
  append_number(out, v);
  if (m.timestamp_ms) {
    out += ' ';
    out += std::to_string(m.timestamp_ms);
  }
  out += '\n';
}
}  // namespace

bool Writer::claim(const std::string& name, pm::MetricType type, bool check, bool owner) {
  auto names = sample_names(name, type);
  if (!check) {
    for (const auto& n : names) reserved_.emplace(n, name);
    return true;
  }
  for (const auto& n : names) {
    auto r = reserved_.find(n);
    if (names_.count(n) || (r != reserved_.end() && !(owner && r->second == name))) {
      collisions_.push_back(name);
      return false;
    }
  }
  names_.insert(names.begin(), names.end());
  return true;
}

bool Writer::begin(const std::string& name, const std::string& help, pm::MetricType type, bool owner) {
  if (!claim(name, type, true, owner)) return false;
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type_name(type);
  out_ += '\n';
  return true;
}

void Writer::write(const std::vector<pm::MetricFamily>& families) {
  for (const auto& f : families) write(f);
}

void Writer::write(const pm::MetricFamily& f) {
  if (!begin(f.name, f.help, f.type, /*owner=*/true)) return;
  for (const auto& m : f.metric) {
    switch (f.type) {
      case pm::MetricType::Counter:
        sample(out_, f.name, "", m, m.counter.value);
        break;
      case pm::MetricType::Gauge:
        sample(out_, f.name, "", m, m.gauge.value);
        break;
      case pm::MetricType::Untyped:
        sample(out_, f.name, "", m, m.untyped.value);
        break;
      case pm::MetricType::Summary:
        for (const auto& q : m.summary.quantile)
          sample(out_, f.name, "", m, q.value, "quantile", format_number(q.quantile));
        sample(out_, f.name, "_sum", m, m.summary.sample_sum);
        sample(out_, f.name, "_count", m, static_cast<double>(m.summary.sample_count));
        break;
      case pm::MetricType::Histogram: {
        for (const auto& b : m.histogram.bucket)
          sample(out_, f.name, "_bucket", m, static_cast<double>(b.cumulative_count), "le",
                 format_number(b.upper_bound));
        sample(out_, f.name, "_sum", m, m.histogram.sample_sum);
        sample(out_, f.name, "_count", m, static_cast<double>(m.histogram.sample_count));
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace insa::exposition
