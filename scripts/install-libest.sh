#!/bin/sh
# Installs Cisco's libEST (estserver, for the Online CA EST tests) under /opt/libest from
# Debian trixie's libest-utils and libest3 (bookworm has none). apt's own client fetches just
# those two packages with a private state directory, so the machine's apt configuration and
# installed packages are untouched; the packages are unpacked, not installed. Run as root by
# `cargo xtask deps`. Recipe: ../shared/recipes/est-server.md.
set -eu

PREFIX=${LIBEST_PREFIX:-/opt/libest}
WORK=$(mktemp -d /tmp/capf-apt-trixie.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/etc" "$WORK/debs"
chmod 755 "$WORK" # apt downloads as _apt
touch "$WORK/etc/none.list"

# The machine's Debian archive (URI and keyring), with trixie as the suite.
uri=http://deb.debian.org/debian
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    found=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    [ -n "$found" ] && uri=$found
    found=$(awk '/^Signed-By:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    [ -n "$found" ] && keyring=$found
fi
cat > "$WORK/etc/trixie.sources" <<SOURCES
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: $keyring
SOURCES

APTOPTS="-o Dir::Etc::SourceList=$WORK/etc/none.list -o Dir::Etc::SourceParts=$WORK/etc \
 -o Dir::State::Lists=$WORK/lists -o Dir::Cache=$WORK/cache"
# shellcheck disable=SC2086
apt-get $APTOPTS update
# shellcheck disable=SC2086
(cd "$WORK/debs" && apt-get $APTOPTS download libest-utils libest3)
mkdir -p "$PREFIX"
for deb in "$WORK"/debs/*.deb; do
    dpkg-deb -x "$deb" "$PREFIX"
done
lib="$PREFIX/usr/lib/x86_64-linux-gnu"
[ -e "$lib/libest.so.3" ] || ln -sf "$(basename "$(ls "$lib"/libest.so.3.* | head -n 1)")" "$lib/libest.so.3"
LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu" "$PREFIX/usr/bin/estserver" --help 2>&1 |
    grep -q "Available EST server options"
echo "libEST installed under $PREFIX"
