"""A card's layout: the same title, paragraphs, items and note on every platform, and plain
text that stays whole wherever layout is lost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.matrix.render import render as matrix
from adapters.slack import render as slack
from adapters.terminal.render import render as terminal
from bot.chat.message import (
    ITEM,
    NOTE,
    PARAGRAPH,
    TITLE,
    Action,
    Mention,
    Message,
    When,
    aside,
    card,
    lines,
)
from bot.domain.refs import UserRef
from tests.unit.test_matrix_convert import tags

ANA = UserRef("slack", "U0ANA0001")
AT = When(datetime(2026, 12, 8, 14, 0, tzinfo=UTC), "Europe/London")


def roles() -> Message:
    return card("Roles for Peer A", Message.of("For the session on ", AT, ":"),
                [Message.of("moderator: ", Mention(ANA)), "note-taker: nobody"],
                "Everyone else consults.", note="Need to swap? /cohort swap <role> @member")


def kinds(message: Message) -> list[tuple[str, list[str]]]:
    return [(kind, [c.plain() for c in contents]) for kind, contents in message.blocks()]


def test_a_card_reads_as_lines_and_keeps_its_blocks() -> None:
    message = roles()
    assert message.plain() == (
        "Roles for Peer A\nFor the session on Tue 8 Dec 2026, 14:00 GMT:\n"
        "• moderator: @U0ANA0001\n• note-taker: nobody\nEveryone else consults.\n"
        "Need to swap? /cohort swap <role> @member")
    assert kinds(message) == [
        (TITLE, ["Roles for Peer A"]),
        (PARAGRAPH, ["For the session on Tue 8 Dec 2026, 14:00 GMT:"]),
        (ITEM, ["moderator: @U0ANA0001", "note-taker: nobody"]),
        (PARAGRAPH, ["Everyone else consults."]),
        (NOTE, ["Need to swap? /cohort swap <role> @member"])]
    # What the terminal shows is the plain text.
    assert terminal(message) == message.plain()


def test_a_short_card_is_one_line_of_plain_text() -> None:
    message = card("Reminder: Peer A meets in 1 day", Message.of(AT, "."),
                   note="/cohort next shows your role.", one_line=True)
    assert message.plain() == ("Reminder: Peer A meets in 1 day — Tue 8 Dec 2026, 14:00 GMT. "
                               "/cohort next shows your role.")
    assert [k for k, _ in message.blocks()] == [TITLE, PARAGRAPH, NOTE]


def test_layout_survives_the_outbox_adding_and_joining() -> None:
    message = roles() + Message((), (Action("Check in", "checkin"),))
    assert Message.from_json(message.to_json()) == message
    # A row queued before layout existed reads as one paragraph.
    old = {"parts": [{"b": "Roles"}, {"t": " for Peer A"}]}
    assert [k for k, _ in Message.from_json(old).blocks()] == [PARAGRAPH]
    # Text added to a card becomes a block of its own; a late note goes first, in small print.
    late = aside("(Sent late.)") + Message.of("\n") + message + Message.of("\nRemoved soon.")
    assert late.plain().startswith("(Sent late.)\nRoles for Peer A\n")
    assert [k for k, _ in late.blocks()][0:2] == [NOTE, TITLE]
    assert kinds(late)[-1] == (PARAGRAPH, ["Removed soon."])
    assert late.actions == (Action("Check in", "checkin"),)
    joined = lines([message, "after"])
    assert kinds(joined)[-1] == (PARAGRAPH, ["after"])
    assert joined.plain() == message.plain() + "\nafter"
    # Plain messages stay plain.
    assert lines(["a", "b"]).layout == () and (Message.of("a") + Message.of("b")).layout == ()


def test_slack_shows_a_header_sections_and_context() -> None:
    blocks = slack.blocks(roles())
    assert blocks == [
        {"type": "header",
         "text": {"type": "plain_text", "text": "Roles for Peer A", "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            "For the session on <!date^1796738400^{date_short_pretty} at {time}"
            "|Tue 8 Dec 2026, 14:00 GMT>:")}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": "• moderator: <@U0ANA0001>\n• note-taker: nobody"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "Everyone else consults."}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": "Need to swap? /cohort swap &lt;role&gt; @member"}]},
    ]
    # The fallback text (notifications, old clients) is the whole message.
    assert slack.payload(roles())["text"].startswith("*Roles for Peer A*\nFor the session on ")


def test_slack_layout_stays_within_block_kit_limits() -> None:
    many = card("x" * 400, "y" * 7000, [f"item {i}" for i in range(600)], note="z" * 40000)
    blocks = slack.blocks(many) or []
    assert 0 < len(blocks) <= slack.MAX_BLOCKS
    header = blocks[0]
    assert header["type"] == "header" and len(header["text"]["text"]) == 150
    for block in blocks:
        if block["type"] == "section":
            assert 1 <= len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(1 <= len(e["text"]) <= 3000 for e in block["elements"])
    # Too many blocks to lay out: the text in sections, with the buttons kept.
    huge = card("Summary", *[f"paragraph {i}" for i in range(80)]) + Message(
        (), (Action("Go", "next"),))
    blocks = slack.blocks(huge) or []
    assert len(blocks) <= slack.MAX_BLOCKS and blocks[-1]["type"] == "actions"
    assert "paragraph 79" in str(blocks)


def test_matrix_shows_the_same_structure_in_html() -> None:
    ana = UserRef("matrix", "@ana:example.org")
    message = card("Roles for Peer A", Message.of("For the session on ", AT, ":"),
                   [Message.of("moderator: ", Mention(ana)), "note-taker: <b>nobody</b>"],
                   note="Need to swap? !cohort swap <role> @member")
    content = matrix(message, ping=True)
    assert content["formatted_body"] == (
        "<h4>Roles for Peer A</h4>"
        "<p>For the session on Tue 8 Dec 2026, 14:00 GMT:</p>"
        '<ul><li>moderator: <a href="https://matrix.to/#/@ana:example.org">@ana:example.org</a>'
        "</li><li>note-taker: &lt;b&gt;nobody&lt;/b&gt;</li></ul>"
        "<p><em>Need to swap? !cohort swap &lt;role&gt; @member</em></p>")
    assert content["body"] == (
        "Roles for Peer A\nFor the session on Tue 8 Dec 2026, 14:00 GMT:\n"
        "• moderator: @ana:example.org\n• note-taker: <b>nobody</b>\n"
        "Need to swap? !cohort swap <role> @member")
    assert content["m.mentions"] == {"user_ids": ["@ana:example.org"]}


WORDS = st.text(min_size=1, max_size=60)


@given(WORDS, WORDS, st.lists(WORDS, max_size=4), WORDS)
def test_no_user_text_in_a_card_becomes_markup_or_a_ping(
        title: str, body: str, items: list[str], note: str) -> None:
    message = card(title, body, items, note=note)
    content = matrix(message, ping=True)
    assert content["m.mentions"] == {}
    assert set(tags(content["formatted_body"])) <= {"h4", "p", "ul", "li", "em", "br"}
    assert tags(content["formatted_body"]).count("li") == len(items)
    for block in slack.blocks(message) or []:
        for text in _mrkdwn(block):
            assert "<" not in text and ">" not in text


def _mrkdwn(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["text"]] if value.get("type") == "mrkdwn" else []
        return own + [t for v in value.values() for t in _mrkdwn(v)]
    if isinstance(value, list):
        return [t for v in value for t in _mrkdwn(v)]
    return []


def test_a_quiet_mention_names_without_notifying() -> None:
    ana, ben = UserRef("matrix", "@ana:example.org"), UserRef("matrix", "@ben:example.org")
    message = Message.of("moderator: ", Mention(ana, quiet=True), ", consulting: ", Mention(ben))
    assert Message.from_json(message.to_json()) == message
    assert message.pings() == (ben,) and message.mentions() == (ana, ben)
    content = matrix(message, ping=True)
    assert content["m.mentions"] == {"user_ids": ["@ben:example.org"]}
    assert 'href="https://matrix.to/#/@ana:example.org"' in content["formatted_body"]
    # Slack notifies whoever a <@U…> names: a quiet mention is the person's name, as text.
    alice, bob = UserRef("slack", "U0ALICE01"), UserRef("slack", "U0BOB0001")
    message = Message.of(Mention(alice, quiet=True), " ", Mention(bob), " ",
                         Mention(UserRef("slack", "U0CAROL01"), quiet=True))
    shown = slack.text(slack.named(message, {"U0ALICE01": "<!here> Alice"}))
    assert shown == "@&lt;!here&gt; Alice <@U0BOB0001> @U0CAROL01"
