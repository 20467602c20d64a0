from __future__ import annotations

from digest.demo.site import load_sample_articles
from digest.models import Article
from digest.summarize import split_sentences, summarize


def article(*paragraphs: str, feed_summary: str = "", standfirst: str = "") -> Article:
    return Article(url="https://n.example/a", title="T", source_name="N", published=None,
                   paragraphs=paragraphs, source_line="Source: (Reuters)",
                   disclaimer_line="(Disclaimer: Details may evolve.)",
                   feed_summary=feed_summary, standfirst=standfirst)


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    text = ("Dr. Kim said the U.S. capsule reached 7.8 km/s at 06:15 UTC. "
            "It docked at port No. 3 an hour later. Mr. Bell agreed.")
    assert split_sentences(text) == [
        "Dr. Kim said the U.S. capsule reached 7.8 km/s at 06:15 UTC.",
        "It docked at port No. 3 an hour later.",
        "Mr. Bell agreed.",
    ]


def test_summary_sentences_are_whole_sentences_of_the_article() -> None:
    for sample in load_sample_articles():
        paragraphs = tuple(p for p in sample.body.split("\n\n")
                           if p.strip() and not p.strip().startswith("## "))
        paragraphs = tuple(" ".join(p.split()) for p in paragraphs)
        summary = summarize(article(*paragraphs), max_sentences=3, max_words=90)
        assert 1 <= len(summary.sentences) <= 3
        assert len(summary.text.split()) <= 90
        body = " ".join(paragraphs)
        for sentence in summary.sentences:
            assert sentence in body
            assert sentence[-1] in '.!?"”)…'


def test_summary_keeps_source_and_disclaimer_lines_verbatim() -> None:
    summary = summarize(article("One two three four five six seven. " * 10),
                        max_sentences=2, max_words=60)
    assert summary.source_line == "Source: (Reuters)"
    assert summary.disclaimer_line == "(Disclaimer: Details may evolve.)"


def test_sentences_come_back_in_article_order() -> None:
    paragraphs = (
        "The Aphrodite probe entered orbit around Venus after a long engine burn on Tuesday.",
        "Venus has a thick atmosphere of carbon dioxide and clouds of sulphuric acid overhead.",
        "The probe will map the surface of Venus with radar from orbit for four years.",
        "Mission managers said the probe and its radar instrument are healthy after the burn.",
    )
    summary = summarize(article(*paragraphs), max_sentences=2, max_words=200)
    positions = [paragraphs.index(s) for s in summary.sentences]
    assert positions == sorted(positions)
    assert summary.sentences[0] == paragraphs[0]  # the lead leads


def test_word_budget_never_cuts_a_sentence() -> None:
    long_sentence = "The spacecraft " + "carefully " * 30 + "docked."
    short = "Crew members opened the hatch two hours after docking."
    summary = summarize(article(long_sentence, short, "Controllers later confirmed a good seal "
                                "between the two vehicles."), max_sentences=3, max_words=20)
    assert long_sentence not in summary.sentences
    assert all(s.endswith(".") for s in summary.sentences)
    assert len(summary.text.split()) <= 20


def test_short_article_falls_back_to_the_feed_excerpt() -> None:
    summary = summarize(article("Too short.", feed_summary="The capsule splashed down safely "
                                "off Florida on Sunday after six months in orbit."),
                        max_sentences=3, max_words=90)
    assert summary.text.startswith("The capsule splashed down safely")


def test_same_article_always_gives_the_same_summary() -> None:
    paragraphs = tuple(f"Sentence number {i} talks about the Soyuz launch and the crew of "
                       f"three aboard it." for i in range(12))
    first = summarize(article(*paragraphs), max_sentences=3, max_words=90)
    assert all(summarize(article(*paragraphs), max_sentences=3, max_words=90) == first
               for _ in range(3))


def test_non_ascii_text_survives() -> None:
    paragraphs = ("Commander Андрей Соколов and engineer 김지원 boarded the capsule — "
                  "smiling for the cameras before launch.",
                  "Théo Mercier of ESA said the Ariane rocket from Kourou performed well.")
    summary = summarize(article(*paragraphs), max_sentences=2, max_words=90)
    assert "Андрей Соколов" in summary.text and "김지원" in summary.text
    assert "Théo Mercier" in summary.text


def test_quotes_and_ellipses_do_not_break_sentences_wrongly() -> None:
    text = ('"Is it ready?" the commander asked. "Go for launch!" came the reply. '
            "The countdown paused at T-minus 10... and then resumed.")
    sentences = split_sentences(text)
    assert sentences[-1] == "The countdown paused at T-minus 10... and then resumed."
    assert len(sentences) == 3


def test_bylines_photo_credits_and_attribution_lines_are_never_chosen() -> None:
    paragraphs = (
        "By Priya Natarajan, Science Correspondent",
        "Photo: NASA/Bill Ingalls shows the Soyuz rocket on the launch pad at dawn.",
        "The Soyuz MS-27 spacecraft launched from Baikonur with a crew of three on Tuesday.",
        "Source: (Reuters) with additional reporting from agency statements today.",
        "(Disclaimer: This article is based on publicly available information today.)",
        "The crew will dock with the International Space Station two days after the launch.",
        "Flight controllers in Moscow reported that every system aboard the Soyuz worked well.",
    )
    summary = summarize(article(*paragraphs), max_sentences=3, max_words=90)
    text = summary.text
    for junk in ("By Priya", "Photo:", "Source:", "Disclaimer"):
        assert junk not in text
    assert summary.sentences[0].startswith("The Soyuz MS-27 spacecraft launched")


def test_korean_and_russian_names_and_em_dashes_survive_whole() -> None:
    paragraphs = (
        "Korea's Nuri rocket placed the Haenuri-2 satellite in orbit — a first for the "
        "programme led by 김지원 (Kim Ji-won) of KASA.",
        "Commander Андрей Соколов (Andrei Sokolov) congratulated the Korean team from orbit "
        "on Wednesday evening.",
        "Engineers will spend three weeks checking the satellite's cameras before science "
        "operations begin in December.",
    )
    summary = summarize(article(*paragraphs), max_sentences=2, max_words=90)
    assert summary.sentences[0] == paragraphs[0]
    assert any("Андрей Соколов" in s or "three weeks" in s for s in summary.sentences)
    assert "—" in summary.text and "김지원" in summary.text


def test_fallback_to_the_standfirst_is_logged(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    caplog.set_level(logging.INFO)
    summary = summarize(article("Short.", standfirst="A cargo ship docked with the station "
                                "after a smooth two-day chase through low orbit."),
                        max_sentences=3, max_words=90)
    assert summary.method == "fallback"
    assert summary.text.startswith("A cargo ship docked")
    assert "summary taken from the standfirst" in caplog.text


def test_a_short_lead_sentence_still_opens_the_summary() -> None:
    paragraphs = (
        "By Priya Natarajan, Science Correspondent",
        "Your launch window matters. Here is why the agency waited three more days for it.",
        "Engineers said the weather over the Atlantic recovery zone was too rough on Monday.",
        "The crew will now launch on Thursday at dawn, weather permitting, from pad 39A.",
    )
    summary = summarize(article(*paragraphs), max_sentences=3, max_words=90)
    assert summary.sentences[0] == "Your launch window matters."


def test_captions_headlines_and_credit_lines_never_enter_a_summary() -> None:
    paragraphs = (
        "The core stage after the installation of its four engines. (credit: NASA/Jude Guidry)",
        "Jewels after Jewels, installation views, photos © Inexhibit, 2018",
        "Seeking a bigger role for a big rocket",
        "The agency completed the installation of four engines into the core stage this month.",
        "The stage will soon be shipped to the nearby test stand for an eight-minute firing.",
        "Sign up for our newsletter and never miss a launch.",
    )
    summary = summarize(article(*paragraphs), max_sentences=3, max_words=90)
    assert summary.sentences[0].startswith("The agency completed")
    for junk in ("credit", "©", "Seeking a bigger", "newsletter"):
        assert junk not in summary.text
