#!/usr/bin/env bash
# docker/base/build-python-base.sh [TAG] — build a local stand-in for the
# public python:3.12-slim image, for machines that cannot pull from a
# registry (this project's test machines reach Debian's packages only).
#
# It is Debian bookworm (debootstrap --variant=minbase) with python3, a
# `python` command and gunicorn from Debian's packages, imported with
# `docker import` and tagged TAG (default python:3.12-slim), so that
# docker/examples/gunicorn/Dockerfile builds unchanged. It is NOT the real
# image: bookworm's python3 is 3.11, gunicorn comes from Debian (20.1) and
# pip is absent. The image carries the label dev.rotini.stand-in=TAG.
#
# Cached: when an image TAG already exists (the real one, or an earlier
# stand-in) it does nothing; FORCE=1 rebuilds. Concurrent runs wait for
# each other (flock). Takes a few minutes the first time; needs root and
# debootstrap (`bash scripts/deps.sh docker`). Environment: MIRROR (a
# Debian mirror URL; default: the first of apt's own sources, else
# http://deb.debian.org/debian), SUITE (default bookworm).
set -euo pipefail

tag=${1:-python:3.12-slim}
suite=${SUITE:-bookworm}
lock=${LOCK:-/var/tmp/rotini-python-base.lock}
pkgs=python3,python-is-python3,gunicorn,ca-certificates

say() { echo "build-python-base: $*" >&2; }

exists() { docker image inspect "$tag" >/dev/null 2>&1; }

if [[ ${FORCE:-} != 1 ]] && exists; then
	say "$tag exists; nothing to do (FORCE=1 rebuilds)"
	exit 0
fi

exec 9>"$lock"
flock 9
if [[ ${FORCE:-} != 1 ]] && exists; then
	say "$tag was built meanwhile"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	say "needs root (debootstrap)"
	exit 1
fi
if ! command -v debootstrap >/dev/null; then
	say "needs debootstrap: bash scripts/deps.sh docker (or apt-get install debootstrap)"
	exit 1
fi

mirror=${MIRROR:-}
if [[ -z $mirror ]]; then
	mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
fi
if [[ -z $mirror ]]; then
	mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(http[^[:space:]]*\/debian\)[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

root=$(mktemp -d /var/tmp/rotini-python-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

start=$SECONDS
say "debootstrap $suite (minbase + $pkgs) from $mirror into $root"
debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
	tail -n 30 "$root.log" >&2
	rm -f "$root.log"
	exit 1
}
rm -f "$root.log"

# Slim it the way the slim images are slimmed: no apt lists, caches, docs.
# Paths are inside the image's root, hence relative to it.
(
	cd "$root"
	rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/debconf/*-old \
		usr/share/doc/* usr/share/man/* usr/share/info/* var/log/*.log \
		tmp/* root/.cache
	mkdir -p tmp && chmod 1777 tmp
)

say "docker import as $tag"
tar --numeric-owner -C "$root" -c . | docker import \
	-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	-c 'ENV LANG=C.UTF-8' \
	-c "LABEL dev.rotini.stand-in=$tag" \
	-c 'CMD ["python3"]' \
	-m "local stand-in for $tag: debootstrap $suite minbase + $pkgs" \
	- "$tag" >/dev/null
say "built $tag in $((SECONDS - start))s: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
