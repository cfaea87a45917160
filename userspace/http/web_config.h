// SPDX-License-Identifier: Apache-2.0
/// @file `--web.config.file`: the Prometheus exporter-toolkit web configuration
/// (the file every Go exporter reads): TLS server settings, basic auth users with
/// bcrypt hashes, extra response headers. Parsed strictly (unknown keys are errors,
/// as in the toolkit) with located one-line messages; relative paths are relative
/// to the file's directory; reloaded when the file or a certificate changes.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace insa::http {

struct TlsServerConfig {
  std::string cert_file, key_file, client_ca_file;
  std::string client_auth_type = "NoClientCert";
  std::string min_version = "TLS12", max_version = "TLS13";
  std::vector<std::string> cipher_suites;      ///< Go names (TLS 1.2 and below)
  std::vector<std::string> curve_preferences;  ///< Go names: X25519, CurveP256, ...
  bool prefer_server_cipher_suites = true;
};

struct WebConfig {
  std::string file;                          ///< where it was read ("" when none)
  std::optional<TlsServerConfig> tls;        ///< absent: plain HTTP
  std::map<std::string, std::string> users;  ///< user → bcrypt hash
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Parses the YAML text of a web config; `file` names it in messages and anchors
/// relative paths.
Result<WebConfig> parse_web_config(const std::string& text, const std::string& file);
Result<WebConfig> load_web_config(const std::string& file);

/// A parsed config with its TLS context built (certificate, key and CA loaded).
struct WebState {
  WebConfig cfg;
  std::shared_ptr<SSL_CTX> tls;  ///< null: plain HTTP
};
Result<std::shared_ptr<const WebState>> build_web_state(WebConfig cfg);

/// The web config of a running server: reloads itself when the file or one of the
/// files it names changes (checked at most once a second, when a connection
/// arrives); a bad edit is logged and the previous state keeps serving.
class WebConfigSource {
 public:
  /// Loads `file` ("" = plain HTTP, no auth). Fails with one line when it is invalid.
  static Result<std::shared_ptr<WebConfigSource>> open(const std::string& file);
  std::shared_ptr<const WebState> current();
  /// Checks a basic-auth user and password against the bcrypt hash (successes are
  /// cached by a SHA-256 of user, password and hash: bcrypt costs ~50 ms a check).
  bool check_password(const WebState& state, const std::string& user, const std::string& password);
  /// Reloads now if anything changed; returns the reload error, if any (tests).
  Result<void> reload_if_changed();

 private:
  explicit WebConfigSource(std::string file) : file_(std::move(file)) {}
  std::string stamp() const;

  std::string file_;
  std::mutex mu_;
  std::shared_ptr<const WebState> state_;
  std::string stamp_;
  std::chrono::steady_clock::time_point last_check_{};
  std::map<std::string, bool> auth_cache_;
};

}  // namespace insa::http
