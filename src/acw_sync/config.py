"""The admin's configuration: one YAML file, validated as a whole at start-up.

``ACW_CONFIG`` names the file (default ``./acw-sync.yaml``); with no file, the built-in default
applies: the generic provider (secret from ``ACW_GENERIC_SECRET``, or one generated into
``./.acw-sync/``), the sandbox connector and the default follow-up rules. ``${VAR}`` and
``${VAR:-default}`` are substituted from the environment; a key ending in ``_file`` reads a
secret from a file. Reading the file, line numbers and error wording live in
:mod:`acw_sync._configfile`; this module owns the shape and the derived objects (the business
calendar, the compiled rules).

This module owns the shape of the config and its loading; it does not start anything.
"""

from __future__ import annotations

import os
import secrets
from base64 import b64encode
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from acw_sync.calendar import WEEKDAYS, BusinessCalendar, Due, OpeningHours
from acw_sync.conditions import ConditionProblem, parse_condition
from acw_sync.model import Priority, TaskType
from acw_sync.phone import to_e164
from acw_sync.templates import TemplateProblem, check_template

if TYPE_CHECKING:
    from acw_sync.analyzer import AnalyzerSettings

__all__ = [
    "AppConfig",
    "CalendarSettings",
    "CircuitConfig",
    "ConnectorInstance",
    "CreateTask",
    "MatchingPolicy",
    "RateLimitSettings",
    "Route",
    "RuleAction",
    "RuleSpec",
    "data_dir",
    "load_config",
]

DEFAULT_CONFIG_PATH = "acw-sync.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- checked scalar types: their errors carry a ``path`` inside the value ---------------------
def _template(value: str) -> str:
    try:
        check_template(value)
    except TemplateProblem as exc:
        raise PydanticCustomError("template", "{reason}", {"reason": str(exc)}) from None
    return value


def _due(value: str) -> str:
    try:
        Due.parse(value)
    except ValueError as exc:
        raise PydanticCustomError("due", "{reason}", {"reason": str(exc)}) from None
    return value


def _condition(value: Any) -> Any:
    try:
        parse_condition(value)
    except ConditionProblem as exc:
        raise PydanticCustomError(
            "condition", "{reason}", {"reason": exc.message, "path": exc.path}
        ) from None
    return value


Template = Annotated[str, AfterValidator(_template)]
"""A Jinja2 template over the call record (see :mod:`acw_sync.templates`)."""
DueText = Annotated[str, AfterValidator(_due)]
ConditionTree = Annotated[Any, AfterValidator(_condition)]


# -- connectors --------------------------------------------------------------------------------
class MatchingPolicy(_Strict):
    """How a call's number is matched to a CRM customer."""

    objects: list[str] | None = None
    """Object types to search, in priority order (connector default when unset)."""
    on_none: Literal["create", "attach_nothing", "skip"] = "attach_nothing"
    on_many: Literal["most_recent", "first", "unresolved"] = "most_recent"
    cache_ttl: float = Field(default=300, ge=0)
    """Seconds a phone-to-customer look-up is cached in Redis."""


class OwnerMapping(_Strict):
    by_email: bool = True
    table: dict[str, str] = Field(default_factory=dict)
    """Agent id or email -> CRM owner id; checked before the e-mail look-up."""
    default: str | None = None
    team_leads: dict[str, str] = Field(default_factory=dict)
    """Agent team -> the CRM user id of its lead (rules with ``owner: team_lead``)."""


class OperationRate(_Strict):
    requests: int = Field(gt=0)
    per: float = Field(default=1.0, gt=0)
    """Seconds of the window: ``requests`` per ``per`` seconds."""


class RateLimitSettings(_Strict):
    """The shared rate limit of one connector instance (see :mod:`acw_sync.ratelimit`)."""

    enabled: bool = True
    requests: int | None = Field(default=None, gt=0)
    """Requests per ``per`` seconds for the whole account; unset: the CRM's documented limit."""
    per: float = Field(default=10.0, gt=0)
    operations: dict[str, OperationRate] = Field(default_factory=dict)
    """Extra limits per connector operation, e.g. ``find_customers`` (HubSpot search)."""
    account: str | None = None
    """Instances naming the same account share their buckets (one CRM account, two configs)."""


class CircuitConfig(_Strict):
    """The circuit breaker of one connector instance (see :mod:`acw_sync.circuit`)."""

    failure_threshold: int = Field(default=5, ge=1)
    reset_timeout: float = Field(default=30.0, gt=0)
    probe_timeout: float = Field(default=30.0, gt=0)


class ConnectorInstance(_Strict):
    """One configured CRM (several of one type are allowed)."""

    type: str
    options: dict[str, Any] = Field(default_factory=dict)
    """Validated by the connector plugin's own config model."""
    mapping: dict[str, Template] = Field(default_factory=dict)
    """CRM field -> template over the call record; overrides the connector's defaults."""
    matching: MatchingPolicy = Field(default_factory=MatchingPolicy)
    owners: OwnerMapping = Field(default_factory=OwnerMapping)
    rules: list[str] | None = None
    """Ids of the follow-up rules this instance runs; unset: every rule."""
    max_attempts: int = Field(default=8, ge=1)
    max_age: float = Field(default=86400, gt=0)
    """Seconds after the call's end beyond which a failing sync goes to the dead-letter store."""
    quick_retries: int = Field(default=2, ge=0, le=5)
    """In-process retries of a request that hit a connection blip, before the task retries."""
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    batch_window: float = Field(default=0.25, ge=0, le=10)
    """Seconds the syncs of this instance are collected into batch requests, for connectors
    that declare ``batch_size`` > 1 (HubSpot, Salesforce); 0 syncs each call on its own. The
    batch path goes through the same guard as the single path (:mod:`acw_sync.batch`)."""
    batch_lanes: int = Field(default=2, ge=1, le=16)
    """Batch flushes of this instance that may run at once (each up to ``batch_size`` calls);
    the shared rate limiter keeps the CRM's budget across them."""


# -- routes ------------------------------------------------------------------------------------
class RouteMatch(_Strict):
    provider: str | None = None
    provider_account: str | None = None
    line_number: str | None = None
    team: str | None = None

    @field_validator("line_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        number = to_e164(value)
        if number is None:
            raise ValueError(
                f"{value!r} is not a phone number (write it in E.164, e.g. +14155550100)"
            )
        return number


class Route(_Strict):
    match: RouteMatch = Field(default_factory=RouteMatch)
    connectors: list[str] = Field(min_length=1)


# -- calendar ----------------------------------------------------------------------------------
Hours = str | list[str] | None


class WeeklyHours(_Strict):
    """Opening intervals per weekday: ``"09:00-17:00"``, a list of them, or ``closed``."""

    mon: Hours = None
    tue: Hours = None
    wed: Hours = None
    thu: Hours = None
    fri: Hours = None
    sat: Hours = None
    sun: Hours = None

    @field_validator(*WEEKDAYS)
    @classmethod
    def _intervals(cls, value: Hours) -> Hours:
        for text in [value] if isinstance(value, str) else value or []:
            if text != "closed":
                OpeningHours.parse(text)
        return value

    def table(self) -> dict[int, list[OpeningHours]]:
        out: dict[int, list[OpeningHours]] = {}
        for number, day in enumerate(WEEKDAYS):
            value = getattr(self, day)
            texts = [value] if isinstance(value, str) else value or []
            spans = [OpeningHours.parse(t) for t in texts if t != "closed"]
            if spans:
                out[number] = sorted(spans, key=lambda s: s.start)
        return out


class HolidaySettings(_Strict):
    country: str
    """ISO 3166 country code, as the ``holidays`` library knows it (US, DE, GB...)."""
    subdivision: str | None = None
    """State or region (CA, BY, ENG...) where holidays differ inside a country."""

    @model_validator(mode="after")
    def _known(self) -> HolidaySettings:
        import holidays

        supported: dict[str, list[str]] = holidays.list_supported_countries()
        if self.country not in supported:
            raise ValueError(
                f"{self.country!r} is not a country the holidays library knows "
                "(use an ISO code such as US, DE, GB, FR)"
            )
        subs = supported[self.country]
        if self.subdivision is not None and self.subdivision not in subs:
            raise ValueError(
                f"{self.subdivision!r} is not a subdivision of {self.country} "
                f"(use one of {', '.join(subs[:20])}{'...' if len(subs) > 20 else ''})"
            )
        return self


class TeamCalendar(_Strict):
    """A business calendar: opening hours in one timezone, holidays, closed dates."""

    timezone: str = "UTC"
    hours: WeeklyHours = Field(
        default_factory=lambda: WeeklyHours(
            mon="09:00-17:00",
            tue="09:00-17:00",
            wed="09:00-17:00",
            thu="09:00-17:00",
            fri="09:00-17:00",
        )
    )
    holidays: HolidaySettings | None = None
    closed: list[date] = Field(default_factory=list)
    """Extra dates the centre is closed (local dates: 2026-12-24)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as America/New_York)"
            ) from None
        return value

    @field_validator("holidays", mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"country": value} if isinstance(value, str) else value

    def business_calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            timezone=self.timezone,
            hours=dict(self.hours.table()),
            holiday_country=self.holidays.country if self.holidays else None,
            holiday_subdivision=self.holidays.subdivision if self.holidays else None,
            closed_dates=frozenset(self.closed),
        )


class CalendarSettings(TeamCalendar):
    """The centre's business calendar, for due times and ``business_hours`` conditions."""

    teams: dict[str, TeamCalendar] = Field(default_factory=dict)
    """Agent team -> its own calendar (a team working in another timezone); keys a team leaves
    out are the centre's."""

    def for_team(self, team: str | None) -> TeamCalendar:
        override = self.teams.get(team or "")
        if override is None:
            return self
        base = TeamCalendar.model_validate(self.model_dump(exclude={"teams"}))
        return base.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


# -- rules -------------------------------------------------------------------------------------
class TaskOwner(_Strict):
    user: str | None = None
    """A fixed CRM user id."""
    queue: str | None = None
    """A CRM queue id (Salesforce queue, HubSpot team inbox owner...)."""

    @model_validator(mode="after")
    def _one(self) -> TaskOwner:
        if (self.user is None) == (self.queue is None):
            raise ValueError("give exactly one of user or queue (or write owner: agent)")
        return self


class CreateTask(_Strict):
    subject: Template
    body: Template = ""
    type: TaskType = TaskType.CALL
    priority: Priority = Priority.NORMAL
    owner: Literal["agent", "team_lead"] | TaskOwner = "agent"
    """agent: the call's agent; team_lead: ``owners.team_leads`` of the agent's team; or a
    fixed ``{user: ID}`` / ``{queue: ID}``."""

    @field_validator("owner", mode="before")
    @classmethod
    def _owner_form(cls, value: Any) -> Any:
        forms = "write agent, team_lead, {user: ID} or {queue: ID}"
        if isinstance(value, str) and value not in ("agent", "team_lead"):
            raise ValueError(f"{value!r} is not an owner ({forms})")
        if isinstance(value, dict) and (len(value) != 1 or set(value) - {"user", "queue"}):
            raise ValueError(f"an owner is one of user or queue ({forms})")
        if not isinstance(value, str | dict):
            raise ValueError(f"not an owner ({forms})")
        return value

    due: DueText = "+1h"
    business_time: bool = True
    """Count relative due times in business hours (false: wall-clock time)."""


class RuleAction(_Strict):
    """One action: exactly one of its keys."""

    create_task: CreateTask | None = None
    update_customer: dict[str, Template] | None = None
    """CRM field -> template, written on the customer (connectors that can)."""
    set_disposition: Template | None = None
    """The call activity's disposition (the connector's disposition field)."""

    @model_validator(mode="after")
    def _one(self) -> RuleAction:
        given = [
            k for k in ("create_task", "update_customer", "set_disposition") if getattr(self, k)
        ]
        if len(given) != 1:
            raise ValueError(
                "an action has exactly one of create_task, update_customer, set_disposition "
                "(write each action as its own list item)"
            )
        return self


class RuleSpec(_Strict):
    """A follow-up rule: when the call matches, then the actions."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=64)
    """Stable id: the task's idempotency key ends in it. Renaming a rule re-fires it."""
    description: str = ""
    enabled: bool = True
    when: ConditionTree = None
    then: list[RuleAction] = Field(default_factory=list)
    stop: bool = False
    """Skip the rules after this one when it fires."""

    @model_validator(mode="after")
    def _complete(self) -> RuleSpec:
        if self.enabled and self.when is None:
            raise ValueError("an enabled rule needs when: (conditions); or set enabled: false")
        if self.enabled and not self.then:
            raise ValueError("an enabled rule needs then: (one or more actions)")
        if sum(a.create_task is not None for a in self.then) > 1:
            raise ValueError("a rule creates at most one task (split it into two rules)")
        return self


class FollowUpDefaults(_Strict):
    """Switches for the built-in rules (see :mod:`acw_sync.rules`)."""

    default_rules: bool = True
    """Include the built-in rule set; your ``rules`` with the same id replace built-ins."""
    callback_delay: float | None = Field(default=None, ge=0)
    """Deprecated (foundation): call back missed calls and voicemails this many wall-clock
    seconds after the call instead of the built-in business-time due times."""


class ServerSettings(_Strict):
    public_base_url: str | None = None
    """The URL platforms call, for URL-bound signatures (Twilio) behind proxies."""
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)


class AppConfig(_Strict):
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    connectors: dict[str, ConnectorInstance] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    calendar: CalendarSettings | None = None
    """None: always open, UTC (relative due times are then wall-clock time)."""
    rules: list[RuleSpec] = Field(default_factory=list)
    followups: FollowUpDefaults = Field(default_factory=FollowUpDefaults)
    analyzer: dict[str, Any] = Field(default_factory=dict)
    """Validated by ``acw_sync.analyzer.AnalyzerSettings`` when that package is installed."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    source: str = Field(default="<built-in default>", exclude=True)
    _calendars: dict[str | None, BusinessCalendar] = PrivateAttr(default_factory=dict)
    _compiled_rules: Any = PrivateAttr(default=None)
    """The rules with parsed conditions (owned by :mod:`acw_sync.rules`)."""

    @model_validator(mode="after")
    def _unique_rules(self) -> AppConfig:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                raise PydanticCustomError(
                    "duplicate",
                    "rule id {id!r} is used twice (give each rule its own id)",
                    {"id": rule.id, "path": ("rules", i, "id")},
                )
            seen.add(rule.id)
        return self

    def analyzer_settings(self) -> AnalyzerSettings:
        """The ``analyzer`` section as ``acw_sync.analyzer.AnalyzerSettings``.

        The analyzer owns the section's shape. Its ``timezone`` (the zone promised times like
        "Thursday at 3" are read in) defaults to the calendar's, so promises and business hours
        agree.
        """
        from acw_sync.analyzer import AnalyzerSettings  # not at import: the server never needs it

        data = dict(self.analyzer)
        if self.calendar is not None:
            data.setdefault("timezone", self.calendar.timezone)
        return AnalyzerSettings.model_validate(data)

    def business_calendar(self, team: str | None = None) -> BusinessCalendar:
        """The calendar of the centre, or of ``team`` when it has its own (``calendar.teams``)."""
        key = team if self.calendar is not None and team in self.calendar.teams else None
        if key not in self._calendars:
            self._calendars[key] = (
                self.calendar.for_team(key).business_calendar()
                if self.calendar
                else BusinessCalendar()
            )
        return self._calendars[key]

    def routes_for(
        self, provider: str, account: str | None, line: str | None, team: str | None
    ) -> list[str]:
        """Connector instances a call goes to: every matching route; all instances if none."""
        if not self.routes:
            return list(self.connectors)
        chosen: dict[str, None] = {}
        for route in self.routes:
            m = route.match
            if (
                (m.provider is None or m.provider == provider)
                and (m.provider_account is None or m.provider_account == account)
                and (m.line_number is None or m.line_number == line)
                and (m.team is None or m.team == team)
            ):
                for name in route.connectors:
                    chosen.setdefault(name, None)
        return list(chosen)

    def provider_secret(self, provider: str, key: str) -> str | None:
        value = self.providers.get(provider, {}).get(key)
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return value if isinstance(value, str) else None


def data_dir() -> Path:
    """Where acw-sync keeps local state (embedded Redis, sandbox CRM): ``ACW_DATA_DIR``."""
    path = Path(os.environ.get("ACW_DATA_DIR", ".acw-sync")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_generic_secret() -> str:
    """``ACW_GENERIC_SECRET``, or a ``whsec_`` secret generated once into the data dir."""
    env = os.environ.get("ACW_GENERIC_SECRET")
    if env:
        return env
    path = data_dir() / "generic-secret"
    if not path.exists():
        path.write_text("whsec_" + b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def default_config() -> AppConfig:
    return AppConfig(
        providers={"generic": {"secret": default_generic_secret()}},
        connectors={
            "sandbox": ConnectorInstance(
                type="sandbox",
                options={"path": str(data_dir() / "sandbox.db")},
                matching=MatchingPolicy(on_none="create"),
            )
        },
    )


def load_config(path: str | os.PathLike[str] | None = None) -> AppConfig:
    """Load and validate the config; ConfigError lists every problem with file, line and key."""
    from acw_sync._configfile import read_config

    explicit = path is not None or "ACW_CONFIG" in os.environ
    file = Path(path or os.environ.get("ACW_CONFIG", DEFAULT_CONFIG_PATH))
    if not file.exists() and not explicit:
        return default_config()
    config = read_config(file)
    for name, instance in config.connectors.items():
        if instance.type == "sandbox" and "path" not in instance.options:
            instance.options["path"] = str(data_dir() / f"{name}.db")
    return config
