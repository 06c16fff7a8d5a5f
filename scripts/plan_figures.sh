#!/usr/bin/env bash
# The README's worked sizing question ("Planning a farm") and its nodes x GPUs sweep, from the
# shipped calibrations: docs/plan/sizing.json (+ .txt, the probes' table) and
# docs/plan/sweep/sweep.{json,csv,png,txt}. Re-run after the shipped calibration changes
# (scripts/validate_plan.py --cases default --ship-calibration). About 4 minutes on a 2-core host.
#
#     flock /tmp/tsim-heavy.lock scripts/plan_figures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
trigger_sim=${TRIGGER_SIM:-.venv/bin/trigger-sim}
common=(--calibration configs/calibrations/cpu-this-host-pu20.json --calibration configs/calibrations/gpu-example.json
        --server-kind gpu-t4-example --rate 100000 --budget-ms 500 --workers-per-node 64 --buffer-events 100000
        --network-rtt-ms 0.5 --network-gbps 25 --events 40000 --quiet)
mkdir -p docs/plan/sweep
start=$(date +%s)
"$trigger_sim" plan "${common[@]}" --nodes 6 --max-servers 192 --json docs/plan/sizing.json > docs/plan/sizing.txt
sized=$(date +%s)
"$trigger_sim" plan sweep "${common[@]}" --nodes 4,6,8,12 --servers 96,112,128,160 --slots 4 --out docs/plan/sweep \
    > docs/plan/sweep/sweep.txt
done_s=$(date +%s)
echo "sizing $((sized - start)) s, sweep $((done_s - sized)) s ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD))" \
    | tee docs/plan/figures-run.txt
