#!/usr/bin/env bash
# Quick start: install, write the sample data set, start the service, start a small study with the
# CLI and watch it to its verdict, save the answer as a hyp.yaml, stop the service.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
hv=.venv/bin/hypevolve
$hv sample-data

home=${HYPEVOLVE_HOME:-.hypevolve}
mkdir -p "$home"
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HYPEVOLVE_URL=http://127.0.0.1:$port
log=$home/quickstart-serve.log
echo "+ hypevolve serve --port $port   (log: $log)"
$hv serve --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  $hv study list >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done

# 4 screening trials of 6 epochs at 64 px, then the best candidate and the seed hyps trained again
# for 18 epochs on 2 fresh seeds (a real study keeps the defaults: 3 candidates, 3 seeds).
name=quickstart-$(date +%Y%m%d-%H%M%S)
fields=(epochs=6 imgsz=64 n_trials=4 parallel=2 confirm_top_k=1 confirm_seeds=2 "name=$name")
echo "+ hypevolve study start shapes/data.yaml ${fields[*]} --watch"
$hv study start shapes/data.yaml "${fields[@]}" --watch | tee "$home/quickstart.out"
id=$(head -n 1 "$home/quickstart.out" | cut -d ' ' -f 2)

echo "+ hypevolve study hyp $id -o $home/hyp.$name.yaml"
$hv study hyp "$id" -o "$home/hyp.$name.yaml"
grep '^#' "$home/hyp.$name.yaml"
echo
echo "use it with YOLOv5:  python train.py --hyp $home/hyp.$name.yaml ..."
echo "see every trial:     $hv dashboard   # then browse http://127.0.0.1:8080/"
