#!/usr/bin/env bash
# bench/proxy.sh — the cost of proxy mode's hop: the rotini binary with a
# `proxy {}` block vs HAProxy (mode tcp) and nginx (stream module) relaying
# to the same app process, and that app alone. The app is the testapp's
# HTTP server (Go) that rotini runs as its worker, on `${port.http}`; the
# other rows connect to that worker's port. Loads: wrk with keep-alive, and
# wrk with `Connection: close` (a new connection per request), ROUNDS times
# over the four targets, interleaved, so that the machine's other load
# falls on all of them alike. Then the syscalls each proxy makes per new
# connection (strace -c -f), and rotini's memory per idle relayed
# connection: RSS before and after IDLE_CONNS clients connect and send
# nothing. Prints one markdown section; bench/run.sh files it into
# bench/RESULTS.md. Progress goes to stderr.
# Knobs: DURATION (seconds per run, 10), CONNS (32), THREADS (wrk, 2),
# ROUNDS (2), STRACE_SECS (5; 0 skips the syscall counts), IDLE_CONNS (2000).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
STRACE_SECS=${STRACE_SECS:-5}
IDLE_CONNS=${IDLE_CONNS:-2000}

log() { echo "proxy.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

for c in wrk curl go python3 haproxy nginx; do
	command -v "$c" >/dev/null || die "$c not found; run: scripts/deps.sh bench"
done
((STRACE_SECS == 0)) || command -v strace >/dev/null || die "strace not found; run: scripts/deps.sh bench (or STRACE_SECS=0)"
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

build_rotini="CGO_ENABLED=0 go build -trimpath -ldflags -E=github.com/rotini-dev/rotini/sigstate.entry -o rotini ."
build_app="CGO_ENABLED=0 go build -trimpath -o testapp ./test/testapp"
log "building rotini and the testapp into $tmp"
CGO_ENABLED=0 go build -trimpath -ldflags "-E=github.com/rotini-dev/rotini/sigstate.entry" -o "$tmp/rotini" .
CGO_ENABLED=0 go build -trimpath -o "$tmp/testapp" ./test/testapp

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

# ticks FIELDS PID…: the CPU of the processes and their threads, in clock
# ticks: FIELDS is an awk sum of /proc/PID/stat fields ($14 user, $15
# system).
ticks() {
	local f=$1 p t=0
	shift
	for p in "$@"; do
		t=$((t + $(awk "{print $f}" "/proc/$p/stat")))
	done
	echo "$t"
}
cpu_ticks() { ticks '$14 + $15' "$@"; } # user+system
sys_ticks() { ticks '$15' "$@"; }       # the system (kernel) part
hz=$(getconf CLK_TCK)

# child_cpu FILE: user+system seconds of this shell's finished children
# (wrk), from the output of `times` in FILE. `times` must run in this
# shell, not in a $(…) or pipeline, where it would count a subshell's.
child_cpu() {
	awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] } printf "%.3f", t }' "$1"
}
# per_req SECONDS REQUESTS: µs per request.
per_req() { awk -v t="$1" -v n="${2:-0}" 'BEGIN{if (n > 0) printf "%.1f", t * 1e6 / n; else print "n/a"}'; }

# rotini in proxy mode, running the app as its worker on ${port.http}.
rot_port=$(free_port)
cat >"$tmp/rotini.hcl" <<EOF
listen "http" {
  address = "tcp://127.0.0.1:$rot_port"
}

app "web" {
  command = ["$tmp/testapp", "serve", "--addr", "127.0.0.1:\${port.http}"]
  listen  = ["http"]
  proxy {}
}
EOF
ROTINI_CONTROL=$tmp/rotini.sock "$tmp/rotini" -c "$tmp/rotini.hcl" >"$tmp/rotini.log" 2>&1 &
rot=$!
pids+=("$rot")
wait_http "http://127.0.0.1:$rot_port/"
app_pid=$(pgrep -P "$rot" -f "testapp serve" | head -n1)
[[ -n $app_pid ]] || die "rotini's worker (testapp serve) not found"
# "relaying new connections: generation=1 listener=http to=127.0.0.1:PORT"
app_addr=$(sed -n 's/.*relaying new connections:.* to=\([0-9.:]*\).*/\1/p' "$tmp/rotini.log" | head -n1)
[[ -n $app_addr ]] || die "no 'relaying new connections' line in rotini's log"

# Memory per idle relayed connection: IDLE_CONNS clients that connect and
# send nothing, held open while rotini's RSS is read. Before any load, so
# that no heap the load grew and freed hides what they take.
rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
fds_before=$(ls "/proc/$rot/fd" | wc -l)
before=$(rss "$rot")
python3 - "$rot_port" "$IDLE_CONNS" "$rot" "$fds_before" "$tmp/idle.out" <<'PY' &
import os, socket, sys, time
port, n, relay, base, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
# Wait until rotini has accepted and dialled them all: its open fds grow
# by 2 per connection.
def fds():
    return len(os.listdir(f"/proc/{relay}/fd"))
deadline = time.time() + 60
while time.time() < deadline:
    if fds() >= base + 2 * n:
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
after=$(rss "$rot")
fds=$(cat "$tmp/idle.out")
kill -TERM "$idle" 2>/dev/null || true
per=$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN{printf "%.1f", (a-b)/n}')
fds_per=$(awk -v a="$fds" -v b="$fds_before" -v n="$IDLE_CONNS" 'BEGIN{printf "%.2f", (a-b)/n}')

# HAProxy, mode tcp
hap_port=$(free_port)
cat >"$tmp/haproxy.cfg" <<EOF
global
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 5m
  timeout server 5m
frontend fe
  bind 127.0.0.1:$hap_port
  default_backend be
backend be
  server app $app_addr
EOF
# maxconn 9000: with 10000 HAProxy wants more fds than the usual 20000 limit.
haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
hap=$!
pids+=("$hap")
wait_http "http://127.0.0.1:$hap_port/"

# nginx, stream module
ngx_port=$(free_port)
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
    listen 127.0.0.1:$ngx_port;
    proxy_pass $app_addr;
  }
}
EOF
nginx -p "$tmp/nginx" -e stderr -c "$tmp/nginx.conf" >"$tmp/nginx.log" 2>&1 &
ngx=$!
pids+=("$ngx")
wait_http "http://127.0.0.1:$ngx_port/"
# The master and its workers (worker_processes auto: one per CPU).
mapfile -t ngxw < <(pgrep -P "$ngx")

hap_label="HAProxy $(haproxy -v | awk 'NR==1{print $3}') (mode tcp)"
ngx_label="nginx $(nginx -v 2>&1 | awk -F/ '{print $2}') (stream)"
labels=("app alone" "rotini proxy mode" "$hap_label" "$ngx_label")
urls=("http://$app_addr/" "http://127.0.0.1:$rot_port/" "http://127.0.0.1:$hap_port/" "http://127.0.0.1:$ngx_port/")
procs=("" "$rot" "$hap" "$ngx ${ngxw[*]}")

# conntrack_room: with netfilter's connection tracking loaded (Docker
# hosts), every connection takes a table entry for 2 minutes after it
# closes, and a full table drops new SYNs machine-wide: connects then hang
# for seconds, in this benchmark and in whatever else runs on the machine.
# A new-conn run makes up to ~100,000 entries (2 per request through a
# proxy), so it starts only once the table is at most half full.
ct_count=/proc/sys/net/netfilter/nf_conntrack_count
ct_max=/proc/sys/net/netfilter/nf_conntrack_max
ct_waited=0
conntrack_room() {
	[[ -r $ct_count && -r $ct_max ]] || return 0
	local half=$(($(cat "$ct_max") / 2)) n
	for _ in $(seq 300); do
		n=$(cat "$ct_count")
		((n < half)) && return 0
		((ct_waited % 15 == 0)) && log "conntrack: $n entries of $(cat "$ct_max"); waiting for half"
		sleep 1
		ct_waited=$((ct_waited + 1))
	done
	log "conntrack still over half full after 300 s; going on"
}

rows=()
declare -A rps cpu
# run ROUND I LOAD: one wrk run of target I; a table row, and rps/cpu for
# the ratios. The CPU time per request of the proxy's processes, of the app
# (rotini's worker) and of wrk: on a shared machine the throughput moves
# with the other load, the CPU each spends per request much less.
run() {
	local round=$1 i=$2 load=$3 out r p99 sock non2xx n c=— k=— a0 a1 c0 c1 k0 k1
	local -a ps
	read -r -a ps <<<"${procs[$i]}"
	[[ $load == new-conn ]] && conntrack_room
	log "round $round: ${labels[$i]}: $load"
	((${#ps[@]})) && c0=$(cpu_ticks "${ps[@]}") && k0=$(sys_ticks "${ps[@]}")
	a0=$(cpu_ticks "$app_pid")
	times >"$tmp/times0"
	if [[ $load == keep-alive ]]; then
		out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "${urls[$i]}" 2>&1)
	else
		out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H 'Connection: close' "${urls[$i]}" 2>&1)
	fi
	times >"$tmp/times1"
	a1=$(cpu_ticks "$app_pid")
	r=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
	p99=$(awk '$1=="99%"{print $2}' <<<"$out")
	sock=$(awk '/Socket errors:/{gsub(",","");print "connect "$4", read "$6", write "$8", timeout "$10}' <<<"$out")
	non2xx=$(awk '/Non-2xx or 3xx responses:/{print $5}' <<<"$out")
	n=$(awk '/requests in/{print $1}' <<<"$out")
	if ((${#ps[@]})); then
		c1=$(cpu_ticks "${ps[@]}")
		k1=$(sys_ticks "${ps[@]}")
		c=$(per_req "$(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN{print t / hz}')" "$n")
		k=$(per_req "$(awk -v t=$((k1 - k0)) -v hz="$hz" 'BEGIN{print t / hz}')" "$n")
	fi
	local app wrkc
	app=$(per_req "$(awk -v t=$((a1 - a0)) -v hz="$hz" 'BEGIN{print t / hz}')" "$n")
	wrkc=$(per_req "$(awk -v a="$(child_cpu "$tmp/times0")" -v b="$(child_cpu "$tmp/times1")" 'BEGIN{print b - a}')" "$n")
	rps[$round,$i,$load]=${r:-0}
	cpu[$round,$i,$load]=$c
	rows+=("| $round | ${labels[$i]} | $load | ${r:-n/a} | ${p99:-n/a} | $c | $k | $app | $wrkc | non-2xx ${non2xx:-0}; socket: ${sock:-none} |")
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
	for load in keep-alive new-conn; do
		for i in 0 1 2 3; do
			run "$round" "$i" "$load"
		done
	done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ratios=()
for round in $(seq "$ROUNDS"); do
	ratios+=("| $round | $(ratio "${rps[$round,1,keep-alive]}" "${rps[$round,2,keep-alive]}") | $(ratio "${cpu[$round,1,keep-alive]}" "${cpu[$round,2,keep-alive]}") | $(ratio "${rps[$round,1,new-conn]}" "${rps[$round,2,new-conn]}") | $(ratio "${cpu[$round,1,new-conn]}" "${cpu[$round,2,new-conn]}") | $(ratio "${rps[$round,1,keep-alive]}" "${rps[$round,0,keep-alive]}") |")
done

# strace_per_conn I: strace -c -f on target I's processes during
# STRACE_SECS of wrk with a new connection per request (4 connections:
# strace slows the proxy, but not what it calls); prints "TOTAL|TOP" per
# request.
strace_per_conn() {
	local i=$1 out n s
	local -a ps args=()
	read -r -a ps <<<"${procs[$i]}"
	for p in "${ps[@]}"; do args+=(-p "$p"); done
	conntrack_room
	strace -c -f -o "$tmp/strace.$i" "${args[@]}" 2>/dev/null &
	s=$!
	sleep 1
	out=$(wrk -t1 -c4 -d"${STRACE_SECS}s" -H 'Connection: close' "${urls[$i]}" 2>&1)
	sleep 0.5
	kill -INT "$s"
	wait "$s" || true
	n=$(awk '/requests in/{print $1}' <<<"$out")
	# Lines: % time, seconds, usecs/call, calls, [errors,] syscall.
	awk '$NF != "total" && $4 ~ /^[0-9]+$/ && $1 ~ /^[0-9.]+$/ {print $4, $NF}' "$tmp/strace.$i" |
		sort -rn |
		awk -v n="$n" '{t += $1; if ($1 / n >= 0.05) top = top sprintf("%s%s %.2f", (top == "" ? "" : ", "), $2, $1 / n)}
			END {printf "%.1f|%s\n", t / n, top}'
}
strace_rows=()
if ((STRACE_SECS > 0)); then
	for i in 1 2 3; do
		log "strace: ${labels[$i]}"
		res=$(strace_per_conn "$i")
		strace_rows+=("| ${labels[$i]} | ${res%%|*} | ${res#*|} |")
	done
fi

cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
# Paths under $tmp are printed relative to it: no machine's temp dir in
# the results.
sed "s|$tmp/||g" <<EOF
## Proxy mode: rotini's relay vs HAProxy and nginx (bench/proxy.sh)

$(date -u +%Y-%m-%d), $(nproc) CPUs ($cpu_model), kernel $(uname -r), $(go version | awk '{print $3}'),
rotini $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo "-dirty"), $(wrk --version 2>&1 | head -n1 | awk '{print "wrk", $2}'). Each run: ${DURATION}s, $CONNS connections, $THREADS wrk threads;
wrk, proxies and app on the same cores, unpinned (a shared machine:
compare within this section). Load average (1, 5, 15 min) $load_start
when the runs began, $load_end when they ended$(
	[[ -r $ct_max ]] && echo "; each new-conn run waited for netfilter's conntrack table to be at most half full ($ct_waited s in all)"). The app is the testapp's
Go HTTP server, run by rotini as its worker on \`\${port.http}\`
($app_addr); HAProxy, nginx and "app alone" connect to that same
process. "keep-alive" reuses connections, "new-conn" sends
\`Connection: close\` so every request is a new connection through the
proxy. ROUNDS=$ROUNDS: each round runs the four targets in turn, keep-alive
then new-conn. "proxy CPU per request" is the user+system time of the
proxy's processes during the run (rotini's own process, not its worker)
divided by the requests wrk completed: what the hop costs, and less at the
mercy of the machine's other load than req/s; the app's (its process) and
wrk's are measured the same way, so that a proxy's share of the CPU that
client, proxy and app share on these cores can be read off. "of it in
the kernel" is the system part of the proxy's: the sockets' TCP work,
which any proxy that relays through them pays.

| round | target | load | req/s | p99 | proxy CPU per request [µs] | of it in the kernel [µs] | app CPU per request [µs] | wrk CPU per request [µs] | errors |
| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
$(printf '%s\n' "${rows[@]}")

Ratios within each round (rotini proxy mode over HAProxy; CPU: lower is
better):

| round | keep-alive req/s vs HAProxy | keep-alive CPU/request vs HAProxy | new-conn req/s vs HAProxy | new-conn CPU/request vs HAProxy | keep-alive req/s vs app alone |
| --- | ---: | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${ratios[@]}")
$(if ((${#strace_rows[@]})); then
	cat <<EOS

Syscalls per new connection: \`strace -c -f\` attached to the proxy's
processes during ${STRACE_SECS}s of \`wrk -t1 -c4 -H 'Connection: close'\`, calls
divided by the requests wrk completed (those at 0.05 per connection or
more listed):

| proxy | syscalls per connection | by syscall |
| --- | ---: | --- |
$(printf '%s\n' "${strace_rows[@]}")
EOS
fi)

rotini's memory per idle relayed connection, measured before the load
runs: VmRSS $before KiB before, $after KiB with $IDLE_CONNS idle clients
relayed: **$per KiB per connection**, and $fds_per more open fds per
connection (its 2 sockets; an idle connection holds no goroutine, no
buffer and no pipe).

Commands (binaries built into the run's temporary directory, named here
without it):

\`\`\`sh
$build_rotini
$build_app
ROTINI_CONTROL=rotini.sock rotini -c rotini.hcl   # config below
haproxy -db -f haproxy.cfg                        # config below
nginx -p nginx/ -e stderr -c nginx.conf           # config below
# for each round, load (keep-alive, then new-conn) and target URL:
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency URL
wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -H 'Connection: close' URL
# syscalls, for each proxy (nginx: its master and workers):
strace -c -f -p PID & wrk -t1 -c4 -d${STRACE_SECS}s -H 'Connection: close' URL
\`\`\`

rotini.hcl:

\`\`\`hcl
$(cat "$tmp/rotini.hcl")
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
