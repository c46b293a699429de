#!/usr/bin/env bash
# Install what `make bench` needs: nginx, wrk and rclone from apt (only when missing), and the
# benchmark's own virtualenv bench/.venv (matplotlib, uvicorn + starlette).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"

declare -A package_of=([nginx]=nginx-light [wrk]=wrk [curl]=curl [rclone]=rclone [fincore]=util-linux [ss]=iproute2 [pgrep]=procps)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("${package_of[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo)
  else
    echo "bench: missing ${missing[*]}; install them with apt-get (needs root)" >&2
    exit 1
  fi
  echo "bench: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

stamp=".venv/.installed-$(cksum < requirements.txt | cut -d' ' -f1)"
if [ ! -e "$stamp" ]; then
  echo "bench: creating bench/.venv" >&2
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null
  .venv/bin/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -c 'import matplotlib, starlette, uvicorn' # fail here if the install did not
  rm -f .venv/.installed-* && touch "$stamp"
fi
