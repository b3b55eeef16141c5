#!/usr/bin/env bash
# bench/pid1.sh — rotini against tini, dumb-init and catatonit as a plain
# init, side by side in one run:
#   (a) start-up overhead: hyperfine of `INIT -- /bin/true` and bare /bin/true
#   (b) idle RSS of the init supervising `sleep 1000`, after 1 s
#   (c) orphan-storm reap time as PID 1 (bench/orphanstorm), median of 5
#   (d) binary sizes
# Prints one markdown section (a "## " heading and "###" subsections) with the
# exact command lines; bench/run.sh files it into bench/RESULTS.md. Progress
# goes to stderr. Must run as root (unshare --pid). Knobs: RUNS (hyperfine
# runs, 300), WARMUP (20), ORPHANS (10000), STORM_RUNS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

RUNS=${RUNS:-300}
WARMUP=${WARMUP:-20}
ORPHANS=${ORPHANS:-10000}
STORM_RUNS=${STORM_RUNS:-5}
NEG_TIMEOUT=5s # bare orphanstorm as PID 1: nobody reaps, so it must time out

log() { echo "pid1.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (unshare --pid needs it)"
for c in hyperfine tini dumb-init catatonit unshare go; do
	command -v "$c" >/dev/null || die "$c not found; run: scripts/deps.sh bench"
done
if [[ ! -x bin/rotini ]]; then
	log "bin/rotini missing; make build"
	make build >&2
fi
go build -o bench/orphanstorm/orphanstorm ./bench/orphanstorm

# name | command prefix (as typed) | binary
names=(rotini tini dumb-init catatonit)
declare -A prefix=(
	[rotini]="bin/rotini --"
	[tini]="tini --"
	[dumb-init]="dumb-init"
	[catatonit]="catatonit --"
)
declare -A binary=(
	[rotini]=bin/rotini
	[tini]=$(command -v tini)
	[dumb-init]=$(command -v dumb-init)
	[catatonit]=$(command -v catatonit)
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print "n/a"; exit} if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
first_line() { "$@" 2>&1 | head -n1 || true; }

cat <<EOF
## PID 1: rotini vs tini, dumb-init, catatonit

Run $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/pid1.sh\` on $(nproc) cores (${cpu:-unknown CPU}), kernel $(uname -r), $(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM.
Load at start: $(cut -d' ' -f1-4 /proc/loadavg) (1/5/15-min average, running/total tasks; other work on the machine widens the spread).
Versions: $(bin/rotini version 2>&1 | head -n1); $(first_line tini --version); $(first_line dumb-init --version); $(first_line catatonit --version); $(first_line hyperfine --version).

EOF

# (a) start-up overhead ------------------------------------------------------
log "(a) start-up overhead: hyperfine"
cmds=()
for n in "${names[@]}"; do cmds+=("${prefix[$n]} /bin/true"); done
cmds+=("/bin/true")
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic \
	--export-markdown "$tmp/startup.md" "${cmds[@]}" >&2

quoted=$(printf " '%s'" "${cmds[@]}")
cat <<EOF
### Start-up overhead (not PID 1)

\`\`\`
hyperfine -N --warmup $WARMUP --runs $RUNS --export-markdown startup.md$quoted
\`\`\`

$(cat "$tmp/startup.md")

EOF

# (b) idle RSS -----------------------------------------------------------------
log "(b) idle RSS"
status_field() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status" 2>/dev/null || true; }
idle_rss() { # prefix… ; prints "rss_kB threads"
	local pid child
	# shellcheck disable=SC2086 # the prefix is words on purpose
	$1 sleep 1000 >/dev/null 2>&1 &
	pid=$!
	sleep 1
	echo "$(status_field "$pid" VmRSS) $(status_field "$pid" Threads) $(status_field "$pid" RssAnon)"
	child=$(pgrep -P "$pid" || true)
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	[[ -n $child ]] && kill -KILL $child 2>/dev/null || true
}
{
	echo "### Idle RSS (init supervising \`sleep 1000\`, VmRSS after 1 s, median of 3)"
	echo
	echo '```'
	for n in "${names[@]}"; do echo "${prefix[$n]} sleep 1000 &  sleep 1; grep -E 'VmRSS|Threads' /proc/\$!/status"; done
	echo '```'
	echo
	echo "| init | VmRSS [KiB] | threads | RssAnon [KiB] (private) |"
	echo "|:---|---:|---:|---:|"
	for n in "${names[@]}"; do
		: >"$tmp/rss"
		for _ in 1 2 3; do idle_rss "${prefix[$n]}" >>"$tmp/rss"; done
		echo "| \`$n\` | $(awk '{print $1}' "$tmp/rss" | median) | $(awk '{print $2}' "$tmp/rss" | median) | $(awk '{print $3}' "$tmp/rss" | median) |"
	done
	echo "| \`sleep\` itself, for scale | $(sleep 1000 & p=$!; sleep 0.2; status_field $p VmRSS; kill $p; wait $p 2>/dev/null || true) | 1 | |"
	echo
	echo "VmRSS counts the pages of the binary that are mapped (RssFile): shared,"
	echo "clean page cache, and for a 9 MB static Go binary most of its size."
	echo "RssAnon is the memory the process has of its own."
	echo
}

# (c) orphan storm as PID 1 --------------------------------------------------
log "(c) orphan storm: $ORPHANS orphans, $STORM_RUNS rounds"
storm() { # prefix… ; prints ms, or "fail"
	local out
	# shellcheck disable=SC2086
	if out=$(unshare --pid --fork --mount-proc $1 bench/orphanstorm/orphanstorm "${@:2}" 2>"$tmp/storm.err"); then
		sed -n 's/^reaped [0-9]* in \([0-9.]*\) ms$/\1/p' <<<"$out"
	else
		echo fail
	fi
}
for n in "${names[@]}"; do : >"$tmp/storm.$n"; done
for r in $(seq "$STORM_RUNS"); do # rounds interleave the inits, so drift hits all alike
	for n in "${names[@]}"; do
		ms=$(storm "${prefix[$n]}" "$ORPHANS")
		log "  round $r $n: $ms ms"
		echo "$ms" >>"$tmp/storm.$n"
	done
done
log "  negative control: orphanstorm itself as PID 1 (expect a time-out)"
neg=$(storm "" -timeout "$NEG_TIMEOUT" "$ORPHANS")
{
	echo "### Orphan storm as PID 1 ($ORPHANS orphans released at once; time until all are reaped)"
	echo
	echo '```'
	for n in "${names[@]}"; do echo "unshare --pid --fork --mount-proc ${prefix[$n]} bench/orphanstorm/orphanstorm $ORPHANS"; done
	echo "unshare --pid --fork --mount-proc bench/orphanstorm/orphanstorm -timeout $NEG_TIMEOUT $ORPHANS   # negative control"
	echo '```'
	echo
	echo "| init | median [ms] | min [ms] | max [ms] | runs [ms] |"
	echo "|:---|---:|---:|---:|:---|"
	for n in "${names[@]}"; do
		f=$tmp/storm.$n
		ok=$(grep -v fail "$f" || true)
		fails=$(grep -c fail "$f" || true)
		runs=$(paste -sd' ' "$f")
		if [[ -z $ok ]]; then
			echo "| \`$n\` | fail | | | $runs |"
		else
			echo "| \`$n\` | $(median <<<"$ok") | $(sort -g <<<"$ok" | head -n1) | $(sort -g <<<"$ok" | tail -n1) | $runs$( ((fails)) && echo " ($fails failed)") |"
		fi
	done
	if [[ $neg == fail ]]; then
		echo "| none (orphanstorm is PID 1) | never: time-out after $NEG_TIMEOUT, as expected | | | |"
	else
		echo "| none (orphanstorm is PID 1) | $neg: UNEXPECTED, the measurement does not detect missing reaping | | | |"
	fi
	echo
}

# (d) binary sizes -------------------------------------------------------------
log "(d) binary sizes"
{
	echo "### Binary sizes"
	echo
	echo '```'
	bins=()
	for n in "${names[@]}"; do bins+=("${binary[$n]}"); done
	echo "stat -L -c %s ${bins[*]}"
	echo '```'
	echo
	echo "| init | binary | bytes | linkage |"
	echo "|:---|:---|---:|:---|"
	extra=()
	[[ -x /usr/bin/tini-static ]] && extra=(tini-static)
	for n in "${names[@]}" "${extra[@]}"; do
		b=${binary[$n]:-/usr/bin/$n}
		link=$(file -bL "$b" 2>/dev/null | grep -oE 'static(-pie)?( |ally )linked|dynamically linked' | head -n1 || true)
		echo "| \`$n\` | \`$b\` | $(stat -L -c %s "$b") | ${link:-?} |"
	done
	echo
}
log "done"
