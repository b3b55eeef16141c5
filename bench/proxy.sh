#!/usr/bin/env bash
# bench/proxy.sh — the cost of proxy mode's hop: package proxy's relay
# (bench/proxyrelay, the relay rotini runs for an app with a proxy block)
# vs HAProxy (mode tcp) and nginx (stream module) relaying to the same app,
# and the app alone. The app is the testapp's HTTP server (Go, --addr).
# Loads: wrk with keep-alive, and wrk with `Connection: close` (a new
# connection per request). Then the relay's memory per idle relayed
# connection: RSS before and after IDLE_CONNS clients connect and send
# nothing. Prints one markdown section; bench/run.sh files it into
# bench/RESULTS.md. Progress goes to stderr.
# Knobs: DURATION (seconds per run, 10), CONNS (32), THREADS (wrk, 2),
# IDLE_CONNS (2000).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
IDLE_CONNS=${IDLE_CONNS:-2000}

log() { echo "proxy.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

for c in wrk curl go python3 haproxy nginx; do
	command -v "$c" >/dev/null || die "$c not found; run: scripts/deps.sh bench"
done
stream_mod=/usr/lib/nginx/modules/ngx_stream_module.so
[[ -f $stream_mod ]] || die "$stream_mod missing (Debian package libnginx-mod-stream); run: scripts/deps.sh bench"

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

log "building the testapp and proxyrelay into $tmp"
CGO_ENABLED=0 go build -trimpath -o "$tmp/testapp" ./test/testapp
CGO_ENABLED=0 go build -trimpath -o "$tmp/proxyrelay" ./bench/proxyrelay

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL: until it answers 200, at most 30 s.
wait_http() {
	for _ in $(seq 300); do
		if [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == 200 ]]; then
			return 0
		fi
		sleep 0.1
	done
	die "$1 did not answer within 30 s"
}

rows=()
cmds=()

# cpu_ticks PID…: user+system CPU of the processes and their threads, in
# clock ticks.
cpu_ticks() {
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)

# measure LABEL URL [PID…]: wrk keep-alive, then wrk with a new connection
# per request. With PIDs (the proxy's processes), also the CPU time they
# used per request: on a shared machine the throughput moves with the
# other load, the CPU a proxy spends per request much less.
measure() {
	local label=$1 url=$2
	shift 2
	local procs=("$@")
	local ka="wrk -t$THREADS -c$CONNS -d${DURATION}s --latency $url"
	local nc="wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -H 'Connection: close' $url"
	local load out rps p99 sock non2xx c0 c1 n cpu
	for load in keep-alive new-conn; do
		log "$label: $load"
		((${#procs[@]})) && c0=$(cpu_ticks "${procs[@]}")
		if [[ $load == keep-alive ]]; then
			out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$url" 2>&1)
		else
			out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H 'Connection: close' "$url" 2>&1)
		fi
		rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
		p99=$(awk '$1=="99%"{print $2}' <<<"$out")
		sock=$(awk '/Socket errors:/{gsub(",","");print "connect "$4", read "$6", write "$8", timeout "$10}' <<<"$out")
		non2xx=$(awk '/Non-2xx or 3xx responses:/{print $5}' <<<"$out")
		cpu=—
		if ((${#procs[@]})); then
			c1=$(cpu_ticks "${procs[@]}")
			n=$(awk '/requests in/{print $1}' <<<"$out")
			cpu=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="${n:-0}" 'BEGIN{if (n > 0) printf "%.1f", t*1e6/hz/n; else print "n/a"}')
		fi
		rows+=("| $label | $load | ${rps:-n/a} | ${p99:-n/a} | $cpu | non-2xx ${non2xx:-0}; socket: ${sock:-none} |")
	done
	cmds+=("$ka" "$nc")
}

app_port=$(free_port)
app_cmd="$tmp/testapp serve --addr 127.0.0.1:$app_port"
cmds+=("# the app: $app_cmd")
$app_cmd >"$tmp/app.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$app_port/"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
measure "app alone" "http://127.0.0.1:$app_port/"

# rotini's relay
port=$(free_port)
relay_cmd="$tmp/proxyrelay -listen 127.0.0.1:$port -backend 127.0.0.1:$app_port"
cmds+=("# rotini's relay: $relay_cmd")
$relay_cmd >"$tmp/relay.log" 2>&1 &
relay=$!
pids+=("$relay")
wait_http "http://127.0.0.1:$port/"
measure "rotini relay (package proxy)" "http://127.0.0.1:$port/" "$relay"
relay_port=$port

# HAProxy, mode tcp
port=$(free_port)
cat >"$tmp/haproxy.cfg" <<EOF
global
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 5m
  timeout server 5m
frontend fe
  bind 127.0.0.1:$port
  default_backend be
backend be
  server app 127.0.0.1:$app_port
EOF
# maxconn 9000: with 10000 HAProxy wants more fds than the usual 20000 limit.
cmds+=("# haproxy -db -f haproxy.cfg  (config below)")
haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
hap=$!
pids+=("$hap")
wait_http "http://127.0.0.1:$port/"
measure "HAProxy $(haproxy -v | awk 'NR==1{print $3}') (mode tcp)" "http://127.0.0.1:$port/" "$hap"

# nginx, stream module
port=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<EOF
load_module $stream_mod;
daemon off;
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 10240; }
stream {
  server {
    listen 127.0.0.1:$port;
    proxy_pass 127.0.0.1:$app_port;
  }
}
EOF
cmds+=("# nginx -p nginx/ -e stderr -c nginx.conf  (config below)")
nginx -p "$tmp/nginx" -e stderr -c "$tmp/nginx.conf" >"$tmp/nginx.log" 2>&1 &
ngx=$!
pids+=("$ngx")
wait_http "http://127.0.0.1:$port/"
# The master and its workers (worker_processes auto: one per CPU).
mapfile -t ngxw < <(pgrep -P "$ngx")
measure "nginx $(nginx -v 2>&1 | awk -F/ '{print $2}') (stream)" "http://127.0.0.1:$port/" "$ngx" "${ngxw[@]}"

load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# Memory per idle relayed connection: IDLE_CONNS clients that connect and
# send nothing, held open while the relay's RSS is read.
rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
before=$(rss "$relay")
python3 - "$relay_port" "$IDLE_CONNS" "$relay" "$tmp/idle.out" <<'PY' &
import socket, sys, time
port, n, relay, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
# Wait until the relay has accepted and dialled them all: its open fds
# grow by 2 per connection.
def fds():
    import os
    return len(os.listdir(f"/proc/{relay}/fd"))
deadline = time.time() + 60
while time.time() < deadline:
    if fds() >= 2 * n:
        break
    time.sleep(0.1)
time.sleep(1)
with open(out, "w") as f:
    f.write(str(fds()))
time.sleep(3600)
PY
idle=$!
pids+=("$idle")
for _ in $(seq 600); do
	[[ -s $tmp/idle.out ]] && break
	sleep 0.1
done
[[ -s $tmp/idle.out ]] || die "the idle clients did not get relayed within 60 s"
after=$(rss "$relay")
fds=$(cat "$tmp/idle.out")
kill -TERM "$idle" 2>/dev/null || true
per=$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN{printf "%.1f", (a-b)/n}')

cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
# Paths under $tmp are printed relative to it: no machine's temp dir in
# the results.
sed "s|$tmp/||g" <<EOF
## Proxy mode: rotini's relay vs HAProxy and nginx (bench/proxy.sh)

$(date -u +%Y-%m-%d), $(nproc) CPUs ($cpu), kernel $(uname -r), $(go version | awk '{print $3}'),
$(wrk --version 2>&1 | head -n1 | awk '{print "wrk", $2}'). Each run: ${DURATION}s, $CONNS connections, $THREADS wrk threads,
wrk, relay and app on the same cores (a shared machine: compare within
this section); load average (1, 5, 15 min) $load_start when the runs
began, $load_end when they ended. The app is the testapp's Go HTTP server on 127.0.0.1;
"keep-alive" reuses connections, "new-conn" sends \`Connection: close\`
so every request is a new connection through the relay. rotini's relay
is package proxy run by bench/proxyrelay (what rotini runs for an app
with a proxy block), default options. "proxy CPU per request" is the
user+system time the proxy's processes used during the run divided by the
requests wrk completed: what the hop costs, and less at the mercy of the
machine's other load than req/s.

| target | load | req/s | p99 | proxy CPU per request [µs] | errors |
| --- | --- | ---: | ---: | ---: | --- |
$(printf '%s\n' "${rows[@]}")

rotini relay's memory per idle relayed connection: VmRSS $before KiB
before, $after KiB with $IDLE_CONNS idle clients relayed: **$per KiB per
connection**. The relay then had $fds open fds (2 sockets per connection;
no pipe is held while a connection is idle).

Commands:

\`\`\`sh
$(printf '%s\n' "${cmds[@]}")
\`\`\`

haproxy.cfg:

\`\`\`
$(cat "$tmp/haproxy.cfg")
\`\`\`

nginx.conf:

\`\`\`
$(cat "$tmp/nginx.conf")
\`\`\`
EOF
