// SPDX-License-Identifier: Apache-2.0
#include "http/web_config.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace insa::http {
namespace {

struct WebError {
  std::string message;
};

std::string where(const std::string& file, const YAML::Node& n) {
  auto m = n.Mark();
  if (m.line < 0) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

[[noreturn]] void fail(const std::string& file, const YAML::Node& n, const std::string& what) {
  throw WebError{where(file, n) + ": " + what};
}

std::string scalar(const std::string& file, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) fail(file, n, "'" + key + "' must be a string");
  return n.Scalar();
}

std::vector<std::string> string_list(const std::string& file, const YAML::Node& n, const std::string& key) {
  if (n.IsNull()) return {};
  if (!n.IsSequence()) fail(file, n, "'" + key + "' must be a list of strings");
  std::vector<std::string> out;
  for (const auto& i : n) out.push_back(scalar(file, i, key));
  return out;
}

/// Every key of `n` must be in `allowed` (the toolkit unmarshals strictly).
void known_keys(const std::string& file, const YAML::Node& n, const std::string& section,
                const std::set<std::string>& allowed) {
  for (const auto& kv : n) {
    if (!kv.first.IsScalar()) fail(file, kv.first, section + ": keys must be strings");
    const auto& k = kv.first.Scalar();
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(file, kv.first, "unknown key '" + k + "' in " + section + " (expected one of: " + list + ")");
    }
  }
}

const std::map<std::string, std::string>& go_ciphers() {
  // Go crypto/tls names of TLS 1.0-1.2 suites → OpenSSL names.
  static const std::map<std::string, std::string> m = {
      {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
      {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
      {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
      {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
  };
  return m;
}

const std::map<std::string, std::string>& go_curves() {
  static const std::map<std::string, std::string> m = {
      {"X25519", "X25519"}, {"CurveP256", "P-256"}, {"CurveP384", "P-384"}, {"CurveP521", "P-521"}};
  return m;
}

const std::map<std::string, int>& tls_versions() {
  static const std::map<std::string, int> m = {
      {"TLS10", TLS1_VERSION}, {"TLS11", TLS1_1_VERSION}, {"TLS12", TLS1_2_VERSION}, {"TLS13", TLS1_3_VERSION}};
  return m;
}

const std::set<std::string> kClientAuth = {
    "NoClientCert",      "RequestClientCert",       "RequireAnyClientCert",
    "RequireClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"};

std::string resolve(const std::string& file, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  auto dir = std::filesystem::path(file).parent_path();
  return (dir / p).string();
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

/// exporter-toolkit accepts only these headers, with these values.
void check_header(const std::string& file, const YAML::Node& n, const std::string& name, const std::string& value) {
  static const std::set<std::string> allowed = {"Strict-Transport-Security", "X-Content-Type-Options",
                                                "X-Frame-Options", "X-XSS-Protection", "Content-Security-Policy"};
  if (!allowed.count(name))
    fail(file, n,
         "header '" + name +
             "' cannot be set (allowed: Content-Security-Policy, Strict-Transport-Security, "
             "X-Content-Type-Options, X-Frame-Options, X-XSS-Protection)");
  if (name == "X-Content-Type-Options" && value != "nosniff") fail(file, n, "X-Content-Type-Options must be 'nosniff'");
  if (name == "X-Frame-Options" && value != "deny" && value != "sameorigin")
    fail(file, n, "X-Frame-Options must be 'deny' or 'sameorigin'");
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0') fail(file, n, "header '" + name + "' has a line break in its value");
}

}  // namespace

Result<WebConfig> parse_web_config(const std::string& text, const std::string& file) {
  WebConfig c;
  c.file = file;
  try {
    YAML::Node root = YAML::Load(text);
    if (root.IsNull()) return c;  // an empty file: plain HTTP, as in the toolkit
    if (!root.IsMap())
      fail(file, root, "a web config is a map with tls_server_config, http_server_config, basic_auth_users");
    known_keys(file, root, "the web config", {"tls_server_config", "http_server_config", "basic_auth_users"});
    if (auto t = root["tls_server_config"]; t && !t.IsNull()) {
      if (!t.IsMap()) fail(file, t, "tls_server_config must be a map");
      known_keys(file, t, "tls_server_config",
                 {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version",
                  "cipher_suites", "curve_preferences", "prefer_server_cipher_suites"});
      TlsServerConfig tls;
      auto str = [&](const char* k, std::string& out) {
        if (auto v = t[k]; v && !v.IsNull()) out = scalar(file, v, k);
      };
      std::string auth;
      str("cert_file", tls.cert_file);
      str("key_file", tls.key_file);
      str("client_ca_file", tls.client_ca_file);
      str("client_auth_type", auth);
      str("min_version", tls.min_version);
      str("max_version", tls.max_version);
      if (auto v = t["cipher_suites"]) {
        tls.cipher_suites = string_list(file, v, "cipher_suites");
        size_t i = 0;
        for (const auto& s : tls.cipher_suites) {
          if (!go_ciphers().count(s))
            fail(file, v[i],
                 "unknown cipher suite '" + s +
                     "' (use Go crypto/tls names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)");
          ++i;
        }
      }
      if (auto v = t["curve_preferences"]) {
        tls.curve_preferences = string_list(file, v, "curve_preferences");
        size_t i = 0;
        for (const auto& s : tls.curve_preferences) {
          if (!go_curves().count(s))
            fail(file, v[i], "unknown curve '" + s + "' (expected X25519, CurveP256, CurveP384 or CurveP521)");
          ++i;
        }
      }
      if (auto v = t["prefer_server_cipher_suites"]) {
        try {
          tls.prefer_server_cipher_suites = v.as<bool>();
        } catch (const YAML::Exception&) {
          fail(file, v, "prefer_server_cipher_suites must be true or false");
        }
      }
      for (const char* k : {"min_version", "max_version"}) {
        const std::string& val = std::string(k) == "min_version" ? tls.min_version : tls.max_version;
        if (!tls_versions().count(val))
          fail(file, t[k] ? t[k] : t, std::string(k) + " '" + val + "' is not TLS10, TLS11, TLS12 or TLS13");
      }
      if (tls_versions().at(tls.min_version) > tls_versions().at(tls.max_version))
        fail(file, t["min_version"] ? t["min_version"] : t,
             "min_version " + tls.min_version + " is above max_version " + tls.max_version);
      if (!auth.empty() && !kClientAuth.count(auth))
        fail(file, t["client_auth_type"],
             "invalid client_auth_type '" + auth +
                 "' (expected NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or "
                 "RequireAndVerifyClientCert)");
      if (auth == "RequireClientCert") auth = "RequireAnyClientCert";  // the toolkit's old name
      const bool any = !tls.cert_file.empty() || !tls.key_file.empty() || !tls.client_ca_file.empty() || !auth.empty();
      if (any) {
        if (tls.cert_file.empty()) fail(file, t, "tls_server_config has no cert_file (the server certificate, PEM)");
        if (tls.key_file.empty())
          fail(file, t, "tls_server_config has no key_file (the certificate's private key, PEM)");
        tls.client_auth_type = auth.empty() ? "NoClientCert" : auth;
        if (!tls.client_ca_file.empty() && tls.client_auth_type == "NoClientCert")
          fail(file, t["client_ca_file"],
               "client_ca_file is set but client_auth_type is NoClientCert (set client_auth_type, e.g. "
               "RequireAndVerifyClientCert)");
        if ((tls.client_auth_type == "VerifyClientCertIfGiven" ||
             tls.client_auth_type == "RequireAndVerifyClientCert") &&
            tls.client_ca_file.empty())
          fail(file, t["client_auth_type"], "client_auth_type " + tls.client_auth_type + " needs client_ca_file");
        tls.cert_file = resolve(file, tls.cert_file);
        tls.key_file = resolve(file, tls.key_file);
        tls.client_ca_file = resolve(file, tls.client_ca_file);
        c.tls = std::move(tls);
      }
    }
    if (auto h = root["http_server_config"]; h && !h.IsNull()) {
      if (!h.IsMap()) fail(file, h, "http_server_config must be a map");
      known_keys(file, h, "http_server_config", {"http2", "headers"});
      if (auto v = h["http2"]) {
        try {
          (void)v.as<bool>();  // HTTP/2 is not served: HTTP/1.1 only (scrapers fall back)
        } catch (const YAML::Exception&) {
          fail(file, v, "http2 must be true or false");
        }
      }
      if (auto hs = h["headers"]; hs && !hs.IsNull()) {
        if (!hs.IsMap()) fail(file, hs, "headers must be a map of header name to value");
        for (const auto& kv : hs) {
          auto name = scalar(file, kv.first, "header name");
          auto value = scalar(file, kv.second, name);
          check_header(file, kv.first, name, value);
          c.headers.emplace_back(name, value);
        }
      }
    }
    if (auto u = root["basic_auth_users"]; u && !u.IsNull()) {
      if (!u.IsMap()) fail(file, u, "basic_auth_users must be a map of user name to bcrypt hash");
      for (const auto& kv : u) {
        auto user = scalar(file, kv.first, "user name");
        auto hash = scalar(file, kv.second, user);
        if (user.find(':') != std::string::npos) fail(file, kv.first, "user name '" + user + "' contains ':'");
        const bool bcrypt = hash.size() == 60 && hash[0] == '$' && hash[1] == '2' &&
                            (hash[2] == 'a' || hash[2] == 'b' || hash[2] == 'y') && hash[3] == '$';
        if (!bcrypt)
          fail(file, kv.second,
               "password of user '" + user +
                   "' is not a bcrypt hash ($2a$/$2b$/$2y$, 60 characters; make one with "
                   "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`)");
        if (!c.users.emplace(user, hash).second) fail(file, kv.first, "user '" + user + "' is listed twice");
      }
    }
  } catch (const WebError& e) {
    return Error{e.message};
  } catch (const YAML::Exception& e) {
    return Error{file + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                 ": YAML syntax error: " + e.msg};
  }
  return c;
}

Result<WebConfig> load_web_config(const std::string& file) {
  std::ifstream in(file);
  if (!in) return Error::from_errno("cannot read web config " + file + " (check --web.config.file)");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > 1 << 20) return Error{file + ": web config larger than 1 MiB"};
  return parse_web_config(ss.str(), file);
}

Result<std::shared_ptr<const WebState>> build_web_state(WebConfig cfg) {
  auto st = std::make_shared<WebState>();
  if (cfg.tls) {
    const auto& t = *cfg.tls;
    std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
    if (!ctx) return Error{"cannot create a TLS context: " + openssl_error()};
    SSL_CTX_set_min_proto_version(ctx.get(), tls_versions().at(t.min_version));
    SSL_CTX_set_max_proto_version(ctx.get(), tls_versions().at(t.max_version));
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                       (t.prefer_server_cipher_suites ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!t.cipher_suites.empty()) {
      std::string list;
      for (const auto& s : t.cipher_suites) list += (list.empty() ? "" : ":") + go_ciphers().at(s);
      if (SSL_CTX_set_cipher_list(ctx.get(), list.c_str()) != 1)
        return Error{cfg.file + ": cipher_suites: none usable by OpenSSL here: " + openssl_error()};
    }
    if (!t.curve_preferences.empty()) {
      std::string list;
      for (const auto& s : t.curve_preferences) list += (list.empty() ? "" : ":") + go_curves().at(s);
      if (SSL_CTX_set1_groups_list(ctx.get(), list.c_str()) != 1)
        return Error{cfg.file + ": curve_preferences: " + openssl_error()};
    }
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), t.cert_file.c_str()) != 1)
      return Error{cfg.file + ": cannot load cert_file " + t.cert_file + ": " + openssl_error() +
                   " (a PEM certificate, readable by the exporter)"};
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), t.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
        ERR_clear_error();
        return Error{cfg.file + ": key_file " + t.key_file + " does not match cert_file " + t.cert_file};
      }
      return Error{cfg.file + ": cannot load key_file " + t.key_file + ": " + openssl_error() +
                   " (an unencrypted PEM private key, readable by the exporter)"};
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      return Error{cfg.file + ": key_file " + t.key_file + " does not match cert_file " + t.cert_file};
    if (!t.client_ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx.get(), t.client_ca_file.c_str(), nullptr) != 1)
        return Error{cfg.file + ": cannot load client_ca_file " + t.client_ca_file + ": " + openssl_error()};
      if (auto* names = SSL_load_client_CA_file(t.client_ca_file.c_str())) SSL_CTX_set_client_CA_list(ctx.get(), names);
    }
    // Go's tls.ClientAuthType semantics: "Request"/"RequireAny" ask for a certificate
    // but do not verify it; "VerifyIfGiven"/"RequireAndVerify" verify against client_ca_file.
    auto accept_any = [](int, X509_STORE_CTX*) { return 1; };
    const auto& a = t.client_auth_type;
    if (a == "RequestClientCert")
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, accept_any);
    else if (a == "RequireAnyClientCert")
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
    else if (a == "VerifyClientCertIfGiven")
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    else if (a == "RequireAndVerifyClientCert")
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    else
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    static const unsigned char sid[] = "insa-exporter";
    SSL_CTX_set_session_id_context(ctx.get(), sid, sizeof sid - 1);
    st->tls = std::move(ctx);
  }
  st->cfg = std::move(cfg);
  return std::shared_ptr<const WebState>(std::move(st));
}

Result<std::shared_ptr<WebConfigSource>> WebConfigSource::open(const std::string& file) {
  std::shared_ptr<WebConfigSource> s(new WebConfigSource(file));
  WebConfig cfg;
  if (!file.empty()) {
    auto c = load_web_config(file);
    if (!c) return c.error();
    cfg = std::move(*c);
  }
  auto st = build_web_state(std::move(cfg));
  if (!st) return st.error();
  s->state_ = *st;
  s->stamp_ = s->stamp();
  s->last_check_ = std::chrono::steady_clock::now();
  return s;
}

std::string WebConfigSource::stamp() const {
  std::string out;
  auto add = [&](const std::string& p) {
    struct stat sb {};
    if (p.empty()) return;
    if (stat(p.c_str(), &sb) != 0) {
      out += p + ":missing;";
      return;
    }
    out += p + ":" + std::to_string(sb.st_ino) + ":" + std::to_string(sb.st_size) + ":" +
           std::to_string(sb.st_mtim.tv_sec) + "." + std::to_string(sb.st_mtim.tv_nsec) + ";";
  };
  add(file_);
  if (state_ && state_->cfg.tls) {
    add(state_->cfg.tls->cert_file);
    add(state_->cfg.tls->key_file);
    add(state_->cfg.tls->client_ca_file);
  }
  return out;
}

Result<void> WebConfigSource::reload_if_changed() {
  std::lock_guard<std::mutex> lock(mu_);
  last_check_ = std::chrono::steady_clock::now();
  if (file_.empty()) return {};
  auto now = stamp();
  if (now == stamp_) return {};
  stamp_ = now;  // a failed edit is reported once, not at every connection
  auto c = load_web_config(file_);
  if (!c) return c.error();
  auto st = build_web_state(std::move(*c));
  if (!st) return st.error();
  state_ = *st;
  stamp_ = stamp();
  auth_cache_.clear();
  spdlog::info("web config {} reloaded", file_);
  return {};
}

std::shared_ptr<const WebState> WebConfigSource::current() {
  bool due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    due = !file_.empty() && std::chrono::steady_clock::now() - last_check_ >= std::chrono::seconds(1);
  }
  if (due) {
    if (auto r = reload_if_changed(); !r)
      spdlog::error("web config not reloaded, the previous one stays in force: {}", r.error().message);
  }
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

bool WebConfigSource::check_password(const WebState& state, const std::string& user, const std::string& password) {
  auto it = state.cfg.users.find(user);
  // An unknown user costs a bcrypt check too, so timing does not tell which users exist.
  static const std::string dummy = "$2b$10$abcdefghijklmnopqrstuu0DmW0KnbYkwcBX7z1PZcKjXGu3qoyS6";
  const std::string& hash = it == state.cfg.users.end() ? dummy : it->second;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  std::string material = user + '\0' + password + '\0' + hash;
  EVP_Digest(material.data(), material.size(), digest, &dlen, EVP_sha256(), nullptr);
  std::string key(reinterpret_cast<char*>(digest), dlen);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto c = auth_cache_.find(key); c != auth_cache_.end()) return c->second && it != state.cfg.users.end();
  }
  crypt_data data{};
  const char* out = crypt_r(password.c_str(), hash.c_str(), &data);
  const bool ok = out && out[0] != '*' && std::strlen(out) == hash.size() &&
                  CRYPTO_memcmp(out, hash.data(), hash.size()) == 0 && it != state.cfg.users.end();
  std::lock_guard<std::mutex> lock(mu_);
  if (auth_cache_.size() > 4096) auth_cache_.clear();
  auth_cache_[key] = ok;
  return ok;
}

}  // namespace insa::http
