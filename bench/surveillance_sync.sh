#!/usr/bin/env bash
# bench/surveillance_sync.sh -- the scheduled advisory sync of `formulary serve`, timed end to end
# against OSV exports served on loopback (python3 -m http.server, laid out as OSV's bucket:
# <ECOSYSTEM>/all.zip, modified_id.csv and one <id>.json per record), on SQLite and PostgreSQL:
#   1. the first (full) sync of the PyPI and npm exports: all.zip fetched, read and imported;
#   2. the next run with nothing changed (incremental: the listing only);
#   3. a run after CHANGED records of each export were modified (incremental: those records).
# Durations are the server's own (`last_duration_ms` of GET /api/v1/advisories/feeds).
#
# The exports are built from ../shared/data/osv (or OSV_DATA): the PyPA advisory database
# (YAML, turned into OSV JSON as OSV publishes it), the npm GitHub advisories and the
# malicious-package reports of both. PYPI_RECORDS / NPM_RECORDS (default: what is there) pad an
# export to that many records with copies of the real ones under new ids and package names, to
# approach the size of OSV's whole exports when they cannot be downloaded.
#
# Settings: REUSE_EXPORT=1 keeps the exports an earlier run built in $OUT/osv (building 200,000
# records takes minutes), FORMULARY_BIN (default target/release/formulary, else target/debug/formulary),
# POSTGRES_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres; "" skips PostgreSQL),
# STORES ("sqlite postgres"), FULL_ONLY=1 (the first sync only), CHANGED (100), INTERVAL (seconds between runs, 15), PORT (18290), OUT (target/bench-sync).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/target/bench-sync}
OSV_DATA=${OSV_DATA:-$ROOT/../shared/data/osv}
[[ -d $OSV_DATA ]] || OSV_DATA=/work/shared/data/osv
PORT=${PORT:-18290}
SERVER_PORT=$((PORT + 1))
CHANGED=${CHANGED:-100}
INTERVAL=${INTERVAL:-15}
PYPI_RECORDS=${PYPI_RECORDS:-0}
NPM_RECORDS=${NPM_RECORDS:-0}
POSTGRES_ADMIN_URL=${POSTGRES_ADMIN_URL-postgres://postgres@127.0.0.1:5432/postgres}
if [[ -z ${FORMULARY_BIN:-} ]]; then
  FORMULARY_BIN=$ROOT/target/release/formulary
  [[ -x $FORMULARY_BIN ]] || FORMULARY_BIN=$ROOT/target/debug/formulary
fi

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
[[ -x $FORMULARY_BIN ]] || die "no formulary binary at $FORMULARY_BIN: cargo build --release -p formulary"
[[ -d $OSV_DATA/pypa-advisory-database ]] || die "no OSV data in $OSV_DATA"

EXPORT=$OUT/osv
if [[ ${REUSE_EXPORT:-0} == 1 && -f $EXPORT/npm/all.zip ]]; then
  find "$OUT" -mindepth 1 -maxdepth 1 ! -name osv -exec rm -rf {} +
else
  rm -rf "$OUT" && mkdir -p "$OUT"
fi

# ------------------------------------------------------------------ the exports
build_exports() {
  python3 - "$OSV_DATA" "$EXPORT" "$PYPI_RECORDS" "$NPM_RECORDS" <<'EOF'
import datetime, glob, json, os, sys, zipfile
import yaml

data, export, pypi_target, npm_target = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def iso(value):
    # YAML reads times as datetimes; OSV's JSON has RFC 3339 text.
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="seconds") + "Z"
    return str(value)

def load(paths):
    records = []
    for path in sorted(paths):
        with open(path) as handle:
            record = yaml.safe_load(handle) if path.endswith(".yaml") else json.load(handle)
        if isinstance(record, dict) and record.get("id"):
            records.append(json.loads(json.dumps(record, default=iso)))
    return records

def pad(records, target):
    out = list(records)
    copy = 0
    while len(out) < target:
        copy += 1
        for record in records:
            if len(out) >= target:
                break
            twin = json.loads(json.dumps(record))
            twin["id"] = f"{record['id']}-C{copy}"
            # Each copy a little older than its original, so that times stay distinct as in
            # OSV's listings (many records at the cursor's time would force a full sync).
            modified = datetime.datetime.fromisoformat(str(record["modified"]).replace("Z", "+00:00"))
            try:
                twin["modified"] = iso(modified - datetime.timedelta(seconds=copy))
            except OverflowError:
                # A record dated at the start of the calendar (0001-01-01) has no earlier time.
                twin["modified"] = iso(modified + datetime.timedelta(seconds=copy))
            twin.pop("aliases", None)
            for affected in twin.get("affected", []):
                package = affected.get("package", {})
                if "name" in package:
                    package["name"] = f"{package['name']}-c{copy}"
                package.pop("purl", None)
            out.append(twin)
    return out

def write(ecosystem, records):
    folder = os.path.join(export, ecosystem)
    os.makedirs(folder, exist_ok=True)
    listing = []
    with zipfile.ZipFile(os.path.join(folder, "all.zip"), "w", zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            body = json.dumps(record)
            archive.writestr(f"{record['id']}.json", body)
            with open(os.path.join(folder, f"{record['id']}.json"), "w") as handle:
                handle.write(body)
            listing.append((str(record.get("modified", "")), record["id"]))
    listing.sort(reverse=True)
    with open(os.path.join(folder, "modified_id.csv"), "w") as handle:
        handle.writelines(f"{modified},{id}\n" for modified, id in listing)
    size = os.path.getsize(os.path.join(folder, "all.zip"))
    print(f"{ecosystem}\t{len(records)}\t{size}")

pypi = load(glob.glob(f"{data}/pypa-advisory-database/vulns/**/*.yaml", recursive=True)
            + glob.glob(f"{data}/malicious-packages/pypi/*.json"))
npm = load(glob.glob(f"{data}/npm-github-advisories/*.json") + glob.glob(f"{data}/malicious-packages/npm/*.json"))
write("PyPI", pad(pypi, pypi_target))
write("npm", pad(npm, npm_target))
EOF
}

# Marks the newest CHANGED records of each export as modified now (record, all.zip untouched),
# keeping the originals in $OUT/originals for restore_records.
touch_records() {
  python3 - "$EXPORT" "$CHANGED" "$OUT/originals" <<'EOF'
import datetime, json, os, shutil, sys
export, count, originals = sys.argv[1], int(sys.argv[2]), sys.argv[3]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
for ecosystem in ("PyPI", "npm"):
    folder = os.path.join(export, ecosystem)
    kept = os.path.join(originals, ecosystem)
    os.makedirs(kept, exist_ok=True)
    shutil.copy(os.path.join(folder, "modified_id.csv"), kept)
    rows = [line.strip().split(",", 1) for line in open(os.path.join(folder, "modified_id.csv")) if "," in line]
    changed = {id for _, id in rows[:count]}
    for id in changed:
        path = os.path.join(folder, f"{id}.json")
        shutil.copy(path, kept)
        record = json.load(open(path))
        record["modified"] = now
        json.dump(record, open(path, "w"))
    rows = [(now if id in changed else modified, id) for modified, id in rows]
    rows.sort(reverse=True)
    open(os.path.join(folder, "modified_id.csv"), "w").writelines(f"{m},{i}\n" for m, i in rows)
EOF
}

# Puts back what touch_records changed.
restore_records() {
  local ecosystem
  for ecosystem in PyPI npm; do
    [[ -d $OUT/originals/$ecosystem ]] && cp "$OUT/originals/$ecosystem"/* "$EXPORT/$ecosystem/"
  done
  rm -rf "$OUT/originals"
}

if [[ ${REUSE_EXPORT:-0} == 1 && -f $EXPORT/npm/all.zip ]]; then
  log "reusing the exports in $EXPORT"
else
  log "building the exports from $OSV_DATA"
  build_exports >"$OUT/exports.tsv"
fi
for ecosystem in PyPI npm; do
  printf '%s\t%s records\t%s bytes (all.zip)\n' "$ecosystem" \
    "$(wc -l <"$EXPORT/$ecosystem/modified_id.csv")" "$(stat -c %s "$EXPORT/$ecosystem/all.zip")"
done | tee "$OUT/exports.tsv" >&2
python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$EXPORT" >"$OUT/osv-server.log" 2>&1 &
OSV_PID=$!
SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  kill "$OSV_PID" 2>/dev/null || true
}
trap cleanup EXIT

FEEDS=http://127.0.0.1:$SERVER_PORT/api/v1/advisories/feeds

# Waits until every source's last success is after $1 (ISO time) and prints "mode ms changed"
# per source.
wait_runs() {
  local after=$1 deadline=$((SECONDS + 1800))
  while ((SECONDS < deadline)); do
    local answer
    answer=$(curl -fsS "$FEEDS" 2>/dev/null || true)
    if [[ -n $answer ]] && jq -e --arg after "$after" \
      '[.sources[] | select(.last_success_at != null and .last_success_at > $after)] | length == 2' \
      <<<"$answer" >/dev/null; then
      jq -r '.sources[] | "\(.source | split("/") | .[-2])\t\(.last_mode)\t\(.last_duration_ms)\t\(.last_changed)"' <<<"$answer"
      return 0
    fi
    sleep 0.5
  done
  die "the sync did not finish within 30 minutes; see $OUT/server-*.log"
}

run_store() {
  local store=$1 database_url=$2
  local data=$OUT/data-$store
  rm -rf "$data" && mkdir -p "$data"
  local args=(--data-dir "$data")
  [[ -n $database_url ]] && args+=(--database-url "$database_url")
  local started
  started=$(date -u +%Y-%m-%dT%H:%M:%S)
  FORMULARY_ADVISORY_SOURCES="[\"http://127.0.0.1:$PORT/PyPI/all.zip\",\"http://127.0.0.1:$PORT/npm/all.zip\"]" \
    FORMULARY_ADVISORY_SYNC_INTERVAL_SECONDS=$INTERVAL FORMULARY_LOG=info NO_COLOR=1 \
    "$FORMULARY_BIN" "${args[@]}" serve --listen "127.0.0.1:$SERVER_PORT" >"$OUT/server-$store.log" 2>&1 &
  SERVER_PID=$!
  log "$store: first (full) sync"
  wait_runs "$started" | sed "s/^/$store\tfull-run\t/" | tee -a "$OUT/results.tsv" >&2
  grep -E '^(VmHWM|VmRSS)' "/proc/$SERVER_PID/status" | sed "s/^/$store after the full sync: /" >&2 || true
  if [[ ${FULL_ONLY:-0} == 1 ]]; then
    kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    return 0
  fi
  local second
  second=$(date -u +%Y-%m-%dT%H:%M:%S)
  log "$store: next run, nothing changed"
  wait_runs "$second" | sed "s/^/$store\tunchanged-run\t/" | tee -a "$OUT/results.tsv" >&2
  touch_records
  local third
  third=$(date -u +%Y-%m-%dT%H:%M:%S)
  log "$store: run after $CHANGED records of each export changed"
  wait_runs "$third" | sed "s/^/$store\tchanged-run\t/" | tee -a "$OUT/results.tsv" >&2
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  restore_records
}

printf 'store\trun\texport\tmode\tms\tchanged\n' >"$OUT/results.tsv"
STORES=${STORES:-sqlite postgres}
[[ " $STORES " == *" sqlite "* ]] && run_store sqlite ""
if [[ -n $POSTGRES_ADMIN_URL && " $STORES " == *" postgres "* ]]; then
  NAME=formulary_bench_sync_$$
  psql -q "$POSTGRES_ADMIN_URL" -c "CREATE DATABASE $NAME" >/dev/null
  run_store postgres "${POSTGRES_ADMIN_URL%/*}/$NAME"
  psql -q "$POSTGRES_ADMIN_URL" -c "DROP DATABASE $NAME WITH (FORCE)" >/dev/null || true
fi
log "binary: $FORMULARY_BIN"
column -t -s $'\t' "$OUT/results.tsv"
