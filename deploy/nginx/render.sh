#!/usr/bin/env sh
# Render the nginx config for DL_OFFLOAD=x-accel to stdout, e.g.
#   DL_NGINX_LISTEN=80 DL_NGINX_UPSTREAM=127.0.0.1:8000 DL_DATA_ROOT=/srv/files \
#     deploy/nginx/render.sh > /etc/nginx/conf.d/download.conf
# Only these three placeholders are replaced; nginx's own $variables stay as they are.
set -eu
: "${DL_NGINX_LISTEN:?set DL_NGINX_LISTEN}" "${DL_NGINX_UPSTREAM:?set DL_NGINX_UPSTREAM}"
: "${DL_DATA_ROOT:?set DL_DATA_ROOT}"
DL_DATA_ROOT=$(realpath "$DL_DATA_ROOT")  # nginx must see the path the service resolves
export DL_NGINX_LISTEN DL_NGINX_UPSTREAM DL_DATA_ROOT
exec envsubst '${DL_NGINX_LISTEN} ${DL_NGINX_UPSTREAM} ${DL_DATA_ROOT}' \
  < "$(dirname "$0")/download.conf.template"
