#!/usr/bin/env bash
# The real servers and clients the integration tests drive (Debian packages), installed
# if missing: `npm test` runs this first (pretest), and so does .ci/run.
# popa3d (a legacy backend) conflicts with dovecot-pop3d in apt; its harness unpacks
# it with `apt-get download` + `dpkg -x` instead.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have dovecot || need+=(dovecot-core dovecot-pop3d)
[ -e /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
have redis-server || need+=(redis-server)
have haproxy || need+=(haproxy)
have testssl || need+=(testssl.sh)
have curl || need+=(curl)
have openssl || need+=(openssl)
have python3 || need+=(python3)
have setpriv || need+=(util-linux)
have pgrep || need+=(procps)
# Operator tooling checked against the shipped artefacts (docs/prometheus, fail2ban, logrotate, systemd).
have promtool || need+=(prometheus)
have fail2ban-regex || need+=(fail2ban)
have logrotate || need+=(logrotate)
have systemd-analyze || need+=(systemd)
[ ${#need[@]} -eq 0 ] && exit 0
# De-duplicate.
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "npm test needs these Debian packages: ${need[*]}" >&2
  echo "install them as root: apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing test dependencies: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" ca-certificates >/dev/null
