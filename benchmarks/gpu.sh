#!/usr/bin/env bash
# The GPU measurements of evoticket in one call of under 9 minutes (a lent H100/H200), JSON and text into $OUT:
#   gpu.txt            the device, driver, torch
#   tests.txt          the tests that need CUDA (they skip elsewhere)
#   bench-fp32.json    evoticket bench: batched against the per-individual loop and vmap, mnist1d-mlp and LeNet-300-100,
#   bench-tf32.json      P = 1, 256, 1024 (float32), and LeNet-300-100 at P = 1024 under TF32 against the TF32 peak
#   campaign.txt       the default campaign on the GPU twice (timed) and its records compared (determinism), then
#                        once under campaign.matmul_precision = "high" (TF32: its effect on accuracy)
#   experiment.txt     the quick experiment (configs/why-not-both-quick.toml), packed (--pack 30), timed
#   gpu.json           every number above in one file
# Run from the project root, with ../shared/gpu/ copied in as .gpu/ (its wheels: what the GPU machine lacks):
#   mkdir -p .gpu && cp -r ../shared/gpu/. .gpu/ && (grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude)
#   device run: command "bash benchmarks/gpu.sh", carry [".gpu"], timeout_s 580
# Each step's timeout is cut to what is left of the 530-second budget, so the whole stays under 9 minutes; a step
# that cannot start is recorded as skipped.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
BUDGET=${GPU_BUDGET_S:-530}
start_all=$(date +%s)
wheels=${GPU_WHEELS:-.gpu/wheels}; [ -d "$wheels" ] || [ -n "${GPU_WHEELS:-}" ] || wheels=../shared/gpu/wheels
if [ -d "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl \
    || { echo "wheel install failed" | tee "$OUT/gpu.txt"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 EVOTICKET_CACHE=off
left() { echo $(( BUDGET - ($(date +%s) - start_all) )); }
# step NAME CAP CMD...: run CMD with a timeout of min(CAP, time left); its wall seconds go to $OUT/times.txt
step() {
  local name=$1 cap=$2; shift 2
  local t; t=$(left); [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt 15 ]; then echo "$name -1 0" >> "$OUT/times.txt"; echo "$name: skipped (budget spent)"; return 0; fi
  local s; s=$(date +%s.%N)
  timeout "$t" "$@"; local rc=$?
  echo "$name $rc $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$s" "$(date +%s.%N)")" \
    >> "$OUT/times.txt"
}
et() { python3 -m evoticket.cli "$@"; }
: > "$OUT/times.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  echo "cpus $(nproc)"; } 2>&1 | tee "$OUT/gpu.txt"

# 1. the tests that need CUDA
step tests 70 python3 -m pytest -q -rs -p no:cacheprovider -k "cuda or gpu or device" tests 2>&1 | tail -30 | tee "$OUT/tests.txt"

# 2. the bench: float32 rows, then LeNet-300-100 at P = 1024 under TF32
step bench_fp32 150 python3 -m evoticket.cli bench --quick --device cuda --models mnist1d-mlp,lenet-300-100 \
  --populations 1,256,1024 --json "$OUT/bench-fp32.json" 2>&1 | tail -40 | tee "$OUT/bench.txt"
step bench_tf32 45 python3 -m evoticket.cli bench --quick --device cuda --models lenet-300-100 --populations 1024 \
  --matmul-precision high --json "$OUT/bench-tf32.json" 2>&1 | tail -12 | tee -a "$OUT/bench.txt"

# 3. the default campaign twice (determinism), then under TF32
runs=/tmp/gpu-runs; rm -rf "$runs" /tmp/gpu-plots
for name in gpu-a gpu-b; do
  step "campaign_$name" 100 python3 -m evoticket.cli run --set campaign.device=cuda --name "$name" --no-progress \
    --runs-dir "$runs" --plots-dir /tmp/gpu-plots 2>&1 | tail -14 | tee -a "$OUT/campaign.txt"
done
python3 benchmarks/compare_records.py "$runs/gpu-a" "$runs/gpu-b" 2>&1 | tail -20 | tee "$OUT/determinism.txt"
step campaign_tf32 100 python3 -m evoticket.cli run --set campaign.device=cuda --set campaign.matmul_precision=high \
  --name gpu-tf32 --no-progress --runs-dir "$runs" --plots-dir /tmp/gpu-plots 2>&1 | tail -14 | tee -a "$OUT/campaign.txt"

# 4. the quick experiment, packed
step experiment 240 python3 -m evoticket.cli experiment configs/why-not-both-quick.toml --name gpu-quick --pack 30 \
  --no-progress --runs-dir "$runs" --plots-dir /tmp/gpu-plots 2>&1 | tail -30 | tee "$OUT/experiment.txt"

# 5. everything in one JSON
python3 - "$OUT" "$runs" <<'EOF' 2>&1 | tee -a "$OUT/gpu.txt"
import json, sys
from pathlib import Path
out, runs = Path(sys.argv[1]), Path(sys.argv[2])
result = {"steps": {}}
for line in (out / "times.txt").read_text().splitlines():
    name, rc, seconds = line.split()
    result["steps"][name] = {"exit": int(rc), "seconds": float(seconds)}
for name in ("bench-fp32", "bench-tf32"):
    path = out / f"{name}.json"
    if path.is_file():
        bench = json.loads(path.read_text())
        rows = {(r["model"], r["population"], r["evaluator"]): r for r in bench["rows"]}
        result[name] = {"device_name": bench["device_name"], "peak_gflops": bench["peak_gflops"], "rows": {
            f"{m} P={p} {e}": {k: r[k] for k in ("indiv_steps_per_s", "gflops", "fraction_of_peak")}
            for (m, p, e), r in rows.items()}}
        for (m, p, e), r in rows.items():
            loop = rows.get((m, p, "loop"))
            if e == "batched" and loop:
                result[name]["rows"][f"{m} P={p} batched"]["x_loop"] = r["indiv_steps_per_s"] / loop["indiv_steps_per_s"]
for name in ("gpu-a", "gpu-b", "gpu-tf32"):
    path = runs / name / "summary.json"
    if path.is_file():
        s = json.loads(path.read_text())
        controls = s.get("controls", {})
        result[name] = {"timing": s.get("timing"),
                        "test_acc_mean": {k: v.get("test_acc_mean") for k, v in controls.items()}}
det = (out / "determinism.txt").read_text() if (out / "determinism.txt").is_file() else ""
result["determinism"] = det.strip().splitlines()[-1] if det.strip() else "not run"
res = runs / "gpu-quick" / "results.json"
if res.is_file():
    result["quick_experiment"] = {"packing": json.loads(res.read_text()).get("packing")}
(out / "gpu.json").write_text(json.dumps(result, indent=1) + "\n")
print(json.dumps(result["steps"]))
EOF
exit 0
