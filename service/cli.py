"""The hypevolve command line: run the service (serve, dashboard, sample-data) and use it (study)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Sequence

from hypevolve_client.cli import add_study_commands, run_study_command
from service.settings import Settings

DEFAULT_HOST = "127.0.0.1"
logger = logging.getLogger("hypevolve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from service.api.app import create_app

    has_key = settings.API_KEY is not None and bool(settings.API_KEY.get_secret_value())
    if has_key:
        logger.info("API key required on every route but /healthz")
    elif is_loopback(args.host):
        logger.warning("no HYPEVOLVE_API_KEY: the API answers anyone on this machine, and only here (%s)", args.host)
    elif args.allow_no_auth:
        logger.warning("no HYPEVOLVE_API_KEY and listening on %s: anyone who reaches it can run trainings", args.host)
    else:
        raise SystemExit(
            f"refusing to listen on {args.host} without HYPEVOLVE_API_KEY: anyone who reaches the API could "
            "start trainings. Set HYPEVOLVE_API_KEY, or pass --allow-no-auth if a proxy in front authenticates."
        )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)


def _sample_data(args: argparse.Namespace, settings: Settings) -> None:
    from service.data.sample import write_sample_dataset

    root = settings.DATA_ROOT / "shapes"
    if (root / "data.yaml").is_file() and not args.force:
        print(f"sample data already at {root / 'data.yaml'} (use --force to rewrite it)")
        return
    path = write_sample_dataset(root)
    print(f'wrote the sample data set to {path}; use "dataset": "shapes/data.yaml" in POST /studies')


def _dashboard(args: argparse.Namespace, settings: Settings) -> None:
    import optuna_dashboard

    from workers.storage import open_optuna_storage

    # optuna-dashboard has no authentication and has write endpoints: loopback unless told otherwise.
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ for {settings.DATABASE_URL}")
    optuna_dashboard.run_server(open_optuna_storage(settings.DATABASE_URL), host=args.host, port=args.port)


DESCRIPTION = """\
Hyperparameter evolution for YOLOv5: run the service, then start and watch studies against it.

  hypevolve serve                                   the REST API on http://127.0.0.1:8000
  hypevolve study start shapes/data.yaml epochs=3 --watch
  hypevolve study hyp 1 -o hyp.yaml                 the answer, for python train.py --hyp hyp.yaml
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hypevolve", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the REST API (and the studies it starts)")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--allow-no-auth",
        action="store_true",
        help="listen beyond loopback without HYPEVOLVE_API_KEY (behind a proxy that authenticates)",
    )
    serve.set_defaults(run=_serve)

    sample = commands.add_parser("sample-data", help="write the synthetic shapes data set to DATA_ROOT/shapes")
    sample.add_argument("--force", action="store_true", help="rewrite it even if it exists")
    sample.set_defaults(run=_sample_data)

    dashboard = commands.add_parser("dashboard", help="run optuna-dashboard on the service's database")
    dashboard.add_argument("--host", default=DEFAULT_HOST)
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.set_defaults(run=_dashboard)

    add_study_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = Settings()
    if args.command == "study":  # a client of a running service: no folders, no logging setup
        api_key = settings.API_KEY.get_secret_value() if settings.API_KEY is not None else None
        raise SystemExit(run_study_command(args, settings.URL, api_key))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command != "dashboard":  # the dashboard only reads the database
        settings.prepare_dirs()
    args.run(args, settings)


if __name__ == "__main__":
    main()
