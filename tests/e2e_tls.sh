#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end over TLS with basic auth: the exporter with a --web.config.file
# (certificates made here with openssl, a bcrypt user), checked by
# `promtool check web-config`, and Debian's real Prometheus scraping it with two
# jobs: one with the CA and the credentials (must be up, with the exporter's
# series), one without credentials (must be down with a 401). A hostile 4 KiB
# label value (quotes, backslashes, a newline, a tab, non-ASCII) in insa_system_info
# must reach Prometheus intact. Bounded: gives up after 60 s. Run as root (the
# exporter loads BPF).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${E2E_TLS_PORT:-19291}
prom_port=${E2E_TLS_PROM_PORT:-19292}
dir=$(mktemp -d /tmp/insa-e2e-tls.XXXXXX)
cleanup() {
  [ -n "${exp_pid:-}" ] && kill "$exp_pid" 2>/dev/null || true
  [ -n "${prom_pid:-}" ] && kill "$prom_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "e2e_tls: FAIL $*"; echo "--- exporter log"; tail -20 "$dir/exporter.log" || true;
         echo "--- prometheus log"; tail -20 "$dir/prometheus.log" || true; exit 1; }

# Certificates: a CA and a server certificate for 127.0.0.1.
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
(
  cd "$dir"
  openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=insa-e2e-ca
  openssl req $ec -keyout server.key -out server.csr -subj /CN=127.0.0.1
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
) >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log"; fail "openssl could not make the test certificates"; }
password=e2e-$RANDOM-secret
hash=$(python3 -W ignore -c 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1<<10)))' "$password")
printf '%s' "$password" >"$dir/password"
cat >"$dir/web.yml" <<YAML
tls_server_config:
  cert_file: server.pem
  key_file: server.key
  min_version: TLS12
basic_auth_users:
  prometheus: $hash
YAML
promtool check web-config "$dir/web.yml" || fail "promtool rejects the web config"

sed "s|\.\./\.\./\.\./build|$PWD/build|g" tests/root/configs/request.yaml >"$dir/probes.yaml"
# YAML double-quoted escapes (the same in JSON): quote, backslash, newline, tab, é, €.
hostile='q\"uote b\\ack nl\n tab\t caf\u00e9 \u20ac '"$(printf 'x%.0s' $(seq 4000))"
printf 'exporter:\n  system_info:\n    environment: "%s"\n' "$hostile" >>"$dir/probes.yaml"
# What YAML makes of it, as Prometheus must return it.
want=$(python3 -c 'import json,sys; print(json.dumps(json.loads("\"" + sys.argv[1] + "\"")))' "$hostile")
build/insa-exporter --config.file "$dir/probes.yaml" --web.listen-address "127.0.0.1:$port" \
  --web.config.file "$dir/web.yml" >"$dir/exporter.log" 2>&1 &
exp_pid=$!
for _ in $(seq 100); do
  curl -sf --cacert "$dir/ca.pem" -u "prometheus:$password" "https://127.0.0.1:$port/-/ready" >/dev/null && break
  kill -0 "$exp_pid" 2>/dev/null || fail "the exporter exited"
  sleep 0.2
done
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$dir/ca.pem" "https://127.0.0.1:$port/metrics")
[ "$code" = 401 ] || fail "no credentials: HTTP $code, expected 401"

cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: tls-auth
    scheme: https
    tls_config: {ca_file: $dir/ca.pem}
    basic_auth: {username: prometheus, password_file: $dir/password}
    static_configs: [{targets: ["127.0.0.1:$port"]}]
  - job_name: tls-no-auth
    scheme: https
    tls_config: {ca_file: $dir/ca.pem}
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
promtool check config "$dir/prometheus.yml" >/dev/null || fail "prometheus config"
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$dir/prometheus.log" 2>&1 &
prom_pid=$!

query() { curl -sf "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1"; }
deadline=$((SECONDS + 60))
while :; do
  ((SECONDS < deadline)) || fail "Prometheus did not report both targets within 60 s"
  targets=$(curl -sf "http://127.0.0.1:$prom_port/api/v1/targets" || true)
  up=$(query 'up{job="tls-auth"}' || true)
  build=$(query 'insa_exporter_build_info{job="tls-auth"}' || true)
  if [[ $targets == *'"lastError":"server returned HTTP status 401 Unauthorized"'* &&
        $up == *'"value":['*',"1"]'* && $build == *'"__name__":"insa_exporter_build_info"'* ]]; then
    break
  fi
  sleep 1
done
info=$(query 'insa_system_info{job="tls-auth"}')
got=$(python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(json.dumps(r[0]["metric"]["environment"]) if r else "none")' <<<"$info")
[ "$got" = "$want" ] || fail "the hostile label value came back as $got, expected $want"
down=$(query 'up{job="tls-no-auth"}')
[[ $down == *'"value":['*',"0"]'* ]] || fail "the job without credentials is not down: $down"
echo "e2e_tls: Prometheus scrapes over TLS with basic auth (up=1, insa_exporter_build_info present, a hostile 4 KiB label intact); without credentials it gets 401 (up=0)"
