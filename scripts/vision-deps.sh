#!/usr/bin/env bash
# Vision dependencies that live in the project, not the system (called by scripts/setup.sh):
#   - the pinned ONNX Runtime shared library, extracted from the PyPI wheel into .cache/onnxruntime/
#     (the edge binary looks there by itself; see edge/src/vision/runtime.rs for the search order);
#   - the demo's camera video in .cache/data/ (vtest.avi from Debian's opencv-doc);
#   - with --test: the darknet stills in .cache/data/ and a Python venv in .cache/venv/ with onnxruntime,
#     opencv-python-headless and numpy for the reference checks and the benchmark's Python pipeline, and
#     schemathesis for the OpenAPI check against the live server.
# Idempotent: each step is skipped when its output is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

ort_dir=.cache/onnxruntime/$ORT_VERSION
ort_lib=$ort_dir/libonnxruntime.so.$ORT_VERSION
if [ ! -f "$ort_lib" ]; then
  echo "setup: fetching onnxruntime==$ORT_VERSION (wheel from PyPI) for libonnxruntime.so"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "onnxruntime==$ORT_VERSION"
  mkdir -p "$ort_dir"
  python3 - "$tmp" "$ort_dir" "$ORT_VERSION" <<'PY'
import glob, sys, zipfile
tmp, out, ver = sys.argv[1:]
wheel = glob.glob(f"{tmp}/onnxruntime-{ver}-*.whl")[0]
name = f"onnxruntime/capi/libonnxruntime.so.{ver}"
with zipfile.ZipFile(wheel) as z, open(f"{out}/libonnxruntime.so.{ver}", "wb") as f:
    f.write(z.read(name))
PY
  rm -rf "$tmp"
fi
echo "setup: onnxruntime at $ort_lib"

# The demo's gate camera plays OpenCV's sample video (vtest.avi from Debian's opencv-doc); the tests also
# use three darknet stills. Only these files are extracted from the packages (~99 MB of .deb); the
# packages are not installed.
data=.cache/data
mkdir -p "$data"
fetch() { # fetch PACKAGE...: download the .deb files into $tmp
  (cd "$tmp" && { apt-get download "$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "$@" >/dev/null; }; })
}
if [ ! -f "$data/vtest.avi" ]; then
  tmp=$(mktemp -d)
  fetch opencv-doc
  dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb | tar -x -C "$tmp" ./usr/share/doc/opencv-doc/examples/data/vtest.avi
  cp "$tmp/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$data/"
  rm -rf "$tmp"
fi
echo "setup: demo video at $data/vtest.avi"

[ "$want_test" -eq 1 ] || exit 0

if [ ! -f "$data/dog.jpg" ]; then
  tmp=$(mktemp -d)
  fetch darknet
  dpkg-deb --fsys-tarfile "$tmp"/darknet_*.deb | tar -x -C "$tmp" ./usr/share/darknet/data/person.jpg \
    ./usr/share/darknet/data/dog.jpg ./usr/share/darknet/data/kite.jpg
  cp "$tmp"/usr/share/darknet/data/{person,dog,kite}.jpg "$data/"
  rm -rf "$tmp"
fi
echo "setup: test data in $data"

venv=.cache/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import onnxruntime, cv2, numpy, schemathesis' 2>/dev/null; then
  echo "setup: Python reference environment in $venv"
  python3 -m venv "$venv"
  # schemathesis: the OpenAPI document checked against the live server (tests/schemathesis.rs).
  "$venv/bin/pip" install --quiet "onnxruntime==$ORT_VERSION" "opencv-python-headless==4.10.0.84" "numpy<2.3" \
    "schemathesis==4.32.5"
fi
echo "setup: python reference at $venv/bin/python"
