#!/usr/bin/env bash
# Installs what Fife's tests and benchmarks need beyond the Rust toolchain, from the
# package registries only (Debian, PyPI). Safe to run again: it skips what is present.
set -euo pipefail

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
# promtool checks the alert rules (`make alerts-check`); Debian ships it in the same package.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
# The container image (`make image`, checked by `make image-check`): buildah builds it, skopeo
# pushes and pulls it, docker-registry is the registry the check pushes to (where systemd
# runs, Debian also starts it as a service on port 5000; the check runs its own), the CA
# bundle goes into the image, strip trims the binary (readelf checks it), jq reads manifests.
command -v buildah >/dev/null 2>&1 || need_apt+=(buildah)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
command -v strip >/dev/null 2>&1 || need_apt+=(binutils)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The dashboard's browser tests (tests/e2e/cli/dashboard.rs) drive headless
# Chromium through chromedriver; fonts-dejavu-core gives its screenshots legible text.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
[ -d /usr/share/fonts/truetype/dejavu ] || need_apt+=(fonts-dejavu-core)
if [ "${FIFE_BENCH_DEPS:-0}" = 1 ]; then
  command -v Rscript >/dev/null 2>&1 || need_apt+=(r-base-core)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "${FIFE_BENCH_DEPS:-0}" = 1 ]; then
  python3 -c 'import numpy, scipy' 2>/dev/null || python3 -m pip install -q numpy scipy
fi
