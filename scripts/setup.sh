#!/usr/bin/env bash
# Installs every Debian package gyre needs to build, test and benchmark.
# Idempotent: installs only what is missing; runs `apt-get update` only when a
# package is unknown to apt; waits up to 10 minutes for another apt/dpkg run.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libtbb-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libeigen3-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev
  python3-matplotlib  # scripts/plot-metrics.py and its test
  liblinear-tools  # bench/ml_bench.py: liblinear-train beside gyre train logreg
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive

unknown=0
for p in "${missing[@]}"; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then unknown=1; break; fi
done
if [ "$unknown" -eq 1 ]; then
  echo "setup: refreshing package lists"
  $SUDO apt-get "${apt_opts[@]}" update
fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"
