#!/usr/bin/env bash
# bench/pypi.sh -- Formulary's PyPI gateway beside nginx (static PEP 503/691 tree), pypiserver,
# devpi-server and proxpi, in one run, with the shared peer harness (peerbench.sh); then the
# resident memory of Formulary serving 64 concurrent downloads of a 100 MB file.
#
# usage: bench/pypi.sh            (about 25 minutes on a 2-core machine)
# knobs (environment):
#   WORKDIR=/tmp/formulary-pypibench   everything generated goes here (package set is reused)
#   PEERBENCH=/work/shared/bench/peerbench.sh   the harness (its peerbench.conf is the base config)
#   CLIENTS=0      1: also time real pip/uv runs against every peer (harness 'clients' step, ~5 min)
#   BUILD=1        0: use the existing release build (BIN, or CARGO_TARGET_DIR/release/formulary)
#   DOCS=1         0: do not write the tables into docs/performance.md
#   DURATION, REPEATS, CONCURRENCY   override the harness defaults (5 s, 3, "1 16 64")
#   PYTHON_PEERS="pypiserver devpi proxpi"   the Python peers beside nginx; "" for nginx and
#                  Formulary only (about 6 minutes with REPEATS=1; the x20 Python target is then
#                  not judged)
# Everything binds 127.0.0.1; every server started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERBENCH=${PEERBENCH:-/work/shared/bench/peerbench.sh}
BASE_CONF=${PEERBENCH_BASE_CONF:-$(dirname "$PEERBENCH")/peerbench.conf}
WORKDIR=${WORKDIR:-/tmp/formulary-pypibench}
CLIENTS=${CLIENTS:-0}
BUILD=${BUILD:-1}
DOCS=${DOCS:-1}
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/formulary}
ADVISORIES=$ROOT/test-data/osv/pypa-advisory-database
PORT_NGINX=18080
PORT_GATEWAY=18090
PORT_MEM=18091             # the 100 MB memory test server
MEM_CONCURRENCY=64
MEM_FILE_MB=100
CONF=$WORKDIR/peerbench.conf
R=$WORKDIR/results
DATA=$WORKDIR/formulary-data
MEMDIR=$WORKDIR/formulary-mem
REPORT=$WORKDIR/pypi-report.md
PYTHON=${PYTHON:-python3}
PYTHON_PEERS=${PYTHON_PEERS-pypiserver devpi proxpi}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
harness() { PEERBENCH_CONF=$CONF "$PEERBENCH" "$@"; }

mkdir -p "$WORKDIR"
cd "$WORKDIR"   # no ./formulary.toml here: Formulary reads only the settings given below

# ---------------------------------------------------------------- cleanup
MEM_PID=""
LOAD_PIDS=()
cleanup() {
  local rc=$? p i
  trap - EXIT INT TERM
  for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -n $MEM_PID ]] && [[ -r /proc/$MEM_PID/cmdline ]] &&
    tr '\0' ' ' </proc/"$MEM_PID"/cmdline | grep -qF -- "$MEMDIR"; then
    kill -TERM "$MEM_PID" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$MEM_PID" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$MEM_PID" 2>/dev/null || true
  fi
  if [[ -f $CONF ]]; then harness stop || true; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build, data, config
if ((BUILD)); then
  log "cargo build --release -p formulary"
  (cd "$ROOT" && cargo build --release -p formulary)
fi
[[ -x $BIN ]] || die "$BIN missing (run with BUILD=1)"

log "fresh data dir $DATA; importing advisories from $ADVISORIES"
rm -rf "$DATA"
FORMULARY_LOG=warn "$BIN" --data-dir "$DATA" advisories import "$ADVISORIES" >"$WORKDIR/advisories-import.log" 2>&1 ||
  { cat "$WORKDIR/advisories-import.log" >&2; die "advisories import failed"; }
tail -n 3 "$WORKDIR/advisories-import.log" >&2

# The harness sources its config: take its defaults, then override (later assignments win).
{
  cat "$BASE_CONF"
  cat <<EOF

# ---- bench/pypi.sh overrides ----
WORKDIR=$WORKDIR
PEERS="nginx $PYTHON_PEERS gateway"
PYTHON=$PYTHON
PORT_NGINX=$PORT_NGINX
PORT_GATEWAY=$PORT_GATEWAY
# Formulary as a caching proxy of the static nginx tree, exactly like proxpi
GATEWAY_START="env FORMULARY_PYPI_UPSTREAMS='[\"http://127.0.0.1:$PORT_NGINX/simple/\"]' FORMULARY_LOG=warn $BIN --data-dir $DATA serve --listen 127.0.0.1:$PORT_GATEWAY"
GATEWAY_KEYWORD="$BIN"
GATEWAY_SIMPLE=http://127.0.0.1:$PORT_GATEWAY/pypi/simple/
GATEWAY_NPM=""
GATEWAY_READY_URL=http://127.0.0.1:$PORT_GATEWAY/healthz
NPM_ENDPOINTS=""   # PyPI only
EOF
  [[ -n ${DURATION:-} ]] && echo "DURATION=$DURATION"
  [[ -n ${REPEATS:-} ]] && echo "REPEATS=$REPEATS"
  [[ -n ${CONCURRENCY:-} ]] && echo "CONCURRENCY=\"$CONCURRENCY\""
  true
} >"$CONF"
# shellcheck disable=SC1090
source "$CONF"   # for IDX_PKG, FILE_* and the rest
W=$WORKDIR

# ---------------------------------------------------------------- install + start peers
log "harness install (wrk, nginx, venvs, package set)"
harness install || die "harness install failed"
command -v wrk >/dev/null || die "wrk missing after install"
rm -f "$R"/rss_*.tsv "$R"/clients.tsv "$R"/targets.tsv "$R"/report.md
rm -rf "$R/wrk"
# Every port must be ours: a stale server would be measured in place of the peer.
ports=("$PORT_NGINX" "$PORT_GATEWAY" "$PORT_MEM")
[[ " $PEERS " == *" pypiserver "* ]] && ports+=("$PORT_PYPISERVER")
[[ " $PEERS " == *" devpi "* ]] && ports+=("$PORT_DEVPI")
[[ " $PEERS " == *" proxpi "* ]] && ports+=("$PORT_PROXPI")
for port in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is busy"; fi
done
harness start || true
status=$(harness status)
for peer in $PEERS; do
  grep -q "^$peer: pid" <<<"$status" || die "$peer did not start (see $W/logs/$peer.log)"
done

# ---------------------------------------------------------------- warm Formulary's cache
# The harness warms proxpi only. Formulary fetches an index page upstream on first request and a
# file on its first download; do both now (and check the bytes) so that wrk measures the cache.
gw_pid=$(awk '{print $1}' "$W/pids/gateway.pid")
log "warming Formulary (pid $gw_pid)"
for accept in text/html application/vnd.pypi.simple.v1+json; do
  for u in "$GATEWAY_SIMPLE" "$GATEWAY_SIMPLE$IDX_PKG/" "$GATEWAY_SIMPLE$FILE_1MB_PKG/" "$GATEWAY_SIMPLE$FILE_10MB_PKG/"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -H "Accept: $accept" "$u")
    [[ $code == 200 ]] || die "Formulary answered $code for $u ($accept)"
  done
done
"$PYTHON" - "$GATEWAY_SIMPLE" "$W/pkgs" "$FILE_1MB_PKG:$FILE_1MB" "$FILE_10MB_PKG:$FILE_10MB" <<'EOF' || die "Formulary warm-up failed"
# The harness takes a peer's file URL from its HTML page (urljoin of the href); do the same,
# download each file twice (cold: pulled upstream; warm: from the cache) and check the bytes.
import hashlib, re, sys, time, urllib.parse, urllib.request
base, pkgs = sys.argv[1], sys.argv[2]
for spec in sys.argv[3:]:
    pkg, fn = spec.split(":", 1)
    page = base + pkg + "/"
    body = urllib.request.urlopen(urllib.request.Request(page, headers={"Accept": "text/html"}), timeout=30).read().decode()
    hrefs = [h.split("#")[0] for h in re.findall(r'href="([^"]+)"', body)]
    url = next((urllib.parse.urljoin(page, h) for h in hrefs if h.endswith("/" + fn) or h == fn), None)
    if url is None:
        sys.exit(f"{fn} is not linked from {page}")
    want = hashlib.sha256(open(f"{pkgs}/{fn}", "rb").read()).hexdigest()
    for label in ("cold", "warm"):
        t0 = time.monotonic()
        data = urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "*/*"}), timeout=120).read()
        dt = time.monotonic() - t0
        if hashlib.sha256(data).hexdigest() != want:
            sys.exit(f"{url}: {len(data)} bytes, sha256 mismatch ({label})")
        print(f"  {label} {url}: {len(data)/1e6:.1f} MB in {dt*1000:.0f} ms", file=sys.stderr)
EOF
echo -e "gateway\t$(awk '$1=="VmRSS:"{print $2}' /proc/"$gw_pid"/status)" >"$R/rss_idle_gateway.tsv"

# ---------------------------------------------------------------- measure
log "harness bench (wrk: $PYPI_ENDPOINTS at c=$CONCURRENCY, ${DURATION}s x $REPEATS per peer)"
harness bench || true
ls "$R"/wrk/gateway__* >/dev/null 2>&1 || die "no wrk results for Formulary (see $R/targets.tsv)"
if ((CLIENTS)); then log "harness clients (pip, uv)"; harness clients || true; fi
harness report >"$W/harness-report.txt" || true
gw_log_issues=$(grep -c -E 'WARN|ERROR' "$W/logs/gateway.log" || true)
gw_sample=$(grep -E 'WARN|ERROR' "$W/logs/gateway.log" | head -n 5 || true)
harness stop   # free the CPU for the memory test

# ---------------------------------------------------------------- memory: 64 x 100 MB downloads
# Run twice: as specified (only the imported wheel), and with the PyPA advisories imported too,
# which is what a real site has loaded.
BIG=bigdemo-1.0-py3-none-any.whl
rm -rf "$MEMDIR"; mkdir -p "$MEMDIR/folder"
# A real wheel (mirror import checks wheels as zip archives): one stored member of random bytes.
"$PYTHON" - "$MEMDIR/folder/$BIG" "$MEM_FILE_MB" <<'EOF'
import os, sys, zipfile
path, megabytes = sys.argv[1], int(sys.argv[2])
with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as wheel:
    wheel.writestr("bigdemo/data.bin", os.urandom(megabytes * 1024 * 1024))
    wheel.writestr("bigdemo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: bigdemo\nVersion: 1.0\n")
    wheel.writestr("bigdemo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    wheel.writestr("bigdemo-1.0.dist-info/RECORD", "")
EOF
big_size=$(stat -c %s "$MEMDIR/folder/$BIG")
memtest() { # variant (plain|advisories) -> $R/memtest_<variant>.tsv
  local variant=$1 data=$MEMDIR/data-$1 i p t0 t1 warm rss_before ok hwm peak wall dl_pids=()
  log "memory test ($variant): $MEM_CONCURRENCY concurrent downloads of a $MEM_FILE_MB MB wheel"
  if [[ $variant == advisories ]]; then
    FORMULARY_LOG=warn "$BIN" --data-dir "$data" advisories import "$ADVISORIES" >"$MEMDIR/advisories-$variant.log" 2>&1 ||
      die "advisories import into $data failed"
  fi
  FORMULARY_LOG=warn "$BIN" --data-dir "$data" mirror import pypi "$MEMDIR/folder" >"$MEMDIR/import-$variant.log" 2>&1 ||
    { cat "$MEMDIR/import-$variant.log" >&2; die "mirror import failed"; }
  setsid env FORMULARY_PYPI_UPSTREAMS='[]' FORMULARY_LOG=warn \
    "$BIN" --data-dir "$data" serve --listen "127.0.0.1:$PORT_MEM" >"$MEMDIR/serve-$variant.log" 2>&1 </dev/null &
  MEM_PID=$!
  for ((i = 0; i < 120; i++)); do
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PORT_MEM/healthz" && break; sleep 0.25
  done
  local url=http://127.0.0.1:$PORT_MEM/pypi/files/bigdemo/$BIG
  warm=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 120 "$url")
  [[ $warm == "200 $big_size" ]] || die "memory test: warm-up download answered '$warm' (want '200 $big_size')"
  rss_before=$(awk '$1=="VmRSS:"{print $2}' /proc/$MEM_PID/status)
  : >"$MEMDIR/samples-$variant"
  ( while kill -0 "$MEM_PID" 2>/dev/null; do
      awk '$1=="VmRSS:"{print $2}' /proc/"$MEM_PID"/status >>"$MEMDIR/samples-$variant" 2>/dev/null || break
      sleep 0.05
    done ) &
  LOAD_PIDS=($!)
  rm -f "$MEMDIR"/dl.*
  t0=$(date +%s.%N)
  for ((i = 0; i < MEM_CONCURRENCY; i++)); do
    curl -s -o /dev/null -w '%{http_code} %{size_download}\n' --max-time 600 "$url" >"$MEMDIR/dl.$i" &
    dl_pids+=($!); LOAD_PIDS+=($!)
  done
  for p in "${dl_pids[@]}"; do wait "$p" || true; done
  t1=$(date +%s.%N)
  kill "${LOAD_PIDS[0]}" 2>/dev/null || true
  wait "${LOAD_PIDS[0]}" 2>/dev/null || true
  LOAD_PIDS=()
  ok=$(cat "$MEMDIR"/dl.* | grep -c "^200 $big_size\$" || true)
  hwm=$(awk '$1=="VmHWM:"{print $2}' /proc/$MEM_PID/status)
  peak=$(sort -n "$MEMDIR/samples-$variant" | tail -n 1)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  printf 'rss_before_kb\t%s\nrss_peak_sampled_kb\t%s\nvmhwm_kb\t%s\nok\t%s\nclients\t%s\nbytes\t%s\nwall_s\t%s\n' \
    "$rss_before" "${peak:-0}" "$hwm" "$ok" "$MEM_CONCURRENCY" "$big_size" "$wall" >"$R/memtest_$variant.tsv"
  log "memory test ($variant): $ok/$MEM_CONCURRENCY complete, ${wall}s, VmHWM $hwm kB, sampled peak ${peak:-?} kB"
  kill -TERM "$MEM_PID" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do kill -0 "$MEM_PID" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$MEM_PID" 2>/dev/null || true
  MEM_PID=""
}
memtest plain
memtest advisories

# ---------------------------------------------------------------- report
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null) ]]; then
  rev="$rev with uncommitted changes in crates/"
fi
"$PYTHON" - "$R" "$CONCURRENCY" "$W/harness-report.txt" "$gw_log_issues" "$rev" <<'EOF' >"$REPORT"
import glob, os, re, statistics as st, sys
R, concs, harness_report, log_issues, rev = sys.argv[1], sys.argv[2].split(), sys.argv[3], int(sys.argv[4]), sys.argv[5]
def tosec(v, u): return float(v) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[u]
def tobytes(v, u): return float(v) * {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[u]
runs = {}
for f in glob.glob(f"{R}/wrk/*.txt"):
    peer, ep, c, _ = os.path.basename(f)[:-4].split("__")
    t = open(f).read()
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    if not m: continue
    d = {"rps": float(m.group(1))}
    mm = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", t)
    d["mbs"] = tobytes(*mm.groups()) / 1e6 if mm else 0
    for p in ("50", "99"):
        mm = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M)
        d["p" + p] = tosec(*mm.groups()) * 1000 if mm else float("nan")
    e = 0
    for pat in (r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", r"Non-2xx or 3xx responses: (\d+)"):
        mm = re.search(pat, t)
        if mm: e += sum(map(int, mm.groups()))
    d["err"] = e
    runs.setdefault((peer, ep, c[1:]), []).append(d)
def med(peer, ep, c, k):
    L = runs.get((peer, ep, c))
    return st.median(x[k] for x in L) if L else None
python_peers = ["pypiserver", "devpi", "proxpi"]
def ratio(a, b): return a / b if a is not None and b else None
def fmt_r(x): return "-" if x is None else (f"{x:.2f}x" if x < 10 else f"{x:.0f}x")
verdicts = []
print(f"Formulary release build of {rev}.\n")
print("### Targets\n")
print("| measurement | c | Formulary | nginx | best Python peer | Formulary / nginx | Formulary / best Python | target | met |")
print("|---|---|---|---|---|---|---|---|---|")
for ep, label, unit, key in (("idx", "project page, HTML", "req/s", "rps"),
                             ("idxjson", "project page, JSON", "req/s", "rps"),
                             ("root", "`/simple/` root listing (no target)", "req/s", "rps"),
                             ("10mb", "12.4 MB wheel", "MB/s", "mbs"),
                             ("1mb", "1.25 MB wheel (no target)", "MB/s", "mbs")):
    for c in concs:
        g, n = med("gateway", ep, c, key), med("nginx", ep, c, key)
        py = [(med(p, ep, c, key) or 0, p) for p in python_peers]
        best, best_p = max(py)
        rn, rp = ratio(g, n), ratio(g, best)
        if ep in ("idx", "idxjson") and not best:
            target = ">= 0.8x nginx (no Python peer run)"
            ok = rn is not None and rn >= 0.8
        elif ep in ("idx", "idxjson"):
            target = ">= 0.8x nginx, >= 20x Python"
            ok = rn is not None and rp is not None and rn >= 0.8 and rp >= 20
        elif ep == "10mb":
            target = ">= 0.8x nginx"; ok = rn is not None and rn >= 0.8
        else:
            target, ok = "-", None
        if ok is not None: verdicts.append((label, c, ok))
        f = lambda v: "-" if v is None else f"{v:,.0f} {unit}"
        print(f"| {label} | {c} | {f(g)} | {f(n)} | {f(best or None)} ({best_p}) | {fmt_r(rn)} | {fmt_r(rp)} | {target} | {'-' if ok is None else ('yes' if ok else '**no**')} |")
notes = []
for variant, what, counted in (("plain", "only the imported wheel", True),
                               ("advisories", "with the PyPA advisories imported (no target; informative)", False)):
    path = f"{R}/memtest_{variant}.tsv"
    if not os.path.exists(path): continue
    m = dict(l.rstrip("\n").split("\t") for l in open(path))
    peak_mb = max(int(m["vmhwm_kb"]), int(m["rss_peak_sampled_kb"] or 0)) / 1024
    mbs = int(m["ok"]) * int(m["bytes"]) / 1e6 / float(m["wall_s"])
    mem_ok = peak_mb <= 64 and int(m["ok"]) == int(m["clients"])
    if counted: verdicts.append(("memory", m["clients"], mem_ok))
    print(f"| resident memory, {m['clients']} concurrent downloads of a {int(m['bytes'])/2**20:.0f} MB file, {what} | {m['clients']} "
          f"| peak {peak_mb:.1f} MB (idle {int(m['rss_before_kb'])/1024:.1f} MB); {mbs:,.0f} MB/s | - | - | - | - | <= 64 MB | {'yes' if mem_ok else '**no**'} |")
    notes.append(f"{variant}: {m['ok']}/{m['clients']} downloads complete (HTTP 200, full size) in {float(m['wall_s']):.1f} s, {mbs:,.0f} MB/s in total")
print("\nMemory test (" + "; ".join(notes) + "). Peak = max(VmHWM, VmRSS sampled every 50 ms); the one file is served "
      "from the blob store of a server with no upstream (`mirror import pypi`).")
errs = sum(x["err"] for (p, _, _), L in runs.items() if p == "gateway" for x in L)
print(f"\nFormulary: {errs} wrk socket errors or non-2xx answers over all runs; {log_issues} WARN/ERROR lines in its log.")
met = sum(ok for *_, ok in verdicts)
print(f"Targets met: {met} of {len(verdicts)}.")
print("\n### All peers\n")
text = open(harness_report).read()
print(text.split("\n\nhost:")[0].replace("## wrk:", "#### wrk:").replace("## memory", "#### memory").replace("## real clients", "#### real clients").strip())
print("\n```")
print("host:" + text.split("\n\nhost:", 1)[1].split("\ntargets")[0].rstrip() if "\n\nhost:" in text else "")
print("```")
EOF
if [[ -n $gw_sample ]]; then
  { echo; echo "First WARN/ERROR lines of Formulary's log ($W/logs/gateway.log):"; echo
    echo '```'; echo "$gw_sample"; echo '```'; } >>"$REPORT"
fi
cat "$REPORT"

if ((DOCS)); then
  # Replace what sits between the markers in docs/performance.md (the interpretation stays outside).
  "$PYTHON" - "$ROOT/docs/performance.md" "$REPORT" <<'EOF'
import datetime, os, sys
doc, rep = sys.argv[1], sys.argv[2]
begin, end = "<!-- bench/pypi.sh: begin -->", "<!-- bench/pypi.sh: end -->"
text = open(doc).read()
if begin not in text or end not in text:
    sys.exit(f"{doc}: markers not found; tables left in {rep}")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
stamp = f"Run of {datetime.date.today().isoformat()} on {os.cpu_count()} cores."
open(doc, "w").write(f"{head}{begin}\n{stamp}\n\n{open(rep).read().strip()}\n{end}{tail}")
print(f"wrote the tables into {doc}", file=sys.stderr)
EOF
fi
log "done: $REPORT"
