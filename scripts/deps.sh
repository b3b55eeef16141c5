#!/usr/bin/env bash
# scripts/deps.sh [test|bench|docker|all] — install what rotini's tests or
# benchmarks need, idempotently. `test` includes `docker`: the Docker tests
# (test/docker_test.go) are part of `make test`.
#
# Debian packages are installed only when `dpkg -s` says they are missing, and
# `apt-get update` runs at most once, only then. Not root: print the
# apt-get line to run and go on (the tests that need a missing tool skip or
# fail with their own message). Then `go mod download`.
set -euo pipefail

mode=${1:-test}
test_pkgs=(util-linux procps psmisc iproute2 nftables nodejs python3 gunicorn python3-uvicorn wrk curl inotify-tools)
bench_pkgs=(tini dumb-init catatonit hyperfine wrk hey entr haproxy nginx libnginx-mod-stream gunicorn python3-uvicorn strace)
# docker: a static busybox for the FROM scratch test images (/bin/sh), and
# debootstrap for docker/base/build-python-base.sh (the local python:3.12-slim).
docker_pkgs=(busybox-static debootstrap)

case "$mode" in
test) want=("${test_pkgs[@]}" "${docker_pkgs[@]}") ;;
bench) want=("${bench_pkgs[@]}") ;;
docker) want=("${docker_pkgs[@]}") ;;
all) want=("${test_pkgs[@]}" "${bench_pkgs[@]}" "${docker_pkgs[@]}") ;;
*)
	echo "usage: $0 [test|bench|docker|all]" >&2
	exit 64
	;;
esac

installed() {
	dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

missing=()
declare -A seen=()
for p in "${want[@]}"; do
	[[ -n ${seen[$p]:-} ]] && continue
	seen[$p]=1
	installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "deps.sh: Debian packages for '$mode' already installed"
elif [[ $(id -u) -ne 0 ]]; then
	echo "deps.sh: not root; please install: apt-get install -y ${missing[*]}" >&2
else
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
go mod download

# Docker Compose v2, which users run (Debian ships v1): built once from the
# Go module proxy and cached, installed as the Docker CLI plugin.
compose_version=v2.40.3
compose_plugin=/usr/local/lib/docker/cli-plugins/docker-compose
compose_cache=${ROTINI_CACHE:-/var/cache/rotini}/compose-$compose_version
install_compose() {
	if [[ -x $compose_plugin ]] && "$compose_plugin" version 2>/dev/null | grep -q "${compose_version#v}"; then
		echo "deps.sh: Docker Compose $compose_version already installed"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps.sh: not root; Docker Compose $compose_version is not installed (the compose tests will skip)" >&2
		return 0
	fi
	if [[ ! -x $compose_cache/docker-compose ]]; then
		echo "deps.sh: building Docker Compose $compose_version from the Go module proxy (once; cached in $compose_cache)"
		local src
		src=$(mktemp -d)
		(cd "$src" && GOFLAGS=-mod=mod go mod download "github.com/docker/compose/v2@$compose_version")
		cp -r "$(go env GOMODCACHE)/github.com/docker/compose/v2@$compose_version/." "$src/"
		chmod -R u+w "$src"
		mkdir -p "$compose_cache"
		# Built as the main module: `go install …@version` refuses a module
		# with exclude directives.
		(cd "$src" && CGO_ENABLED=0 go build -trimpath \
			-ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$compose_version" \
			-o "$compose_cache/docker-compose" ./cmd)
		rm -rf "$src"
	fi
	install -D -m 0755 "$compose_cache/docker-compose" "$compose_plugin"
	echo "deps.sh: installed Docker Compose $("$compose_plugin" version)"
}
case "$mode" in
test | docker | all) install_compose ;;
esac
