"""`invoice-verify serve` (the HTTP service) and `invoice-verify demo` (generated invoices
loaded into the embedded store, and lookups that work on them)."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Annotated
from urllib.parse import urlencode

import typer
from aiohttp import web

from indexer.package import package_from_json
from indexer.registry import parse_registry_json
from verify.app import create_app
from verify.cli.common import DataDir, err, load_settings, open_intake, out, progress_bar
from verify.cli.heap import freeze_startup_heap
from verify.cli.workers import event_loop, serve_workers, with_own_journal
from verify.demo import DemoPlan, build_demo, example_queries
from verify.http.logs import AccessLogger, configure_logging
from verify.settings import Settings, SettingsError


async def _load_demo(settings: Settings, plan: DemoPlan) -> tuple[int, int]:
    accepted = rejected = 0
    async with open_intake(settings) as intake:
        assert intake.registry is not None
        await intake.registry.import_registry(parse_registry_json(plan.registry))
        with progress_bar() as bar:
            task = bar.add_task("loading demo packages", total=len(plan.packages))
            for raw in plan.packages:
                result = await intake.ingest(package_from_json(raw, max_items=10**6))
                if not result.replayed:
                    accepted += result.notice["accepted"]
                    rejected += result.notice["rejected"]
                bar.advance(task)
    return accepted, rejected


def _print_examples(settings: Settings, plan: DemoPlan) -> None:
    base = f"http://{settings.host}:{settings.port}/api/v1/invoices/lookup"
    out.print(
        "[bold]Example lookups[/] (with the service running; the admin key is written to "
        f"{settings.admin_key_path} on the first start):"
    )
    out.print(f"  export INVOICE_KEY=$(cat {settings.admin_key_path})", highlight=False)
    for title, query in example_queries(plan):
        out.print(f"  # {title}")
        auth = '-H "Authorization: Bearer $INVOICE_KEY"'
        out.print(f"  curl -s {auth} '{base}?{urlencode(query)}'", soft_wrap=True, highlight=False)


def demo(
    data_dir: DataDir = None,
    per_series: Annotated[int, typer.Option(min=100, help="invoices per series")] = 2500,
    seed: Annotated[int, typer.Option(help="random seed of the generator")] = 20221515,
) -> None:
    """Load realistic generated invoices into the embedded store and print working lookups."""
    settings = load_settings(data_dir=data_dir)
    plan = build_demo(seed=seed, per_series=per_series)
    accepted, rejected = asyncio.run(_load_demo(settings, plan))
    out.print(
        f"demo data in {settings.sqlite_path}: {accepted} items accepted, "
        f"{rejected} rejected in this run ({plan.invoice_count} invoices generated; "
        "already-loaded packages are skipped)"
    )
    if rejected:
        err.print("[red]some demo items were rejected: the generator and the rules disagree[/]")
        raise typer.Exit(1)
    _print_examples(settings, plan)


#: Seconds a connection whose request body was refused before it was read in full (413, 408,
#: 429, 401...) is still read and discarded after the answer, so that a client that sends its
#: whole body before reading gets the answer rather than a reset (closing at once lost the 413
#: of 1 in 40 refused 16 MiB uploads from aiohttp's own client). aiohttp's default is 10 s,
#: during which a client that never reads keeps the server reading as fast as it sends: one
#: request declaring a terabyte cost 5.5 s of CPU on loopback, 0.6 s with 1 s. Clients that
#: read while they send (aiohttp, curl, browsers) have their answer at once either way.
LINGERING_S = 1.0


async def _freeze_heap(_app: web.Application) -> None:
    freeze_startup_heap()


def listen(host: str, port: int) -> list[socket.socket]:
    """The service's sockets, bound before anything else starts (the demo's data, the
    stores, the admin key), as asyncio's `create_server` binds them: each address `host`
    resolves to, SO_REUSEADDR, IPv6 sockets IPv6 only. An address that cannot be bound is
    one line on stderr and exit 1, not a traceback after the stores were opened."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            err.print(
                f"[red]cannot listen on {where}: the address is already in use[/] (is "
                "another invoice-verify serve running?); stop what listens there, or "
                "choose another port with --port or INVOICE_PORT",
                highlight=False,
            )
        else:
            err.print(
                f"[red]cannot listen on {where}:[/] {exc.strerror or exc}; check --host "
                "and --port (INVOICE_HOST, INVOICE_PORT)",
                highlight=False,
            )
        raise typer.Exit(1) from None
    return sockets


def serve(
    host: Annotated[str | None, typer.Option(help="[env INVOICE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="[env INVOICE_PORT]")] = None,
    data_dir: DataDir = None,
    with_demo: Annotated[bool, typer.Option("--demo", help="load demo data first")] = False,
    insecure_local: Annotated[
        bool | None,
        typer.Option(
            "--insecure-local",
            help="no API keys (loopback only) [env INVOICE_INSECURE_LOCAL]",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="processes sharing the port (SO_REUSEPORT), each with its own intake journal",
        ),
    ] = 1,
) -> None:
    """Run the HTTP service (embedded SQLite default unless INVOICE_ES_URL is set)."""
    settings = load_settings(host=host, port=port, data_dir=data_dir, insecure_local=insecure_local)
    # With --workers too: bound without SO_REUSEPORT, so another service's workers on the
    # port (which hold it with SO_REUSEPORT) make this bind fail, as any listener does.
    sockets = listen(settings.host, settings.port)
    configure_logging(settings.log_level, settings.log_format)
    if with_demo:
        plan = build_demo()
        asyncio.run(_load_demo(settings, plan))
        _print_examples(settings, plan)
    try:
        if workers > 1:
            settings.load_trust_anchors()  # a bad setting stops here, not in every worker
        else:
            settings, _journal = with_own_journal(settings)
            application = create_app(settings)
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    if settings.insecure_local:
        err.print(
            "[bold red]insecure local mode: no API keys are checked; every caller is "
            "admin. Listening on loopback only.[/]"
        )
    else:
        err.print(
            f"[bold]API keys are required.[/] The first admin key is in "
            f"{settings.admin_key_path} (created on the first start); manage keys with "
            "`invoice-verify keys`."
        )
    if workers > 1:  # the port is free: each worker binds it with SO_REUSEPORT
        for sock in sockets:
            sock.close()
        err.print(
            f"{workers} workers on {settings.host}:{settings.port} (SO_REUSEPORT), each "
            "with its own intake journal (docs/deployment.md#several-workers-on-one-host)",
            highlight=False,
        )
        raise typer.Exit(serve_workers(settings, workers))
    application.on_startup.append(_freeze_heap)  # after every cleanup_ctx has opened
    web.run_app(
        application,
        sock=sockets,
        access_log_class=AccessLogger,
        shutdown_timeout=10,
        print=lambda msg: err.print(msg, highlight=False),
        lingering_time=LINGERING_S,
        loop=event_loop(settings),
    )
