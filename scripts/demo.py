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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--imgsz", type=int, default=64)
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
            line = (
                f"[{study['elapsed_s'] or 0:6.1f}s] {study['state']:9} complete {counts['complete']}/"
                f"{args.trials}  running {counts['running']}  failed {counts['fail']}  best fitness {best}  eta {eta}"
            )
            if line != last:
                print(line, flush=True)
                last = line

        print(f"\nstudy '{study['name']}' ended {study['state']}" + (f": {study['error']}" if study["error"] else ""))
        for trial in api.get(f"/studies/{study['id']}/trials").json():
            fitness = f"{trial['fitness']:.4f}" if trial["fitness"] is not None else trial["state"]
            print(f"  trial {trial['number']}: fitness {fitness}  lr0 {trial['params'].get('lr0', 0):.5f}  "
                  f"epochs {[round(v, 3) for v in trial['epochs']]}")  # fmt: skip
        response = api.get(f"/studies/{study['id']}/hyp.yaml")
        if response.status_code != 200:
            print(f"no hyp.yaml: {response.json()['detail']}", file=sys.stderr)
            return 1
        out = settings.HOME / f"hyp.{study['name']}.yaml"
        out.write_text(response.text, encoding="utf-8")
        print(f"\nbest hyperparameters saved to {out}")
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
