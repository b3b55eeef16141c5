#!/usr/bin/env bash
# bench/steer.sh — what steering buys and what it costs: failed requests,
# throughput and p99 while an app is reloaded every $HUP_EVERY seconds, side
# by side in one run, for
#   (1) gunicorn binding its own port, reloaded by its own `kill -HUP master`
#       (the peer)
#   (2) the same gunicorn under rotini, steered (the default)
#   (3) test/apps/naive (a Go app whose drain is http.Server.Shutdown alone)
#       under rotini with `steer = false` (one socket shared by every
#       generation, rotini before steering)
#   (4) the same, steered
#   (5) Debian's uvicorn (`--fd ${fd.http}`, test/apps/asgi) under rotini
#       with `steer = false`
#   (6) the same, steered
# Rows (2)–(6) are reloaded by `kill -HUP rotini`. For each row, with the
# same process(es) running throughout: hey with a new connection per request
# (-disable-keepalive) without reloads, then with reloads, then wrk
# (keep-alive) with reloads, then hey without reloads again; the baseline is
# the mean of the two runs without reloads. Prints one markdown section with
# the exact command lines; bench/run.sh files it into bench/RESULTS.md.
# Progress goes to stderr.
# Knobs: DURATION (seconds per run, 20), CONNS (concurrent connections, 32),
# THREADS (wrk threads, 2), HUP_EVERY (2), GUNICORN_WORKERS (2), LOGS (a
# directory to keep the tools' outputs, the apps' and rotini's logs in; none).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

DURATION=${DURATION:-20}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
HUP_EVERY=${HUP_EVERY:-2}
GUNICORN_WORKERS=${GUNICORN_WORKERS:-2}

log() { echo "steer.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

for c in wrk hey curl go; do
	command -v "$c" >/dev/null || die "$c not found; run: scripts/deps.sh bench"
done
[[ -x /usr/bin/gunicorn ]] || die "/usr/bin/gunicorn missing (Debian package gunicorn; scripts/deps.sh test installs it)"
/usr/bin/python3 -c 'import uvicorn' 2>/dev/null ||
	die "uvicorn missing for /usr/bin/python3 (Debian package python3-uvicorn; scripts/deps.sh test installs it)"

repo=$(pwd)
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
	if [[ -n ${LOGS:-} ]]; then
		mkdir -p "$LOGS" && cp "$tmp"/*.log "$tmp"/*.out "$tmp"/*.hcl "$LOGS"/ 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# clean TEXT…: the text without this run's temporary directory or the
# repository's absolute path, so the section names files relative to them.
clean() { sed -e "s#$tmp/##g" -e "s#$tmp#.#g" -e "s#$repo/##g" -e "s#$repo#.#g"; }

log "building rotini and test/apps/naive into $tmp"
build_rotini="CGO_ENABLED=0 go build -trimpath -ldflags -E=github.com/rotini-dev/rotini/sigstate.entry -o $tmp/rotini ."
build_naive="CGO_ENABLED=0 go build -trimpath -o $tmp/naive ./test/apps/naive"
CGO_ENABLED=0 go build -trimpath -ldflags "-E=github.com/rotini-dev/rotini/sigstate.entry" -o "$tmp/rotini" .
CGO_ENABLED=0 go build -trimpath -o "$tmp/naive" ./test/apps/naive

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL: until it answers 200, at most 60 s.
wait_http() {
	for _ in $(seq 600); do
		if [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == 200 ]]; then
			return 0
		fi
		sleep 0.1
	done
	die "$1 did not answer within 60 s"
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

# outcomes LOGFILE: how many reloads rotini has finished, done or failed.
outcomes() { grep -cE 'reload (done|failed)' "$1" || true; }

# settle [LOGFILE]: let the last reloads finish and the old generations
# drain before the next run: 5 s, and with a rotini log until no reload has
# finished for 5 s (at most 90 s).
settle() {
	sleep 5
	[[ -n ${1:-} ]] || return 0
	local last now
	last=$(outcomes "$1")
	for _ in $(seq 18); do
		sleep 5
		now=$(outcomes "$1")
		[[ $now == "$last" ]] && return 0
		last=$now
	done
}

# rotini_config FILE PORT STEER COMMAND-HCL-LIST WORKERS STOP-TIMEOUT
# READY-LINES: the listen block says `steer = false` only when STEER is
# false; steering is the default.
rotini_config() {
	{
		echo "listen \"http\" {"
		echo "  address = \"tcp://127.0.0.1:$2\""
		[[ $3 == true ]] || echo "  steer   = false"
		echo "}"
		cat <<EOF

app "web" {
  command      = $4
  workers      = $5
  listen       = ["http"]
  stop_timeout = "$6"
  env          = { PYTHONDONTWRITEBYTECODE = "1" }
  ready {
$7
  }
}
EOF
	} >"$1"
}

# run_hey NAME URL: one hey run into $tmp/NAME.out; sets rps, p99 (ms),
# total, failed (non-2xx + errors) and kinds (error kinds with counts).
run_hey() {
	local out=$tmp/$1.out
	hey -z "${DURATION}s" -c "$CONNS" -disable-keepalive "$2" >"$out" 2>&1 || true
	rps=$(awk '/Requests\/sec:/{print $2}' "$out")
	p99=$(awk '$1=="99%" && $2=="in" {printf "%.2f", $3*1000}' "$out")
	local ok bad errors
	ok=$(awk '/^Status code distribution:/{f=1;next} /^$/{f=0} f && $1=="[200]" {gsub(/[^0-9]/,"",$2); s+=$2} END{print s+0}' "$out")
	bad=$(awk '/^Status code distribution:/{f=1;next} /^$/{f=0} f && $1!="[200]" {gsub(/[^0-9]/,"",$2); s+=$2} END{print s+0}' "$out")
	errors=$(awk '/^Error distribution:/{f=1;next} f && /^ *\[/ {n=$1; gsub(/[^0-9]/,"",n); s+=n} END{print s+0}' "$out")
	total=$((ok + bad + errors))
	failed=$((bad + errors))
	# An error line is `[N]	Get "URL": …: KIND`; the kind is its tail:
	# "EOF", "read: connection reset by peer", "connect: connection refused".
	kinds=$(awk '/^Status code distribution:/{f=1;next} /^$/{f=0} f && $1!="[200]" {s=$1; gsub(/[^0-9]/,"",$2); c["HTTP " s]+=$2}
		/^Error distribution:/{e=1;next}
		e && /^ *\[/ {n=$1; gsub(/[^0-9]/,"",n); l=$0
			if (l ~ /: EOF$/) k="EOF"
			else if (match(l, /(read|write|dial|connect): [^:]*$/)) k=substr(l, RSTART)
			else { sub(/.*: /, "", l); k=l }
			c[k]+=n}
		END{for (k in c) printf "%s%s × %d", (i++ ? ", " : ""), k, c[k]}' "$out")
	if ((failed > 0)); then
		log "$1: hey failures:"
		awk '/^Status code distribution:/{f=1} f' "$out" | head -n 12 >&2
	fi
}

# run_wrk NAME URL: one wrk run into $tmp/NAME.out; sets wrk_reqs, wrk_sock
# (socket errors by kind), wrk_errs (their sum + non-2xx).
run_wrk() {
	local out=$tmp/$1.out
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$2" >"$out" 2>&1 || true
	wrk_reqs=$(awk '/requests in/{print $1}' "$out")
	local non2xx sum
	non2xx=$(awk '/Non-2xx or 3xx responses:/{print $5}' "$out")
	sum=$(awk '/Socket errors:/{gsub(",","");print $4+$6+$8+$10}' "$out")
	wrk_sock=$(awk '/Socket errors:/{gsub(",","");print "connect "$4", read "$6", write "$8", timeout "$10}' "$out")
	wrk_errs=$((${sum:-0} + ${non2xx:-0}))
	[[ -n ${non2xx:-} ]] && wrk_sock="${wrk_sock:-no socket errors}; non-2xx $non2xx"
	wrk_sock=${wrk_sock:-none}
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
mean() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.2f", (a + b) / 2 }'; }
# spread A B: the larger over the smaller, how far two runs of the same
# thing differ.
spread() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a > 0 && b > 0) printf "%.2f", (a > b ? a / b : b / a); else print "n/a" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.3f%%", 100 * a / b; else print "n/a" }'; }

rows=()    # the main table
details=() # the raw figures
kinds_notes=()
cmds=()
cfgs=() # "row: file" of the configs to print
# per row, for the goals: label, steered rotini row?, failed, tput ratio, p99 ratio
g_label=() g_steered=() g_failed=() g_tput=() g_p99=() g_rspread=() g_pspread=()

# measure N LABEL STEER URL HUP_PID [LOGFILE CTL]: the four runs of one row.
# STEER is how the row is labelled: "own", "off" or "on"; for rotini rows
# the listener's mode is read back from `rotini status`.
measure() {
	local n=$1 label=$2 steer=$3 url=$4 hup_pid=$5 logfile=${6:-} ctl=${7:-}
	local load mode="—" hl before reloads
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	if [[ -n $ctl ]]; then
		mode=$("$tmp/rotini" status --control "$ctl" 2>/dev/null | awk '/^listener /{$1=$2=$3=""; sub(/^ +/, ""); print; exit}')
		mode=${mode:-unknown}
	fi
	cmds+=("hey -z ${DURATION}s -c $CONNS -disable-keepalive $url   # without reloads, then with, then without again"
		"wrk -t$THREADS -c$CONNS -d${DURATION}s --latency $url   # with reloads")

	log "($n) $label: hey, no reloads"
	run_hey "r$n-base1" "$url"
	local b1_rps=$rps b1_p99=$p99 b1_failed=$failed
	settle "$logfile"

	log "($n) $label: hey, HUP every ${HUP_EVERY}s"
	before=0
	[[ -n $logfile ]] && before=$(grep -c 'reload done' "$logfile" || true)
	hup_loop "$hup_pid" &
	hl=$!
	run_hey "r$n-hup" "$url"
	wait "$hl" || true
	local h_rps=$rps h_p99=$p99 h_total=$total h_failed=$failed h_kinds=$kinds
	settle "$logfile"
	local h_done=0
	[[ -n $logfile ]] && h_done=$(($(grep -c 'reload done' "$logfile" || true) - before))

	log "($n) $label: wrk, HUP every ${HUP_EVERY}s"
	before=0
	[[ -n $logfile ]] && before=$(grep -c 'reload done' "$logfile" || true)
	hup_loop "$hup_pid" &
	hl=$!
	run_wrk "r$n-wrk" "$url"
	wait "$hl" || true
	settle "$logfile"
	local w_done=0
	[[ -n $logfile ]] && w_done=$(($(grep -c 'reload done' "$logfile" || true) - before))

	log "($n) $label: hey, no reloads again"
	run_hey "r$n-base2" "$url"
	local b2_rps=$rps b2_p99=$p99 b2_failed=$failed

	local hups=$(((DURATION - 1) / HUP_EVERY))
	if [[ -n $logfile ]]; then
		reloads="hey $h_done, wrk $w_done done of $hups HUPs each"
		local bad
		bad=$(grep -c 'reload failed' "$logfile" || true)
		((bad > 0)) && reloads+="; **$bad failed**"
	else
		reloads="$hups HUPs per run"
	fi

	local base_rps base_p99 tput p99r
	base_rps=$(mean "$b1_rps" "$b2_rps")
	base_p99=$(mean "$b1_p99" "$b2_p99")
	tput=$(ratio "$h_rps" "$base_rps")
	p99r=$(ratio "$h_p99" "$base_p99")
	local failed_cell="$h_failed / $h_total"
	((h_failed > 0)) && failed_cell="**$h_failed** / $h_total ($(pct "$h_failed" "$h_total"))"
	local wrk_cell="$wrk_errs / ${wrk_reqs:-?}"
	if ((wrk_errs > 0)); then
		wrk_cell+=" ($wrk_sock"
		((w_done > 0)) && wrk_cell+="; $(awk -v a="$wrk_errs" -v b="$w_done" 'BEGIN{printf "%.1f", a / b}') per reload"
		wrk_cell+=")"
	fi
	rows+=("| ($n) | $label | $mode | $failed_cell | ${tput}× | ${p99r}× | $wrk_cell | $reloads |")
	details+=("| ($n) | $load | $b1_rps / $b2_rps | $b1_p99 / $b2_p99 | $h_rps | $h_p99 | $((b1_failed + b2_failed)) |")
	((h_failed > 0)) && kinds_notes+=("- ($n) $label, hey with reloads: $h_kinds")
	g_label+=("($n)")
	g_steered+=("$([[ $steer == on ]] && echo true || echo false)")
	g_failed+=("$h_failed")
	g_tput+=("$tput")
	g_p99+=("$p99r")
	g_rspread+=("$(spread "$b1_rps" "$b2_rps")")
	g_pspread+=("$(spread "$b1_p99" "$b2_p99")")
}

ready_gunicorn='    notify     = true
    http       = "/"
    min_uptime = "1s"
    timeout    = "60s"'
ready_naive='    notify     = true
    min_uptime = "100ms"
    timeout    = "10s"'
ready_uvicorn='    min_uptime = "1500ms"
    timeout    = "60s"'
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

# (1) gunicorn's own HUP
port=$(free_port)
gcmd="/usr/bin/gunicorn --workers $GUNICORN_WORKERS --graceful-timeout 20 --bind 127.0.0.1:$port --chdir test/apps/wsgi app:application"
cmds+=("# (1) PYTHONDONTWRITEBYTECODE=1 $gcmd   (kill -HUP master every ${HUP_EVERY}s)")
PYTHONDONTWRITEBYTECODE=1 $gcmd >"$tmp/gunicorn.log" 2>&1 &
gpid=$!
pids+=("$gpid")
wait_http "http://127.0.0.1:$port/"
measure 1 "gunicorn, its own HUP" own "http://127.0.0.1:$port/" "$gpid"
stop "$gpid"

# rotini_row N LABEL STEER NAME COMMAND WORKERS STOP-TIMEOUT READY
rotini_row() {
	local n=$1 label=$2 steer=$3 name=$4 port
	port=$(free_port)
	rotini_config "$tmp/$name.hcl" "$port" "$([[ $steer == on ]] && echo true || echo false)" "$5" "$6" "$7" "$8"
	local rot_cmd="$tmp/rotini -c $tmp/$name.hcl"
	cmds+=("# ($n) $rot_cmd   (kill -HUP rotini every ${HUP_EVERY}s; config below)")
	cfgs+=("$n:$name")
	ROTINI_CONTROL=$tmp/$name.sock $rot_cmd >"$tmp/$name.log" 2>&1 &
	local rot=$!
	pids+=("$rot")
	wait_http "http://127.0.0.1:$port/"
	measure "$n" "$label" "$steer" "http://127.0.0.1:$port/" "$rot" "$tmp/$name.log" "$tmp/$name.sock"
	stop "$rot"
}

rotini_row 2 "gunicorn under rotini" on gunicorn \
	"[\"/usr/bin/gunicorn\", \"--workers\", \"$GUNICORN_WORKERS\", \"--graceful-timeout\", \"20\", \"--chdir\", \"test/apps/wsgi\", \"app:application\"]" \
	1 25s "$ready_gunicorn"
rotini_row 3 "naive Go app under rotini, steer = false" off naive-shared \
	"[\"$tmp/naive\"]" 2 10s "$ready_naive"
rotini_row 4 "naive Go app under rotini" on naive-steered \
	"[\"$tmp/naive\"]" 2 10s "$ready_naive"
rotini_row 5 "uvicorn under rotini, steer = false" off uvicorn-shared \
	"[\"/usr/bin/python3\", \"-m\", \"uvicorn\", \"--fd\", \"\${fd.http}\", \"--app-dir\", \"test/apps/asgi\", \"--no-access-log\", \"app:app\"]" \
	2 25s "$ready_uvicorn"
rotini_row 6 "uvicorn under rotini" on uvicorn-steered \
	"[\"/usr/bin/python3\", \"-m\", \"uvicorn\", \"--fd\", \"\${fd.http}\", \"--app-dir\", \"test/apps/asgi\", \"--no-access-log\", \"app:app\"]" \
	2 25s "$ready_uvicorn"

load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# The goals, judged from the figures above.
goal_failed="" goal_tput="" goal_p99=""
for i in "${!g_label[@]}"; do
	if [[ ${g_steered[$i]} == true ]] && ((g_failed[i] > 0)); then
		goal_failed+=" ${g_label[$i]}: ${g_failed[$i]} failed"
	fi
	[[ ${g_steered[$i]} == true ]] || continue
	if awk -v r="${g_tput[$i]}" 'BEGIN{exit !(r+0 < 0.98)}'; then goal_tput+=" ${g_label[$i]} ${g_tput[$i]}×"; fi
	if awk -v r="${g_p99[$i]}" 'BEGIN{exit !(r+0 > 1.5)}'; then goal_p99+=" ${g_label[$i]} ${g_p99[$i]}×"; fi
done
# The noise: the widest spread between the two runs without reloads of a
# steered row. A goal's margin narrower than that cannot be resolved.
rspread=1 pspread=1
for i in "${!g_label[@]}"; do
	[[ ${g_steered[$i]} == true ]] || continue
	rspread=$(awk -v a="$rspread" -v b="${g_rspread[$i]}" 'BEGIN{print (b+0 > a+0 ? b : a)}')
	pspread=$(awk -v a="$pspread" -v b="${g_pspread[$i]}" 'BEGIN{print (b+0 > a+0 ? b : a)}')
done
noise_tput="" noise_p99=""
if awk -v a="$rspread" 'BEGIN{exit !(a+0 > 1.02)}'; then
	noise_tput="; but the two runs without reloads of one row differ by up to ${rspread}× in req/s, more than the 2 % margin: not resolvable at this load"
fi
if awk -v a="$pspread" 'BEGIN{exit !(a+0 > 1.5)}'; then
	noise_p99="; but the two runs without reloads of one row differ by up to ${pspread}× in p99, more than the margin: not resolvable at this load"
fi
verdict() { if [[ -z $1 ]]; then echo "**met** in every $2"; else echo "**missed** by$1"; fi | sed 's/× (/×, (/g; s/failed (/failed, (/g'; }

cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
uvicorn_v=$(/usr/bin/python3 -c 'import uvicorn; print(uvicorn.__version__)')
migrate=$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo "n/a")
{
	cat <<EOF
## Steering under reloads: gunicorn's own HUP vs rotini, steered and shared (bench/steer.sh)

Run $started by \`bench/steer.sh\` on $(nproc) CPUs ($cpu), kernel $(uname -r), $(go version | awk '{print $3}'),
rotini $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo "-dirty"), $(wrk --version 2>&1 | head -n1 | awk '{print "wrk", $2}'), hey $(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo "?"),
gunicorn $(/usr/bin/gunicorn --version 2>&1 | awk '{print $NF}' | tr -d ')'), uvicorn $uvicorn_v (Debian), net.ipv4.tcp_migrate_req = $migrate.
Load average (1/5/15 min) at the start $load_start, at the end $load_end:
a machine shared with other sessions' tests, so ratios within a row are
the figures to read, and even they carry that noise.

Each row keeps the same processes for four runs of ${DURATION}s with $CONNS connections:
hey with a new connection per request (\`-disable-keepalive\`) without
reloads, with a reload every ${HUP_EVERY}s, then wrk (keep-alive) with a
reload every ${HUP_EVERY}s, then hey without reloads again. *Failed* is
non-2xx + socket errors over all requests of the hey run with reloads;
*throughput* and *p99* are that run's req/s and p99 over the mean of the
two runs without reloads. A reload is \`kill -HUP\` of gunicorn's master
(1) or of rotini (2–6), which rotates the whole generation; HUPs that
arrive during a rotation coalesce into one more, so rotini does fewer
reloads than it gets HUPs.

| row | app, reloaded by | listener (rotini status) | failed, hey (new conn.) | throughput | p99 | wrk keep-alive errors during reloads | reloads |
| --- | --- | --- | ---: | ---: | ---: | --- | --- |
$(printf '%s\n' "${rows[@]}")

Goals (issue 10), judged on the steered rotini rows (2), (4), (6) — rotini
as it ships; (1) is the peer, (3) and (5) show the shared socket steering
replaces (gunicorn's own HUP had measured 0.888× throughput and 3.55× p99
on this machine before):

- 0 failed in every steered rotini row: $(verdict "$goal_failed" "steered row")
- throughput ≥ 0.98× the baseline: $(verdict "$goal_tput" "steered row")$noise_tput
- p99 ≤ 1.5× the baseline: $(verdict "$goal_p99" "steered row")$noise_p99

In the steered rows, wrk's socket errors are the one failure rotini cannot
prevent: an old worker's drain closes an idle keep-alive connection at the
moment the client sends its next request on it, and that request fails
before any byte of a response. It is a race between the client and the app
on a connection that already exists, in no socket rotini owns; clients
retry an idempotent request whose reused connection closed before any
response byte (Go's client and browsers do); wrk does not and counts a
socket error. wrk's connections are never idle for long, so a draining Go
server or uvicorn closes each of them on a request in flight: about one
error per connection ($CONNS) per reload. gunicorn's sync workers close
every connection after its response (no keep-alive), so wrk reconnects
for every request there and never meets the race.

uvicorn neither sends READY=1 nor answers on rotini's probe socket, so its
readiness here is what the tests use, \`min_uptime = "1500ms"\` alone.
That can lie on a loaded machine: rotini then steers new connections to a
generation whose uvicorn processes are still importing, and those
connections wait in its socket's backlog until they listen — no request
fails, but throughput and p99 of (6) pay for it (and of (5), whose old
generation stops once the new one counts as ready). rotini's log against
uvicorn's "Uvicorn running on socket" lines shows when it happened.
EOF
	if ((${#kinds_notes[@]})); then
		cat <<EOF

What failed (hey's error distribution, by kind):

$(printf '%s\n' "${kinds_notes[@]}")
EOF
	fi
	cat <<EOF

Raw figures (hey, new connection per request; the load average when the row began):

| row | load at start | req/s without reloads (before / after) | p99 ms without reloads (before / after) | req/s with reloads | p99 ms with reloads | failed without reloads |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${details[@]}")

Commands (binaries built into the run's temporary directory, named here without it):

\`\`\`sh
$build_rotini
$build_naive
$(printf '%s\n' "${cmds[@]}")
\`\`\`
EOF
	for c in "${cfgs[@]}"; do
		n=${c%%:*}
		f=${c#*:}
		[[ $n == 4 || $n == 6 ]] && continue
		cat <<EOF

rotini config of ($n)$([[ $n == 3 ]] && echo "; (4) is the same without \`steer = false\`")$([[ $n == 5 ]] && echo "; (6) is the same without \`steer = false\`"):

\`\`\`hcl
$(cat "$tmp/$f.hcl")
\`\`\`
EOF
	done
} | clean
