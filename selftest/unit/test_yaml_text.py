import pytest
import yaml

from conformance.facts import yaml_text

ROUTER = "model_list:\n  - model_name: fast\n    litellm_params: {model: openai/fast, api_base: http://a:1}\n"


def test_each_caller_gets_its_own_copy_of_a_remembered_document():
    first = yaml_text.safe_load(ROUTER)
    first["model_list"][0]["model_name"] = "changed by one check"
    first["model_list"].append({"model_name": "added"})
    assert yaml_text.safe_load(ROUTER) == yaml.safe_load(ROUTER)


def test_a_document_that_does_not_parse_raises_for_every_caller():
    for _ in range(2):
        with pytest.raises(yaml.YAMLError):
            yaml_text.safe_load("model_list: [unclosed\n")
