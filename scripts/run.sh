#!/usr/bin/env bash
# Build tiercachefs and mount it on MOUNTPOINT with the default store
# ($XDG_CACHE_HOME/tiercachefs, else ~/.cache/tiercachefs).
#
#   scripts/run.sh MOUNTPOINT [tiercachefs options...]
#
# Installs the build dependencies (scripts/deps.sh), configures build/ when
# needed, builds, and starts the daemon, which detaches once the mount is
# up. Extra arguments go to tiercachefs, e.g. -o ram_size=1G or -f.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
	echo "usage: $0 MOUNTPOINT [tiercachefs options...]" >&2
	exit 2
fi
mnt=$1
shift
case $mnt in
/*) ;;
*) mnt=$PWD/$mnt ;;
esac

cd "$(dirname "$0")/.."
bash scripts/deps.sh
if [ ! -f build/build.ninja ]; then
	meson setup build
fi
ninja -C build
mkdir -p "$mnt"

echo "mounting tiercachefs on $mnt"
build/fs/tiercachefs "$@" "$mnt"
if mountpoint -q "$mnt"; then
	echo "mounted; see $mnt/.stats; unmount with: fusermount3 -u $mnt"
fi
