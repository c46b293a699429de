#!/usr/bin/env bash
# Make a container engine ready for tests/container/ (root only; elsewhere those tests
# skip, and fail in CI):
# - Debian's podman, buildah, runc, mmdebstrap, uidmap, slirp4netns and podman-compose
#   (for the shipped compose.yaml), when missing;
# - the engine settings a VM like CI's needs, written only where missing
#   (/etc/containers/containers.conf): fixed ulimits, as the VM lacks CAP_SYS_RESOURCE to
#   raise them, and runc, as crun fails on its hybrid cgroups;
# - the Dockerfile's base image, built once with mmdebstrap (Debian 12, python3.11,
#   python3-venv, ca-certificates) and tagged with the exact name its FROM lines use,
#   since no container registry is reachable; later runs find it by that name.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "container engine: not root; the container tests will skip" >&2
  exit 0
fi

missing=()
for tool in podman buildah runc mmdebstrap newuidmap slirp4netns podman-compose; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "container engine: installing podman buildah runc mmdebstrap uidmap slirp4netns podman-compose" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman buildah runc mmdebstrap uidmap slirp4netns podman-compose >/dev/null
fi

# Add "key = value" under [table] of containers.conf unless the key is set there already.
conf=/etc/containers/containers.conf
ensure_setting() {
  local table=$1 key=$2 value=$3
  [ -e "$conf" ] || : >"$conf"
  if awk -v t="[$table]" -v k="$key" '
      /^\[/ { inside = ($0 == t) }
      inside && $1 == k { found = 1 }
      END { exit !found }' "$conf"; then
    return
  fi
  if grep -qx "\[$table\]" "$conf"; then
    sed -i "/^\[$table\]\$/a $key = $value" "$conf"
  else
    printf '\n[%s]\n%s = %s\n' "$table" "$key" "$value" >>"$conf"
  fi
}
ensure_setting containers default_ulimits '["nofile=20000:20000","nproc=32768:32768"]'
ensure_setting engine runtime '"runc"'

base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
case "$base" in
  */*) reference=$base ;;
  *) reference=docker.io/library/$base ;;
esac
if podman image exists "$reference"; then
  exit 0
fi
echo "container engine: building $reference with mmdebstrap (Debian 12)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# As slim images do: no documentation, manual pages or locales but English.
mmdebstrap --quiet --variant=minbase \
  --include=python3.11,python3-venv,python-is-python3,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/en*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  bookworm "$work/base.tar" http://deb.debian.org/debian
podman import --quiet "$work/base.tar" "$reference" >/dev/null
