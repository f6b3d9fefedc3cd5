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
