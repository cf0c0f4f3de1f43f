"""Anonymous questions: ask, moderate, release, upvote, retract.

The author is never stored, logged or shown. What the bot keeps:
- the question row: cohort, text, a hash of the one-time code, a random review id and the
  *day* it was asked — nothing that points at a person — inserted in a transaction that
  writes nothing else;
- a count of each person's questions that day, under a keyed hash only that day's key can
  make, counted in a transaction of its own (bot/service/anonymity.py: the key needs the
  operator's secret, and its salt is deleted when the day is over);
- for each upvote, a keyed hash of the voter under the question's own salt, deleted with
  the salt when voting closes (at the end of the session the question was released for).
A batch is posted only when it holds at least `min_batch` questions: alone, a question is
easy to match to whoever was around when it was asked.
The author learns the outcome with their code (`question <code>`), never by identity lookup.
Nothing in this module logs the caller.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.chat import commands as c
from bot.chat.grammar import Role
from bot.chat.message import Action as Button
from bot.chat.message import Message, Strong, Text, lines, plural
from bot.domain.cohort_settings import CohortSettings
from bot.domain.errors import UserError
from bot.domain.model import EDIT, PENDING, Cohort, OutboxMessage, Question, Upvote
from bot.service.anonymity import new_salt
from bot.service.authors import Tidings
from bot.service.context import Ctx, Handler, queue_change, queue_message, tell_facilitators
from bot.service.ports import UnitOfWork

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
REVIEW_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
#: Scheduled releases held back in a row (too few questions) before facilitators are told.
HELD_NOTICE = 2
#: How far ahead the session a question is released for is looked for, and how long voting
#: stays open when there is none.
VOTE_SEARCH = timedelta(days=60)
VOTE_FALLBACK = timedelta(days=7)
#: The upvote count on a post is updated at most this often (never once per vote), and once
#: more when voting closes (the change keyed with `CLOSING`).
VOTE_SHOW_EVERY = timedelta(minutes=10)
CLOSING = ":closed"
#: A question that asks the same as one posted before it was released: not posted again.
MERGED = "merged"
#: A question shorter than this (characters, words) is refused: it cannot be answered.
MIN_CHARS, MIN_WORDS = 10, 3


def same_question(text: str) -> str:
    """What two questions share when they are the same question: case, runs of whitespace
    and trailing punctuation do not count."""
    return " ".join(text.casefold().split()).rstrip(" ?!.,;:…¿¡")


async def _check_text(ctx: Ctx, text: str) -> None:
    """Refuse a question too short to answer, or one already posted in the cohort. Only
    released questions are compared: a refusal must tell nothing about pending ones."""
    if len(text.strip()) < MIN_CHARS or len(text.split()) < MIN_WORDS:
        raise ctx.fail(f"A question needs at least {MIN_WORDS} words and {MIN_CHARS} "
                       "characters, so that the group can answer it.")
    same = same_question(text)
    for q in await ctx.uow.find(Question, cohort_id=ctx.cohort.id, status="released"):
        if same_question(q.text) == same:
            raise ctx.fail(f"That question was already posted, as #{q.number}: "
                           f"{ctx.cmd(f'upvote {q.number}')} to support it instead.")


def _code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))  # ~60 bits
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def code_hash(code: str) -> str:
    normal = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(f"cohortbot-question:{normal}".encode()).hexdigest()


async def _count(ctx: Ctx) -> None:
    """One more question today for the caller, or a refusal at the day's limit."""
    async with ctx.apart() as own:
        who = ctx.keys.digest(await ctx.keys.of_day(own, ctx.now), str(ctx.user))
        counted = await own.count_question(ctx.now.date().isoformat(), who,
                                           ctx.policy.questions_per_day)
    if not counted:
        raise UserError(f"You can ask at most {ctx.policy.questions_per_day} questions a day. "
                        "Try again tomorrow.")


async def _review_id(uow: UnitOfWork) -> str:
    while True:
        rid = "".join(secrets.choice(REVIEW_ALPHABET) for _ in range(4))
        if not await uow.find(Question, review_id=rid):
            return rid


def question_post(q: Question, *, votes: int | None = None, closed: bool = False) -> Message:
    """The channel post of a released question; with `votes`, as updated to show its count
    (and, once `closed`, without the button)."""
    parts: tuple[Strong | Text, ...] = (Strong(f"Anonymous question #{q.number}"),
                                        Text("\n" + q.text))
    if votes is not None:
        parts += (Text(f"\n▲ {plural(votes, 'upvote')}" + (" · voting closed" if closed
                                                              else "")),)
    return Message(parts, () if closed else (Button(f"Upvote #{q.number}",
                                                     f"upvote {q.number}"),))


def _next_show(now: datetime) -> datetime:
    """When a count that changed `now` is shown: at the first `VOTE_SHOW_EVERY` mark at least
    two minutes on. Marks lie `VOTE_SHOW_EVERY` apart, so the post changes at most that often,
    and the moment stored is the mark's, not the vote's."""
    soon = now + timedelta(minutes=2)
    step = int(VOTE_SHOW_EVERY.total_seconds())
    stamp = int(soon.timestamp())
    mark = soon.fromtimestamp(-(-stamp // step) * step, tz=soon.tzinfo)
    return mark


async def _show_votes(uow: UnitOfWork, q: Question, now: datetime) -> None:
    """Bring the count on the post up to date: the changes already queued for it (the next
    mark's, the closing one) take the new count; else one is queued for the next mark."""
    if q.post_key is None or q.votes_until is None:
        return
    queued = await uow.find(OutboxMessage, of_key=q.post_key, op=EDIT, status=PENDING)
    for row in queued:
        closing = row.key.endswith(CLOSING)
        row.body = question_post(q, votes=q.upvotes, closed=closing).to_json()
    if any(not row.key.endswith(CLOSING) for row in queued):
        return
    mark = _next_show(now)
    if mark >= q.votes_until:
        return  # the closing change shows it
    await queue_change(uow, q.post_key, question_post(q, votes=q.upvotes), now=mark,
                       key=f"votes:q{q.id}:{mark.isoformat()}", due_at=mark)


async def _votes_until(uow: UnitOfWork, cohort: Cohort, now: datetime) -> datetime:
    """When voting on a question released `now` closes: at the end of the session it is
    released for (the first one not over yet), else a week on."""
    for s in await uow.sessions_between(cohort.id, now - timedelta(days=1), now + VOTE_SEARCH):
        end = s.starts_at + timedelta(minutes=s.duration_min)
        if end > now:
            return end
    return now + VOTE_FALLBACK


def _quote(q: Question) -> Text:
    """The start of a question, to tell its author which one (never stored)."""
    first = q.text.splitlines()[0] if q.text else ""
    more = len(first) > 60 or len(q.text.splitlines()) > 1
    return Text(f"“{first[:60]}{'…' if more else ''}”")


def _tell(tidings: Tidings | None, q: Question, cohort: Cohort, now: datetime, what: str,
          *, final: bool, note: str | None = None) -> None:
    """Tell the author of `q`, when this process knows them (bot/service/authors.py)."""
    if tidings is None:
        return
    message = Message.of(f"Your anonymous question in {cohort.name}, ", _quote(q), f", {what}")
    if note:
        message = message + Message.of("\nThe facilitator's note: ", Text(note))
    tidings.tell(q.id, now, message, final=final)


async def _release(uow: UnitOfWork, cohort: Cohort, questions: list[Question], now: datetime,
                   key: str, late: bool = False, tidings: Tidings | None = None) -> int:
    # Random order, numbered in that order: neither the order nor the number tells when, or
    # in which sequence, the questions were asked.
    random.SystemRandom().shuffle(questions)
    until = await _votes_until(uow, cohort, now) if questions else now
    posted = {same_question(q.text): q
              for q in await uow.find(Question, cohort_id=cohort.id, status="released")}
    for q in questions:
        twin = posted.get(same_question(q.text))
        if twin is not None:
            # Asked twice before either was posted (a new question is compared only with
            # posted ones): the group sees it once, and this author is pointed at it.
            q.status, q.number = MERGED, twin.number
            _tell(tidings, q, cohort, now, f"asks the same as #{twin.number}, which is posted, "
                  "so it is not posted again: upvote that one to support it.", final=True)
            continue
        posted[same_question(q.text)] = q
        cohort.question_seq += 1
        q.number = cohort.question_seq
        q.status = "released"
        q.vote_salt, q.votes_until = new_salt(), until
        # Kept: its author may withdraw it, and its upvote count is shown on it.
        q.post_key = await queue_message(uow, question_post(q), now=now, cohort=cohort,
                                         key=f"{key}:q{q.id}", late=late, keep=True)
        if q.post_key is not None:
            await queue_change(uow, q.post_key, question_post(q, votes=0, closed=True),
                               now=now, key=f"votes:q{q.id}{CLOSING}", due_at=until)
        _tell(tidings, q, cohort, now, f"is posted in the channel as #{q.number}.",
              final=True)
    cohort.held_releases = 0
    return sum(q.status != MERGED for q in questions)


async def scheduled_release(uow: UnitOfWork, cohort: Cohort, now: datetime, *, key: str,
                            late: bool = False, cmd: Callable[[str], str],
                            tidings: Tidings | None = None) -> int:
    """The release before a session. It posts only a batch of at least `min_batch`; fewer
    wait for the next one, and when that has happened `HELD_NOTICE` times in a row the
    facilitators are told (with no count finer than "1" or "some")."""
    ready = await uow.find(Question, cohort_id=cohort.id, status="approved")
    if len(ready) >= CohortSettings.from_json(cohort.settings).min_batch:
        return await _release(uow, cohort, ready, now, key, late, tidings)
    if not ready:
        cohort.held_releases = 0
        return 0
    cohort.held_releases += 1
    if cohort.held_releases == HELD_NOTICE:
        waiting = "1 anonymous question is" if len(ready) == 1 else \
            "Some anonymous questions are"
        notice = Message.of(
            f"{waiting} waiting in {cohort.name}, too few for a batch, so they have been held "
            f"back twice: alone, a question is easy to match to whoever was around when it "
            f"was asked. Post them anyway with {cmd('release confirm')}, or let them wait "
            "for more.")
        await tell_facilitators(uow, cohort, notice, now=now, key=f"{key}:held", late=late)
    return 0


async def ask_question(ctx: Ctx, cmd: c.AskQuestion) -> Message:
    cohort = ctx.cohort
    ctx.member  # noqa: B018 - members only
    if cohort.channel is None:
        raise UserError(f"{cohort.name} is not linked to a channel yet, so questions have "
                        "nowhere to go.")
    settings = CohortSettings.from_json(cohort.settings)
    await _check_text(ctx, cmd.text)
    await _count(ctx)
    code = _code()
    q = Question(
        cohort_id=cohort.id, text=cmd.text, code_hash=code_hash(code),
        review_id=await _review_id(ctx.uow), day=ctx.now.date().isoformat(),
        status="pending" if settings.moderation else "approved",
    )
    ctx.uow.add(q)
    await ctx.uow.flush()
    if settings.moderation or settings.question_release != "immediate":
        # So that they hear what becomes of it: in this process's memory only.
        ctx.links.remember(q.id, ctx.user, ctx.tenant, cohort.channel, ctx.now)
    if settings.moderation:
        when = "A facilitator will review it (they will not see who asked)."
    elif settings.question_release == "immediate":
        await _release(ctx.uow, cohort, [q], ctx.now, key=f"ask:{q.review_id}")
        when = "It is being posted to the channel now."
    else:
        when = "It will be posted with the other questions before the next session, in " \
               "random order, and only with at least one other so that it does not stand alone."
    return Message.of(
        Strong("Your anonymous question is in."), f" {when}\nYour code: ", Strong(code),
        f"\nKeep it: {ctx.cmd('question ' + code)} shows what happened to it, "
        f"{ctx.cmd('retract ' + code)} withdraws it. The group, the facilitators and the "
        "admins cannot see who asked, and the bot stores nothing that says it was you.",
    )


async def _by_code(ctx: Ctx, code: str) -> Question:
    found = await ctx.uow.find(Question, code_hash=code_hash(code))
    if not found:
        raise UserError("No question has that code. Check it against the one you were given.")
    return found[0]


async def question_status(ctx: Ctx, cmd: c.QuestionStatus) -> Message:
    q = await _by_code(ctx, cmd.code)
    status = {
        "pending": "waiting for a facilitator's review",
        "approved": "approved; it will be posted with the next batch",
        "returned": "returned by a facilitator and will not be posted; you can ask again, "
                    f"changed: {ctx.cmd('ask <question>')}",
        "released": f"posted as anonymous question #{q.number} ({q.upvotes} upvotes)",
        MERGED: f"the same as anonymous question #{q.number}, which was posted, so it was "
                f"not posted again: {ctx.cmd(f'upvote {q.number}')} supports it",
        "retracted": "withdrawn by you",
    }[q.status]
    note = f"\nNote from the facilitator: {q.return_note}" if q.return_note else ""
    return Message.of(f"Your question is {status}.{note}")


async def retract(ctx: Ctx, cmd: c.Retract) -> Message:
    q = await _by_code(ctx, cmd.code)
    if q.status == "retracted":
        raise UserError("That question was already withdrawn.")
    posted = q.status == "released"
    ctx.links.forget(q.id)
    q.status = "retracted"
    q.text = ""  # nothing left to keep
    ctx.erased = True
    if not posted:
        return Message.of("Your question is withdrawn and its text deleted.")
    if q.post_key is not None:
        await ctx.uow.delete_where(OutboxMessage, of_key=q.post_key, op=EDIT, status=PENDING)
        await queue_change(ctx.uow, q.post_key, Message.of(
            f"Anonymous question #{q.number} was withdrawn by its author."),
            now=ctx.now, key=f"retract:q{q.id}", remove=True)
    q.post_key = None
    await ctx.uow.delete_where(Upvote, question_id=q.id)  # (the count goes with the post)
    q.vote_salt = None
    return Message.of(f"Your question #{q.number} is withdrawn: its post is being removed from "
                      "the channel and its text deleted.")


async def list_questions(ctx: Ctx, cmd: c.ListQuestions) -> Message:
    released = await ctx.uow.find(Question, cohort_id=ctx.cohort.id, status="released",
                                  order_by="number")
    released.sort(key=lambda q: -q.upvotes)  # most upvoted first (stable: then by number)
    # Only facilitators (who review them anyway) see how many wait: a member who watched the
    # count change would learn when each question was asked, and match it to who was about.
    waiting = len(await ctx.uow.find(Question, cohort_id=ctx.cohort.id,
                                     status=("pending", "approved"))
                  ) if ctx.role >= Role.FACILITATOR else 0
    if not released:
        head = "No anonymous questions have been posted yet."
    else:
        head = f"Anonymous questions in {ctx.cohort.name}, most upvoted first:"
    body: list[Message | str] = [head]
    for q in released:
        first = q.text.splitlines()[0] if q.text else ""
        body.append(Message.of(Strong(f"#{q.number}"), f" ({q.upvotes} ▲) ",
                               Text(first[:120] + ("…" if len(first) > 120 else ""))))
    if waiting:
        body.append(f"{waiting} more waiting to be posted.")
    body.append(f"Ask with {ctx.cmd('ask <question>')}, "
                f"upvote with {ctx.cmd('upvote <number>')}.")
    return lines(body)


async def upvote(ctx: Ctx, cmd: c.Upvote) -> Message:
    ctx.member  # noqa: B018 - members only
    found = await ctx.uow.find(Question, cohort_id=ctx.cohort.id, number=cmd.number,
                               status="released")
    if not found:
        raise ctx.fail(f"There is no anonymous question #{cmd.number} in {ctx.cohort.name}.")
    q = found[0]
    if q.vote_salt is None or q.votes_until is None or ctx.now >= q.votes_until:
        raise UserError(f"Voting on #{q.number} has closed: it was open until the end of the "
                        "session it was posted for.")
    voter = ctx.keys.voter(q.vote_salt, str(ctx.user))
    if await ctx.uow.find(Upvote, question_id=q.id, voter_hash=voter):
        return Message.of(f"You already upvoted #{q.number}.")
    ctx.uow.add(Upvote(question_id=q.id, voter_hash=voter))
    q.upvotes += 1
    await _show_votes(ctx.uow, q, ctx.now)
    return Message.of(f"Upvoted #{q.number} (now {q.upvotes}). Nobody sees who upvoted.")


async def review_questions(ctx: Ctx, cmd: c.ReviewQuestions) -> Message:
    pending = await ctx.uow.find(Question, cohort_id=ctx.cohort.id, status="pending",
                                 order_by="review_id")
    if not pending:
        return Message.of("No questions are waiting for review.")
    body: list[Message | str] = [f"{plural(len(pending), 'question')} waiting for review:"]
    for q in pending:
        body.append(Message(
            (Strong(f"[{q.review_id}] "), Text(q.text)),
            (Button("Approve", f"approve {q.review_id}"),
             Button("Return", f"return {q.review_id}")),
        ))
    body.append(f"{ctx.cmd('approve <id>')} or {ctx.cmd('return <id> [note]')}.")
    return lines(body)


async def _pending(ctx: Ctx, review_id: str) -> Question:
    found = await ctx.uow.find(Question, cohort_id=ctx.cohort.id, review_id=review_id)
    if not found or found[0].status != "pending":
        raise ctx.fail(f"No question '{review_id}' is waiting for review in {ctx.cohort.name}.")
    return found[0]


async def approve_question(ctx: Ctx, cmd: c.ApproveQuestion) -> Message:
    q = await _pending(ctx, cmd.review_id)
    q.status = "approved"
    if CohortSettings.from_json(ctx.cohort.settings).question_release == "immediate":
        _tell(ctx.tidings, q, ctx.cohort, ctx.now, "is approved by a facilitator.",
              final=False)
        if not await _release(ctx.uow, ctx.cohort, [q], ctx.now, key=f"approve:{q.review_id}",
                              tidings=ctx.tidings):
            return Message.of(f"Approved {q.review_id}; it asks the same as #{q.number}, which "
                              "is posted, so it is not posted again.")
        return Message.of(f"Approved {q.review_id}; it is being posted now.")
    _tell(ctx.tidings, q, ctx.cohort, ctx.now, "is approved by a facilitator. It will be "
          "posted with the next batch.", final=False)
    return Message.of(f"Approved {q.review_id}; it goes out with the next batch.")


async def return_question(ctx: Ctx, cmd: c.ReturnQuestion) -> Message:
    q = await _pending(ctx, cmd.review_id)
    q.status = "returned"
    q.return_note = cmd.note
    _tell(ctx.tidings, q, ctx.cohort, ctx.now, "was returned by a facilitator and will not be "
          f"posted. You can ask again, changed: {ctx.cmd('ask <question>')}.", final=True,
          note=cmd.note)
    return Message.of(f"Returned {q.review_id}. Its author is told (with your note), without "
                      "anyone seeing who they are.")


async def release_now(ctx: Ctx, cmd: c.ReleaseQuestions) -> Message:
    if ctx.cohort.channel is None:
        raise UserError(f"{ctx.cohort.name} is not linked to a channel yet.")
    ready = await ctx.uow.find(Question, cohort_id=ctx.cohort.id, status="approved")
    if not ready:
        return Message.of("No approved questions are waiting" +
                          (", so there is nothing to confirm." if cmd.confirm else "."))
    least = CohortSettings.from_json(ctx.cohort.settings).min_batch
    if len(ready) < least and not cmd.confirm:
        return Message.of(
            f"Only {plural(len(ready), 'question')} {'waits' if len(ready) == 1 else 'wait'}, "
            f"fewer than the {least} a batch needs: alone, a question is easy to match to "
            "whoever was around when it was asked. Post anyway with "
            f"{ctx.cmd('release confirm')}, or wait for more.")
    n = await _release(ctx.uow, ctx.cohort, ready, ctx.now,
                       key=f"release:manual:{ctx.now.isoformat()}", tidings=ctx.tidings)
    same = len(ready) - n
    return Message.of(f"Released {plural(n, 'question')} in random order." + (
        f" {plural(same, 'other')} asked the same as a posted question and "
        f"{'was' if same == 1 else 'were'} not posted again." if same else ""))


HANDLERS: dict[type[c.Command], Handler] = {
    c.AskQuestion: ask_question,
    c.QuestionStatus: question_status,
    c.Retract: retract,
    c.ListQuestions: list_questions,
    c.Upvote: upvote,
    c.ReviewQuestions: review_questions,
    c.ApproveQuestion: approve_question,
    c.ReturnQuestion: return_question,
    c.ReleaseQuestions: release_now,
}
