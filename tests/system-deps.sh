#!/usr/bin/env bash
# Install the Debian packages listed in $1 that are missing. As root it installs
# them; otherwise it uses sudo when that works without a password, and else
# prints the one command to run.
set -euo pipefail
list=${1:?usage: system-deps.sh PACKAGE-LIST}
missing=()
while read -r pkg; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done < <(grep -vE '^\s*(#|$)' "$list" | tr -s ' \t' '\n' | grep .)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "== installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
elif sudo -n true 2>/dev/null; then
  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "missing Debian packages; run once:  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
