#!/usr/bin/env bash
# Builds Fife's container image from a `fife` binary, reproducibly: stages the binary, the
# shared libraries it links (as `ldd` resolves them), Debian's CA bundle and a passwd entry for
# uid 65532 with fixed modes, builds ./Containerfile on no base image with buildah at the last
# commit's time, and writes it as an OCI layout. Optionally pushes it (blobs as they are, so the
# registry serves the same digest), writes a kustomize overlay that pins examples/install to
# that digest, and prints NAME@sha256:… as its last line.
#
#   scripts/build-image.sh --binary target/release/fife [--name localhost/fife]
#       [--push HOST[:PORT]/REPO] [--tls-verify=false] [--overlay-name NAME]
#       [--out target/image] [--overlay OUT/install]
#
# What makes the digest a function of the source: every file's mtime is SOURCE_DATE_EPOCH
# (default: the last commit's time) through `buildah bud --timestamp`, owners are 0:0 and
# modes are set here (not inherited from the umask), the tar order is buildah's (sorted), the
# image carries no buildah version label, and gzip is deterministic for a given input.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

binary=
name=localhost/fife
push=
tls_verify=true
overlay_name=
out="$repo/target/image"
overlay=

usage() { sed -n '9,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --push) push=$2; shift 2 ;;
    --tls-verify=*) tls_verify=${1#*=}; shift ;;
    --overlay-name) overlay_name=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --overlay) overlay=$2; shift 2 ;;
    *) echo "build-image: unknown argument '$1'" >&2; usage ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -n "$binary" ] || { echo "build-image: --binary is required (the fife binary to ship)" >&2; usage; }
[ -x "$binary" ] || { echo "build-image: $binary is not an executable: build it first (make image does)" >&2; exit 1; }
for tool in buildah skopeo ldd strip; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
if [ -n "$push" ] && [[ "${push##*/}" == *[:@]* ]]; then
  echo "build-image: --push takes a repository without a tag ($push): the tag is v and the version" >&2
  exit 1
fi

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null) || {
    echo "build-image: not a git checkout: set SOURCE_DATE_EPOCH to the source's time (seconds)" >&2
    exit 1
  }
fi
version=$("$binary" --version | awk '{print $2}')
# Tagged like the release's git tag (v0.1.0), as examples/install names it.
tag_name=v$version
# The image name the install manifests use; the overlay's `images:` entry replaces it.
install_image=$(sed -n 's/^ *image: *\([^ ]*\).*/\1/p' "$repo/examples/install/deployment.yaml" | head -n 1)
install_image=${install_image%@*}
# A tag is a colon after the last slash (a colon before it is a registry's port).
[[ "${install_image##*/}" != *:* ]] || install_image=${install_image%:*}

# Next to the image it pins, and outside examples/install: kustomize refuses an overlay inside
# the directory of its base.
overlay=${overlay:-$out/install}

# === the file tree ===
ctx="$out/context"
rm -rf "$ctx"
mkdir -p "$ctx/usr/local/bin" "$ctx/etc/ssl/certs"
# Debug sections only: a release binary has none, a dev binary shrinks from ~350 MB to ~60 MB;
# symbols stay, so panics still name their functions.
strip --strip-debug -o "$ctx/usr/local/bin/fife" "$binary"
# ldd prints `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and the interpreter as
# `/lib64/ld-linux-x86-64.so.2 (0x…)`: each absolute path is staged where the binary looks.
ldd "$binary" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  mkdir -p "$ctx$(dirname "$lib")"
  cp -L "$lib" "$ctx$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
  'fife:x:65532:65532:fife:/nonexistent:/usr/sbin/nologin' >"$ctx/etc/passwd"
printf '%s\n' 'root:x:0:' 'fife:x:65532:' >"$ctx/etc/group"
# /etc/hosts (which the kubelet mounts) before DNS, as on any Debian host.
printf '%s\n' 'hosts: files dns' >"$ctx/etc/nsswitch.conf"
find "$ctx" -type d -exec chmod 0755 {} +
find "$ctx" -type f -exec chmod 0644 {} +
chmod 0755 "$ctx/usr/local/bin/fife"
find "$ctx" -type f -name 'ld-linux*' -exec chmod 0755 {} +

# === the image ===
# A private store under $out: nothing outside the build directory is touched, and vfs works
# wherever overlay mounts are not allowed (containers, CI sandboxes).
store=(--root "$out/storage" --runroot "$out/run" --storage-driver vfs)
tag="$name:$tag_name"
buildah "${store[@]}" bud --quiet --format oci --layers=false --identity-label=false \
  --timestamp "$SOURCE_DATE_EPOCH" --build-arg "VERSION=$version" \
  -f "$repo/Containerfile" -t "$tag" "$ctx" >/dev/null
rm -rf "$out/oci"
buildah "${store[@]}" push --quiet --digestfile "$out/digest" "$tag" "oci:$out/oci:$tag_name"
buildah "${store[@]}" rmi --all >/dev/null
digest=$(cat "$out/digest")

ref="$name@$digest"
if [ -n "$push" ]; then
  # --preserve-digests: copy the manifest and blobs byte for byte, or fail.
  skopeo copy --quiet --preserve-digests --dest-tls-verify="$tls_verify" \
    --digestfile "$out/pushed-digest" "oci:$out/oci:$tag_name" "docker://$push:$tag_name"
  pushed=$(cat "$out/pushed-digest")
  if [ "$pushed" != "$digest" ]; then
    echo "build-image: $push holds $pushed, not the built $digest" >&2
    exit 1
  fi
  ref="$push@$digest"
fi

# === the overlay ===
mkdir -p "$overlay"
overlay=$(cd "$overlay" && pwd)
shown=${overlay#"$repo"/}
base=$(realpath --relative-to="$overlay" "$repo/examples/install")
cat >"$overlay/kustomization.yaml" <<EOF
# Written by scripts/build-image.sh (make image): examples/install with the image just built,
# pinned by digest. Apply with \`kubectl apply -k $shown\`.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $base
images:
  - name: $install_image
    newName: ${overlay_name:-${push:-$name}}
    digest: $digest
EOF

echo "image: fife $version as $tag_name, $(du -sh "$out/oci" | cut -f1) compressed in $out/oci; overlay: $shown"
echo "$ref"
