"""The composition root: the only place that builds engines, clocks, the scheduler and
adapters, and wires them to the core. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import ConfigError, Settings
from bot.db.engine import (
    SchemaTooNew,
    create_engine,
    pending_migrations,
    session_factory,
    upgrade,
)
from bot.db.uow import SqlUnitOfWorkFactory
from bot.domain.refs import UserRef
from bot.logs import quiet_libraries
from bot.scheduling.clock import SimulatedClock, SystemClock
from bot.service.anonymity import Keys
from bot.service.api import Admin, Policy
from bot.service.authors import AuthorLinks
from bot.service.bus import Bot
from bot.service.dispatcher import Dispatcher
from bot.service.planner import Planner
from bot.service.ports import Clock, Directory, Messenger, Platform, SlackInstallations

if TYPE_CHECKING:
    from bot.scheduling.waker import Waker

log = logging.getLogger(__name__)

PLAN_EVERY = timedelta(hours=6)
#: After a takeover, how long the new leader waits before it forgets its predecessor's leases:
#: longer than a leader takes to notice it lost its lock (it checks every 2 s) and stop.
TAKEOVER_GRACE_SECONDS = 5.0


def admin_from(entry: str, settings: Settings) -> Admin:
    """A configured admin (`platform:id`) and the one tenant they rule: on Slack the
    workspace (`slack:T…:U…` names it), on Matrix the bot account, in the terminal the
    terminal."""
    user = UserRef.parse(entry)
    if user.platform == "slack":
        from adapters.slack.tenants import admin

        return admin(user.id, oauth=settings.slack.oauth and settings.slack.bot_token is None)
    return Admin(user, user.platform)


def policy_from(settings: Settings, *, extra_admins: tuple[UserRef, ...] = ()) -> Policy:
    return Policy(
        admins=frozenset(admin_from(a, settings) for a in settings.bot.admins)
        | {Admin(u, u.platform) for u in extra_admins},
        default_zone=settings.bot.default_timezone,
        command_word=settings.bot.command,
        questions_per_day=settings.bot.questions_per_day,
        horizon=timedelta(days=settings.scheduler.horizon_days),
        late_grace=timedelta(seconds=settings.scheduler.late_grace_seconds),
        retention=timedelta(days=settings.bot.retention_days),
        batch_size=settings.scheduler.batch_size,
        commands_per_minute=settings.bot.commands_per_minute,
        messages_to_others_per_hour=settings.bot.messages_to_others_per_hour,
        prefixes={"slack": "/", "matrix": settings.matrix.command_prefix, "terminal": "/"},
    )


def ensure_schema(url: str) -> list[str]:
    """Apply pending migrations; returns the revisions applied (empty when up to date). A
    schema newer than this version is a `ConfigError`."""
    try:
        pending = pending_migrations(url)
    except SchemaTooNew as e:
        raise ConfigError(str(e)) from None
    if pending:
        upgrade(url)
    return pending


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database)
    return None


def _next_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def restrict_files(settings: Settings) -> None:
    """Make the SQLite database, its journal files and the question secret file readable by
    the bot's user only, whatever mode an older version (or a copy) left them in. (New files
    are made so by the process's umask.)"""
    db = sqlite_path(settings.database.url)
    suffixes = ("", "-wal", "-shm", ".secret", ".terminal-delivered")
    paths = [db.with_name(db.name + suffix) for suffix in suffixes] if db else []
    if settings.bot.question_secret_file:
        paths.append(Path(settings.bot.question_secret_file))
    for path in paths:
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:
            log.warning("%s is readable by others and not ours to change", path)


def question_secret(settings: Settings) -> bytes:
    """The secret behind anonymous questions' keyed hashes (see bot/service/anonymity.py):
    configured, else read from its file (made, mode 0600, on first start: beside the SQLite
    database unless a file is named), else new for this process."""
    configured = settings.bot.question_secret
    if configured is not None:
        return configured.get_secret_value().encode()
    named = settings.bot.question_secret_file
    db = sqlite_path(settings.database.url)
    path = Path(named) if named else db.with_name(db.name + ".secret") if db else None
    if path is None:
        log.warning("no question secret is configured: this process makes its own, so "
                    "question limits and upvotes start afresh when it restarts, and other "
                    "instances cannot share them (set bot.question_secret)")
        return secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < 16:
            raise ConfigError(f"the question secret in {path} is shorter than 16 bytes") \
                from None
        return secret
    with os.fdopen(fd, "w") as f:
        secret_text = secrets.token_hex(32)
        f.write(secret_text + "\n")
    return secret_text.encode()


@dataclass(kw_only=True)
class App:
    """Everything a running bot is made of."""

    settings: Settings
    engine: AsyncEngine
    clock: Clock
    policy: Policy
    bot: Bot
    dispatcher: Dispatcher
    planner: Planner
    uow: SqlUnitOfWorkFactory
    messengers: dict[str, Messenger] = field(default_factory=dict)

    async def advance_to(self, target: datetime) -> None:
        """Simulated clock only: move to `target`, delivering everything due on the way in
        order, planning ahead as time passes."""
        clock = self.clock
        assert isinstance(clock, SimulatedClock)
        await self.planner.plan_all()
        next_plan = clock.now() + PLAN_EVERY
        next_purge = _next_midnight(clock.now())
        while True:
            stats = await self.dispatcher.run_due()
            if stats.fired or stats.dropped or stats.sent or stats.failed or stats.retried:
                continue  # something happened at this instant: look again before moving on
            now = clock.now()
            if now >= target:
                return
            due = await self.dispatcher.next_due()
            if due is not None and due <= now:
                due = None  # due but not sendable here (no messenger for its platform)
            step = min(t for t in (due, next_plan, next_purge, target) if t is not None)
            clock.set(step)
            planning = step >= next_plan
            if planning:
                await self.planner.plan_all()
                next_plan = step + PLAN_EVERY
            if planning or step >= next_purge:
                # (and at midnight: a day's question keys end with the day)
                await self.planner.purge()
                next_purge = _next_midnight(step)

    async def close(self) -> None:
        await self.engine.dispose()


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    messengers: dict[str, Messenger] | None = None,
    directories: dict[str, Directory] | None = None,
    extra_admins: tuple[UserRef, ...] = (),
) -> App:
    quiet_libraries()
    restrict_files(settings)
    engine = create_engine(settings.database.url)
    uow = SqlUnitOfWorkFactory(session_factory(engine))
    clock = clock or SystemClock()
    policy = policy_from(settings, extra_admins=extra_admins)
    messengers = messengers or {}
    links = AuthorLinks()  # (this process's memory only: see bot/service/authors.py)
    dispatcher = Dispatcher(uow, clock, policy, messengers, directories, links)
    planner = Planner(uow, clock, policy)
    keys = Keys(question_secret(settings))
    bot = Bot(uow, clock, policy, directories, keys=keys, links=links, messengers=messengers)
    return App(settings=settings, engine=engine, clock=clock, policy=policy, bot=bot,
               dispatcher=dispatcher, planner=planner, uow=uow, messengers=messengers)


def platforms_from(settings: Settings, installations: SlackInstallations | None = None
                   ) -> list[Platform]:
    """The platform adapters enabled in the config (imported only when enabled).

    `installations` keeps Slack OAuth installs; when it is not given, `serve` hands Slack
    one on the bot's own database."""
    out: list[Platform] = []
    if settings.matrix.enabled:
        from adapters.matrix.platform import MatrixPlatform

        out.append(MatrixPlatform(settings.matrix))
    if settings.slack.enabled:
        from adapters.slack.platform import SlackPlatform

        out.append(SlackPlatform(settings.slack, installations=installations))
    return out


async def serve(settings: Settings, platforms: list[Platform], stop: asyncio.Event,
                *, clock: Clock | None = None) -> None:
    """Run the bot on `platforms` until `stop` is set: the platforms receive commands, the
    waker delivers what falls due. Stops cleanly: no send is cut off half-way.

    Several instances may share one PostgreSQL database: the shared platforms (Slack) run in
    each, the scheduler and the exclusive ones (Matrix) only in the leader (see
    `bot.scheduling.leader`)."""
    from bot.scheduling.leader import Leadership, PostgresLeader, SoleLeader

    app = build(settings, clock=clock,
                messengers={p.name: p.messenger for p in platforms},
                directories={p.name: p.directory for p in platforms})
    if settings.slack.oauth:
        from bot.db.slack_installations import (
            SqlSlackInstallations,
            TokenCipher,
            TokenKeyError,
        )

        key = settings.slack.token_key
        if key is None:  # (the config refuses OAuth without one)
            raise ConfigError("slack.token_key is required with slack.client_id")
        installations = SqlSlackInstallations(session_factory(app.engine),
                                              TokenCipher(key.get_secret_value()))
        try:
            if resealed := await installations.reseal():
                log.info("sealed %d Slack token(s) with the first slack.token_key", resealed)
        except TokenKeyError as e:
            await app.close()
            raise ConfigError(str(e)) from None
        for platform in platforms:
            use = getattr(platform, "use_installations", None)
            if callable(use):
                use(installations)
    if settings.matrix.enabled:
        from bot.db.matrix_cross_signing import SqlCrossSigningKeys

        keys = SqlCrossSigningKeys(session_factory(app.engine))
        for platform in platforms:
            use_keys = getattr(platform, "use_cross_signing_keys", None)
            if callable(use_keys):
                use_keys(keys)
    single = sqlite_path(settings.database.url) is not None or \
        app.engine.dialect.name != "postgresql"
    lead = _Lead(app, settings, [p for p in platforms if p.exclusive], takeover=not single)
    leadership: Leadership = SoleLeader() if single else PostgresLeader(
        app.engine, f"cohortbot:{settings.matrix.user_id or ''}", on_wake=lead.poke)
    notes: set[asyncio.Task[None]] = set()

    def changed() -> None:  # the scheduler learns of every change at once, wherever it runs
        if lead.waker is not None:
            lead.waker.poke()
            return
        task = asyncio.get_running_loop().create_task(leadership.wake_leader())
        notes.add(task)
        task.add_done_callback(notes.discard)

    started: list[Platform] = []
    ops = None
    electing: asyncio.Task[None] | None = None
    try:
        if settings.ops.enabled:
            from bot.ops import OpsServer

            ops = OpsServer(settings.ops, app, platforms, leading=lambda: lead.waker is not None)
            await ops.start()
        if single and sqlite_path(settings.database.url) is not None:
            # SQLite means one process: leases left by a crashed run can be dropped at once.
            await app.dispatcher.release_leases()
        app.bot._on_change = changed
        for platform in platforms:
            if not platform.exclusive:
                await platform.start(app.bot)
                started.append(platform)
                log.info("%s: started", platform.name)
        electing = asyncio.create_task(leadership.run(stop, lead.elected, lead.deposed))
        await _until_stopped(stop, electing)
        log.info("stopping")
    finally:
        if electing is not None:
            await asyncio.gather(electing, return_exceptions=True)
        await lead.deposed()
        for platform in reversed(started):
            await platform.stop()
        if ops is not None:
            await ops.stop()
        await app.close()


async def _until_stopped(stop: asyncio.Event, electing: asyncio.Task[None]) -> None:
    """Until `stop` is set; raises what the leadership raised (a platform that cannot start
    as leader, e.g. a Matrix store no configured key opens: a `ConfigError`)."""
    waiting = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiting, electing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if electing.done() and not electing.cancelled():
        failed = electing.exception()
        if failed is not None:
            raise failed


class _Lead:
    """What runs only in the leading instance: the scheduler and the exclusive platforms."""

    def __init__(self, app: App, settings: Settings, platforms: list[Platform], *,
                 takeover: bool) -> None:
        self._app = app
        self._settings = settings
        self._platforms = platforms
        self._takeover = takeover  # there may have been a leader before this one
        self._releasing: asyncio.Task[None] | None = None
        self.waker: Waker | None = None

    async def elected(self) -> None:
        from bot.scheduling.waker import Waker

        elected_at = self._app.clock.now()
        self._app.dispatcher.resume()
        for platform in self._platforms:
            await platform.start(self._app.bot)
            log.info("%s: started", platform.name)
        # Pokes go to it from now on: a change made while it starts (planning ahead) is
        # not lost.
        self.waker = Waker(self._app.dispatcher, self._app.planner, self._app.clock,
                           self._settings.scheduler.sweep_seconds)
        await self.waker.start()
        if self._takeover:
            self._releasing = asyncio.create_task(self._release(elected_at))

    async def _release(self, elected_at: datetime) -> None:
        """What the previous leader had claimed but not sent goes out soon, not when its
        lease ends: once that leader has surely stopped (it checks its lock every few
        seconds and then sends nothing new), its leases are forgotten. Each such message is
        looked for on its platform before it is sent again."""
        await asyncio.sleep(TAKEOVER_GRACE_SECONDS)
        try:
            released = await self._app.dispatcher.release_leases(claimed_before=elected_at)
        except Exception as e:  # noqa: BLE001 - the leases then simply run out
            log.warning("leadership: could not release the previous leader's leases (%s)",
                        type(e).__name__)
            return
        if released:
            log.info("leadership: %d message(s) the previous leader was sending go out now",
                     released)
            self.poke()

    async def deposed(self) -> None:
        if self._releasing is not None:
            self._releasing.cancel()
            await asyncio.gather(self._releasing, return_exceptions=True)
            self._releasing = None
        waker, self.waker = self.waker, None
        if waker is None:
            return
        self._app.dispatcher.halt()
        await waker.stop()
        for platform in reversed(self._platforms):
            await platform.stop()

    def poke(self) -> None:
        if self.waker is not None:
            self.waker.poke()


def terminal_app(settings: Settings, *, user: str, out: TextIO,
                 simulated_start: datetime | None) -> App:
    from adapters.terminal.shell import TerminalMessenger

    db = sqlite_path(settings.database.url)
    delivered = db.with_name(db.name + ".terminal-delivered") if db else None
    clock: Clock = SimulatedClock(simulated_start) if simulated_start else SystemClock()
    has_terminal_admin = any(a.startswith("terminal:") for a in settings.bot.admins)
    # Trying the bot needs someone who may create a cohort: with no terminal admin configured,
    # the person at the keyboard is one.
    extra = () if has_terminal_admin else (UserRef("terminal", user),)
    return build(settings, clock=clock,
                 messengers={"terminal": TerminalMessenger(out, delivered)},
                 extra_admins=extra)
