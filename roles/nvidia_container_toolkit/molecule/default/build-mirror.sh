#!/usr/bin/env bash
# Build a signed local apt repository laid out like NVIDIA's libnvidia-container repository
# (<base>/deb/amd64/, flat, "Suites: /"), holding nvidia-container-toolkit-base built from NVIDIA's
# source. NVIDIA's repository is not reachable from the test machines; this is the "local mirror built
# from what is reachable" of issue 6.
#
#   build-mirror.sh [OUTPUT_DIR]      prints the mirror's directory (default $CACHE/<tag>/mirror)
#
# Inputs (cached under $CACHE, default <repo>/.cache/nvidia-container-toolkit):
#   NCT_SRC   source of github.com/NVIDIA/nvidia-container-toolkit at NCT_TAG: a .tar.gz (default: the
#             copy vendored in tests/vendor/, `git archive` of the tag, Apache-2.0) or a git directory
#   NCT_TAG   tag to build (default v1.18.0; go.mod asks Go 1.24, which Debian 13 ships)
# The Go binaries are built with Debian 13's golang-1.24-go inside localhost/debian-systemd:trixie
# (podman; needs deb.debian.org) from the vendored modules of the tag (no Go proxy needed), then
# packaged with NVIDIA's own control stanza, install list and postinst for nvidia-container-toolkit-base.
# What this mirror cannot hold: libnvidia-container1 / libnvidia-container-tools (C, not built here)
# and so the nvidia-container-toolkit package, which depends on them.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
CACHE=${CACHE:-$ROOT/.cache/nvidia-container-toolkit}
NCT_TAG=${NCT_TAG:-v1.18.0}
NCT_SRC=${NCT_SRC:-$ROOT/tests/vendor/nvidia-container-toolkit-$NCT_TAG.tar.gz}
VERSION=${NCT_TAG#v}
DEB_VERSION="$VERSION-1"
BIN="$CACHE/$NCT_TAG/bin"
OUTPUT=${1:-$CACHE/$NCT_TAG/mirror}
mkdir -p "$CACHE"
if [ -s "$OUTPUT/gpgkey" ] && [ -s "$OUTPUT/deb/amd64/InRelease" ]; then
  echo "$OUTPUT"
  exit 0
fi

# 1. Binaries, built once per tag.
if [ ! -x "$BIN/nvidia-ctk" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/src"
  if [ -f "$NCT_SRC" ]; then
    tar -C "$work/src" --strip-components=1 -xzf "$NCT_SRC"
  elif git --git-dir "$NCT_SRC" rev-parse --verify -q "$NCT_TAG^{commit}" >/dev/null; then
    git --git-dir "$NCT_SRC" archive --format=tar "$NCT_TAG" | tar -C "$work/src" -xf -
  else
    echo "build-mirror: NCT_SRC=$NCT_SRC is neither a source tarball nor a git directory holding $NCT_TAG" >&2
    exit 2
  fi
  mkdir -p "$work/out"
  cat >"$work/build.sh" <<EOF
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends golang-1.24-go gcc libc6-dev ca-certificates >/dev/null
export PATH=/usr/lib/go-1.24/bin:\$PATH GOTOOLCHAIN=local GOFLAGS=-mod=vendor CGO_ENABLED=1 GOCACHE=/tmp/gocache
cd /src
for c in nvidia-ctk nvidia-container-runtime nvidia-cdi-hook nvidia-container-runtime-hook; do
  go build -trimpath -ldflags "-s -w -X github.com/NVIDIA/nvidia-container-toolkit/internal/info.version=$VERSION" -o /out/\$c ./cmd/\$c
done
EOF
  podman run --rm >&2 -v "$work/src:/src" -v "$work/out:/out" -v "$work/build.sh:/build.sh:ro" \
    localhost/debian-systemd:trixie bash /build.sh
  mkdir -p "$BIN"
  cp "$work/out/"* "$BIN/"
  cp -r "$work/src/packaging" "$work/src/deployments" "$CACHE/$NCT_TAG/"
fi

# 2. The package, with NVIDIA's metadata for nvidia-container-toolkit-base.
pkg=$(mktemp -d)
root="$pkg/nvidia-container-toolkit-base"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/etc/systemd/system" "$root/etc/nvidia-container-toolkit"
install -m 0755 "$BIN/nvidia-ctk" "$BIN/nvidia-container-runtime" "$BIN/nvidia-cdi-hook" "$root/usr/bin/"
install -m 0644 "$CACHE/$NCT_TAG/deployments/systemd/nvidia-cdi-refresh.service" \
  "$CACHE/$NCT_TAG/deployments/systemd/nvidia-cdi-refresh.path" "$root/etc/systemd/system/"
install -m 0644 "$CACHE/$NCT_TAG/deployments/systemd/nvidia-cdi-refresh.env" "$root/etc/nvidia-container-toolkit/"
install -m 0755 "$CACHE/$NCT_TAG/packaging/debian/nvidia-container-toolkit-base.postinst" "$root/DEBIAN/postinst"
echo "/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env" >"$root/DEBIAN/conffiles"
# NVIDIA's stanza for the base package, with the fields dpkg-gencontrol would fill in.
awk -v RS= '/Package: nvidia-container-toolkit-base\n/' "$CACHE/$NCT_TAG/packaging/debian/control" \
  | grep -E '^(Package|Breaks|Replaces|Description| )' >"$pkg/stanza"
{
  grep '^Package:' "$pkg/stanza"
  echo "Version: $DEB_VERSION"
  echo "Architecture: amd64"
  echo "Maintainer: NVIDIA CORPORATION <cudatools@nvidia.com> (rebuilt from source by baremetal.gpu tests)"
  echo "Section: utils"
  echo "Priority: optional"
  echo "Installed-Size: $(du -sk "$root/usr" | cut -f1)"
  grep -E '^(Breaks|Replaces):' "$pkg/stanza"
  sed -n '/^Description:/,$p' "$pkg/stanza"
} >"$root/DEBIAN/control"
mkdir -p "$OUTPUT/deb/amd64"
dpkg-deb --root-owner-group -Zgzip -b "$root" "$OUTPUT/deb/amd64/nvidia-container-toolkit-base_${DEB_VERSION}_amd64.deb" >/dev/null
rm -rf "$pkg"

# 3. Index and sign it like NVIDIA's flat repository (Packages, Release, InRelease, Release.gpg).
export GNUPGHOME="$CACHE/gnupg"
if [ ! -d "$GNUPGHOME" ]; then
  mkdir -m 0700 "$GNUPGHOME"
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "baremetal.gpu test mirror <mirror@baremetal-gpu.invalid>" ed25519 sign never
fi
gpg --batch --quiet --armor --export >"$OUTPUT/gpgkey"
cd "$OUTPUT/deb/amd64"
dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages
gzip -9nkf Packages
python3 - <<'PY'
import hashlib, os, time
lines = ["Origin: baremetal.gpu test mirror", "Label: nvidia-container-toolkit", "Architectures: amd64",
         "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(os.path.getmtime("Packages")))]
for algo, field in (("md5", "MD5Sum"), ("sha256", "SHA256")):
    lines.append(field + ":")
    for name in ("Packages", "Packages.gz"):
        data = open(name, "rb").read()
        lines.append(" %s %d %s" % (hashlib.new(algo, data).hexdigest(), len(data), name))
open("Release", "w").write("\n".join(lines) + "\n")
PY
rm -f InRelease Release.gpg
gpg --batch --quiet --clearsign -o InRelease Release
gpg --batch --quiet --armor --detach-sign -o Release.gpg Release
echo "build-mirror: built nvidia-container-toolkit-base $DEB_VERSION" >&2
echo "$OUTPUT"
