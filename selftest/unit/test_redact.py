from conformance import redact


def test_known_values_and_key_shapes_are_masked():
    redact.register_secret("plain-value-without-shape")
    text = (
        "token plain-value-without-shape, OPENAI_API_KEY=sk-lab-abcdef123456, "
        "Authorization: Bearer abc.def-123, hf_ABCDEFGHIJKLMNOP, HF_TOKEN: something"
    )
    masked = redact.redact(text)
    for secret in (
        "plain-value-without-shape",
        "sk-lab-abcdef123456",
        "abc.def-123",
        "hf_ABCDEFGHIJKLMNOP",
        "something",
    ):
        assert secret not in masked


def test_env_mapping_shows_names_not_values():
    shown = redact.redact_mapping({"OPTILLM_BASE_URL": "http://127.0.0.1:4000/v1", "LITELLM_MASTER_KEY": "xyz-123"})
    assert shown == {"OPTILLM_BASE_URL": "http://127.0.0.1:4000/v1", "LITELLM_MASTER_KEY": "***"}


def test_ordinary_text_is_left_alone():
    text = "port 4020 is bound to 0.0.0.0, declared 127.0.0.1 only"
    assert redact.redact(text) == text


def test_a_text_redacted_before_a_value_is_registered_is_masked_after():
    # The memo must not keep serving the redaction made before the value became known.
    text = "reply carried memo-check-value-8c1e2d in clear"
    assert redact.redact(text) == text
    redact.register_secret("memo-check-value-8c1e2d")
    assert "memo-check-value-8c1e2d" not in redact.redact(text)


def test_a_redaction_overtaken_by_a_registration_is_not_remembered(monkeypatch):
    # Another thread registers a secret while this redaction runs with the older values:
    # that result is returned once (it was correct when it began) but never stored.
    text = "overtaken-value-5f3a9b appears here"
    real = redact._redact_uncached

    def registering_meanwhile(value, known):
        redact.register_secret("overtaken-value-5f3a9b")
        return real(value, known)

    monkeypatch.setattr(redact, "_redact_uncached", registering_meanwhile)
    redact.redact(text)
    monkeypatch.setattr(redact, "_redact_uncached", real)
    assert "overtaken-value-5f3a9b" not in redact.redact(text)


def test_a_long_text_is_masked_every_time_without_being_remembered():
    text = "x" * (redact._MEMO_TEXT_LIMIT + 1) + " long-text-value-4b7d21"
    redact.register_secret("long-text-value-4b7d21")
    assert "long-text-value-4b7d21" not in redact.redact(text)
    assert text not in redact._memo
