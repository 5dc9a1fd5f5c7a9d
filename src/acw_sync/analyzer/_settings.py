"""The analyzer's configuration (the ``analyzer:`` section of the admin's YAML file).

Owns the shape and the defaults only; the app config mounts :class:`AnalyzerSettings` and
nothing here reads files or the environment.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["DEFAULT_TAXONOMY", "AnalyzerSettings", "LLMSettings"]

#: Category -> phrases (matched case-insensitively on word boundaries; a phrase preceded by a
#: negation such as "not" or "don't" within three words does not count).
DEFAULT_TAXONOMY: dict[str, list[str]] = {
    "billing": [
        "bill",
        "bills",
        "billed",
        "billing",
        "invoice",
        "invoices",
        "charge",
        "charged",
        "charges",
        "charging",
        "refund",
        "refunded",
        "payment",
        "payments",
        "pay",
        "paid",
        "direct debit",
        "fee",
        "fees",
        "overcharged",
        "price increase",
        "price went up",
        "credit",
        "reimburse",
        "money back",
        "statement",
        "statements",
        "overpay",
        "overpayment",
        "instalment",
        "instalments",
        "installment",
        "tariff",
        "cheaper",
    ],
    "technical_issue": [
        "not working",
        "stopped working",
        "isn't working",
        "doesn't work",
        "won't work",
        "won't connect",
        "can't connect",
        "cannot connect",
        "error",
        "errors",
        "crash",
        "crashes",
        "crashing",
        "keeps dropping",
        "keeps logging",
        "keeps restarting",
        "keeps disconnecting",
        "keeps freezing",
        "freezing",
        "been down",
        "has been down",
        "buffering",
        "keeps failing",
        "stopped responding",
        "not responding",
        "unresponsive",
        "dropping",
        "drops",
        "outage",
        "went down",
        "is down",
        "no signal",
        "fault",
        "faulty",
        "bug",
        "broken",
        "glitch",
        "won't turn on",
        "won't start",
        "won't drain",
        "loses the connection",
        "lost connection",
        "reboot",
        "restart",
        "fails",
        "failing",
        "isn't fixed",
        "not fixed",
        "power is out",
        "power has been out",
        "no internet",
        "freezes",
        "not loading",
        "having problems",
        "having trouble",
        "no hot water",
        "no heating",
        "no pressure",
        "no power",
        "leak",
        "leaking",
        "slow",
        "no dial tone",
        "won't boot",
        "doesn't boot",
        "black screen",
        "can't submit",
        "won't load",
        "won't let me",
    ],
    "cancellation_risk": [
        "cancel my",
        "want to cancel",
        "going to cancel",
        "close my account",
        "switch provider",
        "switching to",
        "another provider",
        "competitor",
        "leave you",
        "leaving you",
        "terminate",
        "end my contract",
        "not renew",
        "won't renew",
    ],
    "sales_opportunity": [
        "quote",
        "enterprise plan",
        "pro plan",
        "upgrade",
        "interested in",
        "more seats",
        "more licenses",
        "licenses",
        "buy",
        "purchase",
        "bulk",
        "volume pricing",
        "pricing",
        "proposal",
        "demo",
        "test drive",
        "trade in",
        "trading in",
        "new plan",
        "order more",
        "add more",
        "budget",
        "brochure",
        "to my plan",
        "second line",
        "extra line",
        "another line",
        "new line",
        "price list",
        "open an account",
        "opening an account",
        "open a savings",
        "opening a savings",
        "new account",
    ],
    "complaint": [
        "complaint",
        "complain",
        "complaining",
        "unacceptable",
        "ridiculous",
        "disgrace",
        "disgraceful",
        "not good enough",
        "third time",
        "fourth time",
        "fifth time",
        "four times",
        "five times",
        "several times",
        "thanks for nothing",
        "nobody listens",
        "nobody is telling",
        "rude",
        "very poor",
        "poor service",
        "appalling",
        "outrageous",
        "fed up",
        "shocking",
        "nobody called",
        "no one called",
        "never called",
        "promised a call back",
        "terrible service",
        "useless",
        "scam",
        "rip-off",
        "rip off",
        "unbelievable",
        "disgusting",
        "never showed up",
        "didn't show up",
        "never turned up",
        "didn't turn up",
        "did not turn up",
        "not happy",
        "no-show",
        "no one did",
        "nobody did",
        "nobody has come",
        "no one has come",
        "nobody came",
        "on hold for",
        "waiting on hold",
        "kept on hold",
        "3rd call",
        "third call",
        "waste of time",
        "wasted hours",
    ],
    "shipping_delivery": [
        "delivery",
        "deliveries",
        "delivered",
        "deliver",
        "parcel",
        "my package",
        "the package",
        "package arrived",
        "shipment",
        "shipped",
        "ship",
        "shipping",
        "courier",
        "tracking",
        "hasn't arrived",
        "has not arrived",
        "not arrived",
        "never arrived",
        "where my order",
        "where is my order",
        "order status",
        "dispatched",
        "in transit",
        "on the way",
        "days late",
    ],
    "account_access": [
        "locked out of my account",
        "locked out of online",
        "locked out of the app",
        "can't log in",
        "cannot log in",
        "can't sign in",
        "unable to log in",
        "log in",
        "login",
        "sign in",
        "password",
        "logging me out",
        "logs me out",
        "logged out",
        "log into",
        "logging in",
        "can't log into",
        "cannot log into",
        "two-factor",
        "2fa",
        "verification code",
        "reset link",
        "username",
        "access my account",
    ],
    "booking": [
        "appointment",
        "rebooked",
        "rebook",
        "i booked",
        "booking",
        "booked for",
        "book a",
        "book an",
        "booked you",
        "reschedule",
        "reservation",
        "viewing",
        "to view",
        "test drive",
        "service visit",
        "time slot",
        "free slot",
    ],
    "returns": [
        "return a",
        "to return",
        "returns",
        "return label",
        "return it",
        "return the",
        "return this",
        "a return",
        "the return",
        "returned",
        "send it back",
        "sent back",
        "send back",
        "exchange",
        "rma",
    ],
}


class LLMSettings(BaseModel):
    """An OpenAI-compatible chat-completions endpoint for abstractive summaries."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """Base URL (``https://host/v1``) or the full ``.../chat/completions`` URL."""
    model: str
    api_key: SecretStr | None = None
    timeout: float = Field(default=8.0, gt=0, le=120)
    """Seconds the whole request may take (connect + response); the offline summary is used
    past it, so a slow endpoint never holds up the sync."""
    max_response_bytes: int = Field(default=256 * 1024, gt=0)


class AnalyzerSettings(BaseModel):
    """``analyzer:`` in the config file.

    Example::

        analyzer:
          summary_budget: 400
          timezone: Europe/Berlin
          categories: {billing: [invoice, refund, charge]}
          replace_default_categories: false
          llm: {url: "https://llm.internal/v1", model: "qwen2.5-7b", api_key: "${LLM_KEY}"}
    """

    model_config = ConfigDict(extra="forbid")

    summary_budget: int = Field(default=400, ge=80, le=4000)
    timezone: str = "UTC"
    """The centre's IANA timezone: relative due times ("tomorrow at 3") are read in it."""
    categories: dict[str, list[str]] = Field(default_factory=dict)
    """Extra phrases per category, merged into the default taxonomy (or replacing it)."""
    replace_default_categories: bool = False
    llm: LLMSettings | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from exc
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def taxonomy(self) -> dict[str, list[str]]:
        """The effective category -> phrases table."""
        merged: dict[str, list[str]] = (
            {}
            if self.replace_default_categories
            else {k: list(v) for k, v in DEFAULT_TAXONOMY.items()}
        )
        for name, phrases in self.categories.items():
            merged.setdefault(name, [])
            merged[name].extend(p for p in phrases if p not in merged[name])
        return merged
