#!/usr/bin/env bash
# Builds the Debian 12 package of mod_rwsgi: target/debian/libapache2-mod-rwsgi_<version>_<arch>.deb
# (plus its -dbgsym package with the debug info).
#
# The packaging lives in packaging/deb/debian/ so that the checkout's top level stays a plain
# cargo crate. The source tree (without target/ and .git) is copied to a build directory
# under /tmp, debian/ is placed at its top, and `dpkg-buildpackage -b -us -uc` runs there.
# cargo comes from PATH (rustup's ~/.cargo/bin included: Debian 12's cargo is too old for
# edition 2024) and builds into target/deb-build/, so a second build is incremental. Crates
# already in the cargo registry (~/.cargo) are used as they are; set CARGO_NET_OFFLINE=true
# to forbid any download.
#
# Needs: .ci/install-deps (debhelper, dpkg-dev, apache2-dev with dh_apache2, ...).
# Usage: packaging/deb/build.sh        (or `make deb`)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"

die() { echo "deb: $*" >&2; exit 1; }

for tool in dpkg-buildpackage dh dh_apache2 cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run 'make deps' (.ci/install-deps)"
done

# The package version is the crate's: a mismatch would ship a .deb that lies about its code.
crate_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
deb_version=$(dpkg-parsechangelog -l packaging/deb/debian/changelog -S Version)
[[ $crate_version == "$deb_version" ]] ||
  die "Cargo.toml says $crate_version but packaging/deb/debian/changelog says $deb_version"
arch=$(dpkg --print-architecture)

# A fixed path per checkout, and tar keeping the files' times: cargo then sees an unchanged
# crate and a second build does not recompile it. Outside the checkout, because cargo would
# also read the checkout's .cargo/config.toml and add its rustflags a second time.
build=${TMPDIR:-/tmp}/rwsgi-deb-$(printf '%s' "$root" | md5sum | cut -c1-12)
src=$build/mod-rwsgi-$deb_version
rm -rf "$build"
mkdir -p "$src"
tar -C "$root" --exclude=./target --exclude=./.git --exclude=./packaging -cf - . | tar -C "$src" -xf -
cp -r packaging/deb/debian "$src/debian"

# debhelper gives its tools a private HOME: keep cargo and rustup on the real one.
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
export CARGO_TARGET_DIR=$root/target/deb-build
export CARGO=${CARGO:-$(command -v cargo)}

(cd "$src" && dpkg-buildpackage -b -us -uc)

out=$root/target/debian
mkdir -p "$out"
rm -f "$out"/*.deb
cp "$build"/*.deb "$out"/
deb=$out/libapache2-mod-rwsgi_${deb_version}_${arch}.deb
[[ -f $deb ]] || die "dpkg-buildpackage did not produce $(basename "$deb")"
if command -v lintian >/dev/null 2>&1; then
  lintian --info "$deb" || true
fi
echo "deb: built $deb"
