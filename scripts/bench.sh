#!/usr/bin/env bash
# Benchmark tiercachefs against tmpfs, a plain directory, bindfs, rclone
# mount, libfuse's passthrough_ll and python-diskcache (issues 6, 10, 11),
# in one command:
#
#   scripts/bench.sh [--quick | --ci] [--scale] [--rounds N] [--targets a,b,c]
#                    [--groups g,h] [--tc-modes kernel,daemon] [--tc-opts OPTS]
#                    [--files N] [--large-mib N] ... [--tc-bin PATH]
#                    [--tmpdir DIR] [--no-install]
#
#   scripts/bench.sh                 full run, 3 interleaved rounds (~40 min)
#   scripts/bench.sh --quick         small counts, 1 round (about 2 minutes)
#   scripts/bench.sh --quick --ci    tiny counts: checks every phase runs on
#                                    every available target; exit 1 if
#                                    tiercachefs fails one (what CI runs)
#   scripts/bench.sh --scale         adds the 10,000 vs 1,000,000 entries phase
#   scripts/bench.sh --help          every option of the driver
#
# This script installs the peers with apt-get (bindfs, rclone,
# python3-diskcache, stress-ng; a missing one is reported and its target or
# phase skipped; passthrough_ll is compiled by the driver from libfuse3-dev's
# examples),
# builds tiercachefs in build-bench/ (release), makes a work directory with
# mktemp -d under /var/tmp (the root filesystem; --tmpdir to change) and runs
# tests/bench/fsbench.py, which mounts every target there, runs the phases
# and prints the report (progress on stderr, the markdown report on stdout,
# also saved as build-bench/bench-last.{md,json}). The EXIT trap unmounts
# whatever is still mounted below the work directory and kills only the
# daemons the driver started (their PIDs are in WORKDIR/pids), then removes
# the work directory. Needs root: it mounts tmpfs and drops the page cache.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
py=/usr/bin/python3

tc_bin=""
tmpbase=/var/tmp
install=1
ci=0
pass=()
while [ $# -gt 0 ]; do
	case $1 in
	--tc-bin) tc_bin=$(realpath "$2"); shift 2 ;;
	--tc-bin=*) tc_bin=$(realpath "${1#*=}"); shift ;;
	--tmpdir) tmpbase=$2; shift 2 ;;
	--tmpdir=*) tmpbase=${1#*=}; shift ;;
	--no-install) install=0; shift ;;
	-h | --help)
		sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exec $py tests/bench/fsbench.py --help
		;;
	--ci) ci=1; pass+=("$1"); shift ;;
	*) pass+=("$1"); shift ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: needs root (it mounts tmpfs and drops the page cache)" >&2
	exit 2
fi
for tool in fusermount3 mount umount findmnt; do
	command -v $tool >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

# Peers, from Debian. A failure here only skips that target.
if [ $install -eq 1 ]; then
	missing=()
	for p in bindfs rclone python3-diskcache stress-ng; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		avail=()
		for p in "${missing[@]}"; do
			cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
			if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then
				avail+=("$p")
			else
				echo "bench: $p is not available from apt: its target will be skipped" >&2
			fi
		done
		if [ ${#avail[@]} -gt 0 ]; then
			echo "bench: installing ${avail[*]}" >&2
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
				"${avail[@]}" >&2 ||
				echo "bench: apt-get install ${avail[*]} failed: those targets will be skipped" >&2
		fi
	fi
fi

# tiercachefs, release build in its own directory.
if [ -z "$tc_bin" ]; then
	bash scripts/deps.sh >&2 || { echo "bench: build dependencies missing" >&2; exit 1; }
	if [ ! -f build-bench/build.ninja ]; then
		# -Dwerror=false: -O3 finds maybe-uninitialized warnings -O2 does not.
		meson setup build-bench --buildtype=release -Dtests=false -Dwerror=false >&2 ||
			{ echo "bench: meson setup failed" >&2; exit 1; }
	fi
	ninja -C build-bench fs/tiercachefs >&2 || { echo "bench: build failed" >&2; exit 1; }
	tc_bin=$top/build-bench/fs/tiercachefs
fi
mkdir -p build-bench

work=$(mktemp -d "$tmpbase/tcbench.XXXXXX") || exit 1
work=$(realpath "$work")
# A private copy: a rebuild during a long run must not change the binary
# that the scale phase remounts.
cp "$tc_bin" "$work/tiercachefs" || { rm -rf "$work"; exit 1; }
tc_bin=$work/tiercachefs

# unescape_mount PATH: mountinfo writes space, tab, newline, \ as \ooo.
unescape_mount() {
	printf '%b' "$1"
}

child=

cleanup() {
	local mp type pid
	# The driver first: on TERM it unmounts what it mounted and reports.
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null
		for _ in $(seq 60); do
			kill -0 "$child" 2>/dev/null || break
			sleep 0.5
		done
		kill -9 "$child" 2>/dev/null
	fi
	# FUSE mounts first (bindfs sits on a tmpfs of ours), deepest first.
	awk '{print $5, $(NF-2)}' /proc/self/mountinfo | while read -r mp type; do
		mp=$(unescape_mount "$mp")
		case $type in fuse*) f=1 ;; *) f=0 ;; esac
		case $mp in "$work" | "$work"/*) echo "$f ${#mp} $type $mp" ;; esac
	done | sort -k1,1nr -k2,2nr | while read -r _ _ type mp; do
		case $type in
		fuse*) fusermount3 -u "$mp" 2>/dev/null || fusermount3 -uz "$mp" ;;
		*) umount "$mp" 2>/dev/null || umount -l "$mp" ;;
		esac
		echo "bench: cleanup unmounted $mp" >&2
	done
	if [ -f "$work/pids" ]; then
		while read -r pid; do
			# Only our daemons: their command line names the work directory.
			if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$work"; then
				kill "$pid" 2>/dev/null
				for _ in 1 2 3 4 5 6 7 8 9 10; do
					[ -d "/proc/$pid" ] || break
					sleep 0.5
				done
				[ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null
				echo "bench: cleanup stopped PID $pid" >&2
			fi
		done <"$work/pids"
	fi
	if grep -qF " $work" /proc/self/mountinfo; then
		echo "bench: something is still mounted below $work; not removing it" >&2
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT

ulimit -n 20000 2>/dev/null

cmd=($py -u tests/bench/fsbench.py --workdir "$work" --tc-bin "$tc_bin"
	--out "$top/build-bench/bench-last" "${pass[@]}")
[ $ci -eq 1 ] && cmd=(timeout -k 30 900 "${cmd[@]}") # a hung FUSE request must not hang CI

# The driver runs in the background so that INT and TERM reach this shell at
# once; they are passed on as TERM, on which the driver unmounts and reports.
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null' INT TERM
{ exec "${cmd[@]}"; } & # exec: $! is the driver itself, not a subshell
child=$!
while :; do
	wait "$child"
	rc=$?
	[ -d "/proc/$child" ] || break
done
[ $ci -eq 1 ] && [ $rc -eq 124 ] && echo "bench: timed out" >&2
exit $rc
