"""Where the provider finds its endpoint and key: stated once (fleet/stack_config.py, vastclient's env names),
and one error tree for a missing key."""

from __future__ import annotations

import pytest

from fleet.stack_config import API_KEY_CONFIG, URL_CONFIG
from providers.explain import explain
from providers.settings import ProviderSettings, settings_from
from vastclient import API_KEY_ENV, MISSING_KEY_HELP, URL_ENV, AuthError, MissingApiKeyError, VastClient, VastError


def test_stack_config_first_then_the_clients_environment() -> None:
    config = {API_KEY_CONFIG: "from-stack", URL_CONFIG: "http://stack"}
    env = {API_KEY_ENV: "from-env", URL_ENV: "http://env"}
    assert settings_from(config.get, env) == ProviderSettings(api_key="from-stack", base_url="http://stack")
    assert settings_from(lambda _k: None, env) == ProviderSettings(api_key="from-env", base_url="http://env")
    assert "from-env" not in repr(settings_from(lambda _k: None, env))


def test_a_missing_key_is_the_clients_error_with_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingApiKeyError) as from_provider:
        settings_from(lambda _k: None, {}).require_key()
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(MissingApiKeyError) as from_client:
        VastClient()
    assert str(from_provider.value) == str(from_client.value) == MISSING_KEY_HELP
    assert isinstance(from_provider.value, AuthError | VastError)
    assert f"pulumi config set --secret {API_KEY_CONFIG}" in MISSING_KEY_HELP and API_KEY_ENV in MISSING_KEY_HELP
    # At preview it is explained as missing (with the stack's command), not as a key Vast refused.
    text = explain(from_provider.value, base_url=None, stack="vision")
    assert text.endswith(f"`pulumi config set --secret {API_KEY_CONFIG} --stack vision`")
    assert "refused" not in text
