#!/bin/sh
# Installs what `npm start`, `npm test` and `npm run bench` need and says what it installs.
# Usage: sh appliance/setup.sh [start|test|bench]   (default: start)
# npm dependencies: installed from package-lock.json when node_modules is missing or was installed from
# another lock file. (`npm install`, not `npm ci`: npm 11 leaves other platforms' optional packages
# out of the lock file and `npm ci` then refuses it; `npm install --no-save` installs the locked versions.)
# Debian packages: installed with apt-get when missing and running as root; otherwise named, and we stop.
set -e
purpose="${1:-start}"
cd "$(dirname "$0")/.."

stamp=node_modules/.yinxin-installed
lock_sum=$(cksum package-lock.json package.json | cksum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  echo "yinxin setup: installing npm dependencies (npm install, from package-lock.json) ..."
  npm install --no-save --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > "$stamp"
fi

# Debian packages each purpose needs. softhsm2: the embedded HSM; opensc: pkcs11-tool; poppler-utils (pdfsig) and qpdf check sealed PDFs;
# openssl, gnutls-bin, libnss3-tools: the external validators the tests use.
case "$purpose" in
  start) packages="softhsm2 openssl" ;;
  test)  packages="softhsm2 opensc openssl gnutls-bin libnss3-tools poppler-utils qpdf" ;;
  bench) packages="softhsm2 opensc openssl gnutls-bin poppler-utils qpdf wrk" ;;
  *) echo "yinxin setup: unknown purpose '$purpose' (start, test or bench)" >&2; exit 2 ;;
esac

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "yinxin setup: installing Debian packages:$missing (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    echo "yinxin setup: installed$missing"
  else
    echo "yinxin setup: missing Debian packages:$missing" >&2
    echo "  install them as root:  apt-get install$missing" >&2
    exit 1
  fi
fi
