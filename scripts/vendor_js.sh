#!/usr/bin/env bash
# Refresh the JavaScript libraries the web UI (`dlprov ui`) ships in the package.
#
# Needs npm and network access, once, by a maintainer; installing, testing and running dlprov
# need neither (the files are committed under src/dlprov/ui/static/vendor/).
#
#   scripts/vendor_js.sh                      # the pinned versions below
#   UPLOT=1.6.32 HTMX=2.0.11 scripts/vendor_js.sh
#
# Each library lands as NAME-VERSION.min.js (and .css) beside LICENSE-NAME-VERSION.txt; the
# templates name the files, so a new version also means editing
# src/dlprov/ui/templates/base.html (the VENDOR names) and removing the old files.
set -euo pipefail

UPLOT=${UPLOT:-1.6.32}
CYTOSCAPE=${CYTOSCAPE:-3.35.0}
CYTOSCAPE_DAGRE=${CYTOSCAPE_DAGRE:-4.0.1}   # bundles @dagrejs/dagre 3 (MIT) inside
DAGRE=${DAGRE:-3.0.0}                        # only for its license text
HTMX=${HTMX:-2.0.11}

here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/src/dlprov/ui/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v npm >/dev/null || { echo "vendor_js.sh: npm is needed (apt-get install npm)" >&2; exit 1; }

fetch() {  # fetch PACKAGE VERSION -> unpacked into $work/PACKAGE/package
    local dir="$work/${1//\//_}"
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$1@$2" >/dev/null && tar xzf ./*.tgz)
    echo "$dir/package"
}

mkdir -p "$out"
p=$(fetch uplot "$UPLOT")
cp "$p/dist/uPlot.iife.min.js" "$out/uplot-$UPLOT.min.js"
cp "$p/dist/uPlot.min.css" "$out/uplot-$UPLOT.min.css"
cp "$p/LICENSE" "$out/LICENSE-uplot-$UPLOT.txt"

p=$(fetch cytoscape "$CYTOSCAPE")
cp "$p/dist/cytoscape.min.js" "$out/cytoscape-$CYTOSCAPE.min.js"
cp "$p/LICENSE" "$out/LICENSE-cytoscape-$CYTOSCAPE.txt"

p=$(fetch cytoscape-dagre "$CYTOSCAPE_DAGRE")
# the source-map comment would make browsers' tools ask for a file we do not ship
sed '/sourceMappingURL/d' "$p/dist/cytoscape-dagre.min.js" > "$out/cytoscape-dagre-$CYTOSCAPE_DAGRE.min.js"
cp "$p/LICENSE" "$out/LICENSE-cytoscape-dagre-$CYTOSCAPE_DAGRE.txt"

p=$(fetch @dagrejs/dagre "$DAGRE")
cp "$p/LICENSE" "$out/LICENSE-dagre-$DAGRE.txt"

p=$(fetch htmx.org "$HTMX")
cp "$p/dist/htmx.min.js" "$out/htmx-$HTMX.min.js"
cp "$p/LICENSE" "$out/LICENSE-htmx-$HTMX.txt"

sed -i '/sourceMappingURL/d' "$out"/*.js
ls -l "$out"
