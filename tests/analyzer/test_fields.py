"""Outcome, sentiment, categories and action items on calls written for these tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from acw_sync.analyzer import AnalysisContext, AnalyzerSettings, OfflineAnalyzer
from acw_sync.model import Analysis, CallOutcome, CallRecord, Resolution, Sentiment, TaskType
from tests.analyzer.builders import BERLIN, make_call

CTX = AnalysisContext(timezone=BERLIN)


def run(call: CallRecord, ctx: AnalysisContext = CTX) -> Analysis:
    return OfflineAnalyzer().analyze(call, ctx)


# --- outcome ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        (
            [
                ("customer", "My printer won't print anything."),
                ("agent", "I've reinstalled the driver remotely."),
                ("customer", "It's working again, brilliant."),
            ],
            Resolution.RESOLVED,
        ),
        (
            [
                ("customer", "The heating is broken."),
                ("agent", "Let's try resetting the thermostat."),
                ("customer", "No, it's still not working."),
                ("agent", "Then I can't fix it remotely, sorry."),
            ],
            Resolution.UNRESOLVED,
        ),
        (
            [
                ("customer", "So my issue is not resolved?"),
                ("agent", "No, I'm afraid it isn't fixed yet."),
            ],
            Resolution.UNRESOLVED,
        ),
        (
            [
                ("customer", "I want to speak to a manager."),
                ("agent", "I'm transferring you to my supervisor now."),
            ],
            Resolution.ESCALATED,
        ),
        (
            [
                ("customer", "The invoice total is wrong."),
                ("agent", "I've passed this to our accounts team."),
            ],
            Resolution.ESCALATED,
        ),
        (
            [
                ("customer", "When does my contract end?"),
                ("agent", "Let me check with the contracts team."),
                ("agent", "I'll call you back this afternoon with the date."),
            ],
            Resolution.CALLBACK_PROMISED,
        ),
        (
            [
                ("customer", "Can I change my delivery address?"),
                ("agent", "Yes, I've updated the address on the order."),
            ],
            Resolution.RESOLVED,
        ),
    ],
)
def test_resolution_from_words(turns: list[tuple[str, str]], expected: Resolution) -> None:
    assert run(make_call(turns)).resolution is expected


def test_telephony_outcome_wins() -> None:
    assert run(make_call(outcome=CallOutcome.NO_ANSWER, talk=None)).resolution is Resolution.MISSED
    voicemail = make_call(
        [("customer", "Hi, it's Jo, please call me back.")], outcome=CallOutcome.VOICEMAIL
    )
    analysis = run(voicemail)
    assert analysis.resolution is Resolution.VOICEMAIL
    assert [i.kind for i in analysis.action_items] == [TaskType.CALL]


def test_disposition_wins_over_words() -> None:
    call = make_call([("customer", "It's still not working.")], disposition="Escalated to Tier 2")
    assert run(call).resolution is Resolution.ESCALATED


# --- sentiment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        (
            [("customer", "Thank you so much, you've been incredibly helpful, I'm really happy!")],
            Sentiment.POSITIVE,
        ),
        (
            [("customer", "I'd like to update my address."), ("customer", "Okay, thanks, bye.")],
            Sentiment.NEUTRAL,
        ),
        (
            [("customer", "This is absolutely terrible, I'm furious with your service.")],
            Sentiment.NEGATIVE,
        ),
        # polite anger and sarcasm
        ([("customer", "Well, thanks for nothing then.")], Sentiment.NEGATIVE),
        ([("customer", "Thank you so much for wasting my whole morning.")], Sentiment.NEGATIVE),
        (
            [
                ("customer", "This is the third time I call about the same router."),
                ("customer", "Thanks."),
            ],
            Sentiment.NEGATIVE,
        ),
        (
            [("customer", "I've explained this four times already."), ("customer", "Lovely.")],
            Sentiment.NEGATIVE,
        ),
        (
            [("customer", "My order is late again."), ("customer", "Oh great, just great.")],
            Sentiment.NEGATIVE,
        ),
    ],
)
def test_customer_sentiment(turns: list[tuple[str, str]], expected: Sentiment) -> None:
    analysis = run(make_call(turns))
    assert analysis.sentiment is expected
    assert analysis.sentiment_score is not None and -1 <= analysis.sentiment_score <= 1


def test_sentiment_reads_only_the_customer() -> None:
    call = make_call(
        [
            ("agent", "Wonderful, fantastic, I love helping you, this is great!"),
            ("customer", "I need a copy of my invoice."),
        ]
    )
    assert run(call).sentiment is Sentiment.NEUTRAL


def test_sentiment_uses_all_text_without_speakers() -> None:
    call = make_call([("unknown", "This is a disgrace, I am furious and fed up.")])
    assert run(call).sentiment is Sentiment.NEGATIVE


# --- categories ------------------------------------------------------------------------------


def test_categories_from_taxonomy_and_tags() -> None:
    call = make_call(
        [
            ("customer", "I was charged twice on my last invoice and I want a refund."),
            ("customer", "Also my parcel has not arrived."),
        ],
        tags=["VIP", "Billing"],
    )
    cats = run(call).categories
    assert "billing" in cats and "shipping_delivery" in cats and "vip" in cats
    assert cats.count("billing") == 1


def test_negated_phrase_is_not_a_category() -> None:
    call = make_call(
        [("customer", "I'm not going to cancel my subscription, I just have a question.")]
    )
    assert "cancellation_risk" not in run(call).categories


def test_custom_taxonomy() -> None:
    settings = AnalyzerSettings(
        timezone="Europe/Berlin", categories={"warranty": ["warranty", "guarantee"]}
    )
    ctx = AnalysisContext.from_settings(settings)
    call = make_call([("customer", "Is my fridge still under warranty?")])
    assert "warranty" in run(call, ctx).categories
    only = AnalyzerSettings(categories={"warranty": ["warranty"]}, replace_default_categories=True)
    assert set(only.taxonomy()) == {"warranty"}


# --- action items ----------------------------------------------------------------------------


def local(analysis: Analysis) -> list[tuple[TaskType, datetime | None]]:
    return [
        (i.kind, i.due_at.astimezone(BERLIN).replace(tzinfo=None) if i.due_at else None)
        for i in analysis.action_items
    ]


WED_11 = datetime(2026, 6, 10, 11, 0, tzinfo=BERLIN)


def test_promises_with_kinds_and_due_times() -> None:
    call = make_call(
        [
            ("customer", "My new phone arrived with a cracked screen."),
            ("agent", "I'm sorry. We'll send a replacement by Friday."),
            (
                "agent",
                "I'll also email you the return label today, and I'll call you on Monday to check.",
            ),
        ],
        ended=WED_11,
    )
    assert sorted(local(run(call)), key=str) == sorted(
        [
            (TaskType.TODO, datetime(2026, 6, 12, 17, 0)),
            (TaskType.EMAIL, datetime(2026, 6, 10, 17, 0)),
            (TaskType.CALL, datetime(2026, 6, 15, 9, 0)),
        ],
        key=str,
    )


def test_customer_request_and_agent_confirmation_are_one_item() -> None:
    call = make_call(
        [
            ("customer", "Could you ring me back on Thursday?"),
            ("agent", "Of course, I'll call you Thursday at 4."),
        ],
        ended=WED_11,
    )
    assert local(run(call)) == [(TaskType.CALL, datetime(2026, 6, 11, 16, 0))]


def test_customer_own_promise_and_agent_advice_are_not_items() -> None:
    call = make_call(
        [
            ("customer", "I'll send you the photos tomorrow."),
            ("agent", "Please restart the router tonight and it should be fine."),
            ("agent", "It will show on your statement in 3 days."),
        ],
        ended=WED_11,
    )
    assert run(call).action_items == []


def test_negated_promise_is_not_an_item() -> None:
    call = make_call([("agent", "We won't call you again about this offer.")], ended=WED_11)
    assert run(call).action_items == []


def test_note_promise() -> None:
    call = make_call(notes=["Cust wants upgrade quote. Promised callback tmrw 2pm."], ended=WED_11)
    assert local(run(call)) == [(TaskType.CALL, datetime(2026, 6, 11, 14, 0))]


def test_promise_without_time_has_no_due() -> None:
    call = make_call([("agent", "I'll email you the form.")], ended=WED_11)
    assert local(run(call)) == [(TaskType.EMAIL, None)]


def test_due_time_in_other_zone() -> None:
    ny = ZoneInfo("America/New_York")
    ended = datetime(2026, 11, 27, 16, 0, tzinfo=ny)  # Friday
    call = make_call(
        [("agent", "Someone from billing will call you on Monday morning.")], ended=ended
    )
    items = run(call, AnalysisContext(timezone=ny)).action_items
    assert [i.due_at.astimezone(ny).replace(tzinfo=None) for i in items if i.due_at] == [
        datetime(2026, 11, 30, 9, 0)
    ]


# --- calls in other words (phrasings not in the evaluation set) ----------------------------

LONDON = ZoneInfo("Europe/London")
WED_LONDON = datetime(2026, 6, 10, 11, 0, tzinfo=LONDON)


def run_london(turns: list[tuple[str, str]]) -> Analysis:
    return run(make_call(turns, ended=WED_LONDON), AnalysisContext(timezone=LONDON))


def due_local(analysis: Analysis) -> list[tuple[TaskType, datetime | None]]:
    return [
        (i.kind, i.due_at.astimezone(LONDON).replace(tzinfo=None) if i.due_at else None)
        for i in analysis.action_items
    ]


def test_time_window_starts_the_task_and_fed_up_customer_is_negative() -> None:
    result = run_london(
        [
            ("customer", "I've been trying to get through for an hour, honestly I'm sick of this."),
            ("customer", "My boiler has no pressure and there's no hot water."),
            ("agent", "I'll get an engineer out to you tomorrow between 8 and 12."),
            ("customer", "Fine."),
        ]
    )
    assert result.sentiment is Sentiment.NEGATIVE
    assert "technical_issue" in result.categories
    assert due_local(result) == [(TaskType.TODO, datetime(2026, 6, 11, 8, 0))]


def test_known_fault_without_fix_is_unresolved() -> None:
    result = run_london(
        [
            ("customer", "Why is my broadband so slow every evening?"),
            ("agent", "There is congestion in your area; our network team is aware of it."),
            ("agent", "We expect it to be fixed by next Wednesday."),
        ]
    )
    assert result.resolution is Resolution.UNRESOLVED


def test_request_gives_its_kind_to_the_dated_promise() -> None:
    result = run_london(
        [
            ("customer", "Could someone email me a copy of my contract?"),
            ("agent", "Sure, I'll send that over to you in the next 10 minutes."),
        ]
    )
    assert due_local(result) == [(TaskType.EMAIL, datetime(2026, 6, 10, 11, 10))]


def test_make_sure_someone_calls() -> None:
    result = run_london(
        [
            ("customer", "I was promised a call back yesterday and nobody called. Again."),
            ("agent", "I'll make sure my team leader calls you today before 5pm."),
        ]
    )
    assert result.sentiment is Sentiment.NEGATIVE
    assert result.resolution is Resolution.CALLBACK_PROMISED
    assert due_local(result) == [(TaskType.CALL, datetime(2026, 6, 10, 17, 0))]


def test_call_back_request_without_me() -> None:
    result = run_london(
        [
            ("agent", "Hi, it's Mark from Sunny Windows returning your call about the quote."),
            (
                "customer",
                "I need to check with my husband first. Can you call back Monday evening?",
            ),
            ("agent", "Of course, speak Monday evening."),
        ]
    )
    assert due_local(result) == [(TaskType.CALL, datetime(2026, 6, 15, 18, 0))]
    assert "returns" not in result.categories


def test_stacked_irritation_is_negative_but_one_problem_is_not() -> None:
    annoyed = run_london(
        [
            ("customer", "My refund still hasn't come through, it's been six weeks."),
            ("agent", "I've processed it now."),
            ("customer", "I'd appreciate it if it actually arrives this time."),
        ]
    )
    assert annoyed.sentiment is Sentiment.NEGATIVE
    calm = run_london(
        [
            ("customer", "I ordered a lamp last week and it still hasn't arrived."),
            ("agent", "It's with the courier and will be with you tomorrow."),
            ("customer", "Okay, thanks."),
        ]
    )
    assert calm.sentiment is Sentiment.NEUTRAL


def test_own_mistake_is_not_negative() -> None:
    result = run_london(
        [
            ("customer", "My payment failed but I don't know why."),
            ("agent", "Your card expired last month, I've sent you a link to update it."),
            ("customer", "Ah, my mistake. Thanks!"),
        ]
    )
    assert result.sentiment is not Sentiment.NEGATIVE


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Expect a call from us on Tuesday.", [(TaskType.CALL, datetime(2026, 6, 16, 9, 0))]),
        ("You'll hear from us by Friday.", [(TaskType.CALL, datetime(2026, 6, 12, 17, 0))]),
        ("We're sending a technician on Friday.", [(TaskType.TODO, datetime(2026, 6, 12, 9, 0))]),
        ("You'll receive an email with the details.", [(TaskType.EMAIL, None)]),
        ("I'm calling about your order.", []),
        ("It'll show on your statement in 3 days.", []),
    ],
)
def test_other_promise_wordings(
    sentence: str, expected: list[tuple[TaskType, datetime | None]]
) -> None:
    assert due_local(run_london([("agent", sentence)])) == expected


def test_future_ticket_with_another_team_is_an_escalation() -> None:
    result = run_london(
        [
            ("customer", "The app shows the wrong balance."),
            (
                "agent",
                "I'll raise a ticket with our engineers and they'll contact you by Thursday.",
            ),
        ]
    )
    assert result.resolution is Resolution.ESCALATED


def test_nothing_more_to_do_is_unresolved_and_sarcasm_is_negative() -> None:
    result = run_london(
        [
            ("customer", "The TV keeps freezing."),
            ("agent", "Unfortunately there's nothing more I can do over the phone."),
            ("customer", "Great. So I just have to live with it."),
        ]
    )
    assert result.resolution is Resolution.UNRESOLVED
    assert result.sentiment is Sentiment.NEGATIVE


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "A new bill will be issued within 10 working days.",
            [(TaskType.TODO, datetime(2026, 6, 24, 17, 0))],
        ),
        (
            "I'm going to send a courier to pick it up on Monday.",
            [(TaskType.TODO, datetime(2026, 6, 15, 9, 0))],
        ),
        ("A technician will be there in 2 hours.", [(TaskType.TODO, datetime(2026, 6, 10, 13, 0))]),
        (
            "I've rebooked him for Saturday morning, first slot.",
            [(TaskType.TODO, datetime(2026, 6, 13, 9, 0))],
        ),
        (
            "We'll reassess the claim within five business days.",
            [(TaskType.TODO, datetime(2026, 6, 17, 17, 0))],
        ),
        ("I'll be back with you in a minute.", []),
        ("I've booked a line test for our records.", []),
    ],
)
def test_more_promise_wordings(
    sentence: str, expected: list[tuple[TaskType, datetime | None]]
) -> None:
    assert due_local(run_london([("agent", sentence)])) == expected


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        (
            [
                ("customer", "I need a higher transfer limit."),
                (
                    "agent",
                    "For that I need approval from our branch manager, so I've passed your request to her.",
                ),
            ],
            Resolution.ESCALATED,
        ),
        (
            [
                ("customer", "Our login is down."),
                ("agent", "Engineering is working on it."),
                ("agent", "I'll email you an update at noon, or sooner if it's fixed."),
            ],
            Resolution.UNRESOLVED,
        ),
        (
            [
                ("customer", "I want to cancel, I'm moving."),
                ("agent", "Would you like to transfer your membership to our other club instead?"),
                ("customer", "Yes, that would be great!"),
            ],
            Resolution.RESOLVED,
        ),
        (
            [
                ("customer", "My parcel says delivered but it isn't here."),
                ("agent", "I've opened an investigation with the carrier."),
            ],
            Resolution.ESCALATED,
        ),
    ],
)
def test_more_outcomes(turns: list[tuple[str, str]], expected: Resolution) -> None:
    assert run_london(turns).resolution is expected


def test_names_and_greetings_do_not_sway_sentiment() -> None:
    result = run(
        make_call(
            [
                ("unknown", "Thank you for calling First Federal, this is Rob."),
                ("unknown", "Hi Rob, I'd like to check my balance."),
                ("unknown", "Sure, it's 240 dollars."),
            ]
        )
    )
    assert result.sentiment is Sentiment.NEUTRAL


def test_two_promises_sharing_one_subject() -> None:
    result = run_london(
        [("agent", "I'll send over the contract today and check in with you on Monday.")]
    )
    assert sorted(due_local(result), key=str) == sorted(
        [
            (TaskType.TODO, datetime(2026, 6, 10, 17, 0)),
            (TaskType.CALL, datetime(2026, 6, 15, 9, 0)),
        ],
        key=str,
    )


def test_customer_triggered_promise_is_not_tracked() -> None:
    result = run_london(
        [
            (
                "agent",
                "It should be delivered on Monday. If it isn't, call us and we'll send a new one.",
            )
        ]
    )
    assert result.action_items == []


def test_before_a_bare_hour() -> None:
    result = run(
        make_call(
            [
                (
                    "customer",
                    "I'm really not happy, the engineer didn't turn up again. Ring me back before 10 please.",
                )
            ],
            ended=datetime(2026, 3, 30, 8, 30, tzinfo=LONDON),
            outcome=CallOutcome.VOICEMAIL,
        ),
        AnalysisContext(timezone=LONDON),
    )
    assert due_local(result) == [(TaskType.CALL, datetime(2026, 3, 30, 10, 0))]
    assert "complaint" in result.categories and result.sentiment is Sentiment.NEGATIVE


@pytest.mark.parametrize(
    ("turns", "notes", "expected"),
    [
        (
            [],
            ["Cust asked to move the payment date. Agreed, updated to the 15th."],
            Sentiment.NEUTRAL,
        ),
        ([], ["Customer very upset about the second missed visit, shouting."], Sentiment.NEGATIVE),
        (
            [
                ("customer", "Is the shop open on Boxing Day?"),
                ("customer", "Okay, thanks, merry Christmas!"),
            ],
            [],
            Sentiment.NEUTRAL,
        ),
        ([("customer", "Yep, I'm in now. Thanks heaps!")], [], Sentiment.POSITIVE),
        (
            [("customer", "An engineer tomorrow? I'll believe it when I see it.")],
            [],
            Sentiment.NEGATIVE,
        ),
        (
            [
                ("customer", "You cut off my power even though I paid!"),
                ("customer", "Unbelievable."),
            ],
            [],
            Sentiment.NEGATIVE,
        ),
    ],
)
def test_sentiment_more(
    turns: list[tuple[str, str]], notes: list[str], expected: Sentiment
) -> None:
    assert run(make_call(turns, notes=notes)).sentiment is expected


def test_scheduled_delivery_is_an_item() -> None:
    result = run_london([("agent", "Your delivery is scheduled for tomorrow between 9 and 11.")])
    assert due_local(result) == [(TaskType.TODO, datetime(2026, 6, 11, 9, 0))]


def test_relaying_thanks_is_not_a_hand_over() -> None:
    result = run_london(
        [
            ("customer", "My new glasses are perfect, please thank the optician."),
            ("agent", "That's so nice to hear, I'll pass it on to her."),
        ]
    )
    assert result.resolution is Resolution.RESOLVED
    assert result.sentiment is Sentiment.POSITIVE


def test_on_site_by_a_time_today() -> None:
    result = run_london([("agent", "A technician will be on site by 2pm today.")])
    assert due_local(result) == [(TaskType.TODO, datetime(2026, 6, 10, 14, 0))]
