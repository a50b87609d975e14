#!/usr/bin/env bash
# Installs what crowdgrid needs on Debian 12 (run as root, or with sudo available).
#   scripts/setup.sh          build and run dependencies
#   scripts/setup.sh --test   also what the test suite needs (Mosquitto, VictoriaMetrics)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install a Rust toolchain >= 1.85 (https://rustup.rs or Debian's rustup package) and re-run." >&2
  exit 1
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; else
    echo "setup: run as root or install sudo" >&2; exit 1
  fi
fi

# OpenCV (video decode) and clang (the opencv crate's binding generator); Python to fetch the pinned ONNX Runtime.
pkgs=(build-essential pkg-config ca-certificates curl libopencv-dev clang libclang-dev python3 python3-venv python3-pip)
if [ "$want_test" -eq 1 ]; then
  # Brokers and the time-series server for the integration tests; Chromium (+ a CJK font, zone names
  # are Chinese) for the browser tests.
  pkgs+=(mosquitto mosquitto-clients openssl victoria-metrics chromium fonts-wqy-microhei)
  # A clustered broker for the cluster test: three NATS servers with JetStream speaking MQTT.
  pkgs+=(nats-server)
  # A loopback RTSP server for the capture test (tests/data/rtsp_server.py runs on Debian's /usr/bin/python3).
  pkgs+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start their own services on standard ports; the tests start private instances
  # on free ports instead, so leave the system ones as they were (mosquitto on 1883 is used by a test).
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo_cmd systemctl disable --now victoria-metrics >/dev/null 2>&1 || true
    $sudo_cmd systemctl disable --now nats-server >/dev/null 2>&1 || true
  fi
fi

# A Mosquitto on 127.0.0.1:1883 is part of the test environment (one test runs against it).
if [ "$want_test" -eq 1 ] && ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "setup: starting mosquitto on 127.0.0.1:1883"
  $sudo_cmd mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || $sudo_cmd mosquitto -d -p 1883
fi
# The pinned ONNX Runtime library (and with --test the test data and the Python reference) in .cache/.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "$want_test" -eq 1 ]; then "$here/scripts/vision-deps.sh" --test; else "$here/scripts/vision-deps.sh"; fi
if [ "$want_test" -eq 1 ]; then
  # playwright-core 1.61 declares Node >= 18: Debian 12's own nodejs (18) runs it.
  node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$node_major" -lt 18 ]; then
    echo "setup: the browser tests need Node.js >= 18; found $(node --version 2>/dev/null || echo none)." >&2
    exit 1
  fi
  here=$(cd "$(dirname "$0")/.." && pwd)
  if [ ! -d "$here/tests/browser/node_modules/playwright-core" ] || [ ! -d "$here/tests/browser/node_modules/axe-core" ]; then
    echo "setup: npm ci in tests/browser"
    npm ci --prefix "$here/tests/browser" --no-audit --no-fund >/dev/null
  fi
fi
echo "setup: ok"
