"""hypevolve study: start, watch and manage studies of a running service over REST.

Fields are given as ultralytics users type them, key=value: epochs=3, evolve=lr0,momentum,
fixed.mosaic=0.5, bounds.lr0=0.001,0.05, seed_hyp=path/to/hyp.yaml (a file is read and sent as its
text). The service checks every field; its message is printed as it is.

Exit codes: 0 done (for watch: the study completed), 1 the study ended stopped or failed, 2 the
service refused the request, 3 no service answered.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hypevolve_client import Client, ClientError, ServiceUnreachable, Study, Trial

LIST_FIELDS = ("evolve", "fitness_weights", "probe_keys", "confirm_probe_keys")
EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_UNSUCCESSFUL = 2, 3, 1


def _scalar(text: str) -> Any:
    """What a user typed, as the JSON type it means: numbers as Python reads them (YAML would keep
    1e-3 a string), then YAML's words (true, null), else the text itself."""
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def parse_fields(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` items as a request body: dotted keys nest (``fixed.mosaic=0.5``), list fields
    and ``bounds.*`` split on commas, ``seed_hyp`` naming an existing file sends its text."""
    fields: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected field=value, got {item!r}")
        if key == "seed_hyp" and Path(text).is_file():
            fields[key] = Path(text).read_text(encoding="utf-8")
            continue
        parent, dot, child = key.partition(".")
        is_list = key in LIST_FIELDS or parent == "bounds"
        value = [_scalar(v) for v in text.split(",") if v != ""] if is_list else _scalar(text)
        if dot:
            fields.setdefault(parent, {})[child] = value
        else:
            fields[key] = value
    return fields


def _fitness(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def status_line(study: Study, clock: bool = True) -> str:
    """One line: where the study stands, best so far, and (``clock``) elapsed and ETA."""
    counts, request = study.counts, study.request
    best = f"{_fitness(study.best.fitness)} (trial {study.best.trial})" if study.best else "-"
    stage = study.stage or study.state
    rungs = request.get("confirm_rungs", 1)
    if study.confirmation is not None or study.rungs:
        c = study.confirmation or study.rungs[-1]
        rung = f" rung {c.rung + 1}/{rungs} ({c.epochs} epochs)" if rungs > 1 else ""
        progress = f"confirmation{rung} {c.trainings_done}/{c.trainings_total}"
    else:
        screened = counts.get("complete", 0) + counts.get("pruned", 0)
        progress = f"screening {min(screened, request.get('n_trials', screened))}/{request.get('n_trials', '?')}"
    line = (
        f"{stage:<12} {progress}  running {counts.get('running', 0)}  failed {counts.get('fail', 0)}  "
        f"pruned {counts.get('pruned', 0)}  best screening {best}"
    )
    if study.waiting:
        line = f"{line}  ({study.waiting})"
    return f"{line}  elapsed {_clock(study.elapsed_s)}  eta {_clock(study.eta_s)}" if clock else line


def trial_line(trial: Trial) -> str:
    rung = f" rung {trial.rung}" if trial.rung else ""
    what = {
        "screening": "screening",
        "confirmation": f"confirms trial {trial.confirms}{rung}",
        "diagnostics": f"plots of trial {trial.confirms}",
    }[trial.stage]
    result = _fitness(trial.fitness) if trial.state == "complete" else trial.state
    tail = f"  probe {trial.probe}" if trial.probe else ""
    tail += f"  {trial.error}" if trial.error else ""
    return f"trial {trial.number:>3}  {what:<17} seed {trial.seed}  {len(trial.epochs):>3} epochs  {result}{tail}"


def verdict_lines(study: Study) -> list[str]:
    lines = [f"warning: {w}" for w in study.warnings]
    for below in study.rungs:
        gains = {e.trial: e.vs_baseline.mean for e in below.candidates if e.vs_baseline is not None}
        ranked = "  ".join(f"trial {n} {g:+.4f}" for n, g in sorted(gains.items(), key=lambda kv: -kv[1]))
        sent = f", promoted {below.promoted}" if below.promoted is not None else ""
        lines.append(
            f"rung {below.rung + 1}: {below.epochs} epochs on seeds {below.seeds}, "
            f"{below.trainings_done}/{below.trainings_total} trainings{sent}"
        )
        if ranked:
            lines.append(f"  gain vs seed hyps: {ranked}")
    c = study.confirmation
    if c is None:
        return lines
    top = f" (rung {c.rung + 1}, the top)" if c.rung else ""
    lines.append(f"confirmation{top}: {c.epochs} epochs on seeds {c.seeds}")
    base = c.baseline
    lines.append(f"  seed hyps (trial 0)  mean {_fitness(base.mean)}")
    for entry in c.candidates:
        interval, gain, vs = "", "-", entry.vs_baseline
        if vs is not None:
            gain = f"{vs.mean:+.4f}"
            if vs.low is not None and vs.high is not None:
                interval = f" [{vs.low:+.4f}, {vs.high:+.4f}]"
        dropped = f"  dropped after {len(entry.fitness_by_seed)} seeds" if entry.dropped else ""
        lines.append(
            f"  trial {entry.trial:<13} mean {_fitness(entry.mean)}  screening {_fitness(entry.screening_fitness)}"
            f"  vs seed hyps {gain}{interval}{dropped}"
        )
    lines.append(f"  noise floor {_fitness(c.noise_floor)}  rank correlation {_fitness(c.rank_correlation)}")
    k = len(c.candidates)
    looks = c.seed_cap - study.request.get("confirm_seeds", c.seed_cap) + 1
    over = f" at up to {looks} looks of racing" if looks > 1 else ""
    together = f": 95% for all {k} candidates{over} together (Bonferroni)" if k > 1 or looks > 1 else ""
    lines.append(f"  intervals at {c.confidence:.2%}{together}")
    if c.verdict is not None:
        lines.append(f"verdict: {c.verdict}, winner trial {c.winner}")
    return lines


def _render(study: Study) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_row(Text(f"study {study.id} '{study.name}'", style="bold"), Text(study.state))
    table.add_row(Text(status_line(study)))
    return table


def watch(client: Client, study_id: int, console: Console, poll_s: float = 2.0) -> int:
    """Show the study until it ends: a live status (plain lines when not a terminal) and a line per
    trial as it ends. 0 when it completed, 1 when it stopped or failed."""
    printed: set[int] = set()

    def new_endings() -> list[str]:
        lines = []
        for trial in client.trials(study_id):
            if trial.state in ("complete", "pruned", "fail") and trial.number not in printed:
                printed.add(trial.number)
                lines.append(trial_line(trial))
        return lines

    study = client.study(study_id)
    if console.is_terminal:
        with Live(_render(study), console=console, refresh_per_second=4, transient=True) as live:
            while True:
                for line in new_endings():
                    live.console.print(line, highlight=False)
                live.update(_render(study))
                if study.finished:
                    break
                time.sleep(poll_s)
                study = client.study(study_id)
    else:
        last = ""
        while True:
            for line in new_endings():
                print(line, flush=True)
            # A line when the progress changes (not on every tick of the clock), with the clock.
            if (key := status_line(study, clock=False)) != last:
                print(status_line(study), flush=True)
                last = key
            if study.finished:
                break
            time.sleep(poll_s)
            study = client.study(study_id)
    for line in [f"study {study.id} '{study.name}' {study.state}" + (f": {study.error}" if study.error else "")]:
        console.print(line, highlight=False)
    for line in verdict_lines(study):
        console.print(line, highlight=False)
    return 0 if study.state == "completed" else EXIT_UNSUCCESSFUL


# -- the commands ------------------------------------------------------------------------------


def _start(client: Client, args: argparse.Namespace, console: Console) -> int:
    fields = parse_fields(args.fields)
    study = client.start_study(args.dataset, **fields)
    r = study.request
    rungs = r.get("confirm_rungs", 1)
    through = f" through {rungs} rungs" if rungs > 1 else ""
    racing = (
        f" (racing up to {r['confirm_seeds_max']})" if (r.get("confirm_seeds_max") or 0) > r["confirm_seeds"] else ""
    )
    confirm = (
        f"then confirm the top {r['confirm_top_k']}{through} on {r['confirm_seeds']} seeds{racing}"
        if r.get("confirm_top_k")
        else "no confirmation"
    )
    console.print(
        f"study {study.id} '{study.name}' started: {r['n_trials']} trials x {r['epochs']} epochs of {r['model']} "
        f"at {r['imgsz']} px on {r['dataset']}, sampler {r['sampler']}, {confirm}",
        highlight=False,
    )
    if (planned := study.planned_epochs) is not None:
        console.print(
            f"it plans {planned.total} training epochs: screening {planned.screening}, confirmation "
            f"{planned.confirmation}, diagnostics {planned.diagnostics} (at most; retries come on top)",
            highlight=False,
        )
    return watch(client, study.id, console) if args.watch else 0


def _list(client: Client, args: argparse.Namespace, console: Console) -> int:
    table = Table("id", "name", "state", "trials", "best", "verdict", box=None, header_style="bold")
    for s in client.studies():
        verdict = s.confirmation.verdict if s.confirmation and s.confirmation.verdict else "-"
        table.add_row(str(s.id), s.name, s.state, str(s.counts.get("complete", 0)),
                      _fitness(s.best.fitness if s.best else None), verdict)  # fmt: skip
    console.print(table)
    return 0


def _show(client: Client, args: argparse.Namespace, console: Console) -> int:
    study = client.study(args.id)
    console.print(f"study {study.id} '{study.name}' {study.state}" + (f": {study.error}" if study.error else ""))
    console.print(status_line(study), highlight=False)
    for line in verdict_lines(study):
        console.print(line, highlight=False)
    return 0


def _trials(client: Client, args: argparse.Namespace, console: Console) -> int:
    for trial in client.trials(args.id):
        console.print(trial_line(trial), highlight=False)
    return 0


def _simple(action: str) -> Callable[[Client, argparse.Namespace, Console], int]:
    def run(client: Client, args: argparse.Namespace, console: Console) -> int:
        if action == "delete":
            client.delete(args.id)
            console.print(f"study {args.id} deleted")
            return 0
        study = client.stop(args.id) if action == "stop" else client.resume(args.id)
        console.print(f"study {study.id} '{study.name}' {study.state}")
        return 0

    return run


def _import(client: Client, args: argparse.Namespace, console: Console) -> int:
    result = client.import_results(args.id, Path(args.file).read_bytes(), args.format)
    console.print(f"imported {result.imported} trials ({result.format}): {result.trials}")
    return 0


def _download(kind: str) -> Callable[[Client, argparse.Namespace, Console], int]:
    def run(client: Client, args: argparse.Namespace, console: Console) -> int:
        text = client.hyp_yaml(args.id, args.source) if kind == "hyp" else client.args_yaml(args.id, args.source)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            console.print(f"wrote {args.output}")
        else:
            sys.stdout.write(text)
        return 0

    return run


def add_study_commands(commands: Any) -> None:
    """Register ``study`` and its subcommands on the top-level parser's subparsers."""
    study = commands.add_parser(
        "study",
        help="start, watch and manage studies of a running service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    study.add_argument("--url", help="the service (default: HYPEVOLVE_URL, else http://127.0.0.1:8000)")
    sub = study.add_subparsers(dest="study_command", required=True, metavar="COMMAND")

    start = sub.add_parser("start", help="start a study: DATA is a data.yaml under the service's data root")
    start.add_argument("dataset", metavar="DATA")
    start.add_argument("fields", nargs="*", metavar="field=value", help="any POST /studies field, e.g. epochs=3")
    start.add_argument("--watch", action="store_true", help="then watch it to the end")
    start.set_defaults(study_run=_start)

    def with_id(name: str, help_text: str, run: Callable[[Client, argparse.Namespace, Console], int]) -> Any:
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("id", type=int, metavar="ID")
        parser.set_defaults(study_run=run)
        return parser

    with_id("watch", "show a study live until it ends (exit 0 if it completed)", lambda c, a, o: watch(c, a.id, o))
    sub.add_parser("list", help="every study").set_defaults(study_run=_list)
    with_id("show", "a study's state, progress and confirmation", _show)
    with_id("trials", "a study's trials, a line each", _trials)
    with_id("stop", "cancel running trials and start no more", _simple("stop"))
    with_id("resume", "start a stopped study again", _simple("resume"))
    with_id("delete", "stop a study and remove its trials, rows and artifacts", _simple("delete"))
    imported = with_id("import", "add earlier results (evolve.csv, tune_results.csv/.ndjson)", _import)
    imported.add_argument("file", metavar="FILE")
    imported.add_argument("--format", choices=("evolve-csv", "tune-csv", "tune-ndjson"))
    for kind, what in (("hyp", "the answer as a YOLOv5 hyp.yaml"), ("args", "the answer as ultralytics args.yaml")):
        parser = with_id(kind, what, _download(kind))
        parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
        parser.add_argument("--source", choices=("confirmation", "screening"), default="confirmation")


def run_study_command(args: argparse.Namespace, url: str, api_key: str | None) -> int:
    """Run the parsed ``study`` subcommand against the service at ``url``; the exit code."""
    # soft_wrap: a line stays one line however narrow the terminal (or a pipe) is.
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    client = Client(args.url or url, api_key)
    try:
        code: int = args.study_run(client, args, console)
        return code
    except ServiceUnreachable as exc:
        errors.print(f"error: {exc.message}; start one with `hypevolve serve`, or point --url / HYPEVOLVE_URL at it")
        return EXIT_UNREACHABLE
    except ClientError as exc:
        errors.print(f"error: {exc.message}")
        return EXIT_REFUSED
    except argparse.ArgumentTypeError as exc:
        errors.print(f"error: {exc}")
        return EXIT_REFUSED
    finally:
        client.close()
