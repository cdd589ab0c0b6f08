#!/usr/bin/env bash
# Install dependencies, build, and run every test: the engine's unit tests and
# the integration tests against a mounted tiercachefs, once with a normal
# build (in both cache modes: TC_CACHE_MODE=daemon and =kernel) and once with
# AddressSanitizer + UndefinedBehaviorSanitizer (the default mode), and
# mandoc's linter on the man page.
# Ends with one line counting all tests: "N passed, N failed".
#
#   scripts/test.sh              everything
#   TC_QUICK=1 scripts/test.sh   skip the sanitizer pass, fuzzing and the
#                                benchmark smoke run
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

bash scripts/deps.sh --test || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

py=/usr/bin/python3
passed=0
failed=0

# count_meson LOGDIR: add the unit test results of one meson test run.
count_meson() {
	local log="$1/meson-logs/testlog.json"
	[ -f "$log" ] || { failed=$((failed + 1)); return; }
	local p f
	p=$($py -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["result"] in ("OK","SKIP","EXPECTEDFAIL")))' "$log")
	f=$($py -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["result"] not in ("OK","SKIP","EXPECTEDFAIL")))' "$log")
	passed=$((passed + p))
	failed=$((failed + f))
}

# count_pytest FILE: add the counts of a pytest summary line.
count_pytest() {
	local line p f e
	# pytest -q ends with "N failed, N passed in 1.23s" (undecorated).
	line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|errors?|skipped|deselected)|no tests ran' "$1" | tail -n 1)
	if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
	p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
	f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
	e=$(echo "$line" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || echo 0)
	passed=$((passed + p))
	failed=$((failed + f + e))
}

# run_pass NAME BUILDDIR MODES [meson options...]: MODES is a list of
# cache modes for the integration suite ("" = the daemon's default).
run_pass() {
	local name=$1 dir=$2 modes=$3 mode
	shift 3
	echo "=== $name: build ($dir)"
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null || { echo "meson setup failed"; failed=$((failed + 1)); return; }
	fi
	if ! ninja -C "$dir"; then
		echo "build failed"
		failed=$((failed + 1))
		return
	fi
	echo "=== $name: unit tests"
	meson test -C "$dir" --suite unit --print-errorlogs
	count_meson "$dir"
	for mode in ${modes:-default}; do
		[ "$mode" = default ] && mode=""
		echo "=== $name: integration tests${mode:+ (cache_mode=$mode)}"
		local out="$dir/pytest${mode:+-$mode}.out"
		TC_CACHE_MODE="$mode" TIERCACHEFS_BIN="$top/$dir/fs/tiercachefs" \
			TCMEMO_BIN="$top/$dir/scripts/tcmemo" \
			TCSWAP_BIN="$top/$dir/scripts/tcswap" \
			$py -m pytest -p no:cacheprovider -q -rfE --timeout=300 \
			tests/integration 2>&1 | tee "$out"
		count_pytest "$out"
	done
}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# count_plain FILE: add the counts of a "N passed, N failed" line.
count_plain() {
	local line
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
	passed=$((passed + $(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')))
	failed=$((failed + $(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')))
}

run_pass "normal" build "daemon kernel"

# The man page passes mandoc's linter with no message at all (style
# messages included): one counted check.
echo "=== mandoc -T lint tiercachefs.8"
if lint=$(mandoc -T lint tiercachefs.8 2>&1) && [ -z "$lint" ]; then
	passed=$((passed + 1))
else
	echo "${lint:-mandoc failed}"
	failed=$((failed + 1))
fi
if [ -z "${TC_QUICK:-}" ]; then
	run_pass "sanitizers" build-san "" -Dsanitize=true -Dbuildtype=debug

	# A bounded libFuzzer run of every target (clang, ASan + UBSan).
	echo "=== fuzzing"
	bash tests/fuzz/run.sh "${TC_FUZZ_SECONDS:-15}" 2>&1 | tee build/fuzz.out
	count_plain build/fuzz.out

	# The benchmark's smoke run: every phase on every target, tiny counts.
	# It catches breakage; it times nothing.
	echo "=== benchmark smoke run"
	if bash scripts/bench.sh --quick --ci --tc-bin build/fs/tiercachefs \
		> build/bench.out 2>&1; then
		passed=$((passed + 1))
		tail -n 3 build/bench.out
	else
		failed=$((failed + 1))
		tail -n 30 build/bench.out
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
