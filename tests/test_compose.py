"""The digest as a whole: grouping, order, reading time, opening line, edited summaries,
and the optional abstractive summariser against a local OpenAI-compatible server."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest import pipeline
from digest.compose import build_digest, opening_line, preheader, reading_minutes
from digest.config import Config, load_config
from digest.demo.smtp_sink import SmtpSink
from digest.group import group_stories
from digest.language import guess_language
from digest.models import Article
from tests.conftest import Project, parse, parts, write_config
from tests.http_server import Reply, RouteServer, fixed
from tests.test_cli import digest

NOW = datetime(2026, 11, 26, 7, tzinfo=UTC)
LAUNCH = ("A Soyuz rocket carrying the MS-27 crew lifted off from Baikonur on Tuesday morning, "
          "sending two Russian cosmonauts and a NASA astronaut towards the space station.")


def article(title: str, source: str, *paragraphs: str, hours_ago: int = 0,
            url: str = "") -> Article:
    return Article(url=url or f"https://{source.lower().replace(' ', '')}.example/"
                   f"{abs(hash(title)) % 10_000}", title=title, source_name=source,
                   published=NOW - timedelta(hours=hours_ago), paragraphs=paragraphs,
                   source_line="Source: (Reuters)", disclaimer_line="(Disclaimer: Details.)")


def config(tmp_path: Path, extra: str = "") -> Config:
    return load_config(write_config(tmp_path, feed_urls=["http://127.0.0.1:1/feed/"],
                                    smtp_port=25, extra=extra))


def three_reports() -> list[Article]:
    return [
        article("Soyuz MS-27 launches to the ISS", "Orbital Desk", LAUNCH),
        article("Soyuz MS-27 lifts off from Baikonur with three aboard", "Wire Service",
                LAUNCH.replace("Tuesday morning", "Tuesday"),
                "The crew will spend six months aboard the orbiting laboratory, conducting "
                "experiments in biology and materials science.",
                "Docking is planned for Thursday after a two-day chase.", hours_ago=1),
        article("Three aboard as Soyuz MS-27 launches to the station", "Space Daily",
                "Soyuz MS-27 launched from Baikonur carrying two cosmonauts and a NASA "
                "astronaut towards the space station on Tuesday.", hours_ago=2),
    ]


def test_three_reports_of_one_launch_become_one_entry() -> None:
    stories = group_stories(three_reports(), threshold=0.45)
    assert len(stories) == 1
    story = stories[0]
    assert story.source_name == "Wire Service"  # the most complete report leads
    assert dict(story.also_reported_by).keys() == {"Orbital Desk", "Space Daily"}


def test_two_different_soyuz_missions_are_not_grouped() -> None:
    other = article("Soyuz MS-28 launches to the ISS", "Space Daily",
                    LAUNCH.replace("MS-27", "MS-28").replace("Tuesday", "Friday"))
    stories = group_stories([three_reports()[0], other], threshold=0.45)
    assert len(stories) == 2


def test_unrelated_stories_stay_apart_and_one_site_is_never_grouped_with_itself() -> None:
    a = article("Venus probe enters orbit", "Orbital Desk",
                "The Aphrodite probe entered orbit around Venus after a long burn.")
    b = article("Cargo ship undocks from the station", "Orbital Desk",
                "The cargo ship left the station and burned up over the Pacific.")
    c = dataclasses.replace(three_reports()[0], source_name="Orbital Desk")
    d = dataclasses.replace(three_reports()[1], source_name="Orbital Desk")
    assert len(group_stories([a, b, c, d], threshold=0.45)) == 4


@pytest.mark.parametrize(("order", "expected"), [
    ("newest", ["new", "mid", "old"]),
    ("oldest", ["old", "mid", "new"]),
    ("source", ["mid", "new", "old"]),
])
def test_articles_are_ordered_as_configured(tmp_path: Path, order: str,
                                            expected: list[str]) -> None:
    items = [article("new", "B site", "Alpha beta gamma delta epsilon.", hours_ago=0),
             article("old", "C site", "Zeta eta theta iota kappa.", hours_ago=9),
             article("mid", "A site", "Lambda mu nu xi omicron.", hours_ago=3)]
    built = build_digest(dataclasses.replace(config(tmp_path), digest=dataclasses.replace(
        config(tmp_path).digest, order=order)), items, NOW)
    assert [i.article.title for i in built.items] == expected


def test_reading_time_opening_line_and_preheader(tmp_path: Path) -> None:
    long_read = article("Long read", "A", " ".join(["word"] * 700))
    assert reading_minutes(long_read) == 4
    assert reading_minutes(article("Short", "A", "Five words in this one.")) == 1
    built = build_digest(config(tmp_path), three_reports()[:1] + [long_read], NOW)
    assert built.preheader == ("2 new Spacecraft stories: Soyuz MS-27 launches to the ISS, "
                               "Long read")
    assert built.opening_line.startswith("2 new Spacecraft stories since the last digest")
    assert preheader("Spacecraft", list(built.items[:1])).startswith("1 new Spacecraft story:")
    assert "One new Spacecraft story" in opening_line("Spacecraft", list(built.items[:1]))


def test_an_editors_summary_replaces_the_generated_one(tmp_path: Path) -> None:
    report = three_reports()[1]
    built = build_digest(config(tmp_path), [report], NOW, {report.url: "Edited by hand."})
    assert built.items[0].summary.sentences == ("Edited by hand.",)
    assert built.items[0].summary.source_line == "Source: (Reuters)"
    assert built.items[0].summary.method == "edited"


def test_summary_set_and_clear_through_the_cli(project: Project, smtp: SmtpSink) -> None:
    first_url = project.config.sources[0].url.split("/category")[0]
    draft = pipeline.preview(project.config)
    result = draft.gathered
    target = result.articles[0].url
    assert first_url in target
    out = digest("summary", "set", target, "A hand-written précis of the story.",
                 cwd=project.folder)
    assert out.returncode == 0, out.stderr
    assert target in digest("summary", "list", cwd=project.folder).stdout
    text = pipeline.preview(project.config).text
    assert "A hand-written précis of the story." in text
    digest("summary", "clear", target, cwd=project.folder)
    text = pipeline.preview(project.config).text
    assert "A hand-written précis" not in text
    digest("summary", "set", target, "Final words on it.", cwd=project.folder)
    pipeline.run_cycle(project.config)
    mailed, _ = parts(parse(smtp.messages[0].data))
    assert "Final words on it." in mailed
    again = digest("summary", "set", target, "Too late.", cwd=project.folder)
    assert again.returncode == 1 and "already sent in digest 1" in again.stderr


def test_language_guess() -> None:
    assert guess_language("The crew of the capsule is on the way to the station.") == "en"
    assert guess_language("Экипаж корабля Союз отправился на станцию.") == "ru"
    assert guess_language("우주선이 국제우주정거장에 도킹했다.") == "ko"
    assert guess_language("Le vaisseau est arrivé à la station dans la nuit.") == "fr"
    assert guess_language("MS-27") == "und"


def _chat(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant",
                                                "content": content}}]}).encode()


def abstractive_config(tmp_path: Path, url: str, timeout: float = 5) -> Config:
    return config(tmp_path, f'[summaries]\nsummarizer = "openai-compatible"\n'
                            f'endpoint = "{url}/v1"\nmodel = "tiny"\ntimeout = {timeout}\n')


LONG = three_reports()[1]


def test_abstractive_summary_from_a_local_chat_server(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_LLM_API_KEY", "sk-local")
    answer = "Soyuz MS-27 lifted off from Baikonur with three crew bound for the station."
    route = fixed(Reply(body=_chat(answer), headers={"Content-Type": "application/json"}))
    with RouteServer({"/v1/chat/completions": route}) as server:
        built = build_digest(abstractive_config(tmp_path, server.url), [LONG], NOW)
        request = json.loads(server.bodies[0])
        assert server.seen_headers[0]["authorization"] == "Bearer sk-local"
    summary = built.items[0].summary
    assert summary.method == "abstractive" and summary.text == answer
    assert summary.source_line == "Source: (Reuters)"
    assert request["model"] == "tiny" and "90 words" in request["messages"][0]["content"]
    assert LAUNCH.replace("Tuesday morning", "Tuesday") in request["messages"][1]["content"]


@pytest.mark.parametrize(("reply", "reason"), [
    (Reply(body=_chat("")), "empty answer"),
    (Reply(body=_chat("word " * 200)), "over 90"),
    (Reply(body=_chat("Союз МС-27 стартовал с Байконура с тремя членами экипажа на борту.")),
     "answer in 'ru'"),
    (Reply(500, b"boom"), "endpoint failed"),
    (Reply(body=b"not json"), "endpoint failed"),
    (Reply(body=_chat("late"), delay=2), "endpoint failed"),
])
def test_any_bad_answer_falls_back_to_the_extractive_summary(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, reply: Reply, reason: str) -> None:
    with RouteServer({"/v1/chat/completions": fixed(reply)}) as server:
        built = build_digest(abstractive_config(tmp_path, server.url, timeout=0.5), [LONG], NOW)
    summary = built.items[0].summary
    assert summary.method == "extractive"
    assert summary.sentences[0].startswith("A Soyuz rocket carrying the MS-27 crew")
    assert reason in caplog.text and "extractive summary instead" in caplog.text


def test_the_demo_digest_carries_reading_times_and_the_opening_line(project: Project,
                                                                    smtp: SmtpSink) -> None:
    pipeline.run_cycle(project.config)
    text, html = parts(parse(smtp.messages[0].data))
    assert "12 new Spacecraft stories since the last digest, led by" in text
    assert "min read" in text and "min read" in html
    assert "12 new Spacecraft stories:" in html  # the hidden preheader
