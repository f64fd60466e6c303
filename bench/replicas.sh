#!/usr/bin/env bash
# bench/replicas.sh -- Formulary's reference deployment (deploy/local/run: nginx in front of three
# replicas on one PostgreSQL database and one blob store) measured on loopback:
#   1. throughput and p99 of a cached index page and a cached file through nginx with 1, 2 and
#      3 replicas (wrk);
#   2. the time for a policy change made through the load balancer to reach every replica;
#   3. a rolling restart under load (wrk, plus pip and uv installing in a loop): failed requests;
#   4. a replica killed with kill -9 under load: failed requests, then the stores verified;
#   5. memory (RSS) per replica.
# The report goes to $OUT/report.md (default target/bench-replicas) and is printed.
# Settings: DURATION (seconds per wrk run, 10), CONNECTIONS (32), FILE_KB (wheel size, 1024).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/target/bench-replicas}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
FILE_KB=${FILE_KB:-1024}
export DEPLOY_DIR=${DEPLOY_DIR:-${TMPDIR:-/tmp}/formulary-bench-replicas}
export LB_PORT=${LB_PORT:-18180} REPLICA_PORTS=${REPLICA_PORTS:-"18181 18182 18183"}
export PG_PORT=${PG_PORT:-18532} S3_PORT=${S3_PORT:-18990}
UPSTREAM_PORT=${UPSTREAM_PORT:-18199}
RUN="$ROOT/deploy/local/run"
LB="http://127.0.0.1:$LB_PORT"
read -r -a PORTS <<<"$REPLICA_PORTS"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is missing: apt-get install wrk"
command -v nginx >/dev/null || die "nginx is missing: apt-get install nginx"

rm -rf "$OUT" && mkdir -p "$OUT"
"$RUN" purge >/dev/null 2>&1 || true

# ------------------------------------------------------------------ upstream with one wheel
UP=$OUT/upstream
python3 - "$UP" "$FILE_KB" <<'EOF'
import hashlib, io, os, sys, zipfile
root, kb = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{root}/packages", exist_ok=True); os.makedirs(f"{root}/simple/benchpkg", exist_ok=True)
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as wheel:
    wheel.writestr("benchpkg/__init__.py", "VALUE = 1\n")
    wheel.writestr("benchpkg/payload.bin", os.urandom(kb * 1024))
    wheel.writestr("benchpkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: benchpkg\nVersion: 1.0\n")
    wheel.writestr("benchpkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    wheel.writestr("benchpkg-1.0.dist-info/RECORD", "")
data = buffer.getvalue()
name = "benchpkg-1.0-py3-none-any.whl"
open(f"{root}/packages/{name}", "wb").write(data)
digest = hashlib.sha256(data).hexdigest()
open(f"{root}/simple/benchpkg/index.html", "w").write(f'<a href="../../packages/{name}#sha256={digest}">{name}</a>\n')
EOF
python3 -m http.server --bind 127.0.0.1 "$UPSTREAM_PORT" --directory "$UP" >"$OUT/upstream.log" 2>&1 &
UPSTREAM_PID=$!
cleanup() { kill "$UPSTREAM_PID" 2>/dev/null || true; [[ ${KEEP:-0} == 1 ]] || "$RUN" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

export PYPI_UPSTREAMS="[\"http://127.0.0.1:$UPSTREAM_PORT/simple/\"]"
"$RUN" up 2>&1 | tee "$OUT/up.log" >&2
STATE=$DEPLOY_DIR
# The same (local trial) credentials deploy/local/run gives the replicas, for the CLI below.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-formulary-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-formulary-local-secret}
export AWS_REGION=${AWS_REGION:-us-east-1}
BIN=${FORMULARY_BIN:-$ROOT/target/release/formulary}
cli() { (set -a; source "$STATE/replica1/env"; set +a; "$BIN" "$@"); }

INDEX="$LB/pypi/simple/benchpkg/"
FILE="$LB/pypi/files/benchpkg/benchpkg-1.0-py3-none-any.whl"
curl -fsS -o /dev/null "$INDEX" && curl -fsS -o "$OUT/fetched.whl" "$FILE" || die "warming the cache failed"
cmp -s "$OUT/fetched.whl" "$UP/packages/benchpkg-1.0-py3-none-any.whl" || die "the cached file differs from the upstream's"
# Every replica has the page and the file (index documents and blobs are shared; each replica
# also keeps its own page cache).
for port in "${PORTS[@]}"; do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/pypi/simple/benchpkg/"
  curl -fsS -o /dev/null "http://127.0.0.1:$port/pypi/files/benchpkg/benchpkg-1.0-py3-none-any.whl"
done

# wrk's summary: requests/s, p99 (ms), errors (socket errors + non-2xx).
wrk_run() { wrk -t2 -c"$CONNECTIONS" -d"$1"s --latency "$2"; }
summarise() {
  python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
def ms(value):
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
p99 = ms(re.search(r"99%\s+(\S+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors += int(non2xx.group(1)) if non2xx else 0
print(f"{rps:.0f}\t{p99:.2f}\t{total}\t{errors}")
EOF
}

# ------------------------------------------------------------------ 1. throughput by replicas
printf 'replicas\twhat\trequests_per_s\tp99_ms\trequests\terrors\n' >"$OUT/throughput.tsv"
for n in 1 2 3; do
  "$RUN" lb "$n" 2>/dev/null
  sleep 0.5
  for what in index file; do
    url=$INDEX; [[ $what == file ]] && url=$FILE
    wrk_run "$DURATION" "$url" >"$OUT/wrk_${n}_$what.txt"
    printf '%s\t%s\t%s\n' "$n" "$what" "$(summarise "$OUT/wrk_${n}_$what.txt")" >>"$OUT/throughput.tsv"
    log "$n replica(s), $what: $(tail -1 "$OUT/throughput.tsv" | cut -f3-)"
  done
done
"$RUN" lb 3 2>/dev/null

# ------------------------------------------------------------------ 2. policy change propagation
TOKEN=$(cli token create --name bench --role national-curator --org NATIONAL | tail -1)
python3 - "$LB" "$TOKEN" "${PORTS[@]}" >"$OUT/propagation.txt" <<'EOF'
import json, sys, time, urllib.request
lb, token, ports = sys.argv[1], sys.argv[2], sys.argv[3:]
def allowed(base, purl):
    with urllib.request.urlopen(f"{base}/api/v1/policy/check?purl={purl}&organisation=NATIONAL") as r:
        return json.load(r)["allowed"]
delays = []
for i in range(20):
    component = f"pkg:pypi/propagation-probe-{i}"
    purl = component + "@1.0"
    body = json.dumps({"component": component, "status": "prohibited", "reason": "bench"}).encode()
    request = urllib.request.Request(f"{lb}/api/v1/entries", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    started = time.monotonic()
    urllib.request.urlopen(request).read()
    written = time.monotonic()
    pending = set(ports)
    while pending:
        for port in list(pending):
            if not allowed(f"http://127.0.0.1:{port}", purl):
                pending.discard(port)
        if time.monotonic() - written > 10:
            raise SystemExit(f"not every replica enforced {component} within 10 s")
    delays.append((time.monotonic() - written) * 1000)
delays.sort()
print(f"{len(delays)} changes; time from the API's answer until all {len(ports)} replicas enforce it: "
      f"median {delays[len(delays)//2]:.1f} ms, p95 {delays[int(len(delays)*0.95)-1]:.1f} ms, max {delays[-1]:.1f} ms")
EOF
log "propagation: $(cat "$OUT/propagation.txt")"

# ------------------------------------------------------------------ 3. rolling restart under load
python3 -m venv "$OUT/venv" >/dev/null
installs() {
  local failures=0 total=0 deadline=$(($(date +%s) + $1))
  while (($(date +%s) < deadline)); do
    total=$((total + 1))
    if ! "$OUT/venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --force-reinstall \
        --index-url "$LB/pypi/simple/" benchpkg==1.0 >>"$OUT/pip.log" 2>&1; then failures=$((failures + 1)); fi
    if command -v uv >/dev/null; then
      total=$((total + 1))
      if ! UV_NO_CONFIG=1 uv pip install --quiet --no-cache --reinstall --python "$OUT/venv/bin/python" \
          --index-url "$LB/pypi/simple/" benchpkg==1.0 >>"$OUT/uv.log" 2>&1; then failures=$((failures + 1)); fi
    fi
  done
  echo "$total $failures"
}
RESTART_LOAD=$((DURATION * 3))
wrk_run "$RESTART_LOAD" "$FILE" >"$OUT/wrk_restart_file.txt" &
WRK1=$!
wrk -t1 -c8 -d"$RESTART_LOAD"s --latency "$INDEX" >"$OUT/wrk_restart_index.txt" &
WRK2=$!
installs "$RESTART_LOAD" >"$OUT/restart_installs.txt" &
INSTALLS=$!
sleep 2
restart_started=$(date +%s%N)
"$RUN" restart 2>&1 | tee "$OUT/restart.log" >&2
restart_ms=$((($(date +%s%N) - restart_started) / 1000000))
wait "$WRK1" "$WRK2" "$INSTALLS"
read -r installs_total installs_failed <"$OUT/restart_installs.txt"
log "rolling restart (${restart_ms} ms) under load: file $(summarise "$OUT/wrk_restart_file.txt"), index $(summarise "$OUT/wrk_restart_index.txt"), installs $installs_total with $installs_failed failed"

# ------------------------------------------------------------------ 4. kill -9 under load
KILL_LOAD=$((DURATION * 2))
wrk_run "$KILL_LOAD" "$FILE" >"$OUT/wrk_kill_file.txt" &
WRK1=$!
wrk -t1 -c8 -d"$KILL_LOAD"s --latency "$INDEX" >"$OUT/wrk_kill_index.txt" &
WRK2=$!
sleep $((KILL_LOAD / 4))
"$RUN" kill 2 2>&1 | tee -a "$OUT/kill.log" >&2
sleep $((KILL_LOAD / 4))
"$RUN" start 2 2>&1 | tee -a "$OUT/kill.log" >&2
wait "$WRK1" "$WRK2"
cli cache verify >"$OUT/cache_verify.txt" 2>&1 && cache_ok=yes || cache_ok=no
cli audit verify >"$OUT/audit_verify.txt" 2>&1 && audit_ok=yes || audit_ok=no
log "kill -9 under load: file $(summarise "$OUT/wrk_kill_file.txt"), index $(summarise "$OUT/wrk_kill_index.txt"); cache verify $cache_ok, audit verify $audit_ok"

# ------------------------------------------------------------------ 5. memory
: >"$OUT/memory.tsv"
for n in 1 2 3; do
  pid=$(cat "$STATE/replica$n.pid")
  printf '%s\t%s\t%s\n' "$n" "$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")" "$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")" >>"$OUT/memory.tsv"
done

# ------------------------------------------------------------------ report
{
  echo "## bench/replicas.sh ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t2 -c$CONNECTIONS, ${DURATION}s per run, ${FILE_KB} KiB wheel, blobs: $(grep -q s3 "$STATE/replica1/env" && echo 'S3 (moto)' || echo 'shared folder'))"
  echo
  echo "| replicas | cached | requests/s | p99 ms | requests | failed |"
  echo "|---|---|---|---|---|---|"
  tail -n +2 "$OUT/throughput.tsv" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}'
  echo
  echo "Policy change: $(cat "$OUT/propagation.txt")"
  echo
  echo "Rolling restart of 3 replicas (${restart_ms} ms) under load: file $(summarise "$OUT/wrk_restart_file.txt" | awk -F'\t' '{print $3 " requests, " $4 " failed"}'), index $(summarise "$OUT/wrk_restart_index.txt" | awk -F'\t' '{print $3 " requests, " $4 " failed"}'), pip/uv installs $installs_total, $installs_failed failed."
  echo
  echo "kill -9 of replica 2 under load (restarted $((KILL_LOAD / 4)) s later): file $(summarise "$OUT/wrk_kill_file.txt" | awk -F'\t' '{print $3 " requests, " $4 " failed"}'), index $(summarise "$OUT/wrk_kill_index.txt" | awk -F'\t' '{print $3 " requests, " $4 " failed"}'); formulary cache verify: $cache_ok; audit verify: $audit_ok."
  echo
  echo "Memory per replica after the runs (RSS / peak RSS, MiB): $(awk -F'\t' '{printf "%s%s: %.1f / %.1f", (NR>1?"; ":""), "replica " $1, $2/1024, $3/1024}' "$OUT/memory.tsv")."
} >"$OUT/report.md"
cat "$OUT/report.md"
