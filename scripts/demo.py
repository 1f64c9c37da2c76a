"""Run a small study end to end through the REST API, as a user would, and save its hyp.yaml.

Starts `hypevolve serve` on a free loopback port, POSTs a study on the sample data set, prints its
progress until it ends, downloads the best hyp.yaml, and stops the service.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def print_confirmation(confirmation: dict | None) -> None:
    """The confirmation stage as a user should read it: each entry's mean over the fresh seeds, each
    candidate's paired gain over the seed hyps with its 95% interval, and the verdict."""
    if not confirmation:
        return
    print(f"\nconfirmation: {confirmation['epochs']} epochs on seeds {confirmation['seeds']}")
    base = confirmation["baseline"]
    print(f"  seed hyps (trial 0): mean {base['mean']:.4f}  per seed {base['fitness_by_seed']}")
    for entry in confirmation["candidates"]:
        vs = entry["vs_baseline"] or {}
        interval = f"[{vs['low']:+.4f}, {vs['high']:+.4f}]" if vs.get("low") is not None else "n/a"
        print(f"  trial {entry['trial']}: screening {entry['screening_fitness']:.4f}, confirmed mean "
              f"{entry['mean']:.4f}, vs seed hyps {vs.get('mean', 0):+.4f} {interval}")  # fmt: skip
    noise = confirmation["noise_floor"]
    print(f"  noise floor (seed hyps' sd across seeds): {noise:.4f}" if noise is not None else "")
    print(f"  verdict: {confirmation['verdict']}, winner trial {confirmation['winner']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--imgsz", type=int, default=64)
    # Small enough for a first run on a laptop CPU; a real study keeps the defaults (3 candidates, 3 seeds).
    parser.add_argument("--confirm-top-k", type=int, default=1)
    parser.add_argument("--confirm-seeds", type=int, default=2)
    args = parser.parse_args()

    settings = Settings()
    settings.prepare_dirs()
    port = free_port()
    log_path = settings.HOME / "quickstart-serve.log"
    hypevolve = Path(sys.executable).parent / "hypevolve"
    print(f"starting the service on http://127.0.0.1:{port} (log: {log_path})")
    with log_path.open("w") as log:
        server = subprocess.Popen([str(hypevolve), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        for _ in range(120):
            try:
                if api.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if server.poll() is not None:
                    print(log_path.read_text(), file=sys.stderr)
                    return 1
            time.sleep(0.5)

        request = {
            "dataset": "shapes/data.yaml",
            "model": "yolov5n.yaml",
            "epochs": args.epochs,
            "imgsz": args.imgsz,
            "batch": 16,
            "n_trials": args.trials,
            "parallel": args.parallel,
            "confirm_top_k": args.confirm_top_k,
            "confirm_seeds": args.confirm_seeds,
            "name": f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}",
        }
        print(f"POST /studies {request}")
        response = api.post("/studies", json=request)
        if response.status_code != 201:
            print(f"the service refused the study: {response.status_code} {response.text}", file=sys.stderr)
            return 1
        study = response.json()

        last = ""
        while study["state"] in ("queued", "running"):
            time.sleep(2)
            study = api.get(f"/studies/{study['id']}").json()
            counts = study["counts"]
            best = f"{study['best']['fitness']:.4f} (trial {study['best']['trial']})" if study["best"] else "-"
            eta = f"{study['eta_s']:.0f}s" if study["eta_s"] is not None else "?"
            stage = study["stage"] or study["state"]
            confirmation = study["confirmation"]
            if confirmation:
                done = f"confirmation {confirmation['trainings_done']}/{confirmation['trainings_total']}"
            else:
                done = f"screening {min(counts['complete'], args.trials)}/{args.trials}"
            line = (
                f"[{study['elapsed_s'] or 0:6.1f}s] {stage:12} {done}  running {counts['running']}  "
                f"failed {counts['fail']}  best screening fitness {best}  eta {eta}"
            )
            if line != last:
                print(line, flush=True)
                last = line

        print(f"\nstudy '{study['name']}' ended {study['state']}" + (f": {study['error']}" if study["error"] else ""))
        for trial in api.get(f"/studies/{study['id']}/trials").json():
            fitness = f"{trial['fitness']:.4f}" if trial["fitness"] is not None else trial["state"]
            what = f"confirms trial {trial['confirms']}" if trial["stage"] == "confirmation" else "screening"
            print(f"  trial {trial['number']:2} {what:17} seed {trial['seed']}  {len(trial['epochs']):2} epochs  "
                  f"fitness {fitness}")  # fmt: skip
        print_confirmation(study.get("confirmation"))
        response = api.get(f"/studies/{study['id']}/hyp.yaml")
        if response.status_code != 200:
            print(f"no hyp.yaml: {response.json()['detail']}", file=sys.stderr)
            return 1
        out = settings.HOME / f"hyp.{study['name']}.yaml"
        out.write_text(response.text, encoding="utf-8")
        print("\nhyp.yaml header:")
        print("\n".join(line for line in response.text.splitlines() if line.startswith("#")))
        print(f"\nhyperparameters saved to {out}")
        print(f"  use them with YOLOv5:  python train.py --hyp {out} ...")
        print("open the Optuna dashboard on the same database:")
        print(f"  {Path(sys.executable).parent / 'hypevolve'} dashboard   # then browse http://127.0.0.1:8080/")
        return 0 if study["state"] == "completed" else 1
    finally:
        api.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    os.environ.setdefault("YOLO_OFFLINE", "1")
    sys.exit(main())
