"""Soak: one study of many short trials while its processes are killed, then an audit of the trials.

Starts `hypevolve serve` (embedded SQLite, or --database-url), starts a study of --trials trials
(parallel 2) on a small sample data set, and while it runs:
  - SIGKILLs one training worker at random every 20-40 s,
  - SIGKILLs the service's local raylet once (at about 25% of the trials),
  - SIGKILLs the service itself twice and starts it again (at about 45% and 70%),
  - restarts PostgreSQL once (at about 55%), when the study runs on the local PostgreSQL server.
Then it checks: every trial complete or failed with a reason, exactly n_trials complete, no trial
running or waiting, and hyp.yaml equal to the best trial's params. A lost worker is retried at most
max_retries times per trial; the soak asks for 10, so that a trial unlucky enough to be killed twice
is still retried. Writes bench/results/soak.md.

    .venv/bin/python bench/soak.py [--trials 40] [--epochs 2] [--seed 0]
    .venv/bin/python bench/soak.py --database-url postgresql+psycopg://...   # and restart PostgreSQL once
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.data.sample import write_sample_dataset  # noqa: E402

HEARTBEAT = {"HYPEVOLVE_HEARTBEAT_INTERVAL_S": "2", "HYPEVOLVE_HEARTBEAT_GRACE_S": "20"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Service:
    """`hypevolve serve` as a child process that can be killed and started again on the same port."""

    def __init__(self, home: Path, data_root: Path, database_url: str) -> None:
        self.port = free_port()
        self.home = home
        self.env = {
            **os.environ,
            **HEARTBEAT,
            "HYPEVOLVE_HOME": str(home),
            "HYPEVOLVE_DATA_ROOT": str(data_root),
            "HYPEVOLVE_DATABASE_URL": database_url,
            "HYPEVOLVE_RAY_NUM_CPUS": "2",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def start(self) -> None:
        command = [str(Path(sys.executable).parent / "hypevolve"), "serve", "--port", str(self.port)]
        with (self.home / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)
        raise RuntimeError("the service did not start; see serve.log")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def raylets(self) -> list[psutil.Process]:
        assert self.process is not None
        children = psutil.Process(self.process.pid).children(recursive=True)
        return [p for p in children if p.name() == "raylet"]


def restart_postgres() -> bool:
    """Restart the local cluster scripts/start_postgres.sh made; False where there is none to restart."""
    if shutil.which("pg_ctlcluster") is None:
        return False
    version = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]
    subprocess.run(["pg_ctlcluster", version, "main", "stop"], check=True)
    time.sleep(10)
    subprocess.run(["pg_ctlcluster", version, "main", "start"], check=True)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill schedule and the study")
    parser.add_argument("--database-url", help="default: SQLite in the soak's temporary home")
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.md")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="hypevolve-soak-") as tmp:
        home, data_root = Path(tmp) / "home", Path(tmp) / "data"
        home.mkdir()
        write_sample_dataset(data_root / "shapes", n_train=128, n_val=32)
        database_url = args.database_url or f"sqlite:///{home / 'hypevolve.db'}"
        on_postgres = database_url.startswith("postgresql")
        service = Service(home, data_root, database_url)
        service.start()
        request = {
            "dataset": "shapes/data.yaml", "imgsz": 64, "batch": 16, "epochs": args.epochs, "n_trials": args.trials,
            "parallel": 2, "seed": args.seed, "confirm_top_k": 0, "diagnostics": False, "max_retries": 10,
            "max_failed_trials": args.trials,
        }  # fmt: skip
        study_id = service.client.post("/studies", json=request).json()["id"]
        started = time.monotonic()
        kills: Counter[str] = Counter()
        answers: Counter[str] = Counter()
        next_worker_kill = started + rng.uniform(20, 40)
        planned = {"raylet": 0.25, "service-1": 0.45, "postgresql": 0.55, "service-2": 0.70}
        if not on_postgres:
            del planned["postgresql"]
        study: dict[str, Any] = {}
        while time.monotonic() - started < args.timeout:
            try:
                response = service.client.get(f"/studies/{study_id}")
                answers[str(response.status_code)] += 1
                if response.status_code == 200:
                    study = response.json()
            except httpx.TransportError:
                answers["no answer"] += 1
                time.sleep(1)
                continue
            if study.get("state") not in ("queued", "running"):
                break
            done = study["counts"]["complete"] / args.trials
            for event, at in list(planned.items()):
                if done < at:
                    continue
                del planned[event]
                print(f"{time.monotonic() - started:7.0f}s {done:4.0%} {event}", flush=True)
                if event == "raylet":
                    for raylet in service.raylets():
                        raylet.kill()
                    kills["raylet"] += 1
                elif event.startswith("service"):
                    service.kill()
                    kills["service"] += 1
                    time.sleep(2)
                    service.start()
                elif event == "postgresql" and restart_postgres():
                    kills["postgresql restart"] += 1
            if time.monotonic() >= next_worker_kill:
                next_worker_kill = time.monotonic() + rng.uniform(20, 40)
                trials = service.client.get(f"/studies/{study_id}/trials").json()
                running = [t for t in trials if t["state"] == "running" and t["pid"] and t["epochs"]]
                if running:
                    victim = rng.choice(running)
                    try:
                        os.kill(victim["pid"], signal.SIGKILL)
                        kills["training worker"] += 1
                        print(f"{time.monotonic() - started:7.0f}s {done:4.0%} worker of trial {victim['number']}")
                    except ProcessLookupError:
                        pass
            time.sleep(2)
        wall = time.monotonic() - started

        trials = service.client.get(f"/studies/{study_id}/trials").json()
        hyp = yaml.safe_load(service.client.get(f"/studies/{study_id}/hyp.yaml").text)
        service.stop()
    states = Counter(t["state"] for t in trials)
    reasons = Counter((t["error"] or "").split(":")[0] for t in trials if t["state"] == "fail")
    best = study.get("best") or {}
    checks = {
        f"study completed (state: {study.get('state')})": study.get("state") == "completed",
        f"exactly n_trials = {args.trials} complete ({states['complete']})": states["complete"] == args.trials,
        "no trial running or waiting": states["running"] == 0 and states["waiting"] == 0,
        "every failed trial has a reason": all(t["error"] for t in trials if t["state"] == "fail"),
        "hyp.yaml = the best trial's params": all(hyp.get(k) == v for k, v in best.get("params", {}).items()),
    }
    lines = [
        "# Soak: a study while its processes are killed",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; "
        f"{'PostgreSQL' if on_postgres else 'SQLite'}; {args.trials} trials x {args.epochs} epochs, parallel 2, "
        f"seed {args.seed}; {wall / 60:.1f} min.",
        "",
        "| killed | times |",
        "|---|---|",
        *[f"| {kind} | {count} |" for kind, count in sorted(kills.items())],
        "",
        f"Trials: {dict(states)}; failed trials by reason: {dict(reasons)}. "
        f"Trials lost: {args.trials - states['complete']}.",
        f"Answers to GET /studies/{{id}} while it ran: {dict(answers)}.",
        "",
        *[f"- [{'x' if ok else ' '}] {name}" for name, ok in checks.items()],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
