# Sourced by the device scripts (run from the repository root on the GPU
# machine): $OUT for results, the bundle's libraries and binaries
# (scripts/device-bundle.sh -> .devbundle, $B), and two helpers:
#   step TEXT...           prints a section header with the seconds so far
#   limited SECONDS CMD... runs CMD for at most SECONDS, or what is left of
#                          $BUDGET (seconds for the whole script)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/.devbundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B=$PWD/.devbundle/bin
START=$(date +%s)
BUDGET=${BUDGET:-420}

step() { echo; echo "=== $* ($(( $(date +%s) - START )) s) ==="; }
limited() {
  local want=$1; shift
  local left=$(( BUDGET - ($(date +%s) - START) ))
  [ "$left" -lt "$want" ] && want=$left
  if [ "$want" -le 5 ]; then echo "SKIPPED (time budget spent): $*"; return 124; fi
  timeout --kill-after=5 "$want" "$@"
  local rc=$?
  [ $rc -eq 124 ] && echo "TIMED OUT after ${want}s: $*"
  return $rc
}
