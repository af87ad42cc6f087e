#!/bin/sh
# deps.sh: install, on Debian 12, exactly the packages vmaback's build, tests
# and demo need that are missing. Called by `make check`, `make demo`, `make bench`.
set -eu

# Build: compiler, pkg-config and the libraries' -dev packages.
BUILD="gcc make pkg-config libc6-dev nbdkit-plugin-dev libzstd-dev libssl-dev libarchive-dev libjson-c-dev libcmocka-dev zlib1g-dev libnbd-dev libvirt-dev libxml2-dev"
# Tests: peers and tools the integration tests drive.
TEST="zstd gzip lzop coreutils util-linux diffutils python3 clang qemu-utils qemu-system-x86 nbdkit libnbd-bin python3-libnbd socat zsh fish groff-base time git dpkg-dev debhelper lintian systemd libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients virtnbdbackup openssh-server openssh-client rclone python3-cryptography"

missing=""
for p in $BUILD $TEST; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

echo "deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root; install these packages first:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
