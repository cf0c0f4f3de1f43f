"""Matrix events → command text, and neutral messages → Matrix content, on recorded JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.matrix.inbound import command_text, html_to_text, strip_reply_fallback
from adapters.matrix.render import render
from bot.chat.message import Mention, Message, Strong, Text, When
from bot.domain.refs import UserRef

# As Element sends them (ids shortened).
PLAIN = {
    "type": "m.room.message", "sender": "@ana:example.org", "event_id": "$a1",
    "origin_server_ts": 1_764_000_000_000, "room_id": "!room:example.org",
    "content": {"msgtype": "m.text", "body": "!cohort next"},
}
PILL = {
    "type": "m.room.message", "sender": "@fay:example.org", "event_id": "$a2",
    "content": {
        "msgtype": "m.text",
        "body": "!cohort cohort members add Ana Ben",
        "format": "org.matrix.custom.html",
        "formatted_body": '!cohort cohort members add <a href="https://matrix.to/#/'
                          '@ana:example.org">Ana</a> <a href="https://matrix.to/#/'
                          '%40ben%3Aexample.org">Ben &amp; co</a>',
        "m.mentions": {"user_ids": ["@ana:example.org", "@ben:example.org"]},
    },
}
REPLY = {
    "type": "m.room.message", "sender": "@ana:example.org", "event_id": "$a3",
    "content": {
        "msgtype": "m.text",
        "body": "> <@bot:example.org> Your check-in for Tuesday\n> 1. Read chapter 3\n\n"
                "!cohort action done 1 read it",
        "format": "org.matrix.custom.html",
        "formatted_body": '<mx-reply><blockquote><a href="https://matrix.to/#/!room/$x">In '
                          'reply to</a> <a href="https://matrix.to/#/@bot:example.org">'
                          "@bot:example.org</a><br>!cohort next</blockquote></mx-reply>"
                          "!cohort action done 1 read it",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}},
    },
}
EDIT = {
    "type": "m.room.message", "sender": "@ana:example.org", "event_id": "$a4",
    "content": {
        "msgtype": "m.text", "body": " * !cohort ask something",
        "m.new_content": {"msgtype": "m.text", "body": "!cohort ask something"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$a0"},
    },
}


def test_a_command_is_what_follows_the_prefix_and_word() -> None:
    assert command_text(PLAIN, "!cohort") == "next"
    assert command_text({**PLAIN, "content": {"msgtype": "m.text", "body": "!COHORT  help"}},
                        "!cohort") == "help"
    assert command_text({**PLAIN, "content": {"msgtype": "m.text", "body": "!cohort"}},
                        "!cohort") == ""


def test_other_messages_are_not_commands() -> None:
    for body in ("hello", "!cohorts next", "say !cohort next", "!other next"):
        assert command_text({**PLAIN, "content": {"msgtype": "m.text", "body": body}},
                            "!cohort") is None
    assert command_text({**PLAIN, "content": {"msgtype": "m.notice", "body": "!cohort next"}},
                        "!cohort") is None
    assert command_text({**PLAIN, "content": "nonsense"}, "!cohort") is None


def test_pills_become_the_user_ids_they_point_at() -> None:
    assert command_text(PILL, "!cohort") == \
        "cohort members add @ana:example.org @ben:example.org"


def test_a_reply_is_read_without_its_quoted_fallback() -> None:
    assert command_text(REPLY, "!cohort") == "action done 1 read it"
    plain_reply = {**REPLY, "content": {"msgtype": "m.text", "body": REPLY["content"]["body"]}}
    assert command_text(plain_reply, "!cohort") == "action done 1 read it"


def test_an_edit_is_never_a_new_command() -> None:
    assert command_text(EDIT, "!cohort") is None


def test_fallback_and_html_helpers() -> None:
    assert strip_reply_fallback("> quoted\n> more\n\nreal text") == "real text"
    assert strip_reply_fallback("no quote") == "no quote"
    assert html_to_text("a<br>b &lt;c&gt; <b>bold</b>") == "a\nb <c> bold"


def tags(html: str) -> list[str]:
    """The start tags in `html`, in order."""
    found: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: Any) -> None:
            found.append(tag)

    P().feed(html)
    return found


def test_rendering_pills_strong_times_and_mentions() -> None:
    ana = UserRef("matrix", "@ana:example.org")
    at = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    msg = Message((Strong("Roles"), Text(" for "), When(at, "Europe/Berlin"), Text(": "),
                   Mention(ana), Text(" <b>&")))
    content = render(msg, ping=True)
    assert content["msgtype"] == "m.text"
    assert content["body"] == "Roles for Tue 1 Dec 2026, 15:00 CET: @ana:example.org <b>&"
    assert content["formatted_body"] == (
        '<strong>Roles</strong> for Tue 1 Dec 2026, 15:00 CET: '
        '<a href="https://matrix.to/#/@ana:example.org">@ana:example.org</a> &lt;b&gt;&amp;')
    assert content["m.mentions"] == {"user_ids": ["@ana:example.org"]}
    notice = render(msg, notice=True, reply_to="$cmd")
    assert notice["msgtype"] == "m.notice"
    assert notice["m.mentions"] == {}  # a reply names people without pinging them
    assert notice["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}


@given(st.text(max_size=300))
def test_user_text_never_pings_and_never_becomes_markup(text: str) -> None:
    content = render(Message((Text(text),)), ping=True)
    assert content["m.mentions"] == {}
    assert content["body"] == text
    assert tags(content["formatted_body"]) in ([], ["br"] * text.count("\n"))
