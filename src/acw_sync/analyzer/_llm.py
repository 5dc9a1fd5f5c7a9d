"""An abstractive summary from an OpenAI-compatible chat-completions endpoint.

:class:`LLMAnalyzer` runs the offline analyzer first (outcome, sentiment, categories and
action items always come from it) and then asks the endpoint for a better-written summary.
Whatever goes wrong (connection refused, HTTP error, a slow or trickling answer, a body that
is not the expected JSON, an empty, over-long or code-like reply) the offline summary is kept
and ``Analysis.analyzer`` says ``offline (llm fallback)``. The caller never waits longer than
``LLMSettings.timeout``: the request runs on a small worker pool with its own socket
timeouts, and the caller stops waiting at the deadline.

The API key is sent only in the ``Authorization`` header; it is never logged, and error text
is scrubbed of it before it is logged.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import requests

from acw_sync.analyzer._base import AnalysisContext, Analyzer
from acw_sync.analyzer._offline import OfflineAnalyzer
from acw_sync.analyzer._settings import LLMSettings
from acw_sync.model import Analysis, CallRecord

__all__ = ["LLMAnalyzer", "LLMUnavailable"]

log = logging.getLogger(__name__)

_SYSTEM_PROMPT = (
    "You write the after-call summary for a contact-centre agent. In at most {budget} "
    "characters and at most three sentences of plain text, state the customer's reason for "
    "calling, what the agent did, and what happens next (with any promised time). Use only "
    "facts from the call; no greeting, no lists, no preamble."
)
_MAX_INPUT_CHARS = 12_000
_REFUSALS = ("as an ai", "i cannot", "i can't help", "i'm sorry, but", "language model")


class LLMUnavailable(Exception):
    """The endpoint gave no usable summary; the message is safe to log (no secrets)."""


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


def _call_text(call: CallRecord) -> str:
    lines = [f"Agent note: {n.text}" for n in call.notes]
    lines += [f"{u.speaker.value.capitalize()}: {u.text}" for u in call.transcript]
    text = "\n".join(lines)
    return text[:_MAX_INPUT_CHARS]


def _clean_summary(content: Any, budget: int) -> str:
    if not isinstance(content, str):
        raise LLMUnavailable("the reply has no text content")
    text = " ".join(content.split())
    lowered = text.lower()
    if len(text) < 20 or not any(c.isalpha() for c in text):
        raise LLMUnavailable("the reply is empty or too short")
    if "```" in text or text.startswith(("{", "[", "<")) or any(r in lowered for r in _REFUSALS):
        raise LLMUnavailable("the reply is not a plain-text summary")
    if len(text) > budget:
        cut = text[:budget]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        if end < budget // 3 and not cut.endswith((".", "!", "?")):
            raise LLMUnavailable(f"the reply is longer than the {budget}-character budget")
        text = cut if cut.endswith((".", "!", "?")) else cut[: end + 1]
    return text


class LLMAnalyzer:
    """Offline analysis with an abstractive summary from an LLM, falling back to offline."""

    name = "llm"

    #: Worker threads shared by all instances; bounds concurrent requests per process.
    _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="acw-llm")

    def __init__(
        self,
        settings: LLMSettings,
        *,
        fallback: Analyzer | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.fallback = fallback or OfflineAnalyzer()
        self._session = session or requests.Session()
        self._url = _endpoint(settings.url)

    def analyze(self, call: CallRecord, ctx: AnalysisContext) -> Analysis:
        base = self.fallback.analyze(call, ctx)
        if not (call.notes or call.transcript):
            return base
        started = time.monotonic()
        future = self._pool.submit(self._summarize, call, ctx.summary_budget)
        try:
            summary = future.result(timeout=self.settings.timeout)
        except FutureTimeout:
            future.cancel()
            self._fallback_note(f"no answer within {self.settings.timeout:g} s", started)
            return base.model_copy(update={"analyzer": "offline (llm fallback)"})
        except LLMUnavailable as exc:
            self._fallback_note(str(exc), started)
            return base.model_copy(update={"analyzer": "offline (llm fallback)"})
        return base.model_copy(
            update={"summary": summary, "analyzer": f"llm:{self.settings.model}"}
        )

    def _fallback_note(self, reason: str, started: float) -> None:
        log.warning(
            "llm summary unavailable after %.1f s, using the offline summary: %s",
            time.monotonic() - started,
            self._redact(reason),
        )

    def _redact(self, text: str) -> str:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else ""
        return text.replace(key, "***") if key else text

    def _summarize(self, call: CallRecord, budget: int) -> str:
        """Runs on the pool; raises :class:`LLMUnavailable` with a secret-free message."""
        try:
            return self._request(call, budget)
        except LLMUnavailable:
            raise
        except Exception as exc:  # any transport or decoding failure means "use offline"
            raise LLMUnavailable(self._redact(f"{type(exc).__name__}: {exc}")) from None

    def _request(self, call: CallRecord, budget: int) -> str:
        settings = self.settings
        deadline = time.monotonic() + settings.timeout
        headers = {"Content-Type": "application/json"}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        body = {
            "model": settings.model,
            "temperature": 0,
            "max_tokens": max(64, budget // 2),
            "messages": [
                {"role": "system", "content": _SYSTEM_PROMPT.format(budget=budget)},
                {"role": "user", "content": _call_text(call)},
            ],
        }
        with self._session.post(
            self._url,
            json=body,
            headers=headers,
            timeout=(min(3.0, settings.timeout), settings.timeout),
            stream=True,
        ) as response:
            if response.status_code != 200:
                raise LLMUnavailable(f"the endpoint answered HTTP {response.status_code}")
            raw = bytearray()
            for chunk in response.iter_content(chunk_size=8192):
                raw.extend(chunk)
                if len(raw) > settings.max_response_bytes:
                    raise LLMUnavailable("the reply is larger than max_response_bytes")
                if time.monotonic() > deadline:
                    raise LLMUnavailable("the reply took longer than the timeout")
        try:
            payload = json.loads(raw.decode("utf-8"))
            content = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMUnavailable("the reply is not a chat-completions JSON body") from None
        return _clean_summary(content, budget)
