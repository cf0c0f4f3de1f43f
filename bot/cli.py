"""The `cohortbot` command line: run, shell, migrate, check-config, export-person,
new-key, slack-manifest, db copy, matrix reset-cross-signing."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import NoReturn

import click

from bot.chat.message import plural
from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging

log = logging.getLogger("bot")


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj.get("config"))
    except ConfigError as e:
        for line in e.problems:  # every problem found, one line each
            click.echo(line, err=True)
        sys.exit(2)


def _schema(settings: Settings) -> list[str]:
    """Migrate the database (the revisions applied); a schema newer than this version stops
    the command with one line."""
    from bot.bootstrap import ensure_schema

    try:
        return ensure_schema(settings.database.url)
    except ConfigError as e:
        click.echo(str(e), err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="TOML config file (default: $COHORTBOT_CONFIG, else ./cohortbot.toml).")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """cohortbot keeps peer-mentoring cohorts running on Slack, Matrix and the terminal."""
    # Everything the bot writes (the database, its journal, the Matrix store, secrets) is for
    # the bot's user alone.
    os.umask(0o077)
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@main.command("check-config")
@click.option("--live", is_flag=True,
              help="Also try the database, the Slack token, the Matrix homeserver and "
                   "account (never logs in). Exit code 1 if any fails.")
@click.pass_context
def check_config(ctx: click.Context, live: bool) -> None:
    """Validate the configuration and print it with secrets hidden; every problem is
    listed, one line each (exit code 2)."""
    import json

    settings = _settings(ctx)
    click.echo(f"config file: {settings.source_path or '(none: defaults and environment)'}")
    click.echo(f"platforms: {', '.join(settings.enabled_platforms()) or 'terminal'}")
    click.echo(json.dumps(settings.redacted(), indent=2, default=str))
    click.echo("config OK")
    if live:
        from bot.livecheck import run_checks

        checks = asyncio.run(run_checks(settings))
        for check in checks:
            click.echo(check.line())
        if any(check.ok is False for check in checks):
            sys.exit(1)


@main.command("export-person")
@click.argument("person")
@click.option("--tenant", default=None,
              help="Only this tenant (e.g. slack:T0123); default: every tenant.")
@click.pass_context
def export_person(ctx: click.Context, person: str, tenant: str | None) -> None:
    """Print, as JSON, everything the bot keeps about PERSON (platform:id, e.g.
    slack:U0123 or matrix:@ana:example.org), for a subject-access request."""
    import json

    from bot.db.engine import create_engine, session_factory
    from bot.db.uow import SqlUnitOfWorkFactory
    from bot.domain.refs import UserRef
    from bot.service.mydata import personal_data

    settings = _settings(ctx)
    try:
        user = UserRef.parse(person)
    except ValueError:
        raise click.BadParameter(f"{person!r} is not platform:id (e.g. slack:U0123)",
                                 param_hint="PERSON") from None

    async def read() -> dict[str, object]:
        engine = create_engine(settings.database.url)
        try:
            async with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
                return await personal_data(uow, user, tenant)
        finally:
            await engine.dispose()

    _schema(settings)
    click.echo(json.dumps(asyncio.run(read()), indent=2, ensure_ascii=False))


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending database migrations."""
    settings = _settings(ctx)
    setup_logging(settings.bot.log_level, settings.bot.log_format)
    applied = _schema(settings)
    click.echo(f"applied {plural(len(applied), 'migration')}" if applied
               else "database is up to date")


def _parse_start(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 instant "
                                 "(e.g. 2026-12-01T09:00Z)") from None
    return start if start.tzinfo else start.replace(tzinfo=UTC)


async def _shell(settings: Settings, *, user: str, channel: str, simulated: bool,
                 start: datetime | None, keep_running: bool) -> None:
    from adapters.terminal.shell import Shell, TerminalMessenger
    from bot.bootstrap import sqlite_path, terminal_app
    from bot.scheduling.waker import Waker

    app = terminal_app(settings, user=user, out=sys.stdout,
                       simulated_start=start if simulated else None)
    waker: Waker | None = None
    if sqlite_path(settings.database.url) is not None:
        # SQLite means one process: leases left by a crashed run can be dropped at once.
        await app.dispatcher.release_leases()
    if not simulated:
        waker = Waker(app.dispatcher, app.planner, app.clock, settings.scheduler.sweep_seconds)
        app.bot._on_change = waker.poke  # the scheduler learns of every change at once
        await waker.start()
    else:
        await app.planner.plan_all()
    messenger = app.messengers.get("terminal")
    shell = Shell(
        handle=app.bot.handle, run_due=app.dispatcher.run_due,
        advance=app.advance_to if simulated else None, clock=app.clock, out=sys.stdout,
        user=user, channel=channel, command_word=settings.bot.command,
        messenger=messenger if isinstance(messenger, TerminalMessenger) else None,
        # (a bot that keeps running after the input ends stops only on a signal)
        stop_hint="Ctrl-C stops the bot" if keep_running and not simulated else
        "end with Ctrl-D",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reading = asyncio.create_task(shell.run())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if reading.done():
            reading.result()  # surface a crash of the shell itself
            if waker is not None and keep_running:
                # Input ended but the bot is a service: keep delivering until stopped.
                log.info("input closed; still delivering scheduled messages until stopped")
                await stopping
    finally:
        for task in (reading, stopping):
            task.cancel()
        if waker is not None:
            await waker.stop()
        await app.close()


def _prepare(settings: Settings) -> None:
    setup_logging(settings.bot.log_level, settings.bot.log_format)
    applied = _schema(settings)
    if applied:
        log.info("applied %s", plural(len(applied), "migration"))


@main.command()
@click.option("--user", default=None, help="Who you are in the chat (default from config).")
@click.option("--channel", default=None, help="The channel you start in.")
@click.option("--clock", "clock", type=click.Choice(["real", "simulated"]), default="real",
              show_default=True, help="simulated: time moves only with :advance.")
@click.option("--start", default=None, help="Simulated clock start, ISO-8601 (default: now).")
@click.option("--keep-running/--exit-at-eof", default=False,
              help="Real clock: keep delivering after the input ends, until SIGTERM.")
@click.pass_context
def shell(ctx: click.Context, user: str | None, channel: str | None, clock: str,
          start: str | None, keep_running: bool) -> None:
    """Chat with the bot in this terminal (reads stdin until EOF)."""
    settings = _settings(ctx)
    _prepare(settings)
    asyncio.run(_shell(settings, user=user or settings.terminal.user,
                       channel=channel or settings.terminal.channel,
                       simulated=clock == "simulated", start=_parse_start(start),
                       keep_running=keep_running))


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the bot on every enabled platform (the terminal when none is)."""
    settings = _settings(ctx)
    _prepare(settings)
    if not settings.enabled_platforms():
        asyncio.run(_shell(settings, user=settings.terminal.user,
                           channel=settings.terminal.channel, simulated=False, start=None,
                           keep_running=True))
        return
    try:
        asyncio.run(_serve(settings))
    except ConfigError as e:  # found only once the database could be read
        click.echo(str(e), err=True)
        sys.exit(2)


@main.command("new-key")
def new_key() -> None:
    """Print a fresh random key for slack.token_key or matrix.store_key."""
    from bot.db.slack_installations import new_token_key

    click.echo(new_token_key())


@main.command("slack-manifest")
@click.option("--mode", type=click.Choice(["socket", "http"]), default=None,
              help="Socket Mode or HTTP request URLs (default: slack.mode from the config).")
@click.option("--url", default=None,
              help="The public https:// base URL Slack calls (…/slack/events is added); "
                   "needed in HTTP mode and with OAuth installs.")
@click.pass_context
def slack_manifest(ctx: click.Context, mode: str | None, url: str | None) -> None:
    """Print a Slack app manifest (YAML) to create the app from. With OAuth installs
    (slack.client_id set) it lists the redirect URL, <url>/slack/oauth_redirect."""
    from adapters.slack.manifest import check_public_url, render_manifest

    settings = _settings(ctx)
    mode = mode or settings.slack.mode
    oauth = settings.slack.client_id is not None
    def refuse(why: str) -> NoReturn:
        click.echo(f"cohortbot slack-manifest: --url: {why}", err=True)
        sys.exit(2)  # as click's own usage errors, in one line

    if url is not None:
        try:
            url = check_public_url(url)
        except ValueError as e:
            refuse(str(e))
    if mode == "http" and not url:
        refuse("required with --mode http (where Slack sends requests, e.g. "
               "https://bot.example.org).")
    if oauth and not url:
        refuse("required with OAuth installs (slack.client_id is set): Slack sends "
               "installers back to <url>/slack/oauth_redirect.")
    click.echo(render_manifest(mode=mode, url=url, command=settings.bot.command, oauth=oauth),
               nl=False)


async def _serve(settings: Settings) -> None:
    from bot.bootstrap import platforms_from, serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    platforms = platforms_from(settings)
    _freeze_startup_objects()
    await serve(settings, platforms, stop)


def _freeze_startup_objects() -> None:
    """Keep what the process loaded to start (modules, classes, the SDKs: some 140,000
    objects that live as long as it does) out of every later garbage collection. A full
    collection would otherwise walk them all, a pause of tens of milliseconds in the middle
    of whichever command is being answered."""
    gc.collect()
    gc.freeze()


# --------------------------------------------------------------------------- cohortbot db


@main.group("db")
def db() -> None:
    """Database operations: copy between SQLite and PostgreSQL."""


@db.command("copy")
@click.option("--from", "source", required=True, metavar="URL",
              help="The database to copy from (only read; stop the bot first).")
@click.option("--to", "target", required=True, metavar="URL",
              help="The database to copy into: migrated first, must hold no rows.")
def db_copy(source: str, target: str) -> None:
    """Copy every table's rows from one database to another, e.g. from SQLite to PostgreSQL.

    URLs as in database.url: sqlite:///cohortbot.db, postgresql://user@host/db. Prints the
    number of rows per table, never their contents."""
    from bot.config import normalise_database_url
    from bot.db.copy import CopyError, TableCopied, copy_database, describe, question_secret_beside

    urls = []
    for name, value in (("--from", source), ("--to", target)):
        try:
            urls.append(normalise_database_url(value))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint=name) from None
    source_url, target_url = urls
    click.echo(f"copying {describe(source_url)} to {describe(target_url)}")

    def report(done: TableCopied) -> None:
        click.echo(f"{done.table}: {done.rows} row{'' if done.rows == 1 else 's'}")

    try:
        copied = copy_database(source_url, target_url, on_table=report)
    except CopyError as e:
        click.echo(f"cohortbot db copy: {e}", err=True)
        sys.exit(2)
    total = sum(t.rows for t in copied)
    click.echo(f"total: {total} row{'' if total == 1 else 's'} in {len(copied)} tables")
    secret = question_secret_beside(source_url)
    if secret is not None:
        click.echo(f"note: anonymous questions' hashes use the secret in {secret}: give the "
                   "bot on the new database the same one (bot.question_secret_file, or its "
                   "content in COHORTBOT_BOT__QUESTION_SECRET)", err=True)


@main.group()
def matrix() -> None:
    """The bot's Matrix account."""


@matrix.command("reset-cross-signing")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def matrix_reset_cross_signing(ctx: click.Context, yes: bool) -> None:
    """Give the bot's account new cross-signing keys, replacing the ones it has (the keys
    another client set up, or ones whose database is lost), and sign the bot's device.

    Takes the account's password (matrix.password, else asked for). Members' clients then
    show that the bot's identity changed."""
    from bot.db.engine import create_engine, session_factory
    from bot.db.matrix_cross_signing import SqlCrossSigningKeys

    settings = _settings(ctx)
    s = settings.matrix
    if not (s.enabled and s.homeserver and s.user_id and s.store_key):
        click.echo("cohortbot matrix: Matrix is not configured (matrix.enabled, homeserver, "
                   "user_id, store_key)", err=True)
        sys.exit(2)
    if not yes:
        click.confirm(f"Replace the cross-signing keys of {s.user_id}? Members' clients will "
                      f"show that its identity changed", abort=True)
    password = (s.password.get_secret_value() if s.password is not None else
                click.prompt(f"Password of {s.user_id}", hide_input=True))

    async def reset() -> str:
        from adapters.matrix.account import reset_cross_signing

        engine = create_engine(settings.database.url)
        try:
            return await reset_cross_signing(s, SqlCrossSigningKeys(session_factory(engine)),
                                             password, datetime.now(UTC))
        finally:
            await engine.dispose()

    from adapters.matrix.account import AccountError

    _schema(settings)
    try:
        click.echo(asyncio.run(reset()))
    except AccountError as e:
        click.echo(f"cohortbot matrix: {e}", err=True)
        sys.exit(1)
