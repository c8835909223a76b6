#!/usr/bin/env bash
# The edge extra on aarch64, as close to a Pi (64-bit Raspberry Pi OS = Debian bookworm arm64)
# as an x86 machine allows: a bookworm arm64 root made with debootstrap, the edge extra's
# aarch64 wheels (pip download --platform, installed with --target), `wbc-edge classify`
# on samples/frames and `wbc-edge verify` (the bundle's self-test) run by qemu-user. Proves
# the wheels exist, the code runs on aarch64 and its kernels agree with the float model;
# its timings are the emulator's, not a Pi's. Too slow for CI (see docs/install-pi.md).
# QEMU_CPU (default cortex-a72, a Pi 4's CPU) picks the emulated CPU. VERIFY_RUNTIMES (default
# "litert onnxruntime") are the runtimes whose artifacts are verified: OpenVINO's verify of its
# two artifacts took 22 minutes under emulation (qemu's max CPU), so add it on purpose.
#
#   sudo tools/aarch64_check.sh [ROOT_DIR]        # default /tmp/wbc-arm64; reused when present
#
# Needs: debootstrap, qemu-user-static (apt), dpkg-deb, network to deb.debian.org and PyPI.
# No binfmt_misc needed: the arm64 python is started through qemu-aarch64-static -L ROOT.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${1:-/tmp/wbc-arm64}"
PY=python3.11
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
HOST_PY="${HOST_PY:-python3}"
QEMU="$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)"
[ -n "$QEMU" ] || { echo "aarch64_check: install qemu-user-static (apt)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "aarch64_check: install debootstrap (apt)" >&2; exit 2; }
start=$(date +%s)

if [ ! -x "$ROOT/usr/bin/$PY" ]; then
  echo "== debootstrap bookworm arm64 (first stage) into $ROOT"
  debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$ROOT" "$MIRROR"
  # The second stage would run arm64 dpkg (binfmt_misc); unpacking the .debs is enough to run
  # python, so unpack them on the host.
  for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
fi
echo "== arm64 python: $("$QEMU" -L "$ROOT" "$ROOT/usr/bin/$PY" -c 'import platform; print(platform.machine(), platform.python_version())')"

SITE="$ROOT/opt/wbc-edge-site"
if [ ! -d "$SITE/numpy" ]; then
  echo "== the edge extra's aarch64 wheels (from pyproject.toml)"
  mapfile -t REQS < <("$HOST_PY" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
from packaging.requirements import Requirement
target = {"python_version": "3.11", "python_full_version": "3.11.2", "platform_machine": "aarch64",
          "sys_platform": "linux", "platform_system": "Linux", "implementation_name": "cpython"}
for text in tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["edge"]:
    req = Requirement(text)  # bookworm arm64: CPython 3.11 on aarch64
    if req.marker is None or req.marker.evaluate(target):
        print(f"{req.name}{req.specifier}")
EOF
  )
  echo "   ${REQS[*]}"
  PLAT=(--python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none
        --only-binary=:all: --platform manylinux2014_aarch64)
  for glibc in 17 24 26 27 28 29 31 32 34 35 36; do  # bookworm has glibc 2.36
    PLAT+=(--platform "manylinux_2_${glibc}_aarch64")
  done
  "$HOST_PY" -m pip download -q "${PLAT[@]}" -d "$ROOT/opt/wheels" "${REQS[@]}"
  "$HOST_PY" -m pip install -q --no-deps --no-index "${PLAT[@]}" --target "$SITE" \
    "$ROOT"/opt/wheels/*.whl
  ls "$ROOT/opt/wheels"
fi

# qemu-user shows the host's (x86) /proc/cpuinfo, on which LiteRT's and ONNX Runtime's CPU
# probing (cpuinfo) crash; with -L ROOT it reads ROOT/proc/cpuinfo instead: a Pi 4's.
QEMU_CPU="${QEMU_CPU:-cortex-a72}"
mkdir -p "$ROOT/proc" "$ROOT/sys/devices/system/cpu"
: > "$ROOT/proc/cpuinfo"
for n in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$n" >> "$ROOT/proc/cpuinfo"
done
printf 'Revision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4 (emulated)\n' >> "$ROOT/proc/cpuinfo"
for f in possible present online; do echo 0-3 > "$ROOT/sys/devices/system/cpu/$f"; done

# The checkout's folders under the one import name, as pyproject's package-dir maps them.
PKG="$ROOT/opt/wbc-edge-pkg"
mkdir -p "$PKG/wbc_edge"
for part in core edge_app; do ln -sfn "$REPO/$part" "$PKG/wbc_edge/$part"; done
VERIFY_RUNTIMES="${VERIFY_RUNTIMES:-litert onnxruntime}"

run() {
  env -i HOME=/tmp PATH=/usr/bin:/bin PYTHONPATH="$SITE:$PKG" QEMU_CPU="${QEMU_CPU:?}" \
    "$QEMU" -L "$ROOT" "$ROOT/usr/bin/$PY" "$@"
}
echo "== imports on aarch64 (qemu-user $("$QEMU" --version | head -1 | awk '{print $3}'))"
for mod in numpy cv2 PIL ai_edge_litert.interpreter openvino onnxruntime; do
  if out=$(run -c "import $mod as m; print(getattr(m, '__version__', 'ok'))" 2>&1 | tail -1); then
    echo "   $mod: $out"
  else
    echo "   $mod: FAILED to import under qemu-user ($out)"
  fi
done
cd "$REPO"
summary=()
declare -A VERIFY=([litert]=tflite-int8,tflite-fp32 [onnxruntime]=onnx-fp32
                   [openvino]=openvino-int8,openvino-fp16)
for runtime in litert onnxruntime openvino; do
  # OpenVINO's JIT crashes on the emulated cortex-a72: then try qemu's "max" CPU with the
  # host's /proc and /sys files (LiteRT and ONNX Runtime need the Pi's; OpenVINO does not).
  for cpu in "$QEMU_CPU" max; do
    [ "$cpu" = max ] && mv "$ROOT/proc" "$ROOT/proc.pi" && mv "$ROOT/sys" "$ROOT/sys.pi"
    echo "== wbc-edge classify --runtime $runtime on samples/frames (qemu-user, cpu $cpu)"
    t0=$(date +%s)
    rc=0
    QEMU_CPU="$cpu" run -m wbc_edge.edge_app.cli classify --model models/default \
      --source samples/frames --runtime "$runtime" --stats || rc=$?
    vrc="not run (VERIFY_RUNTIMES)"
    if [ "$rc" = 0 ] && [[ " $VERIFY_RUNTIMES " == *" $runtime "* ]]; then
      echo "== wbc-edge verify (${VERIFY[$runtime]}): the bundle's self-test on aarch64's kernels"
      vrc=0
      QEMU_CPU="$cpu" run -m wbc_edge.edge_app.cli verify --model models/default \
        --artifact "${VERIFY[$runtime]}" || vrc=$?
    fi
    [ "$cpu" = max ] && mv "$ROOT/proc.pi" "$ROOT/proc" && mv "$ROOT/sys.pi" "$ROOT/sys"
    if [ "$rc" = 0 ]; then
      summary+=("$runtime: classify ok, verify exit $vrc, on emulated $cpu, $(( $(date +%s) - t0 )) s")
      break
    fi
    summary+=("$runtime: FAILED on emulated $cpu (exit $rc) after $(( $(date +%s) - t0 )) s")
  done
done
echo "== aarch64_check: done in $(( $(date +%s) - start )) s"
printf '   %s\n' "${summary[@]}"
