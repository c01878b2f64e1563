"""Settings from initializationOptions / didChangeConfiguration: nested, defaulted, forgiving."""

from __future__ import annotations

from sdls.lsp.settings import Settings, settings_from


def test_defaults_when_nothing_is_sent():
    settings, warnings = settings_from(None)
    assert settings == Settings() and warnings == []


def test_camel_and_snake_case_nested_values():
    settings, warnings = settings_from(
        {
            "model": {"path": "/m", "device": "cuda"},
            "completion": {"maxTokens": 12, "threshold": 1, "block_size": 16},
            "worker": {"inProcess": True},
            "languages": ["python", "go"],
        }
    )
    assert warnings == []
    assert settings.model.path == "/m" and settings.model.device == "cuda"
    assert settings.completion.max_tokens == 12 and settings.completion.block_size == 16
    assert settings.completion.threshold == 1.0 and isinstance(settings.completion.threshold, float)
    assert settings.worker.in_process is True
    assert settings.language_enabled("go") and not settings.language_enabled("lua")


def test_vscode_style_section_wrapper():
    settings, _ = settings_from({"sdls": {"hover": {"enabled": False}}})
    assert settings.hover.enabled is False


def test_bad_values_warn_and_keep_defaults():
    settings, warnings = settings_from(
        {"completion": {"maxTokens": "lots", "enabled": 1, "nope": 3}, "model": "not an object", "languages": [1, 2]}
    )
    assert settings == Settings()
    joined = "\n".join(warnings)
    for fragment in (
        "completion.maxTokens",
        "completion.enabled",
        "unknown setting 'completion.nope'",
        "model: expected an object",
        "languages",
    ):
        assert fragment in joined


def test_a_change_patches_the_current_settings():
    first, _ = settings_from({"completion": {"maxTokens": 10}})
    second, _ = settings_from({"completion": {"threshold": 0.5}}, first)
    assert second.completion.max_tokens == 10 and second.completion.threshold == 0.5


def test_non_object_settings_are_refused_with_a_warning():
    settings, warnings = settings_from(["a"])
    assert settings == Settings() and "must be an object" in warnings[0]
