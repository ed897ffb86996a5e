#!/usr/bin/env bash
# Refresh the vendored widget JavaScript in book/_static/widgets from the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
(cd "$work" && npm install --silent --no-audit --no-fund @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8)
dist="$work/node_modules/@jupyter-widgets/html-manager/dist"
dest=book/_static/widgets
rm -f "$dest"/*.js "$dest"/*.woff "$dest"/*.woff2
cp "$dist/embed-amd.js" "$work/node_modules/requirejs/require.js" "$dest/"
# only the web-font formats a current browser asks for
cp "$dist"/*.woff2 "$dist"/*.woff "$dest/"
rm -rf "$work"
echo "updated $dest"
