"""The command grammar: one table, every platform's mention forms, clear usage errors."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chat import commands as c
from bot.chat.grammar import COMMANDS, Role, UsageError, help_lines, parse, parse_mention
from bot.domain.errors import UserError
from bot.domain.refs import UserRef
from bot.service.bus import HANDLERS


def test_every_command_in_the_table_has_exactly_one_handler() -> None:
    built = set(HANDLERS)
    for spec in COMMANDS:
        assert spec.words, spec
    command_classes = {cls for cls in vars(c).values()
                       if isinstance(cls, type) and issubclass(cls, c.Command)
                       and cls is not c.Command}
    assert command_classes == built


@pytest.mark.parametrize("platform,token,expected", [
    ("slack", "<@U123ABC>", UserRef("slack", "U123ABC")),
    ("slack", "<@U123ABC|ana>", UserRef("slack", "U123ABC")),
    ("matrix", "@ana:example.org", UserRef("matrix", "@ana:example.org")),
    ("matrix", "<@@ana:example.org>", UserRef("matrix", "@ana:example.org")),
    ("terminal", "@ana", UserRef("terminal", "ana")),
    ("terminal", "@ana,", UserRef("terminal", "ana")),
])
def test_mentions_in_every_form_a_client_sends(platform: str, token: str,
                                               expected: UserRef) -> None:
    assert parse_mention(token, platform) == expected


@pytest.mark.parametrize("platform,token", [("matrix", "@ana"), ("slack", "ana"),
                                            ("terminal", "@"), ("terminal", "ana")])
def test_non_mentions_are_refused(platform: str, token: str) -> None:
    assert parse_mention(token, platform) is None


def test_parse_builds_typed_commands() -> None:
    p = parse("cohort members add <@U1> <@U2|ben> <@U1>", platform="slack")
    assert p.command == c.ChangeMembers(add=True, users=(UserRef("slack", "U1"),
                                                         UserRef("slack", "U2")))
    assert parse("away 2026-12-01..2026-12-03", platform="terminal").command == c.Away(
        when=c.DayRef(first=date(2026, 12, 1), last=date(2026, 12, 3)))
    assert parse("session move next to 2026-12-03 16:00", platform="terminal").command == \
        c.MoveSession(when=c.DayRef(next=True), to=datetime(2026, 12, 3, 16, 0))
    assert parse("ACTION Done 2 it went well", platform="terminal").command == \
        c.AnswerAction(number=2, answer="done", note="it went well")
    assert parse("prompt next Bring an example", platform="terminal").command == \
        c.PostPrompt(text="Bring an example", next_session=True)
    assert parse("cohort reminders 24h, 1h 24h", platform="terminal").command == \
        c.SetReminders(offsets_min=(1440, 60))
    p = parse("--cohort peer-b next", platform="terminal")
    assert p.cohort == "peer-b" and p.command == c.Next()
    assert parse("", platform="terminal").command == c.Help()


def test_free_text_is_kept_exactly() -> None:
    text = "Is <!channel> & @here ok?  <@U999>"
    assert parse(f"ask {text}", platform="slack").command == c.AskQuestion(text=text)


@pytest.mark.parametrize("text,message,usage", [
    ("nonsense", "Unknown command 'nonsense'.", "/cohort help"),
    ("swap", "Missing a role.", "/cohort swap <role> @member"),
    ("away someday", "someday", "/cohort away <next|tue|next week|date|date..date>"),
    ("cohort roles 9x", "'9x' is not a role name", "/cohort cohort roles <role…>"),
    ("cohort reminders 20d", "Reminders go between", "/cohort cohort reminders"),
    ("upvote -3", "'-3' is not a question number", "/cohort upvote <question number>"),
])
def test_usage_errors_say_what_was_wrong_and_carry_the_usage(text: str, message: str,
                                                            usage: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(text, platform="terminal", word="/cohort")
    assert message in info.value.message
    assert info.value.usage is not None and info.value.usage.startswith(usage)


def test_help_lines_come_from_the_table_and_respect_roles() -> None:
    member = help_lines(Role.MEMBER, word="!cohort")
    admin = help_lines(Role.ADMIN, word="!cohort")
    assert any(line.startswith("!cohort next — ") for line in member)
    assert not any(line.startswith("!cohort cohort schedule") for line in member)
    assert len(admin) == len(COMMANDS)


@given(st.text(max_size=300))
def test_any_text_parses_or_gives_a_usage_error(text: str) -> None:
    for platform in ("slack", "matrix", "terminal"):
        try:
            parse(text, platform=platform)
        except UserError as e:
            assert e.message and "\n" not in e.message
