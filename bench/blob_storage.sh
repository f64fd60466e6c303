#!/bin/bash
# bench/blob_storage.sh -- one quick loopback measurement for docs/blob-storage.md: migrating
# 408 blobs (112 MB) from a folder into an S3-compatible bucket (moto's server) and back, and
# serving a cached 12 MB file from a local folder vs from the bucket (20 sequential GETs, and
# 20 ranged GETs of 64 KiB). Needs moto[server] (scripts/test installs it) and curl; uses ports
# 5930-5933 on 127.0.0.1. FORMULARY_BIN picks the binary (default: the debug build).
set -u
B=${FORMULARY_BIN:-$(dirname "$0")/../target/debug/formulary}
export W=${WORK:-/tmp/formulary-blob-bench}; rm -rf $W; mkdir -p $W
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret FORMULARY_ADVISORY_SYNC_INTERVAL_SECONDS=0
python3 -m moto.server -H 127.0.0.1 -p 5930 >/dev/null 2>&1 & MOTO=$!
python3 - <<'PY'
import os, zipfile, hashlib, random
W=os.environ["W"]
os.makedirs(f"{W}/up/packages"); os.makedirs(f"{W}/up/simple/bigpkg")
whl=f"{W}/up/packages/bigpkg-1.0-py3-none-any.whl"
with zipfile.ZipFile(whl,"w",zipfile.ZIP_STORED) as z:
    z.writestr("bigpkg-1.0.dist-info/METADATA","Metadata-Version: 2.1\nName: bigpkg\nVersion: 1.0\n")
    z.writestr("bigpkg-1.0.dist-info/WHEEL","Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("bigpkg/data.bin", os.urandom(12*1024*1024))
d=hashlib.sha256(open(whl,"rb").read()).hexdigest()
open(f"{W}/up/simple/bigpkg/index.html","w").write(f'<a href="../../packages/bigpkg-1.0-py3-none-any.whl#sha256={d}">bigpkg-1.0-py3-none-any.whl</a>\n')
# N blobs for the migration: 400 of 100-300 KB and 8 of 4 MB
rnd=random.Random(1)
for i in range(408):
    size = 4*1024*1024 if i < 8 else rnd.randint(100_000, 300_000)
    b=os.urandom(size); h=hashlib.sha256(b).hexdigest()
    p=f"{W}/mig/blobs/sha256/{h[:2]}/{h[2:4]}"; os.makedirs(p, exist_ok=True)
    open(f"{p}/{h}","wb").write(b)
PY
python3 -m http.server --bind 127.0.0.1 5931 --directory $W/up >/dev/null 2>&1 & UP=$!
sleep 3; curl -s -X PUT http://127.0.0.1:5930/bench >/dev/null
du -sh $W/mig/blobs; find $W/mig/blobs -type f | wc -l
echo "== migrate folder -> bucket"
FORMULARY_S3_ENDPOINT=http://127.0.0.1:5930 FORMULARY_S3_ALLOW_HTTP=true /usr/bin/time -f "%e s wall, %M KB max RSS" $B --data-dir $W/mig blobs migrate --to s3://bench/mig 2>&1 | tail -3
echo "== migrate bucket -> folder"
FORMULARY_S3_ENDPOINT=http://127.0.0.1:5930 FORMULARY_S3_ALLOW_HTTP=true /usr/bin/time -f "%e s wall, %M KB max RSS" $B --data-dir $W/mig2 blobs migrate --from s3://bench/mig --to $W/mig2/blobs 2>&1 | tail -3
serve() { # name port extra-env...
  local name=$1 port=$2; shift 2
  env "$@" FORMULARY_PYPI_UPSTREAMS='["http://127.0.0.1:5931/simple/"]' $B --data-dir $W/$name serve --listen 127.0.0.1:$port >$W/$name.log 2>&1 &
  echo $!
}
L=$(serve local 5932)
S=$(serve s3 5933 FORMULARY_BLOB_STORE=s3://bench/serve FORMULARY_S3_ENDPOINT=http://127.0.0.1:5930 FORMULARY_S3_ALLOW_HTTP=true)
sleep 4
for port in 5932 5933; do
  curl -s -o /dev/null http://127.0.0.1:$port/pypi/simple/bigpkg/
  curl -s -o /dev/null http://127.0.0.1:$port/pypi/files/bigpkg/bigpkg-1.0-py3-none-any.whl
  sleep 1
  echo "== port $port (5932 local folder, 5933 bucket): 20 sequential GETs of the cached 12 MB file"
  for i in $(seq 20); do curl -s -o /dev/null -w "%{time_total} %{size_download}\n" http://127.0.0.1:$port/pypi/files/bigpkg/bigpkg-1.0-py3-none-any.whl; done | sort -n | awk '{t[NR]=$1; s+=$1; n=$2} END {printf "median %.3f s, min %.3f s, max %.3f s, %.0f MB/s at the median (%d bytes)\n", t[int((NR+1)/2)], t[1], t[NR], n/1e6/t[int((NR+1)/2)], n}'
  echo "   ranged GET (bytes=0-65535):"
  for i in $(seq 20); do curl -s -o /dev/null -H "Range: bytes=0-65535" -w "%{time_total}\n" http://127.0.0.1:$port/pypi/files/bigpkg/bigpkg-1.0-py3-none-any.whl; done | sort -n | awk '{t[NR]=$1} END {printf "   median %.4f s\n", t[int((NR+1)/2)]}'
done
kill $L $S $UP $MOTO
