"""The OpenAPI document served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from acw_sync import __version__
from acw_sync.providers.generic import GenericPayload

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "details": {}},
}
_ACCEPTED = {
    "type": "object",
    "properties": {
        "accepted": {"type": "array", "items": {"type": "string"}},
        "duplicates": {"type": "array", "items": {"type": "string"}},
        "ignored": {"type": "boolean"},
    },
}


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(providers: list[str]) -> dict[str, Any]:
    generic = GenericPayload.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = generic.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "acw-sync ingest",
            "version": __version__,
            "description": "Signed call webhooks from telephony platforms.",
        },
        "paths": {
            "/webhooks/{provider}": {
                "post": {
                    "summary": "Receive a platform's call webhook",
                    "parameters": [
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": providers},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/GenericPayload"}
                            },
                            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Already accepted (redelivery), ignored event, or "
                            "a platform handshake",
                            "content": {"application/json": {"schema": _ACCEPTED}},
                        },
                        "202": {
                            "description": "Accepted: the events are on the queue",
                            "content": {"application/json": {"schema": _ACCEPTED}},
                        },
                        "400": _err("Malformed body (field errors in details)"),
                        "401": _err("Missing or invalid signature, or stale timestamp"),
                        "404": _err("Unknown provider"),
                        "413": _err("Body too large"),
                        "503": _err("Queue unavailable: retry later"),
                    },
                }
            },
            "/healthz": {
                "get": {"summary": "Process alive", "responses": {"200": {"description": "ok"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "Broker and state store reachable",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR, "GenericPayload": generic, **defs}},
    }
