#!/usr/bin/env bash
# bench/docker.sh — deploys under load, in real containers: the same app
# image with tini or with rotini as its ENTRYPOINT, deployed the way users
# deploy today, against rotini's reload:
#   (a) tini,   `docker restart`
#   (b) tini,   compose `up -d` of a new image
#   (c) rotini, `docker restart`
#   (d) rotini, compose `up -d` of a new image
#   (e) rotini, `docker kill --signal=HUP` (a new generation on rotini's socket)
#   (f) rotini hold, stop-first: `docker stop` the serving app container,
#       then `docker run` the next one (the other tag)
#   (g) rotini hold, start-first: `docker run` the next app container beside
#       the serving one, `docker wait` until the old one exits (superseded,
#       exit 0), `docker rm` it
# (f) and (g) run behind a holder container (an image with /rotini only,
# `rotini hold`) that owns the network namespace and the published port;
# app containers join it (--network container:HOLDER) and a volume for the
# hold socket, with `hold {}` in their config. (0) is their baseline: the
# same holder and app under the same load for $BASELINE seconds, no deploy.
# Each runs $DEPLOYS deploys one after the other while hey keeps $CONNS
# connections busy from the host against 127.0.0.1 (the port published on
# loopback only): after each deploy it waits until the app answers again
# (or, for (e), for rotini's "reload done" line), then $PAUSE seconds.
# hey's rate is capped at $QPS requests/s per connection, so that a client
# that fails at once (connection refused) cannot inflate the count: failed
# requests divided by the offered rate ($CONNS x $QPS) is about how long the
# app was unreachable. Reported per run: requests, failed requests (socket
# errors and non-2xx), that unreachable time, p99 and slowest latency of the
# successful requests. The app is the testapp's serve role (a Go HTTP
# server that drains on TERM): under tini it binds 0.0.0.0:8000 itself
# (--addr), under rotini it serves on rotini's socket (LISTEN_FDS).
# Images are FROM scratch with static binaries (tini-static from Debian's
# tini): nothing is pulled. Prints one markdown section with the exact
# commands; bench/run.sh files it into bench/RESULTS.md. Progress goes to
# stderr. Knobs: DEPLOYS (30), CONNS (8), QPS (50 per connection), PAUSE (1),
# KEEPALIVE (1; 0 = hey -disable-keepalive, a new connection per request),
# BASELINE (30 s of load without deploys for (0)).
# With the defaults a run takes about 14 minutes on 2 shared cores, of
# which the hold rows and their baseline about 4.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

DEPLOYS=${DEPLOYS:-30}
CONNS=${CONNS:-8}
QPS=${QPS:-50}
PAUSE=${PAUSE:-1}
KEEPALIVE=${KEEPALIVE:-1}
BASELINE=${BASELINE:-30}

log() { echo "docker.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

for c in docker hey curl go; do
	command -v "$c" >/dev/null || die "$c not found; run: bash scripts/deps.sh bench (and docker)"
done
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers"
[[ -x /usr/bin/tini-static ]] || die "/usr/bin/tini-static missing (Debian package tini)"
if docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif command -v docker-compose >/dev/null; then
	compose=(docker-compose)
else
	die "neither 'docker compose' nor 'docker-compose' answers"
fi
heyflags=(-c "$CONNS" -q "$QPS" -t 30)
[[ $KEEPALIVE == 1 ]] || heyflags+=(-disable-keepalive)

id=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
name=rotini-bench-$id
img=$name-app
tmp=$(mktemp -d)
cleanup() {
	(cd "$tmp" 2>/dev/null && "${compose[@]}" -p "$name" down -v --remove-orphans -t 30 >/dev/null 2>&1) || true
	docker ps -aq --filter "label=dev.rotini.bench=$id" | xargs -r docker rm -f -v >/dev/null 2>&1 || true
	docker images -q --filter "label=dev.rotini.bench=$id" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
	docker volume ls -q --filter "label=dev.rotini.bench=$id" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port/

log "building static rotini and the testapp, and the images $img:a / :b and $img-hold"
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
mkdir -p "$tmp/ctx"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version -E=github.com/rotini-dev/rotini/sigstate.entry" -o "$tmp/ctx/rotini" .
CGO_ENABLED=0 go build -trimpath -o "$tmp/ctx/testapp" ./test/testapp
cp /usr/bin/tini-static "$tmp/ctx/tini"
cat >"$tmp/ctx/rotini.hcl" <<'EOF'
listen "http" {
  address = "tcp://0.0.0.0:8000"
}
app "web" {
  command      = ["/testapp", "serve", "--notify", "--addr", "0.0.0.0:8000"]
  workers      = 1
  listen       = ["http"]
  stop_timeout = "8s"
  ready {
    notify     = true
    min_uptime = "500ms"
  }
}
EOF
# The same app behind a holder: its sockets come from the hold socket.
{
	printf 'hold {\n  socket = "/run/rotini/hold.sock"\n}\n\n'
	cat "$tmp/ctx/rotini.hcl"
} >"$tmp/ctx/rotini-hold.hcl"
# One image for both inits; the ENTRYPOINT is chosen at run time. Two tags
# that differ by a label only, so that compose `up -d` sees a new image.
cat >"$tmp/ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rotini tini testapp /
COPY rotini.hcl rotini-hold.hcl /etc/
ARG BUILD
LABEL build=$BUILD
EXPOSE 8000
STOPSIGNAL SIGTERM
EOF
for tag in a b; do
	docker build -q --build-arg BUILD=$tag --label "dev.rotini.bench=$id" -t "$img:$tag" "$tmp/ctx" >/dev/null
done
# The holder's image: /rotini alone, as docker/Dockerfile builds it.
mkdir -p "$tmp/holdctx"
cp "$tmp/ctx/rotini" "$tmp/holdctx/rotini"
cat >"$tmp/holdctx/Dockerfile" <<'EOF'
FROM scratch
COPY rotini /rotini
ENTRYPOINT ["/rotini"]
CMD ["version"]
EOF
docker build -q --label "dev.rotini.bench=$id" -t "$img-hold" "$tmp/holdctx" >/dev/null

entry_tini='["/tini", "--", "/testapp", "serve", "--addr", "0.0.0.0:8000"]'
entry_rotini='["/rotini", "-c", "/etc/rotini.hcl"]'

# wait_serving: until GET / answers 200, at most 60 s.
wait_serving() {
	local i
	for i in $(seq 600); do
		curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
		sleep 0.1
	done
	die "$url did not answer within 60s"
}

# deploy_* KIND N: one deploy of run KIND, number N (1…DEPLOYS).
container=
deploy_restart() { docker restart -t 10 "$container" >/dev/null && wait_serving; }
deploy_compose() {
	local tag=a
	(($2 % 2)) && tag=b
	(cd "$tmp" && TAG=$tag "${compose[@]}" -p "$name" up -d >/dev/null 2>&1) && wait_serving
}
deploy_hup() {
	local want=$(($2 + 1)) i
	docker kill --signal=HUP "$container" >/dev/null
	for i in $(seq 600); do
		docker logs "$container" 2>&1 | grep -q "reload done: generation=$want\b" && return 0
		sleep 0.1
	done
	die "reload $2 not done within 60s"
}

# Behind a holder: app containers are $name-app-N, N counting every start.
holder=$name-holder
vol=$name-run
seq_app=0
notes=()
# start_app TAG: the next app container in the holder's namespace; sets
# container to its name, and waits until its first generation is ready.
start_app() {
	seq_app=$((seq_app + 1))
	container=$name-app-$seq_app
	docker run -d --name "$container" --label "dev.rotini.bench=$id" \
		--network "container:$holder" -v "$vol:/run/rotini" \
		--entrypoint /rotini "$img:$1" -c /etc/rotini-hold.hcl >/dev/null
	wait_log "$container" 'generation ready: generation=1\b'
}
# wait_log CONTAINER REGEX: until CONTAINER's log has a line matching REGEX, at most 60 s.
wait_log() {
	local i
	for i in $(seq 600); do
		docker logs "$1" 2>&1 | grep -q "$2" && return 0
		sleep 0.1
	done
	docker logs --tail 20 "$1" >&2 || true
	die "$1: no log line matching '$2' within 60s"
}
deploy_holdstop() {
	local tag=a code
	(($2 % 2)) && tag=b
	code=$(docker stop -t 10 "$container" >/dev/null && docker inspect -f '{{.State.ExitCode}}' "$container")
	[[ $code == 0 ]] || notes+=("stop-first deploy $2: the stopped container exited $code")
	docker rm "$container" >/dev/null
	start_app "$tag" && wait_serving
}
deploy_holdstart() {
	local tag=a old=$container code
	(($2 % 2)) && tag=b
	start_app "$tag"
	code=$(timeout 60 docker wait "$old") || die "start-first deploy $2: $old did not exit within 60s of its successor's readiness"
	[[ $code == 0 ]] || notes+=("start-first deploy $2: the superseded container exited $code")
	docker rm "$old" >/dev/null
	wait_serving
}
deploy_none() { :; }
start_hold() {
	docker volume create --label "dev.rotini.bench=$id" "$vol" >/dev/null
	docker run -d --name "$holder" --label "dev.rotini.bench=$id" -p "127.0.0.1:$port:8000" \
		-v "$vol:/run/rotini" --sysctl net.ipv4.tcp_migrate_req=1 "$img-hold" hold >/dev/null
	wait_log "$holder" 'holding sockets'
	start_app a
	wait_serving
}

# start_plain INIT: a container of the image with INIT's entrypoint.
start_plain() {
	local run=(--entrypoint /tini "$img:a" -- /testapp serve --addr 0.0.0.0:8000)
	[[ $1 == rotini ]] && run=(--entrypoint /rotini "$img:a" -c /etc/rotini.hcl)
	container=$name-$1
	docker rm -f "$container" >/dev/null 2>&1 || true
	docker run -d --name "$container" --label "dev.rotini.bench=$id" -p "127.0.0.1:$port:8000" "${run[@]}" >/dev/null
	wait_serving
}
start_compose() {
	local entry=$entry_tini
	[[ $1 == rotini ]] && entry=$entry_rotini
	cat >"$tmp/compose.yaml" <<EOF
services:
  web:
    image: $img:\${TAG:-a}
    entrypoint: $entry
    ports:
      - "127.0.0.1:$port:8000"
    labels:
      dev.rotini.bench: "$id"
    stop_grace_period: 10s
EOF
	(cd "$tmp" && TAG=a "${compose[@]}" -p "$name" up -d >/dev/null 2>&1)
	container=$(cd "$tmp" && "${compose[@]}" -p "$name" ps -q web)
	wait_serving
}
stop_all() {
	(cd "$tmp" && "${compose[@]}" -p "$name" down -v --remove-orphans -t 30 >/dev/null 2>&1) || true
	docker ps -aq --filter "label=dev.rotini.bench=$id" | xargs -r docker rm -f -v >/dev/null 2>&1 || true
	docker volume ls -q --filter "label=dev.rotini.bench=$id" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
}

# run LABEL INIT HOW DEPLOY_CMD: one row of the table.
rows=()
declare -A p99of failedof
run() {
	local label=$1 init=$2 how=$3 cmd=$4 out=$tmp/hey-$1.txt n start took deploys=$DEPLOYS
	[[ $how == none ]] && deploys=0
	log "($label) $init, $cmd: $deploys deploys under load"
	case $how in
	compose) start_compose "$init" ;;
	hold* | none) start_hold ;;
	*) start_plain "$init" ;;
	esac
	hey -z 1h "${heyflags[@]}" "$url" >"$out" 2>&1 &
	local hey_pid=$!
	sleep 2
	start=$SECONDS
	for n in $(seq "$deploys"); do
		"deploy_$how" "$init" "$n"
		sleep "$PAUSE"
	done
	[[ $how == none ]] && sleep "$BASELINE"
	took=$((SECONDS - start))
	sleep 1
	kill -INT "$hey_pid"
	wait "$hey_pid" || true
	if [[ $how == hold* || $how == none ]]; then
		# Kept for a look when a hold row fails: the holder's log.
		docker logs "$holder" >"$tmp/holder-$label.log" 2>&1 || true
	fi
	stop_all
	local total errs non2xx p99 slowest
	total=$(awk '/^Status code distribution:/{f=1;next} f&&/\[[0-9]+\]/{gsub(/[][]/,"",$1); s+=$2} /^Error distribution:/{f=0} END{print s+0}' "$out")
	non2xx=$(awk '/^Status code distribution:/{f=1;next} f&&/\[[0-9]+\]/{gsub(/[][]/,"",$1); if ($1<200||$1>299) s+=$2} /^Error distribution:/{f=0} END{print s+0}' "$out")
	errs=$(awk '/^Error distribution:/{f=1;next} f&&/\[[0-9]+\]/{gsub(/[][]/,"",$1); s+=$1} END{print s+0}' "$out")
	p99=$(awk '/ 99% in /{printf "%.1f ms", $3*1000}' "$out")
	slowest=$(awk '/Slowest:/{printf "%.1f ms", $2*1000}' "$out")
	local failed=$((errs + non2xx)) all=$((total + errs))
	local pct down
	pct=$(awk -v f=$failed -v a=$all 'BEGIN{ if (a>0) printf "%.2f%%", 100*f/a; else print "-" }')
	down=$(awk -v f=$failed -v r=$((CONNS * QPS)) -v n="$deploys" 'BEGIN{ if (n>0) printf "%.1f s (%.2f s/deploy)", f/r, f/r/n; else printf "%.1f s", f/r }')
	local what="$deploys in ${took}s"
	[[ $how == none ]] && what="none, ${took}s"
	rows+=("| ($label) | $init | \`$cmd\` | $what | $all | **$failed** ($pct) | $down | ${p99:-?} | ${slowest:-?} |")
	p99of[$label]=$(awk '/ 99% in /{print $3*1000}' "$out")
	failedof[$label]=$failed
	log "($label) requests=$all failed=$failed p99=${p99:-?} slowest=${slowest:-?}"
	if ((errs > 0)); then
		log "   errors: $(awk '/^Error distribution:/{f=1;next} f' "$out" | head -3 | tr -s ' ' | tr '\n' ';')"
		if [[ $how == hold* ]]; then
			log "   hey's errors, all kinds:"
			awk '/^Error distribution:/{f=1;next} f' "$out" | sed 's/^/     /' >&2
			log "   the holder's log (last 40 lines):"
			tail -n 40 "$tmp/holder-$label.log" | sed 's/^/     /' >&2
		fi
	fi
}

run a tini restart "docker restart -t 10 app"
run b tini compose "TAG=<new> docker compose up -d"
run c rotini restart "docker restart -t 10 app"
run d rotini compose "TAG=<new> docker compose up -d"
run e rotini hup "docker kill --signal=HUP app"
run 0 "rotini hold" none "(no deploy)"
run f "rotini hold" holdstop "docker stop app-N; docker run … app-N+1"
run g "rotini hold" holdstart "docker run … app-N+1; docker wait app-N; docker rm app-N"

# The goals of the hold rows (issue 11), said as measured.
verdict_failed="**missed**: ${failedof[f]} failed stop-first, ${failedof[g]} start-first"
((failedof[f] + failedof[g] == 0)) && verdict_failed="met"
verdict_p99=$(awk -v g="${p99of[g]:-0}" -v b="${p99of[0]:-0}" 'BEGIN{
	if (b <= 0) { print "not measured"; exit }
	r = g / b
	printf "%s: %.1f ms vs %.1f ms, %.2f×", (r <= 1.5 ? "met" : "**missed**"), g, b, r }')
notes_md=
((${#notes[@]})) && notes_md=$(printf -- '- noted during the run: %s\n' "${notes[@]}")$'\n'

cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
mode="keep-alive"
[[ $KEEPALIVE == 1 ]] || mode="a new connection per request (-disable-keepalive)"
cat <<EOF
## Docker deploys under load: rotini HUP vs docker restart and compose up (tini and rotini)

Run $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/docker.sh\` on $(nproc) cores (${cpu:-unknown CPU}), kernel $(uname -r), Docker engine $(docker version --format '{{.Server.Version}}'), compose: \`${compose[*]}\`.
Load at start: $(cut -d' ' -f1-4 /proc/loadavg).

The same image (FROM scratch: /rotini $version, /tini from Debian's tini-static, the testapp's
serve role, a Go HTTP server that drains on TERM) with tini or rotini as
ENTRYPOINT, port 8000 published on 127.0.0.1. Load: \`hey -z 1h ${heyflags[*]} $url\`
($mode, at most $((CONNS * QPS)) requests/s) from the host for the whole run,
stopped 1 s after the last deploy; ≈ unreachable = failed / $((CONNS * QPS)) per s.
Each deploy waits until the app answers again (\`curl -f\`; for (e), until
rotini logs \`reload done\`), then ${PAUSE} s. Failed = socket errors + non-2xx.

| run | init | deploy | deploys | requests | failed | ≈ unreachable | p99 | slowest |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
$(printf '%s\n' "${rows[@]}")

- tini: \`docker run -d -p 127.0.0.1:$port:8000 --entrypoint /tini $img:a -- /testapp serve --addr 0.0.0.0:8000\`
- rotini: \`docker run -d -p 127.0.0.1:$port:8000 --entrypoint /rotini $img:a -c /etc/rotini.hcl\`
  (one worker, \`ready { notify = true, min_uptime = "500ms" }\`, \`stop_timeout = "8s"\`)
- compose: \`image: $img:\${TAG}\`, \`entrypoint:\` as above, \`stop_grace_period: 10s\`;
  each deploy switches TAG between two tags of the same image that differ by a label, so \`up -d\` recreates the container.
- holder, for (0), (f), (g): \`docker run -d --name holder -p 127.0.0.1:$port:8000 -v run:/run/rotini --sysctl net.ipv4.tcp_migrate_req=1 $img-hold hold\`
  (\`$img-hold\`: FROM scratch with /rotini alone); app-N: \`docker run -d --name app-N --network container:holder -v run:/run/rotini --entrypoint /rotini $img:<a|b> -c /etc/rotini-hold.hcl\`
  (the rotini config above with \`hold { socket = "/run/rotini/hold.sock" }\`); tags alternate a/b. Each deploy waits until
  the new container logs \`generation ready: generation=1\` and the app answers, then ${PAUSE} s; (g) also waits for the old container to exit.
  (0) is the same holder and app-1 under the same load for ${BASELINE} s, without deploys: the baseline for the p99 of (f) and (g).

Goals for the hold rows (issue 11):
- 0 failed requests in both (f) and (g): $verdict_failed.
- start-first (g) p99 ≤ 1.5× the no-deploy baseline (0): $verdict_p99.
${notes_md}
A restart — of the container, or a new container from compose — closes the
listening socket: connections are refused or reset until the new process
listens, whichever init is PID 1. rotini's HUP keeps the socket open in PID 1
and starts the new generation on it before the old one drains. Behind a
holder, the socket outlives the app containers: stop-first, new connections
wait in the holder's standby socket until the next container takes it
(they are late, not refused); start-first, the new container takes over
once ready and the old one drains.

EOF
