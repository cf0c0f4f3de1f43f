"""Anonymous questions: ask, moderate, release, upvote, retract.

The author is never stored, logged or shown. What the bot keeps:
- the question row: cohort, text, a hash of the one-time code, a random review id and the
  *day* it was asked — nothing that points at a person;
- rate-limit counters keyed by HMAC(daily random key, user), in their own tables, with keys
  rotated daily and old counters deleted;
- upvotes keyed by HMAC(install key, question, user): duplicates are refused, voters unknown.
The author learns the outcome with their code (`question <code>`), never by identity lookup.
Nothing in this module logs the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from datetime import datetime

from bot.chat import commands as c
from bot.chat.grammar import Role
from bot.chat.message import Action as Button
from bot.chat.message import Message, Strong, Text, lines
from bot.domain.cohort_settings import CohortSettings
from bot.domain.errors import UserError
from bot.domain.model import Cohort, Question, RateCount, RateKey, Upvote
from bot.service.context import Ctx, Handler, queue_message
from bot.service.ports import UnitOfWork

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
REVIEW_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
INSTALL_KEY_DAY = "install"


def _code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))  # ~60 bits
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def code_hash(code: str) -> str:
    normal = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(f"cohortbot-question:{normal}".encode()).hexdigest()


async def _key(uow: UnitOfWork, day: str) -> str:
    found = await uow.find(RateKey, day=day)
    if found:
        return found[0].key
    key = secrets.token_hex(32)
    uow.add(RateKey(day=day, key=key))
    await uow.flush()
    return key


async def _check_rate(ctx: Ctx) -> None:
    today = ctx.now.date().isoformat()
    key = await _key(ctx.uow, today)
    digest = hmac.new(key.encode(), str(ctx.user).encode(), hashlib.sha256).hexdigest()
    # Yesterday's keys and counters are useless now; dropping them makes old hashes unlinkable.
    for old in await ctx.uow.find(RateKey):
        if old.day not in (today, INSTALL_KEY_DAY):
            await ctx.uow.delete(old)
    await ctx.uow.delete_where(RateCount, day=tuple(
        d for d in {r.day for r in await ctx.uow.find(RateCount)} if d != today
    ))
    found = await ctx.uow.find(RateCount, day=today, key_hash=digest)
    row = found[0] if found else RateCount(day=today, key_hash=digest)
    if row.count >= ctx.policy.questions_per_day:
        raise UserError(f"You can ask at most {ctx.policy.questions_per_day} questions a day. "
                        "Try again tomorrow.")
    row.count += 1
    if not found:
        ctx.uow.add(row)


async def _review_id(uow: UnitOfWork) -> str:
    while True:
        rid = "".join(secrets.choice(REVIEW_ALPHABET) for _ in range(4))
        if not await uow.find(Question, review_id=rid):
            return rid


def question_post(q: Question) -> Message:
    return Message(
        (Strong(f"Anonymous question #{q.number}"), Text("\n" + q.text)),
        (Button(f"Upvote #{q.number}", f"upvote {q.number}"),),
    )


async def _release(uow: UnitOfWork, cohort: Cohort, questions: list[Question], now: datetime,
                   key: str, late: bool = False) -> int:
    # Random order, numbered in that order: neither the order nor the number tells when, or
    # in which sequence, the questions were asked.
    random.SystemRandom().shuffle(questions)
    for q in questions:
        cohort.question_seq += 1
        q.number = cohort.question_seq
        q.status = "released"
        await queue_message(uow, question_post(q), now=now, cohort=cohort,
                            key=f"{key}:q{q.id}", late=late)
    return len(questions)


async def release_batch(uow: UnitOfWork, cohort: Cohort, now: datetime, *, key: str,
                        late: bool = False) -> int:
    ready = await uow.find(Question, cohort_id=cohort.id, status="approved")
    return await _release(uow, cohort, ready, now, key, late)


async def ask_question(ctx: Ctx, cmd: c.AskQuestion) -> Message:
    cohort = ctx.cohort
    ctx.member  # noqa: B018 - members only
    if cohort.channel is None:
        raise UserError(f"{cohort.name} is not linked to a channel yet, so questions have "
                        "nowhere to go.")
    settings = CohortSettings.from_json(cohort.settings)
    await _check_rate(ctx)
    code = _code()
    q = Question(
        cohort_id=cohort.id, text=cmd.text, code_hash=code_hash(code),
        review_id=await _review_id(ctx.uow), day=ctx.now.date().isoformat(),
        status="pending" if settings.moderation else "approved",
    )
    ctx.uow.add(q)
    await ctx.uow.flush()
    if settings.moderation:
        when = "A facilitator will review it (they will not see who asked)."
    elif settings.question_release == "immediate":
        await _release(ctx.uow, cohort, [q], ctx.now, key=f"ask:{q.review_id}")
        when = "It is being posted to the channel now."
    else:
        when = "It will be posted with the other questions before the next session, in " \
               "random order."
    return Message.of(
        Strong("Your anonymous question is in."), f" {when}\nYour code: ", Strong(code),
        f"\nKeep it: {ctx.cmd('question ' + code)} shows what happened to it, "
        f"{ctx.cmd('retract ' + code)} withdraws it. Nobody, not even the admins, can see who "
        "asked.",
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
        "returned": "returned by a facilitator",
        "released": f"posted as anonymous question #{q.number} ({q.upvotes} upvotes)",
        "retracted": "withdrawn by you",
    }[q.status]
    note = f"\nNote from the facilitator: {q.return_note}" if q.return_note else ""
    return Message.of(f"Your question is {status}.{note}")


async def retract(ctx: Ctx, cmd: c.Retract) -> Message:
    q = await _by_code(ctx, cmd.code)
    if q.status == "released":
        raise UserError(f"Question #{q.number} was already posted; ask a facilitator to remove "
                        "it from the channel.")
    if q.status == "retracted":
        raise UserError("That question was already withdrawn.")
    q.status = "retracted"
    q.text = ""  # nothing left to keep
    return Message.of("Your question is withdrawn and its text deleted.")


async def list_questions(ctx: Ctx, cmd: c.ListQuestions) -> Message:
    released = await ctx.uow.find(Question, cohort_id=ctx.cohort.id, status="released",
                                  order_by="number")
    # Only facilitators (who review them anyway) see how many wait: a member who watched the
    # count change would learn when each question was asked, and match it to who was about.
    waiting = len(await ctx.uow.find(Question, cohort_id=ctx.cohort.id,
                                     status=("pending", "approved"))
                  ) if ctx.role >= Role.FACILITATOR else 0
    if not released:
        head = "No anonymous questions have been posted yet."
    else:
        head = f"Anonymous questions in {ctx.cohort.name}:"
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
    key = await _key(ctx.uow, INSTALL_KEY_DAY)
    voter = hmac.new(key.encode(), f"{q.id}:{ctx.user}".encode(), hashlib.sha256).hexdigest()
    if await ctx.uow.find(Upvote, question_id=q.id, voter_hash=voter):
        return Message.of(f"You already upvoted #{q.number}.")
    ctx.uow.add(Upvote(question_id=q.id, voter_hash=voter))
    q.upvotes += 1
    return Message.of(f"Upvoted #{q.number} (now {q.upvotes}). Nobody sees who upvoted.")


async def review_questions(ctx: Ctx, cmd: c.ReviewQuestions) -> Message:
    pending = await ctx.uow.find(Question, cohort_id=ctx.cohort.id, status="pending",
                                 order_by="review_id")
    if not pending:
        return Message.of("No questions are waiting for review.")
    body: list[Message | str] = [f"{len(pending)} question(s) waiting for review:"]
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
        await _release(ctx.uow, ctx.cohort, [q], ctx.now, key=f"approve:{q.review_id}")
        return Message.of(f"Approved {q.review_id}; it is being posted now.")
    return Message.of(f"Approved {q.review_id}; it goes out with the next batch.")


async def return_question(ctx: Ctx, cmd: c.ReturnQuestion) -> Message:
    q = await _pending(ctx, cmd.review_id)
    q.status = "returned"
    q.return_note = cmd.note
    return Message.of(f"Returned {q.review_id}. Its author sees this (and your note) with their "
                      "code.")


async def release_now(ctx: Ctx, cmd: c.ReleaseQuestions) -> Message:
    if ctx.cohort.channel is None:
        raise UserError(f"{ctx.cohort.name} is not linked to a channel yet.")
    n = await release_batch(ctx.uow, ctx.cohort, ctx.now,
                            key=f"release:manual:{ctx.now.isoformat()}")
    return Message.of(f"Released {n} question(s) in random order." if n else
                      "No approved questions are waiting.")


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
