"""Overlaying inventories: ``extends:`` files and per-site overrides.

A site supplies addresses, SSH users and key paths without editing the shared inventory,
and the lab inventory extends the production one, so that both describe the same
services, ports and contracts. Mappings merge key by key; lists of records merge by each
table's identity (a host by name, a port by host and port ...), so an override can touch
one field of one record. Positions are kept, so an error still names the file that
supplied the offending value.
"""

from __future__ import annotations

from typing import Any

from conformance.inventory.yamlsrc import LocatedDict, LocatedList

# The identity of a record in each table: how an overlay finds the record it amends.
RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "hosts": ("name",),
    "services": ("name",),
    "ports": ("host", "port"),
    "health_checks": ("id",),
    "contracts": ("id",),
    "dependencies": ("source", "target"),
    "owners": ("id",),
    "secrets": ("name",),
    "waivers": ("contract", "subject"),
    "allowed_listeners": ("port",),
    "files": ("path",),
}


def _identity(item: Any, keys: tuple[str, ...]) -> tuple[Any, ...] | None:
    if not isinstance(item, dict) or not all(key in item for key in keys):
        return None
    return tuple(item[key] for key in keys)


def _merge_records(base: LocatedList, overlay: LocatedList, keys: tuple[str, ...]) -> LocatedList:
    merged = LocatedList(base)
    merged.mark = base.mark
    merged.item_marks = list(base.item_marks) + [None] * (len(base) - len(base.item_marks))
    index = {ident: position for position, item in enumerate(base) if (ident := _identity(item, keys)) is not None}
    for position, item in enumerate(overlay):
        item_mark = overlay.item_marks[position] if position < len(overlay.item_marks) else None
        ident = _identity(item, keys)
        if ident is not None and ident in index:
            target = index[ident]
            merged[target] = merge(merged[target], item)
            merged.item_marks[target] = item_mark or merged.item_marks[target]
        else:
            merged.append(item)
            merged.item_marks.append(item_mark)
    return merged


def merge(base: Any, overlay: Any, field: str | None = None) -> Any:
    """Return ``base`` amended by ``overlay``; neither input is modified."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = LocatedDict(base)
        merged.mark = getattr(base, "mark", None)
        merged.key_marks = dict(getattr(base, "key_marks", {}))
        for key, value in overlay.items():
            merged[key] = merge(base[key], value, key) if key in base else value
            overlay_marks = getattr(overlay, "key_marks", {})
            if key in overlay_marks:
                merged.key_marks[key] = overlay_marks[key]
        return merged
    if field in RECORD_KEYS and isinstance(base, LocatedList) and isinstance(overlay, LocatedList):
        return _merge_records(base, overlay, RECORD_KEYS[field])
    return overlay
