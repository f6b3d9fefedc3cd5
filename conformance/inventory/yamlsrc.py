"""YAML loading that remembers where every value came from.

Errors in an inventory must name the file and line of the offending field, even after an
inventory has been merged with the file it extends and with a site override. PyYAML drops
positions once it builds plain dicts, so the loader builds ``LocatedDict``/``LocatedList``
instead: ordinary containers that carry a ``Mark`` per key or item.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Mark:
    """A place in a source file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class LocatedDict(dict[Any, Any]):
    """A dict that knows the position of itself and of each of its keys."""

    mark: Mark | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_marks: dict[Hashable, Mark] = {}


class LocatedList(list[Any]):
    """A list that knows the position of itself and of each of its items."""

    mark: Mark | None = None

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.item_marks: list[Mark | None] = []


class YamlSourceError(ValueError):
    """The file is not readable YAML; carries the position PyYAML reported."""

    def __init__(self, mark: Mark | None, message: str) -> None:
        super().__init__(f"{mark}: {message}" if mark else message)
        self.mark = mark
        self.message = message


# An inventory is a few hundred lines; these bounds are orders of magnitude above any real
# one and far below what would make a load slow (a 20 MB inventory took 20 s to validate).
MAX_INVENTORY_BYTES = 1024 * 1024
# Nodes after expanding every alias: "billion laughs" is 9 aliases of 9 aliases ... and
# small on disk, but every consumer that walks it (validation, merge, repr) sees 10^9 nodes.
MAX_EXPANDED_NODES = 200_000


def _expanded_size(root: yaml.Node, file: str) -> None:
    """Refuse a document whose alias-expanded node count exceeds MAX_EXPANDED_NODES."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth > 100:
            raise YamlSourceError(_mark(file, node), "nesting deeper than 100 levels")
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(key, depth + 1) + size(value, depth + 1) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        if total > MAX_EXPANDED_NODES:
            raise YamlSourceError(
                _mark(file, node),
                f"expands to more than {MAX_EXPANDED_NODES} values through aliases (an alias bomb?); refused",
            )
        sizes[id(node)] = total
        return total

    size(root, 0)


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _make_loader(file: str) -> type[yaml.SafeLoader]:
    class LocatingLoader(yaml.SafeLoader):
        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            _expanded_size(node, file)  # before constructing or walking anything
            return self.construct_document(node)

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LocatedDict:
        loader.flatten_mapping(node)
        result = LocatedDict()
        result.mark = _mark(file, node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise YamlSourceError(_mark(file, key_node), "a mapping key must be a scalar")
            if key in result:
                # PyYAML would silently keep the last one; in an inventory a duplicated
                # key is almost always a copy-paste slip that hides a record.
                raise YamlSourceError(
                    _mark(file, key_node),
                    f"duplicate key {key!r} (first at line {result.key_marks[key].line})",
                )
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_marks[key] = _mark(file, key_node)
        return result

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LocatedList:
        result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
        result.mark = _mark(file, node)
        result.item_marks = [_mark(file, child) for child in node.value]
        return result

    LocatingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    LocatingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return LocatingLoader


def load_located_yaml(path: Path, display_name: str | None = None) -> Any:
    """Parse one YAML file into located containers; raise YamlSourceError on bad syntax."""
    name = display_name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_INVENTORY_BYTES:
            raise YamlSourceError(
                None,
                f"{name}: {size / 1048576:.1f} MiB is larger than the "
                f"{MAX_INVENTORY_BYTES >> 20} MiB an inventory may be",
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlSourceError(None, f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlSourceError(None, f"{name}: cannot read: {exc}") from None
    try:
        return yaml.load(text, Loader=_make_loader(name))  # noqa: S506 - SafeLoader subclass
    except YamlSourceError:
        raise
    except yaml.MarkedYAMLError as exc:
        problem_mark = exc.problem_mark
        mark = Mark(name, problem_mark.line + 1, problem_mark.column + 1) if problem_mark else None
        raise YamlSourceError(mark, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(None, f"{name}: invalid YAML: {exc}") from None


def mark_for_path(root: Any, path: Iterable[str | int]) -> Mark | None:
    """The most precise known position of ``path`` inside ``root``.

    Walks as deep as the data goes; for a missing key this is the enclosing mapping, which
    is where a person has to add it.
    """
    best: Mark | None = getattr(root, "mark", None)
    node = root
    for step in path:
        if isinstance(node, LocatedDict):
            if step in node.key_marks:
                best = node.key_marks[step]
            if step not in node:
                break
            node = node[step]
        elif isinstance(node, LocatedList) and isinstance(step, int):
            if not 0 <= step < len(node):
                break
            item_mark = node.item_marks[step] if step < len(node.item_marks) else None
            best = item_mark or best
            node = node[step]
        else:
            break
        own = getattr(node, "mark", None)
        if own is not None and not isinstance(node, LocatedDict | LocatedList):
            best = own
    return best
