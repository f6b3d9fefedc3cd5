#!/bin/sh
# Record `sudo -n -l` and its long form `sudo -n -l -l` as the monitor (uid 1500) for each
# *.sudoers scenario here (NAME.out/.err and NAME.long.out/.long.err), with the sudo
# of a Debian root filesystem (the lab's golden Mini: sudo 1.9.13p3), and what sudo really does
# with each command the harness runs under `sudo -n` (NAME.real: "granted" or "refused" and
# the command; "refused" is sudo's own refusal, whatever the command would print). Run as root:
#   sh record.sh ROOTFS
# Each run is a private mount namespace over an overlay of ROOTFS: the scenario replaces
# /etc/sudoers.d/monitor in the overlay only, so ROOTFS itself is never written.
set -eu
rootfs=$1
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for scenario in "$here"/*.sudoers; do
    name=$(basename "$scenario" .sudoers)
    rm -rf "$scratch/upper" "$scratch/work"
    mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
    unshare -m --propagation private sh -c '
        set -e
        mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$2/root"
        install -m 0440 -o root -g root "$3" "$2/root/etc/sudoers.d/monitor"
        mount -t proc proc "$2/root/proc"
        mount --bind /dev "$2/root/dev"
        mount -t tmpfs tmpfs "$2/root/run"
        chroot --userspec=1500:1500 "$2/root" /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C \
            /usr/bin/sudo -n -l >"$4.out" 2>"$4.err" && echo 0 >"$4.rc" || echo $? >"$4.rc"
        chroot --userspec=1500:1500 "$2/root" /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C \
            /usr/bin/sudo -n -l -l >"$4.long.out" 2>"$4.long.err" || true
        : >"$4.real"
        while read -r command; do
            if chroot --userspec=1500:1500 "$2/root" /usr/bin/env -i PATH=/usr/bin:/bin LC_ALL=C \
                /usr/bin/sudo -n $command >/dev/null 2>"$2/err"; then
                echo "granted $command" >>"$4.real"
            elif grep -v "unable to resolve host" "$2/err" | grep -Eq "^(sudo: |Sorry, user )"; then
                echo "refused $command" >>"$4.real"
            else
                echo "granted $command" >>"$4.real"
            fi
        done <"$5"
    ' sh "$rootfs" "$scratch" "$scenario" "$here/$name" "$here/commands"
done
# The files behind the names the scenarios use (merged /usr: /bin/ss is /usr/bin/ss).
chroot "$rootfs" /usr/bin/stat -L -c %d:%i:%n /usr/bin/ss /bin/ss /usr/bin/cat /bin/cat >"$here/identities"
