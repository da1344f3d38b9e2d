#!/usr/bin/env bash
# Lays out the package tree beside the jars Maven copied into TARGET/deb-root/usr/share/tpmphone/lib and builds
# TARGET/tpmphone_VERSION_all.deb with dpkg-deb (root-owned files; no fakeroot needed).
set -euo pipefail
SRC="$1"; TARGET="$2"; VERSION="$3"
ROOT="$TARGET/deb-root"
# Debian versions may not hold '-SNAPSHOT' as is: 0.1.0-SNAPSHOT -> 0.1.0~snapshot (sorts before 0.1.0).
DEB_VERSION="$(printf '%s' "$VERSION" | sed 's/-SNAPSHOT$/~snapshot/')"
command -v dpkg-deb >/dev/null || { echo "dpkg-deb is missing: apt-get install dpkg" >&2; exit 1; }
test -d "$ROOT/usr/share/tpmphone/lib" || { echo "no $ROOT/usr/share/tpmphone/lib: run the package phase" >&2; exit 1; }
# Each artifact once (the pom empties lib/ before copy-dependencies; this catches any other way a second version
# got in): NAME-VERSION.jar, the version starting at the first '-' followed by a digit.
DUPLICATES="$(cd "$ROOT/usr/share/tpmphone/lib" && ls -1 -- *.jar | sed -E 's/-[0-9][^/]*\.jar$//' | sort | uniq -d)"
if [ -n "$DUPLICATES" ]; then
  echo "more than one version of: $DUPLICATES in $ROOT/usr/share/tpmphone/lib; run mvn clean" >&2
  exit 1
fi
rm -rf "$ROOT/DEBIAN" "$ROOT/etc" "$ROOT/lib" "$ROOT/usr/bin" "$ROOT/usr/share/doc"
install -d -m 0755 "$ROOT/DEBIAN" "$ROOT/etc/tpmphone" "$ROOT/lib/systemd/system" "$ROOT/usr/bin" \
    "$ROOT/usr/share/doc/tpmphone"
install -m 0755 "$SRC/tpmphone.sh" "$ROOT/usr/bin/tpmphone"
install -m 0644 "$SRC"/systemd/*.service "$ROOT/lib/systemd/system/"
install -m 0644 "$SRC"/etc/* "$ROOT/etc/tpmphone/"
install -m 0644 "$SRC/copyright" "$ROOT/usr/share/doc/tpmphone/copyright"
chmod 0644 "$ROOT"/usr/share/tpmphone/lib/*.jar
sed "s/@VERSION@/$DEB_VERSION/" "$SRC/DEBIAN/control" > "$ROOT/DEBIAN/control"
( cd "$ROOT" && find etc -type f | sed 's|^|/|' | sort ) > "$ROOT/DEBIAN/conffiles"
for s in postinst prerm postrm; do
  install -m 0755 "$SRC/DEBIAN/$s" "$ROOT/DEBIAN/$s"
done
printf 'Installed-Size: %s\n' "$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)" >> "$ROOT/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip --build "$ROOT" "$TARGET/tpmphone_${DEB_VERSION}_all.deb" >&2
