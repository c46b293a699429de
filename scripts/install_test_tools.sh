#!/usr/bin/env bash
# Make sure the real clients and servers the tests drive are installed (Debian packages):
# HTTP clients (curl, wget, wget2, aria2, axel; rclone and lftp, which walk folders; wrk, a
# load of keep-alive connections), ffmpeg, GNU tar's peers for folder archives (bsdtar,
# unzip, 7z),
# HAProxy and nginx (slice module), openssl (a test certificate for HAProxy's TLS), FUSE
# and Debian's python3-fusepy (the fault-injecting test filesystem under
# tests/support/faultfs.py), Debian's python3-gdal (GDAL's /vsicurl/, a folder walker),
# and the headless browser for the browse page (Debian's
# chromium; Playwright drives it, `playwright install` is never needed).
# Installs what is missing when it can (root or sudo); otherwise says what to install,
# and those tests skip (outside CI) or fail (in CI, where CI is set).
set -euo pipefail

declare -A package_of=(
  [curl]=curl [wget]=wget [wget2]=wget2 [aria2c]=aria2 [axel]=axel [ffmpeg]=ffmpeg [ffprobe]=ffmpeg
  [chromium]=chromium [nginx]=nginx [haproxy]=haproxy [openssl]=openssl [fusermount3]=fuse3
  [rclone]=rclone [lftp]=lftp [wrk]=wrk [bsdtar]=libarchive-tools [unzip]=unzip [7z]=p7zip-full
)
missing=()
for tool in "${!package_of[@]}"; do
  # haproxy and nginx live in /usr/sbin, which is not on every user's PATH.
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("${package_of[$tool]}")
done
# Not a program: the module Debian's /usr/bin/python3 runs the test filesystem with.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import fusepy' 2>/dev/null || missing+=(python3-fusepy)
# Nor this: GDAL's Python bindings, which walk folders through /vsicurl/ in the tests.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import osgeo.gdal' 2>/dev/null || missing+=(python3-gdal)
[ ${#missing[@]} -eq 0 ] && exit 0
readarray -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "warning: missing test clients; install with: apt-get install ${packages[*]}" >&2
  exit 0
fi
echo "installing test clients: ${packages[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${packages[@]}" >/dev/null
