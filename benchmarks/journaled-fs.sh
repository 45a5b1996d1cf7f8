#!/bin/sh
# Makes a fresh journalled ext4 (mkfs defaults, as on a typical host) in a
# loop file and mounts it, for `pod_bench --work-dir`: the root file system
# of the build machines is ext4 without a journal, whose inode allocator
# skips every inode freed in the last minutes, so a benchmark's speed there
# depends on what was deleted before it. Needs root.
#
#   benchmarks/journaled-fs.sh [MOUNTPOINT [SIZE]]   (default /mnt/wasmk-bench, 4G)
#   benchmarks/journaled-fs.sh --remove [MOUNTPOINT]
set -eu
if [ "${1:-}" = "--remove" ]; then
    mnt=${2:-/mnt/wasmk-bench}
    umount "$mnt"
    rm -f "$mnt.img"
    rmdir "$mnt" 2>/dev/null || true
    exit 0
fi
mnt=${1:-/mnt/wasmk-bench}
size=${2:-4G}
img="$mnt.img"
if mountpoint -q "$mnt"; then
    umount "$mnt"
fi
rm -f "$img"
truncate -s "$size" "$img"
mkfs.ext4 -q -F "$img"
mkdir -p "$mnt"
mount -o loop "$img" "$mnt"
echo "$mnt"
