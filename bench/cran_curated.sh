#!/usr/bin/env bash
# bench/cran_curated.sh -- a curated view of a CRAN-sized repository (20,000 packages, each with
# archived versions listed in Meta/archive.rds) with one package approved: how many upstream
# requests the first PACKAGES costs, how many a rebuild from cached documents costs, and how
# long each index build takes (from the gateway's own "built a PACKAGES index" log line).
#
# usage: bench/cran_curated.sh   (about a minute; knobs: WORKDIR, BIN (default target/release),
#        PACKAGES_COUNT, REBUILDS)
# Everything binds 127.0.0.1; every server started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORKDIR=${WORKDIR:-/tmp/formulary-cran-curated}
PACKAGES_COUNT=${PACKAGES_COUNT:-20000}
REBUILDS=${REBUILDS:-5}
PORT_UPSTREAM=18280
PORT_GATEWAY=18290
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/formulary}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
[[ -x $BIN ]] || { log "no binary at $BIN: cargo build --release -p formulary, or set BIN"; exit 1; }

rm -rf "$WORKDIR"; mkdir -p "$WORKDIR/upstream/src/contrib/Meta" "$WORKDIR/data"
log "generating PACKAGES for $PACKAGES_COUNT packages and an archive.rds with 3 archived versions each"
python3 - "$WORKDIR/upstream/src/contrib" "$PACKAGES_COUNT" <<'PY'
import gzip, os, random, sys
folder, count = sys.argv[1], int(sys.argv[2])
random.seed(7)
names = [f"pkg{index:05d}" for index in range(count)]
paragraphs = []
for index, name in enumerate(names):
    deps = random.sample(names[:index], min(index, random.randint(0, 6)))
    fields = [("Package", name), ("Version", f"5.{random.randint(0, 20)}-{random.randint(0, 9)}"),
              ("Depends", "R (>= 4.0.0)")]
    if deps:
        fields.append(("Imports", ", ".join(deps)))
    fields += [("License", "MIT + file LICENSE"), ("NeedsCompilation", "no")]
    paragraphs.append("\n".join(f"{key}: {value}" for key, value in fields))
text = "\n\n".join(paragraphs) + "\n"
open(os.path.join(folder, "PACKAGES"), "w").write(text)
with gzip.open(os.path.join(folder, "PACKAGES.gz"), "wt") as out:
    out.write(text)
PY
Rscript --vanilla -e "
n <- $PACKAGES_COUNT
names <- sprintf('pkg%05d', 0:(n - 1))
one <- function(name) {
  files <- sprintf('%s/%s_%s.tar.gz', name, name, c('1.0', '2.0', '3.0'))
  data.frame(size = c(1000, 2000, 3000), isdir = FALSE, mode = 420L,
             mtime = as.POSIXct('2024-01-01', tz = 'UTC'), ctime = as.POSIXct('2024-01-01', tz = 'UTC'),
             atime = as.POSIXct('2024-01-01', tz = 'UTC'), uid = 0L, gid = 0L, uname = 'cran',
             grname = 'cran', row.names = files)
}
archive <- setNames(lapply(names, one), names)
saveRDS(archive, '$WORKDIR/upstream/src/contrib/Meta/archive.rds')
"
(cd "$WORKDIR/upstream" && exec python3 -m http.server "$PORT_UPSTREAM" --bind 127.0.0.1 2>"$WORKDIR/upstream.log" >/dev/null) &
PIDS+=($!)

F=("$BIN" --data-dir "$WORKDIR/data")
"${F[@]}" org add RJ1 --name "A curated trust" >/dev/null
"${F[@]}" org settings RJ1 --ecosystem cran --stance curated >/dev/null
"${F[@]}" entry add pkg:cran/pkg00001 --status approved --reason "the one approval" --org RJ1 >/dev/null
FORMULARY_CRAN_UPSTREAMS="[\"http://127.0.0.1:$PORT_UPSTREAM/\"]" FORMULARY_PYPI_UPSTREAMS='[]' \
  FORMULARY_INDEX_REVALIDATE_SECONDS=3600 RUST_LOG=info \
  "${F[@]}" serve --listen "127.0.0.1:$PORT_GATEWAY" >"$WORKDIR/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT_GATEWAY/livez" >/dev/null && break; sleep 0.2; done

requests() { grep -c '"GET ' "$WORKDIR/upstream.log" || true; }
INDEX="http://127.0.0.1:$PORT_GATEWAY/o/RJ1/cran/src/contrib/PACKAGES"
sleep 3 # the dependency-closure job reads PACKAGES once at start
before=$(requests)
first=$(curl -s -o /dev/null -w '%{time_total}' "$INDEX")
after_first=$(requests)
log "first PACKAGES of the curated view: ${first} s, $((after_first - before)) upstream requests (all upstream requests so far: $after_first)"
for round in $(seq "$REBUILDS"); do
  # A new entry moves the change counter: the next request rebuilds the view from cached documents.
  "${F[@]}" entry add "pkg:cran/unrelated$round" --status approved --reason "moves the counter" --org RJ1 >/dev/null
  sleep 3
  waited=$(curl -s -o /dev/null -w '%{time_total}' "$INDEX")
  sleep 1
  curl -s -o /dev/null "$INDEX"
  log "rebuild $round: the client waited ${waited} s (the previous copy is served while a view rebuilds)"
done
after=$(requests)
log "upstream requests during $REBUILDS rebuilds from cached documents: $((after - after_first))"
grep 'built a PACKAGES index' "$WORKDIR/gateway.log" | grep -o 'organisation=[A-Z0-9]* listed=[0-9]* withheld=[0-9]* elapsed_ms=[0-9]*' >&2
grep '"GET ' "$WORKDIR/upstream.log" | awk '{print $7}' | sort | uniq -c >&2
