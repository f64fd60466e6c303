#!/usr/bin/env bash
# bench/cran.sh -- Formulary's CRAN gateway beside nginx serving the same files statically:
# PACKAGES.gz for 20,000 packages (a realistic CRAN size) and a 1 MB source tarball, with wrk at
# concurrency 1, 16 and 64 (median of REPEATS runs of DURATION seconds). Formulary pulls from that
# nginx and serves its policy-filtered copy, with the R advisory database loaded.
#
# usage: bench/cran.sh   (about 3 minutes; knobs: WORKDIR, DURATION, REPEATS, BUILD=0, DOCS=0)
# Everything binds 127.0.0.1; every server started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORKDIR=${WORKDIR:-/tmp/formulary-cranbench}
DURATION=${DURATION:-5}
REPEATS=${REPEATS:-3}
BUILD=${BUILD:-1}
DOCS=${DOCS:-1}
PACKAGES_COUNT=20000
PORT_NGINX=18180
PORT_GATEWAY=18190
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

rm -rf "$WORKDIR"; mkdir -p "$WORKDIR/static/src/contrib" "$WORKDIR/nginx"
log "generating PACKAGES for $PACKAGES_COUNT packages and a 1 MB tarball"
python3 - "$WORKDIR/static/src/contrib" "$PACKAGES_COUNT" <<'PY'
import gzip, hashlib, os, random, sys
folder, count = sys.argv[1], int(sys.argv[2])
random.seed(7)
licences = ["GPL (>= 2)", "MIT + file LICENSE", "GPL-3", "GPL-2 | GPL-3", "Apache License 2.0", "BSD_3_clause + file LICENSE", "LGPL (>= 2.1)"]
names = [f"pkg{index:05d}" for index in range(count)]
paragraphs = []
for index, name in enumerate(names):
    deps = random.sample(names[:index], min(index, random.randint(0, 6)))
    imports = ", ".join(f"{dep} (>= 0.{random.randint(1, 9)})" if random.random() < 0.3 else dep for dep in deps)
    # Versions start at 1.0 and constraints stay below it, so every dependency can be met.
    fields = [("Package", name), ("Version", f"{random.randint(1, 4)}.{random.randint(0, 20)}-{random.randint(0, 9)}"),
              ("Depends", f"R (>= {random.choice(['3.5.0', '4.0.0', '4.1.0'])})")]
    if imports:
        fields.append(("Imports", imports))
    if random.random() < 0.4:
        fields.append(("Suggests", "testthat (>= 3.0.0), knitr, rmarkdown"))
    fields += [("License", random.choice(licences)), ("MD5sum", hashlib.md5(name.encode()).hexdigest()), ("NeedsCompilation", random.choice(["yes", "no"]))]
    paragraphs.append("\n".join(f"{key}: {value}" for key, value in fields))
text = "\n\n".join(paragraphs) + "\n"
open(os.path.join(folder, "PACKAGES"), "w").write(text)
with gzip.open(os.path.join(folder, "PACKAGES.gz"), "wt") as out:
    out.write(text)
# A real source package (the gateway opens every CRAN tarball and checks its DESCRIPTION before
# caching it): a DESCRIPTION and 1 MB of incompressible data.
import io, tarfile
with tarfile.open(os.path.join(folder, "pkg00001_1.0-0.tar.gz"), "w:gz") as archive:
    for member, data in [("pkg00001/DESCRIPTION", b"Package: pkg00001\nVersion: 1.0-0\nLicense: MIT\nTitle: Bench\n"),
                         ("pkg00001/inst/data.bin", os.urandom(1024 * 1024))]:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
PY
# The tarball must be in PACKAGES with that version for the gateway to serve it.
python3 - "$WORKDIR/static/src/contrib" <<'PY'
import gzip, hashlib, os, re, sys
folder = sys.argv[1]
text = open(os.path.join(folder, "PACKAGES")).read()
text = re.sub(r"(Package: pkg00001\nVersion: )[^\n]+", r"\g<1>1.0-0", text, count=1)
# Its real MD5sum: the gateway checks every digest the index gives before caching a file.
digest = hashlib.md5(open(os.path.join(folder, "pkg00001_1.0-0.tar.gz"), "rb").read()).hexdigest()
text = re.sub(r"(Package: pkg00001\n(?:[^\n]+\n)*?MD5sum: )[0-9a-f]+", r"\g<1>" + digest, text, count=1)
open(os.path.join(folder, "PACKAGES"), "w").write(text)
with gzip.open(os.path.join(folder, "PACKAGES.gz"), "wt") as out:
    out.write(text)
PY
cat >"$WORKDIR/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORKDIR/nginx/nginx.pid;
error_log $WORKDIR/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 100000;
  types { application/gzip gz; text/plain PACKAGES; }
  default_type application/octet-stream;
  server { listen 127.0.0.1:$PORT_NGINX; root $WORKDIR/static; }
}
NGINX
nginx -c "$WORKDIR/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)
"$BIN" --data-dir "$WORKDIR/formulary-data" advisories import "$ROOT/test-data/osv/r-advisory-database" >/dev/null
FORMULARY_CRAN_UPSTREAMS="[\"http://127.0.0.1:$PORT_NGINX/\"]" FORMULARY_PYPI_UPSTREAMS='[]' FORMULARY_LOG=warn \
  "$BIN" --data-dir "$WORKDIR/formulary-data" serve --listen 127.0.0.1:$PORT_GATEWAY >"$WORKDIR/formulary.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT_GATEWAY/healthz" 2>/dev/null && break; sleep 0.1; done

NGINX_INDEX="http://127.0.0.1:$PORT_NGINX/src/contrib/PACKAGES.gz"
GATEWAY_INDEX="http://127.0.0.1:$PORT_GATEWAY/cran/src/contrib/PACKAGES.gz"
NGINX_FILE="http://127.0.0.1:$PORT_NGINX/src/contrib/pkg00001_1.0-0.tar.gz"
GATEWAY_FILE="http://127.0.0.1:$PORT_GATEWAY/cran/src/contrib/pkg00001_1.0-0.tar.gz"
start=$(date +%s.%N); curl -fsS -o "$WORKDIR/first.gz" "$GATEWAY_INDEX"; first=$(echo "$(date +%s.%N) - $start" | bc)
curl -fsS -o /dev/null "$GATEWAY_FILE"
served=$(gzip -dc "$WORKDIR/first.gz" | grep -c '^Package:')
log "first (uncached) index: ${first}s; the gateway serves $served of $PACKAGES_COUNT packages"

measure() { # url concurrency -> "req/s MB/s"
  wrk -t1 -c"$2" -d"${DURATION}s" --latency "$1" 2>/dev/null | awk '
    /Requests\/sec/ {rps=$2} /Transfer\/sec/ {t=$2; if (t ~ /GB/) {sub("GB","",t); t*=1024} else if (t ~ /MB/) {sub("MB","",t)} else if (t ~ /KB/) {sub("KB","",t); t/=1024}; mb=t}
    END {printf "%.0f %.0f\n", rps, mb}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
TABLE="| what | c | Formulary | nginx | Formulary / nginx |
|---|---|---|---|---|"
for what in index file; do
  for c in 1 16 64; do
    gr=(); nr=()
    for _ in $(seq "$REPEATS"); do
      if [[ $what == index ]]; then g=$(measure "$GATEWAY_INDEX" "$c"); n=$(measure "$NGINX_INDEX" "$c"); else g=$(measure "$GATEWAY_FILE" "$c"); n=$(measure "$NGINX_FILE" "$c"); fi
      if [[ $what == index ]]; then gr+=("${g%% *}"); nr+=("${n%% *}"); else gr+=("${g##* }"); nr+=("${n##* }"); fi
    done
    gm=$(printf '%s\n' "${gr[@]}" | median); nm=$(printf '%s\n' "${nr[@]}" | median)
    unit=$([[ $what == index ]] && echo "req/s" || echo "MB/s")
    label=$([[ $what == index ]] && echo "PACKAGES.gz, $PACKAGES_COUNT packages" || echo "1 MB source tarball")
    ratio=$(awk -v g="$gm" -v n="$nm" 'BEGIN {printf "%.2fx", (n > 0 ? g / n : 0)}')
    TABLE+=$'\n'"| $label | $c | $gm $unit | $nm $unit | $ratio |"
    log "$what c=$c: formulary $gm, nginx $nm ($ratio)"
  done
done
REPORT="Run of $(date +%F) on $(nproc) cores; wrk, one thread, ${DURATION} s per run, median of $REPEATS. The first (uncached) request for the index took ${first} s (fetch, parse, policy for every package, render, compress); the gateway then serves $served of the $PACKAGES_COUNT packages (the rest are withheld by the R advisories or their dependencies).

$TABLE"
echo "$REPORT"
if [[ $DOCS == 1 ]]; then
  python3 - "$ROOT/docs/performance.md" "$REPORT" <<'PY'
import re, sys
path, report = sys.argv[1], sys.argv[2]
text = open(path).read()
section = "## CRAN gateway\n\n`bench/cran.sh`: the CRAN index and a package file, Formulary beside nginx serving the same files statically (Formulary pulls from that nginx).\n\n<!-- bench/cran.sh: begin -->\n" + report + "\n<!-- bench/cran.sh: end -->\n"
if "<!-- bench/cran.sh: begin -->" in text:
    text = re.sub(r"## CRAN gateway\n.*?<!-- bench/cran.sh: end -->\n", section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
  log "wrote the table into docs/performance.md"
fi
