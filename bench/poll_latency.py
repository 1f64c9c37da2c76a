"""Benchmark: 20 clients polling a running study's status and trials on the embedded defaults (SQLite).

Starts `hypevolve serve` on a free loopback port with a temporary home, starts a study on the sample
data set, and has CLIENTS threads poll GET /studies/{id} and GET /studies/{id}/trials for DURATION
seconds while trials train. Prints latency percentiles per endpoint and writes them to
bench/results/poll_latency.md. Bounded in count and time; talks to 127.0.0.1 only.

    .venv/bin/python bench/poll_latency.py [--clients 20] [--duration 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.data.sample import write_sample_dataset  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hypevolve-bench-") as tmp:
        home, data = Path(tmp) / "home", Path(tmp) / "data"
        home.mkdir()
        write_sample_dataset(data / "shapes")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "HYPEVOLVE_HOME": str(home), "HYPEVOLVE_DATA_ROOT": str(data)}
        hypevolve = Path(sys.executable).parent / "hypevolve"
        with (home / "serve.log").open("w") as log:
            server = subprocess.Popen([str(hypevolve), "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    httpx.get(f"{base}/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.5)
            request = {"dataset": "shapes/data.yaml", "epochs": 20, "imgsz": 64, "n_trials": 4, "parallel": 2}
            study_id = httpx.post(f"{base}/studies", json=request, timeout=30).json()["id"]
            while httpx.get(f"{base}/studies/{study_id}", timeout=30).json()["counts"]["running"] == 0:
                time.sleep(0.5)

            latencies: dict[str, list[float]] = defaultdict(list)
            statuses: dict[int, int] = defaultdict(int)
            lock = threading.Lock()
            deadline = time.monotonic() + args.duration

            def poll() -> None:
                with httpx.Client(base_url=base, timeout=30) as client:
                    while time.monotonic() < deadline:
                        for name, path in (
                            ("study", f"/studies/{study_id}"),
                            ("trials", f"/studies/{study_id}/trials"),
                        ):
                            started = time.perf_counter()
                            code = client.get(path).status_code
                            elapsed = (time.perf_counter() - started) * 1000
                            with lock:
                                latencies[name].append(elapsed)
                                statuses[code] += 1

            threads = [threading.Thread(target=poll) for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            running = httpx.get(f"{base}/studies/{study_id}", timeout=30).json()["counts"]["running"]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        locked = "database is locked" in (home / "serve.log").read_text()

    lines = [
        "# Polling latency under load",
        "",
        f"{args.clients} clients polling `GET /studies/{{id}}` and `GET /studies/{{id}}/trials` for "
        f"{args.duration:.0f} s while a study trains (2 trials at a time, SQLite, local Ray).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. Trials still running at the end: {running}.",
        "",
        "| endpoint | requests | p50 ms | p90 ms | p99 ms | max ms | mean ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values in latencies.items():
        lines.append(
            f"| {name} | {len(values)} | {percentile(values, 0.5):.1f} | {percentile(values, 0.9):.1f} | "
            f"{percentile(values, 0.99):.1f} | {max(values):.1f} | {statistics.fmean(values):.1f} |"
        )
    lines += ["", f"Status codes: {dict(statuses)}. 'database is locked' in the service log: {locked}."]
    report = "\n".join(lines) + "\n"
    print(report)
    (ROOT / "bench" / "results" / "poll_latency.md").write_text(report)
    return 0 if set(statuses) == {200} and not locked else 1


if __name__ == "__main__":
    sys.exit(main())
