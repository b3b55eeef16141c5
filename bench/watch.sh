#!/usr/bin/env bash
# bench/watch.sh — what `watch { }` costs and how fast it reloads, in one run:
#   1. set-up time and memory on a tree of 100,000 files in 10,000 directories
#      (100 × 100 directories of 10 files, the shape of watch/bench_test.go):
#      (a) the in-process Go benchmarks (they build their own tree of that
#          shape; there is no knob to hand them ours), (b) a real bin/rotini
#          watching the tree, against the same config without the watch block,
#      (c) inotifywait -r -m, (d) entr, when installed;
#   2. rotini's CPU while polling the tree every 2 s (poll = "2s"), over
#      $POLL_SECONDS s, and BenchmarkPollCycle's time per pass;
#   3. deploy latency: a burst of 500 files rewritten in a small watched code
#      directory (debounce 500ms) until curl sees the new generation serve,
#      $ROUNDS times; minus the debounce and the reload's own duration.
# Prints one markdown section for bench/run.sh. Needs bin/rotini, bin/testapp,
# python3, curl; inotifywait (inotify-tools) and entr are optional.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
POLL_SECONDS=${POLL_SECONDS:-20}
ROUNDS=${ROUNDS:-5}
[[ -x bin/rotini && -x bin/testapp ]] || make build >&2

log() { echo "watch.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}
for c in python3 curl go; do
	command -v "$c" >/dev/null || die "$c not found"
done

work=$(mktemp -d)
pids=()
stop() { # stop PID…: TERM, wait up to 5 s, KILL
	local p
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "$@"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=() # one measured process runs at a time
}
cleanup() {
	if ((${#pids[@]})); then stop "${pids[@]}"; fi
	rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
ms() { python3 -c "import sys; print(round((float(sys.argv[2])-float(sys.argv[1]))*1000))" "$1" "$2"; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; } # KiB
inofd() { # inofd PID: the number of PID's inotify fd, or nothing
	local f
	for f in /proc/"$1"/fd/*; do
		if [[ $(readlink "$f" 2>/dev/null) == anon_inode:inotify ]]; then
			basename "$f"
			return
		fi
	done
}
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

tree="$work/tree"
log "generating the tree in $tree"
python3 - "$tree" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(100):
    for j in range(100):
        d = os.path.join(root, "d%03d" % i, "s%03d" % j)
        os.makedirs(d)
        for k in range(10):
            with open(os.path.join(d, "f%d.py" % k), "w") as f:
                f.write("pass\n")
PY
nfiles=$(find "$tree" -type f | wc -l)
ndirs=$(find "$tree" -mindepth 1 -type d | wc -l)
fstype=$(df -T "$work" | awk 'NR==2 {print $2}')

# ---- 1a, 2: the Go benchmarks -------------------------------------------
log "go test -bench 'Setup100k|PollCycle' ./watch/"
gobench=$(TMPDIR=$work go test -run XXX -bench 'Setup100k|PollCycle' -benchtime 3x ./watch/ 2>&1 |
	grep -E '^Benchmark' | sed -E 's/[[:space:]]+/ /g' || true)
[[ $gobench == *PollCycle* ]] || die "go test -bench gave no results"
pollpass_ms=$(awk '/^BenchmarkPollCycle/ {for (i=1;i<=NF;i++) if ($(i+1)=="ns/op") printf "%.0f", $i/1e6}' <<<"$gobench")

# ---- a rotini under a config ------------------------------------------------
# rotini_start NAME WATCHBLOCK: starts bin/rotini with one testapp worker;
# sets rpid, ctl, port, t0.
rotini_start() {
	local name=$1 watchblock=$2
	port=$(freeport)
	ctl="$work/$name.sock"
	cat >"$work/$name.hcl" <<HCL
listen "http" { address = "tcp://127.0.0.1:$port" }
app "web" {
  command = ["$PWD/bin/testapp", "serve", "--notify", "--drain-grace", "0s"]
  workers = 1
  listen  = ["http"]
  ready {
    notify     = true
    min_uptime = "0s"
  }
$watchblock
}
HCL
	t0=$(now)
	bin/rotini -c "$work/$name.hcl" --control "$ctl" --log-level info >/dev/null 2>"$work/$name.log" &
	rpid=$!
	pids+=("$rpid")
}
# status_until PATTERN: polls `rotini status --json` (10 s at most) until its
# output matches the extended regex PATTERN; prints the JSON.
status_until() {
	local j
	for _ in $(seq 2000); do
		j=$(bin/rotini status --json --control "$ctl" 2>/dev/null || true)
		if [[ -n $j ]] && grep -Eq "$1" <<<"$j"; then
			echo "$j"
			return
		fi
		sleep 0.005
	done
	die "status never matched $1; log: $(tail -5 "$work/"*.log)"
}
jnum() { grep -oE "\"$1\": ?[0-9.]+" <<<"$2" | head -1 | cut -d: -f2 | tr -d ' '; }

# ---- 1b: rotini watching the tree, and without the watch block -------------
log "rotini watching the tree"
rotini_start watch100k "  watch { paths = [\"$tree\"] }"
j=$(status_until '"watches": ?[0-9]{5,}')
t1=$(now)
rw_rss=$(rss "$rpid")
rw_ms=$(ms "$t0" "$t1")
rw_watches=$(jnum watches "$j")
rw_heap=$(($(jnum heap_inuse_bytes "$j") / 1024))
rw_mode=$(grep -oE '"mode": ?"[a-z]+"' <<<"$j" | cut -d'"' -f4)
rw_took=$(grep -oE 'took=[0-9.]+[a-zµ]+' "$work/watch100k.log" | head -1 | cut -d= -f2)
stop "$rpid"

log "rotini without the watch block"
rotini_start nowatch ""
j=$(status_until '"serving": ?[0-9]')
t1=$(now)
rn_rss=$(rss "$rpid")
rn_ms=$(ms "$t0" "$t1")
rn_heap=$(($(jnum heap_inuse_bytes "$j") / 1024))
stop "$rpid"

# ---- 1c: inotifywait ------------------------------------------------------
iw_row="| \`inotifywait -r -m TREE\` | not installed (Debian inotify-tools) | | |"
if command -v inotifywait >/dev/null; then
	log "inotifywait"
	t0=$(now)
	inotifywait -r -m "$tree" >/dev/null 2>"$work/iw.err" &
	ipid=$!
	pids+=("$ipid")
	for _ in $(seq 3000); do
		grep -q 'Watches established' "$work/iw.err" && break
		sleep 0.005
	done
	t1=$(now)
	grep -q 'Watches established' "$work/iw.err" || die "inotifywait: $(cat "$work/iw.err")"
	iw_rss=$(rss "$ipid")
	iw_wd=$(grep -c '^inotify wd' "/proc/$ipid/fdinfo/$(inofd "$ipid")")
	stop "$ipid"
	iw_row="| \`inotifywait -r -m TREE\` ($(dpkg-query -W -f='${Version}' inotify-tools 2>/dev/null)), until \"Watches established.\" | $(ms "$t0" "$t1") | $iw_wd | $iw_rss |"
fi

# ---- 1d: entr (one watch per file; no output when ready, so: until its
# inotify fd holds a watch for every file, read from /proc/PID/fdinfo) ------
entr_row="| \`find TREE -type f \\| entr -n -p true\` | not available (Debian entr not installed) | | |"
if command -v entr >/dev/null; then
	log "entr"
	t0=$(now)
	find "$tree" -type f | entr -n -p true >/dev/null 2>"$work/entr.err" &
	epid=$!
	pids+=("$epid")
	efd=""
	n=0
	for _ in $(seq 1200); do
		kill -0 "$epid" 2>/dev/null || die "entr exited: $(cat "$work/entr.err")"
		if [[ -z $efd ]]; then
			efd=$(inofd "$epid")
		fi
		if [[ -n $efd ]]; then
			n=$(grep -c '^inotify wd' "/proc/$epid/fdinfo/$efd" || true)
			((n >= nfiles)) && break
		fi
		sleep 0.05
	done
	t1=$(now)
	((n >= nfiles)) || die "entr holds $n watches, want $nfiles"
	e_rss=$(rss "$epid")
	stop "$epid"
	entr_row="| \`find TREE -type f \\| entr -n -p true\` ($(dpkg-query -W -f='${Version}' entr 2>/dev/null)), until it watches every file (fdinfo, polled every 50 ms) | $(ms "$t0" "$t1") | $n | $e_rss |"
fi
if command -v watchexec >/dev/null; then
	wx_note="watchexec is installed but not measured."
elif command -v apt-cache >/dev/null && [[ -n $(apt-cache policy watchexec 2>/dev/null) ]]; then
	wx_note="watchexec: not installed (\`apt-cache policy watchexec\` lists it); not measured."
else
	wx_note="watchexec: not measured, not packaged in this Debian (\`apt-cache policy watchexec\` is empty)."
fi

# ---- 2: polling CPU ---------------------------------------------------------
log "rotini polling the tree for ${POLL_SECONDS}s"
rotini_start poll100k "  watch {
    paths = [\"$tree\"]
    poll  = \"2s\"
  }"
j=$(status_until '"mode": ?"polling"')
p_setup_ms=$(ms "$t0" "$(now)")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
c0=$(ticks "$rpid")
sleep "$POLL_SECONDS"
c1=$(ticks "$rpid")
p_rss=$(rss "$rpid")
stop "$rpid"
hz=$(getconf CLK_TCK)
read -r p_cpu_s p_pct p_pass_ms < <(python3 -c "
c=($c1-$c0)/$hz; print(round(c,2), round(c/$POLL_SECONDS*100,1), round(c/($POLL_SECONDS/2)*1000))")

# ---- 3: deploy latency ------------------------------------------------------
log "deploy latency, $ROUNDS bursts of 500 files"
code="$work/code"
mkdir -p "$code/app"
burst() { # burst GEN: rewrites the 500 files; prints the time of the last close
	python3 - "$code/app" "$1" <<'PY'
import os, sys, time
d, gen = sys.argv[1], sys.argv[2]
for i in range(500):
    with open(os.path.join(d, "m%03d.py" % i), "w") as f:
        f.write("GEN = %s\n" % gen)
print("%.6f" % time.time())
PY
}
burst 1 >/dev/null
rotini_start deploy "  watch {
    paths    = [\"$code\"]
    debounce = \"500ms\"
  }"
status_until '"ready": ?true' >/dev/null
lat_rows=""
tot=() own=() seen=()
for gen in $(seq 2 $((ROUNDS + 1))); do
	last=$(burst "$gen")
	body=""
	for _ in $(seq 2000); do
		body=$(curl -s "http://127.0.0.1:$port/" || true)
		[[ $body == "gen=$gen "* ]] && break
		sleep 0.002
	done
	served=$(now)
	[[ $body == "gen=$gen "* ]] || die "gen $gen never served (last body: $body)"
	sleep 1 # longer than the debounce: a second reload for the burst would show
	j=$(bin/rotini status --json --control "$ctl")
	read -r t_ms dur_ms own_ms seen_ms serving changes < <(python3 -c '
import json, re, sys, datetime
s = json.load(sys.stdin); a = s["apps"][0]; last, served = float(sys.argv[1]), float(sys.argv[2])
def ts(x):  # RFC 3339 with nanoseconds -> epoch seconds
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)", x)
    frac = float(m.group(2) or 0); tz = m.group(3).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(m.group(1) + tz).timestamp() + frac
dur = a["last_reload"]["duration_seconds"]; t = served - last
seen = ts(a["watch"]["last_change"]["last"]) - last
print(round(t*1000), round(dur*1000), round((t - 0.5 - dur)*1000), round(seen*1000, 2), a["serving"], a["watch"]["changes"])
' "$last" "$served" <<<"$j")
	((serving == gen)) || die "after burst $((gen - 1)) generation $serving serves, want $gen (one reload per burst)"
	lat_rows+="| $((gen - 1)) | $gen | $t_ms | $dur_ms | $own_ms | $seen_ms | $changes |"$'\n'
	tot+=("$t_ms") own+=("$own_ms") seen+=("$seen_ms")
done
stop "$rpid"
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

cat <<MD
## Watching the code directory: set-up on 100,000 files, polling CPU, deploy latency

Run $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/watch.sh\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg); TREE = $nfiles files in $ndirs directories (100 × 100 of 10 files) on $fstype, page cache warm.

In-process (the benchmark builds its own tree of the same shape under \`TMPDIR\`):

\`\`\`
TMPDIR=\$WORK go test -run XXX -bench 'Setup100k|PollCycle' -benchtime 3x ./watch/
$gobench
\`\`\`

Set-up on TREE, each process alone; time from its start, RSS then (\`/proc/PID/status\` VmRSS):

| process | ready after [ms] | inotify watches | RSS [KiB] |
|---|---:|---:|---:|
| \`bin/rotini -c\` with \`watch { paths = [TREE] }\`, until \`rotini status --json\` shows watches ≥ 10000 (mode $rw_mode; its log: took=$rw_took; Go heap in use $rw_heap KiB) | $rw_ms | $rw_watches | $rw_rss |
| the same config without the watch block, until \`rotini status --json\` answers (Go heap $rn_heap KiB) | $rn_ms | 0 | $rn_rss |
$iw_row
$entr_row

The watch costs rotini $((rw_rss - rn_rss)) KiB of RSS; the kernel's memory per
inotify watch is not in any RSS. rotini sets the watches up before it starts
the apps and the control socket, so a big tree delays the first generation by
that much. $wx_note

Polling TREE: \`bin/rotini -c\` with \`watch { paths = [TREE] poll = "2s" }\`, one testapp worker,
ready (baseline pass included) after $p_setup_ms ms; then over $POLL_SECONDS s rotini used
$p_cpu_s CPU s (utime+stime, \`/proc/PID/stat\`) = **$p_pct % of one core**, about
$p_pass_ms ms of CPU per pass ($((POLL_SECONDS / 2)) passes; BenchmarkPollCycle: $pollpass_ms ms per pass); RSS $p_rss KiB.

Deploy latency: \`watch { paths = [CODE] debounce = "500ms" }\` on the testapp (1 worker,
\`ready { notify = true, min_uptime = "0s" }\`); each burst rewrites 500 existing
files in CODE/app from one python3 process (~ms), then \`curl -s http://127.0.0.1:PORT/\`
is polled until the body says the new gen. *serving* = first such answer − last
write's close; *watcher* = serving − 500 ms debounce − the reload's duration
(\`last_reload.duration_seconds\`: new generation started → ready, the app's boot
included), which leaves inotify's delivery, the debounce timer's slack, the
hop to the app's loop, the old generation accepting until it handles its TERM,
and curl's polling step (a few ms). A watch-triggered reload does not re-read
the config (HUP and \`rotini reload\` do);
*last change seen* = \`watch.last_change.last\` − last write's close (the write's
own IN_MODIFY can precede the close: ≤ 0).

| burst | gen | serving [ms] | reload [ms] | watcher [ms] | last change seen [ms] | bursts seen (cumulative) |
|---:|---:|---:|---:|---:|---:|---:|
${lat_rows}| **median** | | **$(med "${tot[@]}")** | | **$(med "${own[@]}")** | **$(med "${seen[@]}")** | |
MD
