# SPDX-License-Identifier: Apache-2.0
# Helpers shared by the end-to-end scripts (sourced, not run): HTTP waits and
# exact PromQL assertions against a real Prometheus. Needs curl and python3.

# wait_http URL SECONDS: until URL answers 2xx; 1 on timeout.
wait_http() {
  local url=$1 end=$((SECONDS + $2))
  until curl -sf -o /dev/null "$url"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# promq PROM_URL EXPR [TIME]: an instant query; prints one line per series,
# `{label="value",...} VALUE` (labels sorted, no __name__), lines sorted; a scalar prints `VALUE`.
# Exit 1 (message on stderr) when Prometheus rejects the query.
promq() {
  local args=(--data-urlencode "query=$2")
  [ -n "${3:-}" ] && args+=(--data-urlencode "time=$3")
  curl -sf "${args[@]}" "$1/api/v1/query" | python3 -c '
import json, sys
body = json.load(sys.stdin)
if body.get("status") != "success":
    sys.exit("promq: " + body.get("error", "query failed"))
data = body["data"]
if data["resultType"] in ("scalar", "string"):
    print(data["result"][1])
    sys.exit(0)
lines = []
for s in data["result"]:
    labels = ",".join("%s=%s" % (k, json.dumps(v)) for k, v in sorted(s["metric"].items()) if k != "__name__")
    lines.append("{%s} %s" % (labels, s["value"][1]))
print("\n".join(sorted(lines)))'
}

# await_query PROM_URL EXPR WANT SECONDS: until promq prints exactly WANT
# (several lines allowed); on timeout prints what it last got and returns 1.
await_query() {
  local end=$((SECONDS + $4)) got
  while :; do
    got=$(promq "$1" "$2" 2>&1) && [ "$got" = "$3" ] && return 0
    if [ "$SECONDS" -ge "$end" ]; then
      printf 'query:    %s\nexpected: %s\ngot:      %s\n' "$2" "${3//$'\n'/$'\n'          }" "${got//$'\n'/$'\n'          }"
      return 1
    fi
    sleep 1
  done
}

# truth_counts FILE METRIC: the `METRIC{...} N` counter lines of a demo
# program's truth file (tests/workers/common/truth.h), in promq's format
# (labels sorted) with job/instance added from $E2E_JOB_LABELS (`job="x",instance="y"`).
truth_counts() {
  python3 - "$1" "$2" "${E2E_JOB_LABELS:-}" <<'PY'
import re, sys
path, metric, extra = sys.argv[1:4]
lines = []
for line in open(path):
    m = re.match(r'^(\w+)\{(.*)\} (\S+)$', line.strip())
    if not m or m.group(1) != metric:
        continue
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
    labels.update(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', extra))
    body = ",".join('%s="%s"' % (k, v) for k, v in sorted(labels.items()))
    lines.append("{%s} %s" % (body, m.group(3)))
print("\n".join(sorted(lines)))
PY
}

# truth_buckets FILE METRIC LABELS BOUNDS...: cumulative bucket counts of the
# truth file's `observe METRIC{...} V` samples, one `{LABELS,le="B"} N` line per
# bound (+Inf included), sorted like promq's output.
truth_buckets() {
  python3 - "$@" <<'PY'
import re, sys
path, metric, labels, bounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
obs = [float(m.group(1)) for line in open(path)
       for m in [re.match(r'^observe ' + re.escape(metric) + r'\{.*\} (\S+)$', line.strip())] if m]
out = []
for b in bounds + ["+Inf"]:
    n = sum(1 for v in obs if b == "+Inf" or v <= float(b))
    parts = sorted(re.findall(r'\w+="[^"]*"', labels) + ['le="%s"' % b])
    out.append("{%s} %d" % (",".join(parts), n))
print("\n".join(sorted(out)))
PY
}
