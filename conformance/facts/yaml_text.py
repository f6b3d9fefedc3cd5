"""YAML documents gathered from hosts, parsed once per run.

Several checks read the same file (LiteLLM's router config is read by the routing, the
showroom and the inference checks; OptiLLM's packaged proxy config by every approach
check), and PyYAML's pure-Python ``SafeLoader`` (the loader LiteLLM and OptiLLM themselves
use) dominates what such a check costs. Each text is parsed once; every caller gets its own
deep copy, so no check can change what another one reads. A text that does not parse is
parsed again by each caller, which then reports the error as it always has.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import yaml

_PARSED_TEXTS = 64


@functools.lru_cache(maxsize=_PARSED_TEXTS)
def _parsed(text: str) -> Any:
    return yaml.safe_load(text)


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, remembered by text; raises ``yaml.YAMLError`` as it does."""
    return copy.deepcopy(_parsed(text))
