// SPDX-License-Identifier: Apache-2.0
// --web.config.file (the exporter-toolkit format): parsing with located one-line
// errors, every accepted file also accepted by `promtool check web-config`, and the
// server over real TLS (certificates made by openssl at test time) spoken to by
// curl and openssl s_client: basic auth with bcrypt, minimum version, cipher
// suites, client certificates, response headers, and reload when the file changes.
#include <crypt.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "../test_util.h"
#include "http/server.h"
#include "http/web_config.h"

namespace insa::http {
namespace {

using insa::test::run_command;

std::string dir() {
  static const std::string d = [] {
    std::string t = ::testing::TempDir() + "insa-webcfg-XXXXXX";
    return std::string(mkdtemp(t.data()));
  }();
  return d;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream o(path, std::ios::trunc);
  o << text;
}

std::string bcrypt(const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt), nullptr);
  crypt_data d{};
  return crypt_r(password.c_str(), salt, &d);
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, once.
class Certs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string d = dir();
    write_file(d + "/server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    write_file(d + "/client.ext", "extendedKeyUsage=clientAuth\n");
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    std::string script =
        "cd " + d +
        " && set -e; "
        "openssl req -x509" +
        ec +
        "-keyout ca.key -out ca.pem -days 2 -subj /CN=insa-test-ca; "
        "openssl req" +
        ec +
        "-keyout server.key -out server.csr -subj /CN=localhost; "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
        "-extfile server.ext; "
        "openssl req" +
        ec +
        "-keyout client.key -out client.csr -subj /CN=insa-test-client; "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 "
        "-extfile client.ext; "
        "openssl req -x509" +
        ec + "-keyout other.key -out other.pem -days 2 -subj /CN=not-the-ca; echo made";
    ASSERT_EQ(run_command("(" + script + ") 2>&1 | tail -1"), "made\n") << "openssl (tests/install-deps.sh) failed";
  }
};

std::string promtool_check(const std::string& file) {
  return run_command("promtool check web-config " + file + " 2>&1; echo rc=$?");
}

class WebConfigParse : public Certs {};

TEST_F(WebConfigParse, FullFileAndPromtoolAgrees) {
  const std::string f = dir() + "/full.yml";
  const std::string hash = bcrypt("s3cret");
  write_file(f,
             "tls_server_config:\n"
             "  cert_file: server.pem\n"
             "  key_file: server.key\n"
             "  client_ca_file: ca.pem\n"
             "  client_auth_type: VerifyClientCertIfGiven\n"
             "  min_version: TLS12\n"
             "  max_version: TLS13\n"
             "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"
             "  curve_preferences: [X25519, CurveP256]\n"
             "  prefer_server_cipher_suites: true\n"
             "http_server_config:\n"
             "  http2: false\n"
             "  headers:\n"
             "    X-Frame-Options: deny\n"
             "    Strict-Transport-Security: max-age=31536000\n"
             "basic_auth_users:\n"
             "  alice: " +
                 hash + "\n");
  auto c = load_web_config(f);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE(c->tls.has_value());
  EXPECT_EQ(c->tls->cert_file, dir() + "/server.pem");  // relative to the file's folder
  EXPECT_EQ(c->tls->key_file, dir() + "/server.key");
  EXPECT_EQ(c->tls->client_ca_file, dir() + "/ca.pem");
  EXPECT_EQ(c->tls->client_auth_type, "VerifyClientCertIfGiven");
  EXPECT_EQ(c->tls->cipher_suites.size(), 2u);
  EXPECT_EQ(c->users, (std::map<std::string, std::string>{{"alice", hash}}));
  EXPECT_EQ(c->headers, (std::vector<std::pair<std::string, std::string>>{
                            {"X-Frame-Options", "deny"}, {"Strict-Transport-Security", "max-age=31536000"}}));
  auto st = build_web_state(std::move(*c));
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_NE((*st)->tls, nullptr);
  EXPECT_EQ(promtool_check(f), f + " SUCCESS\nrc=0\n");
}

TEST_F(WebConfigParse, EmptyAndAuthOnlyFiles) {
  const std::string f = dir() + "/empty.yml";
  write_file(f, "");
  auto c = load_web_config(f);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_FALSE(c->tls.has_value());
  EXPECT_EQ(promtool_check(f), f + " SUCCESS\nrc=0\n");
  const std::string g = dir() + "/auth.yml";
  write_file(g, "basic_auth_users:\n  bob: " + bcrypt("pw") + "\n");
  auto a = load_web_config(g);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_FALSE(a->tls.has_value());
  EXPECT_EQ(a->users.size(), 1u);
  EXPECT_EQ(promtool_check(g), g + " SUCCESS\nrc=0\n");
}

TEST_F(WebConfigParse, ErrorsAreOneLocatedLine) {
  const std::string hash = bcrypt("x");
  const std::pair<std::string, std::string> cases[] = {
      {"tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_verison: TLS12\n",
       "w.yml:4:3: unknown key 'min_verison' in tls_server_config (expected one of: cert_file, cipher_suites, "
       "client_auth_type, client_ca_file, curve_preferences, key_file, max_version, min_version, "
       "prefer_server_cipher_suites)"},
      {"tls_server_config:\n  cert_file: server.pem\n",
       "w.yml:2:3: tls_server_config has no key_file (the certificate's private key, PEM)"},
      {"tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: Always\n",
       "w.yml:4:21: invalid client_auth_type 'Always' (expected NoClientCert, RequestClientCert, "
       "RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"},
      {"tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n",
       "w.yml:4:19: client_ca_file is set but client_auth_type is NoClientCert (set client_auth_type, e.g. "
       "RequireAndVerifyClientCert)"},
      {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
       "w.yml:4:21: client_auth_type RequireAndVerifyClientCert needs client_ca_file"},
      {"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
       "w.yml:4:16: min_version TLS13 is above max_version TLS12"},
      {"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: SSL3\n",
       "w.yml:4:16: min_version 'SSL3' is not TLS10, TLS11, TLS12 or TLS13"},
      {"tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
       "w.yml:4:19: unknown cipher suite 'TLS_RSA_WITH_RC4_128_SHA' (use Go crypto/tls names, e.g. "
       "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"},
      {"basic_auth_users:\n  alice: hunter2\n",
       "w.yml:2:10: password of user 'alice' is not a bcrypt hash ($2a$/$2b$/$2y$, 60 characters; make one "
       "with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"},
      {"basic_auth_users:\n  alice: " + hash + "\n  alice: " + hash + "\n", "w.yml:3:3: user 'alice' is listed twice"},
      {"http_server_config:\n  headers:\n    Server: insa\n",
       "w.yml:3:5: header 'Server' cannot be set (allowed: Content-Security-Policy, Strict-Transport-Security, "
       "X-Content-Type-Options, X-Frame-Options, X-XSS-Protection)"},
      {"http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
       "w.yml:3:5: X-Frame-Options must be 'deny' or 'sameorigin'"},
      {"tls_config:\n  cert_file: a\n",
       "w.yml:1:1: unknown key 'tls_config' in the web config (expected one of: basic_auth_users, "
       "http_server_config, tls_server_config)"},
      {"tls_server_config: [\n", "w.yml:2:1: YAML syntax error: end of sequence flow not found"},
      {"- a\n", "w.yml:1:1: a web config is a map with tls_server_config, http_server_config, basic_auth_users"},
  };
  for (const auto& [text, want] : cases) {
    auto c = parse_web_config(text, "w.yml");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.error().message, want) << text;
  }
}

TEST_F(WebConfigParse, UnreadableFilesSayWhichAndWhy) {
  auto c = load_web_config(dir() + "/nope.yml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "cannot read web config " + dir() + "/nope.yml (check --web.config.file): No such file or directory");
  const std::string f = dir() + "/badcert.yml";
  write_file(f, "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n");
  auto s = WebConfigSource::open(f);
  ASSERT_FALSE(s.ok());
  const std::string prefix = f + ": cannot load cert_file " + dir() + "/missing.pem: ";
  EXPECT_EQ(s.error().message.substr(0, prefix.size()), prefix);
  EXPECT_EQ(s.error().message.substr(s.error().message.size() - 46), " (a PEM certificate, readable by the exporter)");
  const std::string g = dir() + "/mismatch.yml";
  write_file(g, "tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n");
  auto m = WebConfigSource::open(g);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message,
            g + ": key_file " + dir() + "/other.key does not match cert_file " + dir() + "/server.pem");
}

/// A TLS server with basic auth on 127.0.0.1:0 and curl against it.
class Tls : public Certs {
 protected:
  void start(const std::string& yaml) {
    file_ = dir() + "/web-" + std::to_string(++n_) + ".yml";
    write_file(file_, yaml);
    ASSERT_EQ(promtool_check(file_), file_ + " SUCCESS\nrc=0\n");
    auto src = WebConfigSource::open(file_);
    ASSERT_TRUE(src.ok()) << src.error().message;
    src_ = *src;
    auto s = Server::listen("127.0.0.1:0");
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    server_->set_web_config(src_);
    server_->handle("/metrics", [] {
      return Response{200, "text/plain; version=0.0.4; charset=utf-8", "insa_up 1\n"};
    });
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  /// curl's HTTP code and body ("000" when the TLS connection failed).
  std::string curl(const std::string& args, const std::string& path = "/metrics") {
    return run_command("curl -s --max-time 5 --cacert " + dir() + "/ca.pem " + args +
                       " -w ' %{http_code}' https://127.0.0.1:" + std::to_string(server_->port()) + path +
                       " 2>/dev/null");
  }
  static inline int n_ = 0;
  std::string file_;
  std::shared_ptr<WebConfigSource> src_;
  std::unique_ptr<Server> server_;
};

TEST_F(Tls, BasicAuthOverTls) {
  start(
      "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
      "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
      "basic_auth_users:\n  alice: " +
      bcrypt("s3cret") + "\n");
  EXPECT_EQ(curl("-u alice:s3cret"), "insa_up 1\n 200");
  EXPECT_EQ(curl("-u alice:s3cret"), "insa_up 1\n 200");  // cached
  EXPECT_EQ(curl(""), "Unauthorized\n 401");
  EXPECT_EQ(curl("-u alice:wrong"), "Unauthorized\n 401");
  EXPECT_EQ(curl("-u mallory:s3cret"), "Unauthorized\n 401");
  EXPECT_EQ(curl("-u alice:s3cret", "/nope"), "not found; try /metrics\n 404");
  const std::string headers = curl("-u alice:s3cret -D - -o /dev/null");
  EXPECT_NE(headers.find("X-Content-Type-Options: nosniff\r\n"), std::string::npos) << headers;
  const std::string challenge = curl("-D - -o /dev/null");
  EXPECT_NE(challenge.find("WWW-Authenticate: Basic\r\n"), std::string::npos) << challenge;
  // Plain HTTP on the TLS port: told so, as Go servers do.
  EXPECT_EQ(run_command("curl -s --max-time 5 http://127.0.0.1:" + std::to_string(server_->port()) + "/metrics"),
            "Client sent an HTTP request to an HTTPS server.\n");
  // A client that does not trust the certificate cannot talk to it.
  EXPECT_EQ(run_command("curl -s --max-time 5 -w '%{http_code}' https://127.0.0.1:" + std::to_string(server_->port()) +
                        "/metrics"),
            "000");
}

TEST_F(Tls, MinVersionAndCipherSuites) {
  start(
      "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS12\n"
      "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n");
  const std::string port = std::to_string(server_->port());
  auto s_client = [&](const std::string& args) {
    return run_command("openssl s_client -connect 127.0.0.1:" + port + " -CAfile " + dir() + "/ca.pem " + args +
                       " </dev/null 2>&1 | grep -E '^New'");
  };
  EXPECT_EQ(s_client("-tls1_2"), "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384\n");
  EXPECT_EQ(s_client("-tls1_3"), "New, (NONE), Cipher is (NONE)\n");
  EXPECT_EQ(s_client("-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256"), "New, (NONE), Cipher is (NONE)\n");
  EXPECT_EQ(curl("--tls-max 1.2"), "insa_up 1\n 200");
  EXPECT_GE(server_->stats().tls_handshake_errors.load(), 2u);
}

TEST_F(Tls, ClientCertificates) {
  start(
      "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n"
      "  client_auth_type: RequireAndVerifyClientCert\n");
  const std::string d = dir();
  EXPECT_EQ(curl("--cert " + d + "/client.pem --key " + d + "/client.key"), "insa_up 1\n 200");
  EXPECT_EQ(curl(""), " 000");                                                      // no certificate
  EXPECT_EQ(curl("--cert " + d + "/other.pem --key " + d + "/other.key"), " 000");  // not signed by the CA
}

TEST_F(Tls, ReloadsWhenTheFileChangesAndKeepsTheOldOneOnABadEdit) {
  start(
      "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
      "basic_auth_users:\n  alice: " +
      bcrypt("one") + "\n");
  EXPECT_EQ(curl("-u alice:one"), "insa_up 1\n 200");
  write_file(file_,
             "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
             "basic_auth_users:\n  alice: " +
                 bcrypt("two") + "\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // checked at most once a second
  EXPECT_EQ(curl("-u alice:two"), "insa_up 1\n 200");
  EXPECT_EQ(curl("-u alice:one"), "Unauthorized\n 401");
  // A bad edit: logged, and the last good config keeps serving.
  write_file(file_, "tls_server_config:\n  cert_file: server.pem\n  key_file: missing.key\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(curl("-u alice:two"), "insa_up 1\n 200");
  auto r = src_->reload_if_changed();
  EXPECT_TRUE(r.ok());  // already reported once; unchanged since
  write_file(file_, "basic_auth_users:\n  alice: nohash\n");
  r = src_->reload_if_changed();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, file_ +
                                   ":2:10: password of user 'alice' is not a bcrypt hash ($2a$/$2b$/$2y$, 60 "
                                   "characters; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)");
  EXPECT_EQ(curl("-u alice:two"), "insa_up 1\n 200");
}

}  // namespace
}  // namespace insa::http
