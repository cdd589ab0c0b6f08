#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build the libFuzzer targets (clang, ASan + UBSan) into their own build
# directory and run each for a bounded time, one after the other.
#
#   tests/fuzz/run.sh [SECONDS]     SECONDS per target, default 20
#
# Prints one line per target (executions, speed, inputs found) and ends with
# "fuzz: N passed, N failed". Exits non-zero on any finding: a crash, a
# failed property, a sanitizer report, a leak or a hung input. The input is
# saved under BUILD/fuzz/artifacts/ and the line says how to replay it.
#
# Environment:
#   TC_FUZZ_BUILD    build directory (default: build-fuzz)
#   TC_FUZZ_TARGETS  targets to run (default: "parse xattr engine options")
#   TC_FUZZ_KEEP=1   keep the inputs found in BUILD/fuzz/corpus/<target>/
#                    and start from them next time (default: start from the
#                    seed corpus tests/fuzz/corpus/<target>/ every time)
#   TC_FUZZ_KNOWN    known findings to tolerate (see fuzz_util.h)
#   TC_FUZZ_SRC      source directory to configure (default: this checkout)
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)

secs=${1:-20}
build=${TC_FUZZ_BUILD:-build-fuzz}
targets=${TC_FUZZ_TARGETS:-parse xattr engine options}
src=${TC_FUZZ_SRC:-$top}
case $build in /*) ;; *) build="$top/$build" ;; esac

# Longest input per target: the stateful ones need room for sequences.
declare -A max_len=([parse]=256 [xattr]=4096 [engine]=4096 [options]=2048)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fail() {
	echo "fuzz: $*"
	echo "fuzz: 0 passed, 1 failed"
	exit 1
}

command -v clang >/dev/null || fail "clang not found (apt-get install clang libclang-rt-14-dev)"
# libFuzzer and the sanitizer runtimes (only recommended by clang).
echo 'int LLVMFuzzerTestOneInput(const char *d, long n);
int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' |
	clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null ||
	fail "clang cannot link -fsanitize=fuzzer,address,undefined (apt-get install libclang-rt-14-dev)"
if [ ! -f "$build/build.ninja" ]; then
	out=$(CC=clang meson setup "$build" "$src" -Dsanitize=true \
		-Dbuildtype=debugoptimized 2>&1) || { echo "$out"; fail "meson setup failed"; }
fi
ninja_targets=()
for t in $targets; do
	ninja_targets+=("tests/fuzz/fuzz_$t")
done
# Only the fuzz targets: the rest of the tree is built and tested by the
# normal passes (and tests/unit does not build with clang).
out=$(ninja -C "$build" "${ninja_targets[@]}" 2>&1) || {
	echo "$out" | tail -n 30
	fail "build failed (is $build configured with clang, and is subdir('fuzz') in tests/meson.build?)"
}

tmp=$(mktemp -d "${TC_FUZZ_TMPDIR:-/dev/shm}/tcfuzz-run.XXXXXX" 2>/dev/null ||
	mktemp -d /tmp/tcfuzz-run.XXXXXX) || fail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$build/fuzz/artifacts"

passed=0
failed=0
total=0
for t in $targets; do
	bin="$build/tests/fuzz/fuzz_$t"
	seeds="$top/tests/fuzz/corpus/$t"
	log="$build/fuzz/$t.log"
	if [ -n "${TC_FUZZ_KEEP:-}" ]; then
		work="$build/fuzz/corpus/$t"
	else
		work="$tmp/corpus-$t"
	fi
	mkdir -p "$work" "$tmp/stores-$t"
	args=(-max_total_time="$secs" -max_len="${max_len[$t]:-4096}"
	      -timeout=60 -rss_limit_mb=2048 -print_final_stats=1
	      -artifact_prefix="$build/fuzz/artifacts/$t-")
	[ -f "$top/tests/fuzz/$t.dict" ] && args+=(-dict="$top/tests/fuzz/$t.dict")
	TC_FUZZ_TMPDIR="$tmp/stores-$t" "$bin" "${args[@]}" "$work" "$seeds" \
		>"$log" 2>&1
	rc=$?
	rm -rf "$tmp/stores-$t"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	found=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
	execs=${execs:-0}
	total=$((total + execs))
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		printf 'fuzz_%-8s ok      %9s execs in %ss (%s/s), %s new inputs\n' \
			"$t" "$execs" "$secs" "${speed:-0}" "${found:-0}"
	else
		failed=$((failed + 1))
		art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		what=$(grep -m1 -E '==FUZZ CHECK FAILED==|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log")
		printf 'fuzz_%-8s FAILED  %9s execs: %s\n' "$t" "$execs" "${what:-exit $rc}"
		echo "    log: $log"
		if [ -n "$art" ]; then
			echo "    input: $art"
			echo "    replay: $bin $art"
			echo "    minimise: $bin -minimize_crash=1 -runs=20000 $art"
		fi
	fi
done
echo "fuzz: $total executions"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
