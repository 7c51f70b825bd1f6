#!/usr/bin/env bash
# Proves `make image` end to end, on loopback: builds the image from the dev build of `fife`
# (the release build would add minutes of compiling to every CI run; the image is put
# together the same way from either), pushes it to a real registry (Debian's
# docker-registry, on a free port, storage in a temporary directory), pulls it back by
# digest with skopeo, runs the binary inside, builds it again under another umask and
# checks the digest is the same, and applies the generated overlay to the Kubernetes API
# test server to see the Deployment take the image by digest.
#
# The binary runs from the extracted layer through the layer's own dynamic loader, with
# only the layer's libraries, not with `podman run`: a container runtime needs privileges CI
# sandboxes do not grant (on the CI machine, crun fails with "setrlimit RLIMIT_NOFILE:
# Operation not permitted", whatever the --ulimit and --cgroups flags), while this runs
# wherever the test does, as any user, and still fails when the layer lacks a library the
# binary links or the loader it names.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

fife=target/debug/fife
apiserver_bin=target/debug/fife-testkit
for f in "$fife" "$apiserver_bin"; do
  [ -x "$f" ] || { echo "check-image: $f is missing: cargo build -p fife-cli -p fife-testkit" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check-image: $*" >&2; exit 1; }

# === the install names the version being built ===
want_tag="v$("$fife" --version | awk '{print $2}')"
install_image=$(sed -n 's/^ *image: *\([^ ]*\).*/\1/p' examples/install/deployment.yaml | head -n 1)
install_tag=${install_image%@*}
install_tag=${install_tag##*:}
[ "$install_tag" = "$want_tag" ] || fail "examples/install/deployment.yaml names the image tag '$install_tag', the workspace version is $want_tag: set the tag with the version (docs/releasing.md)"

# === a registry on a free loopback port ===
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry="127.0.0.1:$port"
cat >"$work/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $work/registry}
http:
  addr: $registry
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$registry/v2/" >/dev/null || { cat "$work/registry.log" >&2; fail "the registry did not start on $registry"; }

# === build and push ===
start=$(date +%s%N)
scripts/build-image.sh --binary "$fife" --push "$registry/fife" --tls-verify=false \
  --out "$work/build-1" >"$work/build-1.out"
end=$(date +%s%N)
ref=$(tail -n 1 "$work/build-1.out")
digest=${ref#*@}
[[ "$ref" =~ ^$registry/fife@sha256:[0-9a-f]{64}$ ]] || fail "the last line of the build is '$ref', not $registry/fife@sha256:…"
echo "image: built and pushed in $(((end - start) / 1000000)) ms: $ref"

# === pull back by digest ===
skopeo copy --quiet --preserve-digests --src-tls-verify=false "docker://$ref" "oci:$work/pulled:fife"
pulled=$work/pulled
blob() { echo "$pulled/blobs/${1/://}"; }
manifest=$(jq -r '.manifests[0].digest' "$pulled/index.json")
[ "$manifest" = "$digest" ] || fail "pulled manifest $manifest, pushed $digest"
[ "sha256:$(sha256sum "$(blob "$manifest")" | cut -d' ' -f1)" = "$digest" ] || fail "the pulled manifest does not hash to $digest"
config=$(blob "$(jq -r .config.digest "$(blob "$manifest")")")
[ "$(jq -r .config.User "$config")" = 65532:65532 ] || fail "the image runs as '$(jq -r .config.User "$config")', not 65532:65532"
[ "$(jq -c .config.Entrypoint "$config")" = '["/usr/local/bin/fife"]' ] || fail "the entrypoint is $(jq -c .config.Entrypoint "$config")"
mapfile -t layers < <(jq -r '.layers[].digest' "$(blob "$manifest")")
[ "${#layers[@]}" = 1 ] || fail "the image has ${#layers[@]} layers, expected one"
size=$(jq '[.layers[].size] | add' "$(blob "$manifest")")
echo "image: pulled back by digest; one layer of $((size / 1024 / 1024)) MiB compressed"

# === the binary inside runs, with the layer's libraries only ===
root=$work/rootfs
mkdir -p "$root"
tar -xzf "$(blob "${layers[0]}")" -C "$root"
grep -q '^fife:x:65532:65532:' "$root/etc/passwd" || fail "the image's /etc/passwd has no entry for uid 65532"
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || fail "the image has no CA bundle"
# The loader the kernel starts for the binary (its PT_INTERP) must be in the layer.
interp=$(readelf -l "$root/usr/local/bin/fife" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
loader=$root$interp
if [ -z "$interp" ] || [ ! -f "$loader" ]; then fail "the layer lacks the binary's dynamic loader '$interp'"; fi
libpath=$(find "$root" -name '*.so*' -type f -printf '%h\n' | sort -u | paste -sd:)
# Whatever the layer lacks the loader would find on this host: every library must resolve
# inside the layer.
outside=$("$loader" --library-path "$libpath" --list "$root/usr/local/bin/fife" | grep '=>' | grep -v "=> $root/" || true)
[ -z "$outside" ] || fail "libraries the image lacks (resolved from the host): $outside"
want=$("$fife" --version)
got=$("$loader" --library-path "$libpath" "$root/usr/local/bin/fife" --version)
[ "$got" = "$want" ] || fail "the image's fife --version says '$got', the build says '$want'"
echo "image: the binary in the layer runs: $got"

# === same source, same digest ===
again=$( (umask 077 && scripts/build-image.sh --binary "$fife" --out "$work/build-2") | tail -n 1)
[ "${again#*@}" = "$digest" ] || fail "building again gave ${again#*@}, the first build $digest: the image is not reproducible"
echo "image: built again (other directory, umask 077): same digest"

# === the overlay pins the Deployment to the digest ===
"$apiserver_bin" apiserver --listen 127.0.0.1:0 --kubeconfig "$work/kubeconfig" >"$work/apiserver.out" 2>"$work/apiserver.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/apiserver.out" ] && break; sleep 0.1; done
[ -s "$work/apiserver.out" ] || { cat "$work/apiserver.log" >&2; fail "the API test server did not start"; }
# The test server serves no RBAC kinds and no PersistentVolumeClaims: a kustomization on top
# of the generated overlay drops them, and everything else is applied as written.
mkdir -p "$work/apply"
{
  echo "resources: [$(realpath --relative-to="$work/apply" "$work/build-1/install")]"
  echo "patches:"
  for object in rbac.authorization.k8s.io/v1,ClusterRole,fife-controller \
                rbac.authorization.k8s.io/v1,ClusterRoleBinding,fife-controller \
                rbac.authorization.k8s.io/v1,Role,fife-controller-leader \
                rbac.authorization.k8s.io/v1,RoleBinding,fife-controller-leader \
                v1,PersistentVolumeClaim,fife-audit; do
    IFS=, read -r api kind name <<<"$object"
    # shellcheck disable=SC2016 # `$patch` is kustomize's directive, not a shell variable.
    printf '  - patch: |\n      $patch: delete\n      apiVersion: %s\n      kind: %s\n      metadata: {name: %s}\n' "$api" "$kind" "$name"
  done
} >"$work/apply/kustomization.yaml"
export KUBECONFIG=$work/kubeconfig
kubectl apply -k "$work/apply" >/dev/null
image=$(kubectl -n fife-system get deployment fife-controller -o jsonpath='{.spec.template.spec.containers[0].image}')
[ "$image" = "$ref" ] || fail "kubectl apply -k of the overlay gave the Deployment image '$image', not $ref"
echo "image: kubectl apply -k of the overlay: Deployment fife-system/fife-controller runs $image"
