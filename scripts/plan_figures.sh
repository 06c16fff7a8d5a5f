#!/usr/bin/env bash
# The README's worked sizing question ("Planning a farm") and its nodes x GPUs sweep, from the
# shipped calibrations: docs/plan/sizing.json (+ .txt, the probes' table) and
# docs/plan/sweep/sweep.{json,csv,png,txt}. Re-run after the shipped calibration changes
# (scripts/validate_plan.py --cases default --ship-calibration). About 4 minutes on a 2-core host.
# A sizing question with no answer (no pool keeps up: `plan` exits 1) is an answer too: its
# probes are written and the sweep still runs. PLAN_FIGURES_DIR: another folder than docs/plan.
#
#     flock /tmp/tsim-heavy.lock scripts/plan_figures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
trigger_sim=${TRIGGER_SIM:-.venv/bin/trigger-sim}
out=${PLAN_FIGURES_DIR:-docs/plan}
common=(--calibration configs/calibrations/cpu-this-host-pu20.json --calibration configs/calibrations/gpu-example.json
        --server-kind gpu-t4-example --rate 100000 --budget-ms 500 --workers-per-node 64 --buffer-events 100000
        --network-rtt-ms 0.5 --network-gbps 25 --events 40000 --quiet)
mkdir -p "$out/sweep"
start=$(date +%s)
status=0
"$trigger_sim" plan "${common[@]}" --nodes 12 --max-servers 192 --json "$out/sizing.json" > "$out/sizing.txt" || status=$?
if [ "$status" -gt 1 ]; then
    echo "plan failed (exit $status): see $out/sizing.txt" >&2
    exit "$status"
fi
sized=$(date +%s)
"$trigger_sim" plan sweep "${common[@]}" --nodes 4,6,8,12 --servers 96,112,128,160 --slots 4 --out "$out/sweep" \
    > "$out/sweep/sweep.txt"
done_s=$(date +%s)
echo "sizing $((sized - start)) s, sweep $((done_s - sized)) s ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD))" \
    | tee "$out/figures-run.txt"
