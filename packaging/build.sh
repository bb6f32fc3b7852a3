#!/usr/bin/env bash
# Builds kura's .deb (cargo-deb) and .rpm (rpmbuild, packaging/rpm/kura.spec)
# from one release build, reproducibly: SOURCE_DATE_EPOCH is the last commit's
# time, binaries are stripped once and shared by both packages.
#
#   packaging/build.sh [--no-build] [--release N]
#     --no-build    reuse the release binaries already built
#     --release N   package release (deb 0.1.0-N, rpm 0.1.0-N; default 1)
#
# Needs: cargo-deb, dpkg-dev (dpkg-shlibdeps), rpm (rpmbuild), binutils, gzip.
# Output: target/dist/kura_<version>-<N>_<arch>.deb, target/dist/kura-<version>-<N>.<arch>.rpm,
# target/dist/SHA256SUMS. target/dist/stage/ is the tree both packages are made from.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
release=1
while (($#)); do
    case "$1" in
        --no-build) build=0 ;;
        --release) release="$2"; shift ;;
        *) echo "usage: $0 [--no-build] [--release N]" >&2; exit 2 ;;
    esac
    shift
done

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
export TZ=UTC LC_ALL=C.UTF-8
umask 022
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
target_dir="${CARGO_TARGET_DIR:-target}"
dist=target/dist
stage="$dist/stage"

# The changelogs must name the version being packaged.
grep -q "^kura ($version-" packaging/debian/changelog ||
    { echo "packaging/debian/changelog has no entry for $version" >&2; exit 1; }
grep -q -- "- $version-" packaging/rpm/kura.spec ||
    { echo "packaging/rpm/kura.spec %changelog has no entry for $version" >&2; exit 1; }

if ((build)); then
    cargo build --release --locked --bins
fi

rm -rf "$dist"
mkdir -p "$stage"/usr/{sbin,bin} "$stage"/usr/share/man/{man1,man5,man8} \
    "$stage"/usr/share/bash-completion/completions "$stage"/usr/share/zsh/vendor-completions \
    "$stage"/usr/share/fish/vendor_completions.d

# Binaries, stripped (the release profile keeps line tables for local profiling).
# As dh_strip does: no symbols, no .comment/.note sections.
for bin in usr/sbin/kurad usr/bin/kuractl; do
    strip --strip-unneeded --remove-section=.comment --remove-section=.note \
        -o "$stage/$bin" "$target_dir/release/${bin##*/}"
done
kurad="$stage/usr/sbin/kurad"
kuractl="$stage/usr/bin/kuractl"

# Man pages: kuractl(1) and its commands, kurad(8), kura.conf(5).
"$kuractl" man --dir "$stage/usr/share/man/man1"
{ "$kurad" man; cat packaging/man/kurad.8.in; } >"$stage/usr/share/man/man8/kurad.8"
date="$(date -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)"
{
    sed -e "s/@DATE@/$date/" -e "s/@VERSION@/$version/" packaging/man/kura.conf.5.in
    awk -f packaging/man/elements.awk src/config/elements.tsv
    printf '.SH "SEE ALSO"\n\\fBkurad\\fR(8), \\fBkuractl\\fR(1), the STON Edge Server guide (chapters 3, 4, 11, 12)\n'
} >"$stage/usr/share/man/man5/kura.conf.5"
find "$stage/usr/share/man" -type f -name '*.[158]' -exec gzip -9n {} +

# Shell completions.
"$kuractl" completions bash >"$stage/usr/share/bash-completion/completions/kuractl"
"$kuractl" completions zsh >"$stage/usr/share/zsh/vendor-completions/_kuractl"
"$kuractl" completions fish >"$stage/usr/share/fish/vendor_completions.d/kuractl.fish"

# The shipped configuration must be valid.
"$kurad" check --conf-dir packaging/etc >/dev/null

find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# DEB.
cargo deb --no-build --no-strip --deb-version "$version-$release" --output "$dist/"

# RPM, around the same staged files.
arch="$(uname -m)"
rpmbuild -bb packaging/rpm/kura.spec --target "$arch" \
    --define "_topdir $PWD/$dist/rpmbuild" \
    --define "kura_version $version" \
    --define "kura_release $release" \
    --define "kura_root $PWD" \
    --define "kura_stage $PWD/$stage" \
    --define "packager kura developers <kura-dev@example.org>" \
    --define "_buildhost reproducible" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    --define "_binary_payload w9.xzdio" \
    --quiet
mv "$dist/rpmbuild/RPMS/$arch/"kura-*.rpm "$dist/"
rm -rf "$dist/rpmbuild"

(cd "$dist" && sha256sum ./*.deb ./*.rpm >SHA256SUMS && cat SHA256SUMS)
