#!/usr/bin/env bash
# Checks of the packages packaging/build.sh made in target/dist (issue 8's
# acceptance): lintian on the .deb and rpmlint on the .rpm report no error or
# warning, the unit's systemd-analyze security exposure is under 3.0, the
# shipped MIB is smilint-clean, and the .rpm carries the .deb's payload (file
# list, scriptlets, requires, an install into a scratch root).
# systemd-analyze verify runs in test-install.sh, on the installed unit.
#
# Needs: lintian, rpmlint, rpm, systemd (systemd-analyze), smitools (smilint).
set -euo pipefail
cd "$(dirname "$0")/.."

dist=target/dist
deb="$(ls "$dist"/kura_*-1_*.deb)"
rpm="$(ls "$dist"/kura-*-1.*.rpm)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "lintian $deb"
# --fail-on: any error or warning fails; overrides are in
# packaging/debian/lintian-overrides, each with its reason.
lintian --fail-on error,warning --display-level ">=warning" "$deb"
echo "lintian: no errors, no warnings"

step "rpmlint $rpm"
out="$(rpmlint -c packaging/rpm/rpmlint.toml "$rpm" 2>&1)" || { echo "$out"; fail "rpmlint"; }
echo "$out"
grep -q " 0 errors, 0 warnings" <<<"$out" || fail "rpmlint reported errors or warnings"

step "systemd-analyze security --offline=true packaging/systemd/kura.service"
out="$(systemd-analyze security --offline=true packaging/systemd/kura.service 2>&1)" || true
level="$(sed -n 's/.*Overall exposure level for kura.service: \([0-9.]*\).*/\1/p' <<<"$out")"
[[ -n "$level" ]] || { echo "$out"; fail "no exposure level"; }
echo "exposure level: $level"
awk -v l="$level" 'BEGIN { exit !(l < 3.0) }' || { echo "$out"; fail "exposure $level is not under 3.0"; }

step "smilint -l 6 on the shipped KURA-MIB"
dpkg-deb -x "$deb" "$work/deb"
out="$(SMIPATH="$PWD/tests/mibs" smilint -c /dev/null -l 6 "$work/deb/usr/share/snmp/mibs/KURA-MIB.txt" 2>&1)" ||
    { echo "$out"; fail "smilint"; }
[[ -z "$out" ]] || { echo "$out"; fail "smilint reported"; }
echo "smilint: nothing to report"

step "rpm payload = deb payload, but for the documented differences"
# Files and symlinks (directories aside) of each package, as absolute paths.
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | sort >"$work/deb.files"
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" | awk '$1 !~ /^d/ { print $2 }' | sort >"$work/rpm.files"
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" | awk '$1 ~ /^d/ { print $2 }' | sort >"$work/rpm.dirs"
# Where the .deb puts a file the .rpm puts elsewhere (README "Install from packages").
sed -e 's|^/lib/systemd/system/|/usr/lib/systemd/system/|' \
    -e 's|^/usr/share/zsh/vendor-completions/|/usr/share/zsh/site-functions/|' \
    -e '\|^/usr/share/doc/kura/changelog.Debian.gz$|d' \
    -e '\|^/usr/share/doc/kura/copyright$|d' \
    -e '\|^/usr/share/lintian/overrides/kura$|d' \
    "$work/deb.files" | sort >"$work/deb.mapped"
grep -v '^/usr/share/licenses/kura/LICENSE$' "$work/rpm.files" >"$work/rpm.mapped"
if ! diff -u "$work/deb.mapped" "$work/rpm.mapped"; then
    fail "the file lists differ beyond the documented differences"
fi
echo "$(wc -l <"$work/rpm.files") files; same as the .deb's but for: unit in /usr/lib/systemd/system,"
echo "  zsh completion in site-functions, LICENSE in /usr/share/licenses (deb: copyright,"
echo "  changelog.Debian.gz, lintian overrides)"
printf 'directories the .rpm owns (the .deb creates them in postinst):\n'
rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpm" | grep '^d'
[[ "$(cat "$work/rpm.dirs")" == "$(printf '%s\n' /etc/kura /etc/kura/svc /var/cache/kura /var/lib/kura /var/log/kura)" ]] ||
    fail "unexpected directories: $(cat "$work/rpm.dirs")"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | grep '^cn ' | sort >"$work/rpm.conf"
echo "config(noreplace):" $(awk '{print $2}' "$work/rpm.conf")
[[ "$(awk '{print $2}' "$work/rpm.conf" | tr '\n' ' ')" == "/etc/kura/server.xml /etc/kura/vhosts.xml " ]] ||
    fail "config files: $(cat "$work/rpm.conf")"
cmp -s <(rpm2cpio "$rpm" | (cd "$work" && cpio -i --quiet --to-stdout ./usr/sbin/kurad)) "$work/deb/usr/sbin/kurad" ||
    fail "the two packages carry different kurad binaries"
echo "same kurad binary in both"

step "rpm scriptlets"
rpm -qp --scripts "$rpm" | tee "$work/scripts"
for want in 'systemd-sysusers --replace=/usr/lib/sysusers.d/kura.conf' 'useradd -r -g kura' \
    'systemd-tmpfiles --create' 'systemctl --no-reload preset kura.service' \
    'systemctl --no-reload disable --now kura.service' 'systemctl try-restart kura.service' \
    'u kura - "kura HTTP edge cache"'; do
    grep -qF -- "$want" "$work/scripts" || fail "scriptlets lack: $want"
done

step "rpm requires"
rpm -qp --requires "$rpm" | tee "$work/requires"
for want in 'libc.so.6(GLIBC_' 'systemd' '/usr/sbin/useradd'; do
    grep -qF -- "$want" "$work/requires" || fail "requires lack: $want"
done

step "rpm --root (scratch root, --nodeps --noscripts: no chroot userland to run them)"
root="$work/root"
mkdir -p "$root"
rpm --root "$root" --initdb
# Debian's rpm warns that it is not Debian's package manager; rpm warns that
# the kura user does not exist in the scratch root.
rpm --root "$root" --nodeps --noscripts -i "$rpm" 2>&1 |
    grep -v -e 'does not exist - using root' -e 'use Alien instead' -e 'know what you are doing' || true
for f in /usr/sbin/kurad /usr/bin/kuractl /etc/kura/server.xml /etc/kura/vhosts.xml \
    /usr/lib/systemd/system/kura.service /usr/lib/sysusers.d/kura.conf \
    /usr/share/snmp/mibs/KURA-MIB.txt /usr/share/man/man8/kurad.8.gz /var/lib/kura; do
    [[ -e "$root$f" ]] || fail "$f did not land in the root"
done
"$root/usr/sbin/kurad" check --conf-dir "$root/etc/kura"
# No kura user in the scratch root (no %pre ran): ownership is not compared.
rpm --root "$root" -V --nodeps --nouser --nogroup kura || fail "rpm -V"
echo "rpm -V: clean"
rpm --root "$root" -qi kura | sed -n '1,4p'
rpm --root "$root" --nodeps --noscripts -e kura 2>&1 |
    grep -v -e 'use Alien instead' -e 'know what you are doing' || true
[[ ! -e "$root/usr/sbin/kurad" ]] || fail "rpm -e left kurad"
echo "installed, verified and erased in $root"

printf '\ncheck.sh: OK\n'
