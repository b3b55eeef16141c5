#!/usr/bin/env bash
# bench/run.sh [bench/NAME.sh …] — run the benchmark scripts (by default every
# bench/*.sh but this one, in name order) and file the markdown section each
# prints into bench/RESULTS.md (or $RESULTS): a section runs from its "## "
# heading to the next one and replaces the section with the same heading, so
# other sections and notes written by hand stay. Each section is also printed.
# Run as root (`make bench` installs the tools and builds bin/rotini first).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

results=${RESULTS:-bench/RESULTS.md}
if (($# > 0)); then
	scripts=("$@")
else
	scripts=()
	for s in bench/*.sh; do
		[[ $s == bench/run.sh ]] || scripts+=("$s")
	done
fi
((${#scripts[@]})) || {
	echo "bench/run.sh: no benchmark scripts" >&2
	exit 1
}

if [[ ! -f $results ]]; then
	cat >"$results" <<'HDR'
# rotini benchmarks

Sections are written by `bench/run.sh` (`make bench`, as root): each one
names its machine, date and the exact commands. Notes outside the sections
are kept when a section is rerun.
HDR
fi

failed=()
for s in "${scripts[@]}"; do
	echo "bench/run.sh: running $s" >&2
	out=$(mktemp)
	if ! bash "$s" >"$out"; then
		echo "bench/run.sh: $s failed; $results keeps its old section" >&2
		failed+=("$s")
		rm -f "$out"
		continue
	fi
	heading=$(grep -m1 '^## ' "$out" || true)
	if [[ -z $heading ]]; then
		echo "bench/run.sh: $s printed no '## ' heading; not filed" >&2
		failed+=("$s")
		rm -f "$out"
		continue
	fi
	awk -v h="$heading" -v f="$out" '
		BEGIN { while ((getline l < f) > 0) new = new l "\n" }
		$0 == h { printf "%s", new; skip = 1; done = 1; next }
		skip && /^## / { skip = 0 }
		!skip { print }
		END { if (!done) printf "\n%s", new }
	' "$results" >"$results.tmp"
	mv "$results.tmp" "$results"
	cat "$out"
	rm -f "$out"
done

if ((${#failed[@]})); then
	echo "bench/run.sh: failed: ${failed[*]}" >&2
	exit 1
fi
echo "bench/run.sh: wrote $results" >&2
