#!/usr/bin/env bash
# bench/rotations.sh — rotini's cost per rotation and its footprint after
# many: the in-process Go benchmark (workers ready on exec, so the time is
# rotini's own: fork, the LISTEN_PID shim, bookkeeping, drain), then a real
# rotini rotating the test app N times (default 1000) through
# `rotini reload --wait`, with its RSS, fds, goroutines and threads read from
# `rotini status --json` after rotation 1 and after rotation N.
# Prints one markdown section for bench/run.sh. Needs bin/rotini, bin/testapp.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
N=${ROTATIONS:-1000}
[[ -x bin/rotini && -x bin/testapp ]] || make build >&2

work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/rotini.hcl" <<HCL
listen "http" { address = "tcp://127.0.0.1:$port" }
app "web" {
  command = ["$PWD/bin/testapp", "serve", "--notify", "--drain-grace", "0s"]
  workers = 2
  listen  = ["http"]
  ready {
    notify     = true
    min_uptime = "0s"
  }
}
HCL
ctl="$work/ctl.sock"
bin/rotini -c "$work/rotini.hcl" --control "$ctl" --log-level warn >/dev/null 2>"$work/rotini.log" &
pid=$!
for _ in $(seq 100); do bin/rotini health --control "$ctl" >/dev/null 2>&1 && break; sleep 0.1; done

self() {
	bin/rotini status --json --control "$ctl" | python3 -c '
import json,sys; s=json.load(sys.stdin); r=s["rotini"]; a=s["apps"][0]
print(a["serving"], r["rss_bytes"]//1024, r["heap_inuse_bytes"]//1024, r["fds"], r["goroutines"], r["threads"])'
}

bin/rotini reload --wait --control "$ctl" >/dev/null
read -r g1 rss1 heap1 fd1 gor1 thr1 < <(self)
start=$(date +%s.%N)
durs=()
half=$((N / 2))
for i in $(seq 2 "$N"); do
	bin/rotini reload --wait --control "$ctl" >/dev/null
	if ((i == half)); then read -r gH rssH heapH fdH gorH thrH < <(self); fi
done
end=$(date +%s.%N)
read -r gN rssN heapN fdN gorN thrN < <(self)
wall=$(python3 -c "print(round(($end-$start)/max(1,$N-1)*1000,1))")

bench=$(go test -run XXX -bench Rotation -benchtime 300x ./reload/ 2>&1 | grep -E '^BenchmarkRotation')

cat <<MD
## Rotations: rotini's own cost, and its footprint after $N

Run $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/rotations.sh\` on $(nproc) cores, kernel $(uname -r).

In-process, workers that are ready the moment they run (\`sleep\`), so the
time per rotation is rotini's own — fork, the LISTEN_PID shim's exec,
bookkeeping, the old generation's stop:

\`\`\`
go test -run XXX -bench Rotation -benchtime 300x ./reload/
$bench
\`\`\`

A real rotini rotating the test app (2 workers, \`ready { notify = true, min_uptime = "0s" }\`)
$N times with \`bin/rotini reload --wait\` one after another (mean wall time per
\`reload --wait\`, the client's own start included: $wall ms). Footprint from
\`rotini status --json\` (its \`rotini\` object):

| after rotation | serving generation | RSS [KiB] | Go heap in use [KiB] | fds | goroutines | threads |
|---:|---:|---:|---:|---:|---:|---:|
| 1 | $g1 | $rss1 | $heap1 | $fd1 | $gor1 | $thr1 |
| $half | $gH | $rssH | $heapH | $fdH | $gorH | $thrH |
| $N | $gN | $rssN | $heapN | $fdN | $gorN | $thrN |
| growth 1 → $N | | $((rssN - rss1)) | $((heapN - heap1)) | $((fdN - fd1)) | $((gorN - gor1)) | $((thrN - thr1)) |
| growth $half → $N | | $((rssN - rssH)) | $((heapN - heapH)) | $((fdN - fdH)) | $((gorN - gorH)) | $((thrN - thrH)) |

The Go heap rises and falls with each garbage collection; RSS grows over the
first few hundred rotations while code paths fault in and the heap reaches its
collection target, then stays flat: compare the last two rows.
MD
