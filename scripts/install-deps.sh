#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, and nothing when it
# is already there: promtool and a real Prometheus (Debian's `prometheus`),
# amtool (`prometheus-alertmanager`), and docker-compose v1 to validate the
# compose file on paper (there is no Docker engine to run it); kubectl
# (Debian's `kubernetes-client`) for `kubectl kustomize`, and python3-venv for
# the pinned kubernetes-validate (scripts/check-k8s.sh); ip (iproute2) and nft
# (nftables) for the network-namespace fault tests; Debian's chromium for the
# status-page test in a real browser (driven over the DevTools protocol on a
# pipe: no chromedriver, no npm).
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
# De-duplicate (prometheus may be listed twice).
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "install-deps: installing ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start services on install where an init system runs;
# the tests start their own instances on free ports, so stop those if any.
$SUDO systemctl stop prometheus prometheus-alertmanager 2>/dev/null || true
