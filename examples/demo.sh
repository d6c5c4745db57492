#!/usr/bin/env bash
# The README's first command: the whole job, end to end, on one machine.
# Installs what is missing (Debian 12, apt-get as root or through sudo),
# builds the C core into build/ (nothing is recompiled when it is up to date),
# starts the local TPP emulator, runs examples/release-approval.lua against it
# and stops the emulator again, whatever happens.
#
#   bash examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/deps.sh
# shellcheck disable=SC2086 # one word per package
pq_install_deps $PQ_PKGS_DEMO || { echo "demo: installing the dependencies failed" >&2; exit 1; }

echo "== build: the C core into build/ (cmake)"
LOG=$(mktemp)
if ! { [ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo; } >"$LOG" 2>&1 ||
   ! cmake --build build -j"$(nproc)" >>"$LOG" 2>&1; then
  tail -n 40 "$LOG" >&2
  echo "demo: the build failed (full log: $LOG)" >&2
  exit 1
fi
rm -f "$LOG"

WORK=$(mktemp -d)
EMU_PID=""
stop() {
  if [ -n "$EMU_PID" ]; then
    kill "$EMU_PID" 2>/dev/null || true
    wait "$EMU_PID" 2>/dev/null || true
    echo "== emulator stopped"
  fi
  rm -rf "$WORK"
}
trap stop EXIT
trap 'exit 130' INT TERM

# The emulator prints one line, "READY url=... ca=...", once it listens.
exec 3< <(exec python3 emulator/tpp_emulator.py --port 0 --control --max-lifetime 900 2>"$WORK/emulator.log")
EMU_PID=$!
if ! read -r -t 60 ready url ca <&3 || [ "$ready" != READY ]; then
  cat "$WORK/emulator.log" >&2
  echo "demo: the emulator did not start" >&2
  exit 1
fi
URL=${url#url=}
echo "== emulator: a local stand-in for TPP at $URL"

# The sample Key Use Approver of emulator/state.json (test data, protects nothing).
printf '%s\n' approver-pass-1 >"$WORK/approver.password"
chmod 600 "$WORK/approver.password"

mkdir "$WORK/release"
RELEASE_DIR=$WORK/release PREQUALIFY_URL=$URL PREQUALIFY_CA_FILE=${ca#ca=} \
  PREQUALIFY_PASSWORD_FILE=$WORK/approver.password lua5.4 examples/release-approval.lua
