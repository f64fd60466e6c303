#!/usr/bin/env bash
# bench/npm.sh -- Formulary's npm gateway beside nginx serving the same packuments and tarballs
# statically: the full and abbreviated packuments of a small package (is-number) and a very large
# one (typescript, thousands of versions), a small and a large tarball, with wrk (packuments at
# concurrency 16, tarballs at 64; median of REPEATS runs of DURATION seconds), and Formulary's
# peak memory while 64 clients download the large tarball. Formulary pulls from that nginx (with
# the npm advisories loaded, so every answer goes through the policy); its cache is warmed first.
# nginx serves one packument for both forms (it has no abbreviated form), as a static mirror would.
# verdaccio (installed from the npm registry into WORKDIR, no uplinks) serves the same two packages
# from its own storage, as a private registry would (VERDACCIO=0 leaves it out).
#
# usage: bench/npm.sh   (about 6 minutes; knobs: WORKDIR, DURATION, REPEATS, BUILD=0, DOCS=0)
# Needs network to registry.npmjs.org once (the real documents). Everything binds 127.0.0.1;
# every server started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORKDIR=${WORKDIR:-/tmp/formulary-npmbench}
DURATION=${DURATION:-5}
REPEATS=${REPEATS:-3}
BUILD=${BUILD:-1}
DOCS=${DOCS:-1}
PORT_NGINX=${PORT_NGINX:-18280}
PORT_GATEWAY=${PORT_GATEWAY:-18290}
PORT_VERDACCIO=${PORT_VERDACCIO:-18295}
VERDACCIO=${VERDACCIO:-1}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/formulary

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

for tool in nginx wrk python3 curl; do
  command -v "$tool" >/dev/null 2>&1 && continue
  [[ $(id -u) -eq 0 ]] || { log "missing $tool (install it, or run as root)"; exit 1; }
  log "installing $tool"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
done
[[ $BUILD == 1 ]] && { log "building Formulary (release)"; (cd "$ROOT" && cargo build --release -p formulary >&2); }

rm -rf "$WORKDIR/static" "$WORKDIR/nginx" "$WORKDIR/formulary-data"; mkdir -p "$WORKDIR/static/packuments" "$WORKDIR/nginx" "$WORKDIR/cache"
log "fetching the real packuments and tarballs (cached in $WORKDIR/cache)"
python3 - "$WORKDIR" "http://127.0.0.1:$PORT_NGINX/" <<'PY'
import json, os, sys, urllib.request
work, base = sys.argv[1], sys.argv[2]
def fetch(url, path):
    if not os.path.exists(path):
        open(path, "wb").write(urllib.request.urlopen(url).read())
    return open(path, "rb").read()
for name in ["is-number", "typescript"]:
    document = json.loads(fetch(f"https://registry.npmjs.org/{name}", f"{work}/cache/{name}.json"))
    version = document["dist-tags"]["latest"]
    tarball = document["versions"][version]["dist"]["tarball"]
    filename = tarball.rsplit("/", 1)[1]
    data = fetch(tarball, f"{work}/cache/{filename}")
    os.makedirs(f"{work}/static/{name}/-", exist_ok=True)
    open(f"{work}/static/{name}/-/{filename}", "wb").write(data)
    for item in document["versions"].values():
        dist = item.get("dist", {})
        if "tarball" in dist:
            dist["tarball"] = base + name + "/-/" + dist["tarball"].rsplit("/", 1)[1]
    open(f"{work}/static/packuments/{name}.json", "w").write(json.dumps(document))
    print(name, len(document["versions"]), os.path.getsize(f"{work}/static/packuments/{name}.json"), filename, len(data))
PY
cat >"$WORKDIR/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORKDIR/nginx/nginx.pid;
error_log $WORKDIR/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 100000;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$PORT_NGINX; root $WORKDIR/static;
    location ~ ^/([^/]+)\$ { default_type application/json; etag on; try_files /packuments/\$1.json =404; }
  }
}
NGINX
nginx -c "$WORKDIR/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)
"$BIN" --data-dir "$WORKDIR/formulary-data" advisories import "$ROOT/test-data/osv/npm-github-advisories" >/dev/null
"$BIN" --data-dir "$WORKDIR/formulary-data" advisories import "$ROOT/test-data/osv/malicious-packages-npm" >/dev/null
FORMULARY_NPM_UPSTREAMS="[\"http://127.0.0.1:$PORT_NGINX/\"]" FORMULARY_PYPI_UPSTREAMS='[]' FORMULARY_CRAN_UPSTREAMS='[]' FORMULARY_LOG=warn \
  FORMULARY_PUBLIC_URL="http://127.0.0.1:$PORT_GATEWAY/" \
  "$BIN" --data-dir "$WORKDIR/formulary-data" serve --listen 127.0.0.1:$PORT_GATEWAY >"$WORKDIR/formulary.log" 2>&1 & GATEWAY_PID=$!; PIDS+=($GATEWAY_PID)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT_GATEWAY/healthz" 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT_NGINX/is-number" 2>/dev/null && break; sleep 0.1; done

if [[ $VERDACCIO == 1 ]]; then
  node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if ((node_major >= 22)); then verdaccio_version=6.10.4; elif ((node_major >= 20)); then verdaccio_version=6.8.0; else verdaccio_version=; fi
  if [[ -z $verdaccio_version ]]; then
    log "verdaccio needs node >= 20 (found ${node_major}); leaving it out"; VERDACCIO=0
  else
    mkdir -p "$WORKDIR/verdaccio"
    if [[ ! -x $WORKDIR/verdaccio/node_modules/.bin/verdaccio ]]; then
      log "installing verdaccio $verdaccio_version from the npm registry"
      (cd "$WORKDIR/verdaccio" && npm install --no-audit --no-fund --loglevel=error "verdaccio@$verdaccio_version" >/dev/null)
    fi
    # Its storage: each package's packument (with the fields verdaccio keeps) beside its tarball.
    rm -rf "$WORKDIR/verdaccio/storage"
    python3 - "$WORKDIR" <<'PY'
import json, os, sys
work = sys.argv[1]
for name in ["is-number", "typescript"]:
    document = json.load(open(f"{work}/static/packuments/{name}.json"))
    folder = f"{work}/verdaccio/storage/{name}"
    os.makedirs(folder, exist_ok=True)
    attachments = {}
    for filename in os.listdir(f"{work}/static/{name}/-"):
        os.link(f"{work}/static/{name}/-/{filename}", f"{folder}/{filename}")
        attachments[filename] = {"shasum": ""}
    document.update({"_attachments": attachments, "_uplinks": {}, "_distfiles": {}, "_rev": "1-0"})
    json.dump(document, open(f"{folder}/package.json", "w"))
PY
    cat >"$WORKDIR/verdaccio/config.yaml" <<YAML
storage: $WORKDIR/verdaccio/storage
uplinks: {}
packages:
  '**':
    access: \$all
log: { type: stdout, format: pretty, level: error }
YAML
    "$WORKDIR/verdaccio/node_modules/.bin/verdaccio" --config "$WORKDIR/verdaccio/config.yaml" --listen "127.0.0.1:$PORT_VERDACCIO" >"$WORKDIR/verdaccio.log" 2>&1 & PIDS+=($!)
    for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT_VERDACCIO/is-number" 2>/dev/null && break; sleep 0.1; done
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT_VERDACCIO/typescript" || { log "verdaccio does not serve typescript (see $WORKDIR/verdaccio.log); leaving it out"; VERDACCIO=0; }
  fi
fi

ABBREVIATED='application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*'
SMALL_TGZ=$(cd "$WORKDIR/static/is-number/-" && ls)
LARGE_TGZ=$(cd "$WORKDIR/static/typescript/-" && ls)
start=$(date +%s.%N); curl -fsS -o /dev/null "http://127.0.0.1:$PORT_GATEWAY/npm/typescript"; first=$(echo "$(date +%s.%N) - $start" | bc)
for name in is-number typescript; do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT_GATEWAY/npm/$name"
  curl -fsS -o /dev/null -H "Accept: $ABBREVIATED" "http://127.0.0.1:$PORT_GATEWAY/npm/$name"
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT_GATEWAY/npm/is-number/-/$SMALL_TGZ"
curl -fsS -o /dev/null "http://127.0.0.1:$PORT_GATEWAY/npm/typescript/-/$LARGE_TGZ"
full_size=$(curl -fsS "http://127.0.0.1:$PORT_GATEWAY/npm/typescript" | wc -c)
abbreviated_size=$(curl -fsS -H "Accept: $ABBREVIATED" "http://127.0.0.1:$PORT_GATEWAY/npm/typescript" | wc -c)
log "first (uncached) typescript packument: ${first}s; full $full_size bytes, abbreviated $abbreviated_size bytes"

measure() { # url concurrency accept -> "req/s MB/s"
  wrk -t1 -c"$2" -d"${DURATION}s" -H "Accept: $3" "$1" 2>/dev/null | awk '
    /Requests\/sec/ {rps=$2} /Transfer\/sec/ {t=$2; if (t ~ /GB/) {sub("GB","",t); t*=1024} else if (t ~ /MB/) {sub("MB","",t)} else if (t ~ /KB/) {sub("KB","",t); t/=1024}; mb=t}
    END {printf "%.0f %.0f\n", rps, mb}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
TABLE="| what | c | Formulary | nginx | Formulary / nginx | verdaccio | Formulary / verdaccio |
|---|---|---|---|---|---|---|"
row() { # label path accept concurrency field(1=req/s,2=MB/s)
  local gr=() nr=() vr=() g n v
  for _ in $(seq "$REPEATS"); do
    g=$(measure "http://127.0.0.1:$PORT_GATEWAY/npm/$2" "$4" "$3"); n=$(measure "http://127.0.0.1:$PORT_NGINX/$2" "$4" "$3")
    gr+=("$(echo "$g" | cut -d' ' -f"$5")"); nr+=("$(echo "$n" | cut -d' ' -f"$5")")
    if [[ $VERDACCIO == 1 ]]; then
      v=$(measure "http://127.0.0.1:$PORT_VERDACCIO/$2" "$4" "$3"); vr+=("$(echo "$v" | cut -d' ' -f"$5")")
    fi
  done
  local gm nm vm=- unit ratio vratio=-
  gm=$(printf '%s\n' "${gr[@]}" | median); nm=$(printf '%s\n' "${nr[@]}" | median)
  unit=$([[ $5 == 1 ]] && echo "req/s" || echo "MB/s")
  ratio=$(awk -v g="$gm" -v n="$nm" 'BEGIN {printf "%.2fx", (n > 0 ? g / n : 0)}')
  if [[ $VERDACCIO == 1 ]]; then
    vm=$(printf '%s\n' "${vr[@]}" | median)
    vratio=$(awk -v g="$gm" -v n="$vm" 'BEGIN {printf "%.1fx", (n > 0 ? g / n : 0)}')
    vm="$vm $unit"
  fi
  TABLE+=$'\n'"| $1 | $4 | $gm $unit | $nm $unit | $ratio | $vm | $vratio |"
  log "$1 c=$4: formulary $gm, nginx $nm ($ratio), verdaccio $vm ($vratio)"
}
row "is-number packument, full" "is-number" "application/json" 16 1
row "is-number packument, abbreviated" "is-number" "$ABBREVIATED" 16 1
row "typescript packument, full" "typescript" "application/json" 16 2
row "typescript packument, abbreviated" "typescript" "$ABBREVIATED" 16 2
row "small tarball ($SMALL_TGZ)" "is-number/-/$SMALL_TGZ" "*/*" 64 1
row "large tarball ($LARGE_TGZ)" "typescript/-/$LARGE_TGZ" "*/*" 64 2
# Peak memory: a fresh gateway process (its cache on disk), 64 clients on the large tarball.
kill "$GATEWAY_PID"; wait "$GATEWAY_PID" 2>/dev/null || true
FORMULARY_NPM_UPSTREAMS="[\"http://127.0.0.1:$PORT_NGINX/\"]" FORMULARY_PYPI_UPSTREAMS='[]' FORMULARY_CRAN_UPSTREAMS='[]' FORMULARY_LOG=warn \
  FORMULARY_PUBLIC_URL="http://127.0.0.1:$PORT_GATEWAY/" \
  "$BIN" --data-dir "$WORKDIR/formulary-data" serve --listen 127.0.0.1:$PORT_GATEWAY >>"$WORKDIR/formulary.log" 2>&1 & GATEWAY_PID=$!; PIDS+=($GATEWAY_PID)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT_GATEWAY/healthz" 2>/dev/null && break; sleep 0.1; done
wrk -t1 -c64 -d"${DURATION}s" "http://127.0.0.1:$PORT_GATEWAY/npm/typescript/-/$LARGE_TGZ" >/dev/null 2>&1
peak=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$GATEWAY_PID/status")
log "peak memory at 64 concurrent large-tarball downloads: $peak MB"
REPORT="Run of $(date +%F) on $(nproc) cores; wrk, one thread, ${DURATION} s per run, median of $REPEATS. typescript's packument: $full_size bytes full, $abbreviated_size bytes abbreviated (Formulary); nginx serves the full one for both. The first (uncached) typescript packument took ${first} s (fetch, parse, policy for every version, both forms rendered). Peak memory (VmHWM) of a fresh Formulary process serving the large tarball to 64 concurrent clients for ${DURATION} s: $peak MB. $([[ $VERDACCIO == 1 ]] && echo "verdaccio $verdaccio_version (node $(node --version)) serves the same packages from its storage, no uplinks." || echo "verdaccio was left out (VERDACCIO=0 or it could not start).")

$TABLE"
echo "$REPORT"
if [[ $DOCS == 1 ]]; then
  python3 - "$ROOT/docs/performance.md" "$REPORT" <<'PY'
import re, sys
path, report = sys.argv[1], sys.argv[2]
text = open(path).read()
section = "## npm gateway\n\n`bench/npm.sh`: packuments (both forms) of a small and a very large package and a small and a large tarball, Formulary beside nginx serving the same files statically (Formulary pulls from that nginx).\n\n<!-- bench/npm.sh: begin -->\n" + report + "\n<!-- bench/npm.sh: end -->\n"
if "<!-- bench/npm.sh: begin -->" in text:
    text = re.sub(r"## npm gateway\n.*?<!-- bench/npm.sh: end -->\n", section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
  log "wrote the table into docs/performance.md"
fi
