"""LLMAnalyzer against a real HTTP server on loopback: success, and every way to fall back."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from acw_sync.analyzer import (
    AnalysisContext,
    AnalyzerSettings,
    LLMAnalyzer,
    LLMSettings,
    OfflineAnalyzer,
    analyzer_from_settings,
)
from tests.analyzer.builders import BERLIN, make_call

KEY = "sk-test-SECRET-4242"
GOOD = (
    "The customer's internet was down; the agent reset the line and will call back tomorrow at 10."
)
CALL = make_call(
    [
        ("customer", "My internet has been down since this morning."),
        ("agent", "I've reset your line from our side."),
        ("agent", "I'll call you back tomorrow at 10 to make sure it's stable."),
    ]
)
CTX = AnalysisContext(timezone=BERLIN)


def completion(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        _Handler.seen.append(
            {
                "path": self.path,
                "auth": self.headers.get("Authorization", ""),
                "model": request.get("model", ""),
            }
        )
        mode = self.path.strip("/").split("/")[0]
        if mode == "ok":
            self._reply(200, completion(GOOD))
        elif mode == "slow":
            time.sleep(1.5)
            self._reply(200, completion(GOOD))
        elif mode == "trickle":
            body = completion(GOOD)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 8):
                self.wfile.write(body[i : i + 8])
                self.wfile.flush()
                time.sleep(0.05)
        elif mode == "garbage":
            self._reply(200, b"<html>502 upstream gone</html>", "text/html")
        elif mode == "error":
            self._reply(500, f'{{"error": "bad key {KEY}"}}'.encode())
        elif mode == "empty":
            self._reply(200, completion(""))
        elif mode == "long":
            self._reply(200, completion("word " * 400))
        elif mode == "refusal":
            self._reply(
                200, completion("As an AI language model, I cannot summarise this call for you.")
            )
        elif mode == "wrongshape":
            self._reply(200, b'{"choices": []}')
        else:
            self._reply(404, b"{}")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def analyzer(base: str, mode: str, timeout: float = 0.6) -> LLMAnalyzer:
    return LLMAnalyzer(
        LLMSettings(url=f"{base}/{mode}/v1", model="tiny", api_key=SecretStr(KEY), timeout=timeout)
    )


def test_llm_summary_replaces_offline_summary(server: str) -> None:
    result = analyzer(server, "ok").analyze(CALL, CTX)
    assert result.summary == GOOD
    assert result.analyzer == "llm:tiny"
    offline = OfflineAnalyzer().analyze(CALL, CTX)
    assert result.resolution == offline.resolution and result.action_items == offline.action_items
    last = _Handler.seen[-1]
    assert last["path"] == "/ok/v1/chat/completions"
    assert last["auth"] == f"Bearer {KEY}" and last["model"] == "tiny"


@pytest.mark.parametrize(
    "mode", ["slow", "trickle", "garbage", "error", "empty", "long", "refusal", "wrongshape"]
)
def test_falls_back_and_never_leaks_the_key(
    server: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    result = analyzer(server, mode).analyze(CALL, CTX)
    elapsed = time.monotonic() - started
    assert elapsed < 0.6 + 0.5, f"{mode} held the call for {elapsed:.2f} s"
    assert result.summary == OfflineAnalyzer().analyze(CALL, CTX).summary
    assert result.analyzer == "offline (llm fallback)"
    assert "llm summary unavailable" in caplog.text
    assert KEY not in caplog.text


def test_connection_refused_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    result = analyzer(f"http://127.0.0.1:{port}", "ok").analyze(CALL, CTX)
    assert result.analyzer == "offline (llm fallback)"
    assert KEY not in caplog.text


def test_call_without_text_does_not_call_the_endpoint(server: str) -> None:
    before = len(_Handler.seen)
    result = analyzer(server, "ok").analyze(make_call(), CTX)
    assert result.analyzer == "offline" and len(_Handler.seen) == before


def test_settings_pick_the_analyzer_and_hide_the_key() -> None:
    plain = analyzer_from_settings(AnalyzerSettings())
    assert isinstance(plain, OfflineAnalyzer)
    settings = AnalyzerSettings.model_validate(
        {
            "llm": {"url": "http://127.0.0.1:9/v1", "model": "m", "api_key": KEY},
            "timezone": "Europe/Berlin",
        }
    )
    assert isinstance(analyzer_from_settings(settings), LLMAnalyzer)
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
