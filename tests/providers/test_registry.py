"""Every built-in provider is registered, typed, and keeps its secrets out of reprs and errors."""

from __future__ import annotations

import pytest
from provider_helpers import NOW, request
from pydantic import SecretStr, ValidationError

from acw_sync.errors import SignatureInvalid
from acw_sync.provider import Provider, available_providers, load_provider_class

SECRETS = {
    "twilio": {"auth_token": "twilio-secret-value-0123456789abcdef"},
    "aircall": {"token": "aircall-secret-value-0123456789abcdef"},
    "dialpad": {"secret": "dialpad-secret-value-0123456789abcdef"},
    "ringcentral": {"verification_token": "rc-secret-value-0123456789abcdef"},
    "zoom": {"secret_token": "zoom-secret-value-0123456789abcdef"},
    "vonage": {"signature_secret": "vonage-secret-value-0123456789abcdef"},
}


def test_all_six_are_registered_under_their_names() -> None:
    names = available_providers()
    for name in SECRETS:
        cls = load_provider_class(name)
        assert names[name] is cls
        assert issubclass(cls, Provider) and cls.name == name


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_config_is_typed_with_secret_fields_and_a_region(name: str) -> None:
    cls = load_provider_class(name)
    config = cls.config_model.model_validate({**SECRETS[name], "default_region": "GB"})
    secret = next(iter(SECRETS[name].values()))
    assert any(isinstance(v, SecretStr) for v in config.__dict__.values())
    assert secret not in repr(config) and secret not in str(config.model_dump())
    assert config.default_region == "GB"
    with pytest.raises(ValidationError):
        cls.config_model.model_validate({})  # fail closed: no secret, no provider
    with pytest.raises(ValidationError):
        cls.config_model.model_validate({**SECRETS[name], "unknown_key": 1})


@pytest.mark.parametrize("name", sorted(SECRETS))
@pytest.mark.parametrize(
    "body", [b"", b"{}", b"not json", b'{"token": "x", "event": "call.created"}', b"CallSid=CA1"]
)
def test_unsigned_requests_are_refused_without_echoing_secrets_or_body(
    name: str, body: bytes
) -> None:
    cls = load_provider_class(name)
    provider = cls(cls.config_model.model_validate(SECRETS[name]))
    with pytest.raises(SignatureInvalid) as err:
        provider.verify(request(body), NOW)
    secret = next(iter(SECRETS[name].values()))
    assert secret not in err.value.reason
    assert not body or body.decode() not in err.value.reason
