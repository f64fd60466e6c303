#!/usr/bin/env bash
# bench/conda.sh -- Formulary's conda gateway beside nginx serving the same files statically: a
# linux-64 subdirectory of conda-forge size (RECORDS records, 500,000 by default, generated from
# the structure of real conda-forge records: depends, constrains, hashes, licences, timestamps,
# several builds per version, .conda and .tar.bz2), and a 20 MB package.
#
# Measures: the time Formulary takes to decide a view's records (from its debug log: policy for
# every version) and to send the filtered repodata.json (rendered as it is sent), its sharded
# repodata and its repodata.json.zst; the process's peak memory (VmHWM) after building all three
# and its resident memory then (anonymous and file-backed); how long a policy change takes to
# reach the shard index (a second package prohibited while the server runs: the wall time from
# `entry add` returning to an index without its shard, which includes SQLite's 2-second poll,
# and the server's own rebuild times from its log; then the same through the server's API, as a
# curator makes it); then requests/s
# with wrk for repodata.json.zst, the shard index, one shard and the 20 MB package at
# concurrency 1, 16 and 64 (median of REPEATS runs of DURATION seconds), Formulary and nginx. nginx
# serves the very bytes Formulary produced (copied after the warm-up), so both send the same
# payload. Formulary pulls the upstream repodata.json and the package from that nginx. The
# policy filters: one package is prohibited and 1% of the records were indexed today, so the
# default cooldown withholds them.
#
# usage: bench/conda.sh   (about 6 minutes; knobs: WORKDIR, RECORDS, DURATION, REPEATS, BIN, BUILD=0, DOCS=0, PORT_NGINX, PORT_GATEWAY)
# Everything binds 127.0.0.1; every server started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORKDIR=${WORKDIR:-/tmp/formulary-condabench}
RECORDS=${RECORDS:-500000}
DURATION=${DURATION:-5}
REPEATS=${REPEATS:-1}
BUILD=${BUILD:-1}
DOCS=${DOCS:-1}
PORT_NGINX=${PORT_NGINX:-18380}
PORT_GATEWAY=${PORT_GATEWAY:-18390}
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/formulary}

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

rm -rf "$WORKDIR"; mkdir -p "$WORKDIR/static/conda-forge/linux-64/shards" "$WORKDIR/nginx"
log "generating linux-64/repodata.json with $RECORDS records and a 20 MB package"
python3 - "$WORKDIR/static/conda-forge/linux-64" "$RECORDS" <<'PY'
import hashlib, json, os, random, sys, time
out, total = sys.argv[1], int(sys.argv[2])
random.seed(15)
now_ms = int(time.time() * 1000)
month_ago = now_ms - 30 * 24 * 3600 * 1000
licences = ["MIT", "BSD-3-Clause", "Apache-2.0", "GPL-3.0-or-later", "LGPL-2.1-or-later", "MPL-2.0", "Zlib"]
pythons = [("py310", "python >=3.10,<3.11.0a0", "python_abi 3.10.* *_cp310"),
           ("py311", "python >=3.11,<3.12.0a0", "python_abi 3.11.* *_cp311"),
           ("py312", "python >=3.12,<3.13.0a0", "python_abi 3.12.* *_cp312"),
           ("py313", "python >=3.13,<3.14.0a0", "python_abi 3.13.* *_cp313")]
def hexdigest(seed, n):
    return hashlib.sha256(seed.encode()).hexdigest()[:n]
# conda-forge's linux-64 has ~30,000 names; records per name vary widely (a few to thousands).
names = [f"pkg{index:05d}" for index in range(25000)]
packages, conda_packages = {}, {}
count = 0
while count < total:
    for name in names:
        if count >= total:
            break
        major, minor = random.randint(0, 9), random.randint(0, 40)
        for patch in range(random.randint(1, 4)):
            version = f"{major}.{minor}.{patch}"
            for tag, python, abi in random.sample(pythons, random.randint(1, 4)):
                if count >= total:
                    break
                build_number = random.randint(0, 3)
                build = f"{tag}h{hexdigest(name + version + tag, 7)}_{build_number}"
                conda_format = random.random() < 0.8
                filename = f"{name}-{version}-{build}" + (".conda" if conda_format else ".tar.bz2")
                recent = random.random() < 0.01
                stamp = now_ms - random.randint(0, 3600 * 1000) if recent else month_ago - random.randint(0, 4 * 365 * 24 * 3600) * 1000
                record = {
                    "build": build, "build_number": build_number,
                    "constrains": [f"{random.choice(names)} >={random.randint(1, 5)}.0"] if random.random() < 0.3 else [],
                    "depends": ["__glibc >=2.17,<3.0.a0", "libgcc >=13", python, abi]
                               + [f"{random.choice(names)} >={random.randint(0, 3)}.{random.randint(0, 9)}" for _ in range(random.randint(0, 6))],
                    "license": random.choice(licences), "license_family": "OTHER",
                    "md5": hexdigest("md5" + filename, 32), "name": name,
                    "sha256": hexdigest("sha" + filename, 64), "size": random.randint(5_000, 50_000_000),
                    "subdir": "linux-64", "timestamp": stamp, "version": version,
                }
                if random.random() < 0.5:
                    record["indexed_timestamp"] = stamp + 60_000
                (conda_packages if conda_format else packages)[filename] = record
                count += 1
# The 20 MB package: a real .tar.bz2 (the gateway opens a package before caching it: its
# info/index.json must describe the record), 20 MB of random bytes inside, digests in the record.
import io, tarfile
index = {"build": "0", "build_number": 0, "depends": [], "license": "MIT", "name": "bigpkg",
         "subdir": "linux-64", "timestamp": month_ago, "version": "1.0"}
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w:bz2", compresslevel=1) as archive:
    for member, content in [("info/index.json", json.dumps(index).encode()),
                            ("lib/bigpkg.bin", random.randbytes(20 * 1024 * 1024))]:
        info = tarfile.TarInfo(member); info.size = len(content); info.mtime = 0
        archive.addfile(info, io.BytesIO(content))
data = buffer.getvalue()
open(os.path.join(out, "bigpkg-1.0-0.tar.bz2"), "wb").write(data)
packages["bigpkg-1.0-0.tar.bz2"] = dict(index, md5=hashlib.md5(data).hexdigest(),
                                        sha256=hashlib.sha256(data).hexdigest(), size=len(data))
document = {"info": {"subdir": "linux-64"}, "packages": packages, "packages.conda": conda_packages,
            "removed": [], "repodata_version": 1}
with open(os.path.join(out, "repodata.json"), "w") as handle:
    json.dump(document, handle, separators=(",", ":"))
print(f"{len(packages) + len(conda_packages)} records, {os.path.getsize(os.path.join(out, 'repodata.json'))} bytes", file=sys.stderr)
PY
cat >"$WORKDIR/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORKDIR/nginx/nginx.pid;
error_log $WORKDIR/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 100000;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$PORT_NGINX; root $WORKDIR/static; etag on; }
}
NGINX
nginx -c "$WORKDIR/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT_NGINX/conda-forge/linux-64/bigpkg-1.0-0.tar.bz2" 2>/dev/null && break; sleep 0.1; done
"$BIN" --data-dir "$WORKDIR/formulary-data" entry add pkg:conda/pkg00042 --status prohibited --reason "withdrawn (benchmark)" >/dev/null
FORMULARY_CONDA_CHANNELS="{conda-forge=[\"http://127.0.0.1:$PORT_NGINX/conda-forge/\"]}" FORMULARY_PYPI_UPSTREAMS='[]' FORMULARY_CRAN_UPSTREAMS='[]' \
  FORMULARY_NPM_UPSTREAMS='[]' FORMULARY_LOG="warn,formulary_gateway::conda=debug" FORMULARY_PUBLIC_URL="http://127.0.0.1:$PORT_GATEWAY/" \
  "$BIN" --data-dir "$WORKDIR/formulary-data" serve --listen 127.0.0.1:$PORT_GATEWAY >"$WORKDIR/formulary.log" 2>&1 & GATEWAY_PID=$!; PIDS+=($GATEWAY_PID)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT_GATEWAY/healthz" 2>/dev/null && break; sleep 0.1; done

G="http://127.0.0.1:$PORT_GATEWAY/conda/conda-forge/linux-64"
N="http://127.0.0.1:$PORT_NGINX/conda-forge/linux-64"
S="$WORKDIR/static/conda-forge/linux-64"
start=$(date +%s.%N); curl -fsS -o "$WORKDIR/served.json" "$G/repodata.json"; first=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N); curl -fsS -o "$S/repodata.json.zst" "$G/repodata.json.zst"; zst_first=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N); curl -fsS -o "$S/repodata_shards.msgpack.zst" "$G/repodata_shards.msgpack.zst"; shards_first=$(echo "$(date +%s.%N) - $start" | bc)
curl -fsS -o /dev/null "$G/bigpkg-1.0-0.tar.bz2"
status() { awk -v key="$1:" '$1 == key {printf "%.0f", $2/1024}' "/proc/$GATEWAY_PID/status"; }
peak_build=$(status VmHWM); rss=$(status VmRSS); rss_anon=$(status RssAnon); rss_file=$(status RssFile)
elapsed() { grep "$1" "$WORKDIR/formulary.log" | sed -n "${2:-1}p" | sed -E 's/.*elapsed_ms=([0-9]+).*/\1/'; }
build_ms=$(elapsed "built a view's repodata.json"); shards_ms=$(elapsed "built a view's sharded repodata"); zst_ms=$(elapsed "compressed a view's repodata.json")
# A policy change while serving: pkg00043 prohibited; the index must stop naming its shard.
index_has() { curl -fsS "$G/repodata_shards.msgpack.zst" | zstd -dc | grep -a -c "$1" || true; }
[[ $(index_has pkg00043) -ge 1 ]] || { log "pkg00043 is not in the shard index before the change"; exit 1; }
# Seconds from now until the shard index stops naming $1 (at most 30).
seconds_until_gone() {
  local changed; changed=$(date +%s.%N)
  while [[ $(index_has "$1") -ge 1 ]]; do
    sleep 0.05
    (( $(echo "$(date +%s.%N) - $changed > 30" | bc) )) && { log "the shard index still names $1 30 s after the change"; exit 1; }
  done
  echo "$(date +%s.%N) - $changed" | bc
}
"$BIN" --data-dir "$WORKDIR/formulary-data" entry add pkg:conda/pkg00043 --status prohibited --reason "withdrawn (benchmark)" >/dev/null
policy_s=$(seconds_until_gone pkg00043)
sleep 1
rebuild_ms=$(elapsed "built a view's repodata.json" 2); reshard_ms=$(elapsed "built a view's sharded repodata" 2)
# The same change as a curator makes it, through the running server's API (the web UI's path):
# pkg00044 prohibited with a national curator's token; the server learns of it at once.
[[ $(index_has pkg00044) -ge 1 ]] || { log "pkg00044 is not in the shard index before the change"; exit 1; }
CURATOR=$("$BIN" --data-dir "$WORKDIR/formulary-data" token create --name bench --role national-curator --org NATIONAL | tr -d '[:space:]')
curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $CURATOR" -H 'Content-Type: application/json' \
  -d '{"component": "pkg:conda/pkg00044", "status": "prohibited", "reason": "withdrawn (benchmark)"}' \
  "http://127.0.0.1:$PORT_GATEWAY/api/v1/entries"
api_policy_s=$(seconds_until_gone pkg00044)
sleep 1
api_rebuild_ms=$(elapsed "built a view's repodata.json" 3); api_reshard_ms=$(elapsed "built a view's sharded repodata" 3)
peak=$(status VmHWM)
# One shard: the largest package name's (pkg00000 has as many records as any).
SHARD=$(python3 - "$S/repodata_shards.msgpack.zst" <<'PY'
import subprocess, sys
raw = subprocess.run(["zstd", "-dc", sys.argv[1]], capture_output=True, check=True).stdout
# The index maps names to 32-byte hashes (msgpack bin 8: 0xc4 0x20); find pkg00000's.
key = b"\xa8pkg00000\xc4\x20"
at = raw.index(key) + len(key)
print(raw[at:at + 32].hex() + ".msgpack.zst")
PY
)
curl -fsS -o "$S/shards/$SHARD" "$G/shards/$SHARD"
read -r served_size < <(wc -c <"$WORKDIR/served.json")
read -r upstream_size < <(wc -c <"$S/repodata.json")
log "first repodata.json ${first}s (fetch, parse, store, decide $build_ms ms, send); .zst ${zst_first}s (compress $zst_ms ms); shard index ${shards_first}s (build $shards_ms ms); peak $peak_build MB (at the end $peak MB), now $rss MB ($rss_anon MB anonymous, $rss_file MB file-backed); policy change in the index after ${policy_s}s (decide $rebuild_ms ms, shards $reshard_ms ms); through the API after ${api_policy_s}s (decide $api_rebuild_ms ms, shards $api_reshard_ms ms)"

measure() { # url concurrency -> "req/s MB/s"
  wrk -t1 -c"$2" -d"${DURATION}s" "$1" 2>/dev/null | awk '
    /Requests\/sec/ {rps=$2} /Transfer\/sec/ {t=$2; if (t ~ /GB/) {sub("GB","",t); t*=1024} else if (t ~ /MB/) {sub("MB","",t)} else if (t ~ /KB/) {sub("KB","",t); t/=1024}; mb=t}
    END {printf "%.1f %.0f\n", rps, mb}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
TABLE="| what | c | Formulary req/s | nginx req/s | Formulary / nginx |
|---|---|---|---|---|"
row() { # label path concurrency
  local gr=() nr=() g n
  for _ in $(seq "$REPEATS"); do
    g=$(measure "$G/$2" "$3"); n=$(measure "$N/$2" "$3")
    gr+=("$(echo "$g" | cut -d' ' -f1)"); nr+=("$(echo "$n" | cut -d' ' -f1)")
  done
  local gm nm ratio
  gm=$(printf '%s\n' "${gr[@]}" | median); nm=$(printf '%s\n' "${nr[@]}" | median)
  ratio=$(awk -v g="$gm" -v n="$nm" 'BEGIN {printf "%.2fx", (n > 0 ? g / n : 0)}')
  TABLE+=$'\n'"| $1 | $3 | $gm | $nm | $ratio |"
  log "$1 c=$3: formulary $gm req/s, nginx $nm req/s ($ratio)"
}
zst_size=$(wc -c <"$S/repodata.json.zst"); index_size=$(wc -c <"$S/repodata_shards.msgpack.zst"); shard_size=$(wc -c <"$S/shards/$SHARD")
for c in 1 16 64; do
  row "repodata.json.zst ($((zst_size / 1024 / 1024)) MB)" "repodata.json.zst" "$c"
  row "shard index ($((index_size / 1024)) KB)" "repodata_shards.msgpack.zst" "$c"
  row "one shard ($shard_size bytes)" "shards/$SHARD" "$c"
  row "20 MB package" "bigpkg-1.0-0.tar.bz2" "$c"
done
REPORT="Run of $(date +%F) on $(nproc) cores; wrk, one thread, ${DURATION} s per run, median of $REPEATS. Upstream linux-64/repodata.json: $RECORDS records plus the package, $((upstream_size / 1024 / 1024)) MB; the view's document (one package prohibited, 1% of records in cooldown): $((served_size / 1024 / 1024)) MB. Deciding the view's records took **$build_ms ms** (every version of every package); the first repodata.json request took **${first} s**, including the upstream fetch (streamed to a spool file), parsing, storing the upstream copy (compressed) and sending the filtered document as it is rendered; its repodata.json.zst $zst_ms ms (rendered and compressed); its sharded repodata $shards_ms ms (every name's shard encoded, then the view's index). Memory after building all three and serving the package: VmHWM **$peak_build MB** (peak resident; $peak MB at the end, after the policy change), VmRSS $rss MB of which $rss_anon MB anonymous and $rss_file MB file-backed. A second package prohibited while serving was gone from the shard index **${policy_s} s** after \`entry add\` returned (SQLite: the server polls every 2 s; it then decided the records in $rebuild_ms ms and built the index in $reshard_ms ms, serving the previous index meanwhile). The same change made through the running server's API (\`POST /api/v1/entries\` with a national curator's token, as the web UI does) was gone from the shard index **${api_policy_s} s** after the call returned (decided in $api_rebuild_ms ms, index built in $api_reshard_ms ms).

$TABLE"
echo "$REPORT"
if [[ $DOCS == 1 ]]; then
  python3 - "$ROOT/docs/performance.md" "$REPORT" <<'PY'
import re, sys
path, report = sys.argv[1], sys.argv[2]
text = open(path).read()
section = "## conda gateway\n\n`bench/conda.sh`: a generated linux-64 subdirectory of conda-forge size and a 20 MB package, Formulary beside nginx serving the same bytes statically (Formulary pulls from that nginx). Targets (issue 15): the filtered repodata of 500,000 records built in at most 2 s and 300 MB resident, served at 0.8x nginx or better.\n\n<!-- bench/conda.sh: begin -->\n" + report + "\n<!-- bench/conda.sh: end -->\n"
if "<!-- bench/conda.sh: begin -->" in text:
    text = re.sub(r"## conda gateway\n.*?<!-- bench/conda.sh: end -->\n", section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
  log "wrote the table into docs/performance.md"
fi
