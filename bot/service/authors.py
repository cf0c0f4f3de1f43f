"""Who asked which question, in this process's memory only, so that an author hears what
became of their question without asking.

The link (question id → the person, their tenant and the cohort's channel) is made when a
question is asked and lives nowhere else: not in the database, a file or a log line, and
`repr` shows none of it. It ends when the question is returned, posted or withdrawn, or
after `LINK_TTL`. A restart forgets every link, and another instance never had it: the author
then learns the outcome with `question <code>`, as before. What the author is told goes
straight to the platform (`Messenger.whisper`), never through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.chat.message import Message
from bot.domain.refs import ChannelRef, UserRef
from bot.service.ports import DeliveryError, Messenger

log = logging.getLogger(__name__)

LINK_TTL = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Link:
    user: UserRef
    tenant: str
    place: ChannelRef | None
    until: datetime

    def __repr__(self) -> str:
        return "Link(…)"  # (never in a log line or a traceback)


class AuthorLinks:
    def __init__(self) -> None:
        self._links: dict[int, Link] = {}

    def __repr__(self) -> str:
        return f"AuthorLinks({len(self._links)} held)"

    def remember(self, question_id: int, user: UserRef, tenant: str,
                 place: ChannelRef | None, now: datetime) -> None:
        for qid in [q for q, link in self._links.items() if link.until <= now]:
            del self._links[qid]
        self._links[question_id] = Link(user, tenant, place, now + LINK_TTL)

    def forget(self, question_id: int) -> None:
        self._links.pop(question_id, None)

    def find(self, question_id: int, now: datetime) -> Link | None:
        link = self._links.get(question_id)
        if link is not None and link.until <= now:
            del self._links[question_id]
            return None
        return link

    def batch(self) -> Tidings:
        return Tidings(self)


@dataclass
class Tidings:
    """What to tell authors once the transaction that decided it has committed."""

    links: AuthorLinks
    items: list[tuple[Link, Message]] = field(default_factory=list)

    def tell(self, question_id: int, now: datetime, message: Message, *,
             final: bool) -> None:
        """Tell the author of `question_id`, if this process knows them; `final`: the
        question's journey ends here, and so does the link."""
        link = self.links.find(question_id, now)
        if link is None:
            return
        self.items.append((link, message))
        if final:
            self.links.forget(question_id)

    async def deliver(self, messengers: Mapping[str, Messenger]) -> None:
        items, self.items = self.items, []
        for link, message in items:
            messenger = messengers.get(link.user.platform)
            if messenger is None:
                continue
            try:
                await messenger.whisper(link.user, link.tenant, link.place, message)
            except DeliveryError as e:
                # (Nothing here names the person or the question.) They learn it with
                # `question <code>`.
                log.info("an author could not be told what became of their question (%s)",
                         e.reason)
