#!/usr/bin/env bash
# Install what tiercachefs needs to build (and, with --test, to test) on
# Debian 12. Only calls apt-get when something is missing.
set -euo pipefail

build_pkgs=(meson ninja-build pkg-config gcc libfuse3-dev fuse3 libsqlite3-dev
	    libxxhash-dev libmemcached-dev libsodium-dev)
test_pkgs=(libcmocka-dev python3-pytest python3-pytest-timeout attr rsync tar
	   mandoc fio stress-ng prometheus util-linux diffutils valgrind clang
	   libclang-rt-14-dev
	   bindfs rclone python3-diskcache memcached)

pkgs=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
	pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
