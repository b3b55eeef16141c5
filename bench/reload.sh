#!/usr/bin/env bash
# bench/reload.sh — what rotini costs on the data path, and what a reload
# costs, measured with wrk (keep-alive) and hey (-disable-keepalive, a new
# connection per request) in one run:
#   (a) the testapp's serve role binding its own port (--addr), no rotini
#   (b) the same under rotini (-c, one worker on rotini's socket)
#   (c) (b) with `kill -HUP rotini` every $HUP_EVERY seconds
#   (d) gunicorn on the WSGI app of the tests, reloaded by its own
#       `kill -HUP master` every $HUP_EVERY seconds (the peer)
#   (e) the same gunicorn under rotini, `kill -HUP rotini` every $HUP_EVERY s
# For each: req/s, p99 latency, non-2xx responses and socket errors, and the
# reloads done. Prints one markdown section with the exact command lines;
# bench/run.sh files it into bench/RESULTS.md. Progress goes to stderr.
# Knobs: DURATION (seconds per run, 10), CONNS (concurrent connections, 32),
# THREADS (wrk threads, 2), HUP_EVERY (2), GUNICORN_WORKERS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
HUP_EVERY=${HUP_EVERY:-2}
GUNICORN_WORKERS=${GUNICORN_WORKERS:-2}

log() { echo "reload.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

for c in wrk hey curl go; do
	command -v "$c" >/dev/null || die "$c not found; run: scripts/deps.sh bench"
done
have_gunicorn=true
[[ -x /usr/bin/gunicorn ]] || {
	have_gunicorn=false
	log "/usr/bin/gunicorn missing (Debian package gunicorn): skipping (d) and (e)"
}

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

log "building rotini and the testapp into $tmp"
CGO_ENABLED=0 go build -trimpath -ldflags "-E=github.com/rotini-dev/rotini/sigstate.entry" -o "$tmp/rotini" .
CGO_ENABLED=0 go build -trimpath -o "$tmp/testapp" ./test/testapp
wsgi_dir=$(pwd)/test/apps/wsgi

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

# stop PID: TERM, wait up to 30 s.
stop() {
	kill -TERM "$1" 2>/dev/null || return 0
	for _ in $(seq 300); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
}

# hup_loop PID: HUP every $HUP_EVERY s while a run of $DURATION s lasts,
# the last one at least a second before its end (run in background).
hup_loop() {
	local n=$(((DURATION - 1) / HUP_EVERY))
	for _ in $(seq "$n"); do
		sleep "$HUP_EVERY"
		kill -HUP "$1" 2>/dev/null || return 0
	done
}

# rotini_config FILE PORT COMMAND-HCL-LIST READY-LINES
rotini_config() {
	cat >"$1" <<EOF
listen "http" {
  address = "tcp://127.0.0.1:$2"
}

app "web" {
  command      = $3
  workers      = 1
  listen       = ["http"]
  stop_timeout = "20s"
  env          = { PYTHONDONTWRITEBYTECODE = "1" }
  ready {
$4
  }
}
EOF
}

rows=()    # markdown table rows
cmds=()    # command lines, in order
row_num=0

# measure LABEL URL [HUP_PID] [LOGFILE]: wrk then hey against URL, each for
# DURATION s, with a HUP loop against HUP_PID during each if given. LOGFILE is
# rotini's log, to count reloads.
measure() {
	local label=$1 url=$2 hup_pid=${3:-} logfile=${4:-}
	local wrk_cmd="wrk -t$THREADS -c$CONNS -d${DURATION}s --latency $url"
	local hey_cmd="hey -z ${DURATION}s -c $CONNS -disable-keepalive $url"
	cmds+=("$wrk_cmd" "$hey_cmd")
	local tool out rps p99 errs reloads before after hl
	for tool in wrk hey; do
		before=0
		[[ -n $logfile ]] && before=$(grep -c 'reload done' "$logfile" || true)
		hl=""
		if [[ -n $hup_pid ]]; then
			hup_loop "$hup_pid" &
			hl=$!
		fi
		log "$label: $tool"
		if [[ $tool == wrk ]]; then
			out=$($wrk_cmd 2>&1)
			rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
			p99=$(awk '$1=="99%"{print $2}' <<<"$out")
			local sock non2xx
			sock=$(awk '/Socket errors:/{gsub(",","");print "connect "$4", read "$6", write "$8", timeout "$10}' <<<"$out")
			non2xx=$(awk '/Non-2xx or 3xx responses:/{print $5}' <<<"$out")
			errs="non-2xx ${non2xx:-0}; socket: ${sock:-none}"
		else
			out=$($hey_cmd 2>&1)
			rps=$(awk '/Requests\/sec:/{print $2}' <<<"$out")
			p99=$(awk '$1=="99%" && $2=="in" {printf "%.2fms", $3*1000}' <<<"$out")
			local bad errors
			bad=$(awk '/^Status code distribution:/{f=1;next} /^$/{f=0} f && $1!="[200]" {gsub(/[^0-9]/,"",$2); s+=$2} END{print s+0}' <<<"$out")
			errors=$(awk '/^Error distribution:/{f=1;next} f && /^ *\[/ {n=$1; gsub(/[^0-9]/,"",n); s+=n} END{print s+0}' <<<"$out")
			errs="non-2xx $bad; errors $errors"
			if ((errors > 0)); then
				log "$label: hey errors:"
				awk '/^Error distribution:/{f=1} f' <<<"$out" | head -n 6 >&2
			fi
		fi
		if [[ -n $hl ]]; then
			wait "$hl" || true
		fi
		reloads="—"
		if [[ -n $logfile ]]; then
			after=$(grep -c 'reload done' "$logfile" || true)
			local failed
			failed=$(grep -c 'reload failed: serving' "$logfile" || true)
			reloads="$((after - before)) done"
			((failed > 0)) && reloads+=", $failed failed (total)"
		elif [[ -n $hup_pid ]]; then
			reloads="$(((DURATION - 1) / HUP_EVERY)) HUPs"
		fi
		rows+=("| $label | $tool | ${rps:-n/a} | ${p99:-n/a} | $errs | $reloads |")
	done
}

# (a) testapp alone
port=$(free_port)
alone_cmd="$tmp/testapp serve --addr 127.0.0.1:$port"
cmds+=("# (a) $alone_cmd")
$alone_cmd >"$tmp/alone.log" 2>&1 &
alone=$!
pids+=("$alone")
wait_http "http://127.0.0.1:$port/"
measure "(a) testapp alone" "http://127.0.0.1:$port/"
stop "$alone"

# (b), (c) testapp under rotini
port=$(free_port)
rotini_config "$tmp/testapp.hcl" "$port" "[\"$tmp/testapp\", \"serve\", \"--notify\"]" \
	'    notify     = true
    min_uptime = "200ms"
    timeout    = "10s"'
rot_cmd="$tmp/rotini -c $tmp/testapp.hcl"
cmds+=("# (b), (c) $rot_cmd  (config below)")
ROTINI_CONTROL=$tmp/ctl-testapp.sock $rot_cmd >"$tmp/rotini-testapp.log" 2>&1 &
rot=$!
pids+=("$rot")
wait_http "http://127.0.0.1:$port/"
measure "(b) testapp under rotini" "http://127.0.0.1:$port/" "" "$tmp/rotini-testapp.log"
measure "(c) testapp under rotini, HUP every ${HUP_EVERY}s" "http://127.0.0.1:$port/" "$rot" "$tmp/rotini-testapp.log"
stop "$rot"

if $have_gunicorn; then
	# (d) gunicorn's own HUP
	port=$(free_port)
	gcmd="/usr/bin/gunicorn --workers $GUNICORN_WORKERS --bind 127.0.0.1:$port --chdir $wsgi_dir app:application"
	cmds+=("# (d) $gcmd  (kill -HUP master every ${HUP_EVERY}s)")
	PYTHONDONTWRITEBYTECODE=1 $gcmd >"$tmp/gunicorn.log" 2>&1 &
	gpid=$!
	pids+=("$gpid")
	wait_http "http://127.0.0.1:$port/"
	measure "(d) gunicorn, its own HUP every ${HUP_EVERY}s" "http://127.0.0.1:$port/" "$gpid"
	stop "$gpid"

	# (e) gunicorn under rotini
	port=$(free_port)
	rotini_config "$tmp/gunicorn.hcl" "$port" \
		"[\"/usr/bin/gunicorn\", \"--workers\", \"$GUNICORN_WORKERS\", \"--chdir\", \"$wsgi_dir\", \"app:application\"]" \
		'    notify     = true
    http       = "/"
    min_uptime = "1s"
    timeout    = "60s"'
	rot_cmd="$tmp/rotini -c $tmp/gunicorn.hcl"
	cmds+=("# (e) $rot_cmd  (kill -HUP rotini every ${HUP_EVERY}s; config below)")
	ROTINI_CONTROL=$tmp/ctl-gunicorn.sock $rot_cmd >"$tmp/rotini-gunicorn.log" 2>&1 &
	rot=$!
	pids+=("$rot")
	wait_http "http://127.0.0.1:$port/"
	measure "(e) gunicorn under rotini, HUP every ${HUP_EVERY}s" "http://127.0.0.1:$port/" "$rot" "$tmp/rotini-gunicorn.log"
	stop "$rot"
fi

cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
# The section names paths relative to the repository: the temporary
# directory as $tmp, the repository's own as relative paths.
repo=$(pwd)
relpaths() { sed -e "s#$tmp/#\$tmp/#g" -e "s#$repo/##g"; }
{
cat <<EOF
## Reload under load (bench/reload.sh)

$(date -u +%Y-%m-%d), $(nproc) CPUs ($cpu), kernel $(uname -r), $(go version | awk '{print $3}'),
$(wrk --version 2>&1 | head -n1 | awk '{print "wrk", $2}'), hey, gunicorn $($have_gunicorn && /usr/bin/gunicorn --version 2>&1 | awk '{print $NF}' | tr -d ')' || echo "n/a").
Each run: ${DURATION}s, $CONNS connections; wrk keeps connections alive, hey opens one
per request (\`-disable-keepalive\`). A reload is a rotation of the whole
generation (rotini) or gunicorn's own HUP (new workers, old ones stopped).
Errors are what the tool saw: any non-zero count is a failed request.

| scenario | tool | req/s | p99 | errors | reloads |
| --- | --- | ---: | ---: | --- | --- |
$(printf '%s\n' "${rows[@]}")

Commands:

\`\`\`sh
$(printf '%s\n' "${cmds[@]}")
\`\`\`

rotini config of (b) and (c):

\`\`\`hcl
$(cat "$tmp/testapp.hcl")
\`\`\`
EOF
if $have_gunicorn; then
	cat <<EOF

rotini config of (e):

\`\`\`hcl
$(cat "$tmp/gunicorn.hcl")
\`\`\`
EOF
fi
} | relpaths
