"""The owners' document (gateway-layer.md) read into typed records.

The document is Markdown written for people: a services table, bullet lists of ports,
contracts, escalation rules, planned tables and owners, and a block of ``curl`` health
checks. This module reads exactly that layout and nothing looser: a renamed column, an
unknown section or a bullet it cannot read is an error naming the line, because a part of
the source of truth that is silently skipped would make every comparison a false pass.
Each record keeps its line number so that a finding can name the row a person must look at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PLANNED = "(planned)"

SERVICE_COLUMNS = (
    "Service",
    "Role",
    "Bind",
    "Port",
    "Exposure",
    "Health/Status",
    "Systemd Unit",
    "Env/Config",
    "Notes",
)

# Section headings, matched by their start (the document adds "(Gateway layer)", "(current)" ...).
SECTIONS = {
    "Services": "services",
    "Ports": "ports",
    "Contracts": "contracts",
    "Health checks": "health_checks",
    "Escalation model": "escalation",
    "Planned DB tables": "planned_tables",
    "Ownership": "owners",
}

_CODE_RE = re.compile(r"`([^`]*)`")
_PORT_BULLET_RE = re.compile(r"^\*\*(\d+)\*\*\s*-+\s*(.+?)\s*(?:\(([^)]*)\))?\s*$")
_PORT_RANGE_RE = re.compile(r"^(\d+)\s*-\s*(\d+)$")
_CURL_URL_RE = re.compile(r"https?://([^/:\s]+):(\d+)(/\S*)?")
_PLANNED_TABLE_RE = re.compile(r"^((?:`[a-z_]+`\s*/\s*)*`[a-z_]+`)\s*\((.+)\)\s*$")


class DocumentError(ValueError):
    """The document does not have the layout this reader knows; names the line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path}:{line}: {message}")


def normalize(text: str) -> str:
    """Plain comparable text: no Markdown emphasis or code marks, ASCII dashes and arrows.

    The document uses typographic characters (a non-breaking hyphen in "Read-only", an
    arrow in "Client -> LiteLLM"); a comparison must not depend on which one an editor typed.
    """
    text = text.replace("**", "").replace("`", "")
    for typographic, plain in (("\u2011", "-"), ("\u2192", "->"), ("\u2194", "<->"), ("\u2013", "-"), ("\u2014", "-")):
        text = text.replace(typographic, plain)
    return re.sub(r"\s+", " ", text).strip()


def clauses(text: str) -> tuple[str, ...]:
    """A free-text cell split into its statements ('a; b; c.' -> a, b, c)."""
    parts = (part.strip().rstrip(".").strip() for part in normalize(text).split(";"))
    return tuple(part for part in parts if part)


@dataclass(frozen=True)
class DocService:
    """One row of the services table."""

    line: int
    title: str
    role: str
    bind: str | None  # None: (planned)
    ports: tuple[int, ...] | None  # None: (planned)
    exposure: str  # the cell as written (normalized)
    exposure_kind: Literal["lan", "local"] | None
    exposure_host: str | None  # "LAN (Studio)" -> "Studio"
    health_paths: tuple[str, ...]
    health_text: str
    unit_path: str | None
    unit_manager: str | None  # "(launchd)" -> "launchd"
    unit_planned: bool
    config_paths: tuple[str, ...]
    config_planned: bool
    notes: tuple[str, ...]


@dataclass(frozen=True)
class DocPort:
    line: int
    port: int
    label: str
    qualifiers: tuple[str, ...]


@dataclass(frozen=True)
class DocStatement:
    """A bullet of free text (a contract, an escalation rule, a planned table)."""

    line: int
    text: str


@dataclass(frozen=True)
class DocHealthCheck:
    line: int
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class DocPlannedTable:
    line: int
    names: tuple[str, ...]
    description: str

    @property
    def text(self) -> str:
        return f"{' / '.join(self.names)} ({self.description})"


@dataclass(frozen=True)
class DocOwners:
    layer_line: int
    layer_owner: str
    services_line: int
    service_owners: tuple[str, ...]


@dataclass(frozen=True)
class GatewayDocument:
    path: str
    services: tuple[DocService, ...]
    ports: tuple[DocPort, ...]
    contracts: tuple[DocStatement, ...]
    health_checks: tuple[DocHealthCheck, ...]
    escalation: tuple[DocStatement, ...]
    planned_tables: tuple[DocPlannedTable, ...]
    owners: DocOwners | None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _exposure(text: str) -> tuple[Literal["lan", "local"] | None, str | None]:
    match = re.match(r"^(LAN|Local only)\s*(?:\((.+)\))?$", text)
    if not match:
        return None, None
    return ("lan" if match.group(1) == "LAN" else "local"), match.group(2)


class _Reader:
    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.services: list[DocService] = []
        self.ports: list[DocPort] = []
        self.contracts: list[DocStatement] = []
        self.health_checks: list[DocHealthCheck] = []
        self.escalation: list[DocStatement] = []
        self.planned_tables: list[DocPlannedTable] = []
        self.layer_owner: tuple[int, str] | None = None
        self.service_owners: tuple[int, tuple[str, ...]] | None = None

    def fail(self, line: int, message: str) -> DocumentError:
        return DocumentError(self.path, line, message)

    def read(self) -> GatewayDocument:
        section: str | None = None
        in_code = False
        table_header_seen = False
        for number, raw in enumerate(self.lines, 1):
            line = raw.strip()
            if line.startswith("```"):
                in_code = not in_code
                continue
            if in_code:
                if section == "health_checks" and line:
                    self._curl(number, line)
                continue
            if line.startswith("# ") or not line:
                continue
            if line.startswith("## "):
                heading = normalize(line[3:])
                section = next((key for prefix, key in SECTIONS.items() if heading.startswith(prefix)), None)
                if section is None:
                    raise self.fail(number, f"section {heading!r} is not one this reader knows: {', '.join(SECTIONS)}")
                table_header_seen = False
                continue
            if section is None:
                continue  # the introduction
            if section == "services":
                if not line.startswith("|"):
                    raise self.fail(number, "the services section holds only its table")
                cells = _cells(line)
                if not table_header_seen:
                    if tuple(cells) != SERVICE_COLUMNS:
                        raise self.fail(number, f"services table columns {cells} are not {list(SERVICE_COLUMNS)}")
                    table_header_seen = True
                elif not all(set(cell) <= set("-: ") for cell in cells):
                    self._service(number, cells)
                continue
            if not line.startswith("- "):
                raise self.fail(number, f"expected a bullet in section {section!r}: {line!r}")
            self._bullet(section, number, line[2:].strip())
        if in_code:
            raise self.fail(len(self.lines), "a code block is not closed")
        owners = None
        if self.layer_owner and self.service_owners:
            owners = DocOwners(self.layer_owner[0], self.layer_owner[1], *self.service_owners)
        return GatewayDocument(
            self.path,
            tuple(self.services),
            tuple(self.ports),
            tuple(self.contracts),
            tuple(self.health_checks),
            tuple(self.escalation),
            tuple(self.planned_tables),
            owners,
        )

    def _service(self, number: int, cells: list[str]) -> None:
        if len(cells) != len(SERVICE_COLUMNS):
            raise self.fail(number, f"a services row has {len(cells)} cells, not {len(SERVICE_COLUMNS)}")
        title, role, bind, port, exposure, health, unit, config, _notes = (normalize(cell) for cell in cells)
        ports: tuple[int, ...] | None
        if port == PLANNED:
            ports = None
        elif port.isdigit():
            ports = (int(port),)
        elif match := _PORT_RANGE_RE.match(port):
            ports = tuple(range(int(match.group(1)), int(match.group(2)) + 1))
        else:
            raise self.fail(number, f"port {port!r} is neither a number, a range nor {PLANNED}")
        exposure_kind, exposure_host = _exposure(exposure)
        unit_cell = cells[SERVICE_COLUMNS.index("Systemd Unit")]
        unit_paths = _CODE_RE.findall(unit_cell)
        unit_manager = None
        if not unit_paths and unit != PLANNED:
            match = re.match(r"^\((\w+)\)$", unit)
            if not match:
                raise self.fail(number, f"unit {unit!r} is neither a `path`, (manager) nor {PLANNED}")
            unit_manager = match.group(1)
        self.services.append(
            DocService(
                line=number,
                title=title,
                role=role,
                bind=None if bind == PLANNED else bind,
                ports=ports,
                exposure=exposure,
                exposure_kind=exposure_kind,
                exposure_host=exposure_host,
                health_paths=tuple(_CODE_RE.findall(cells[SERVICE_COLUMNS.index("Health/Status")])),
                health_text=health,
                unit_path=unit_paths[0] if unit_paths else None,
                unit_manager=unit_manager,
                unit_planned=unit == PLANNED,
                config_paths=tuple(_CODE_RE.findall(cells[SERVICE_COLUMNS.index("Env/Config")])),
                config_planned=config == PLANNED,
                notes=clauses(cells[SERVICE_COLUMNS.index("Notes")]),
            )
        )

    def _bullet(self, section: str, number: int, text: str) -> None:
        if section == "ports":
            match = _PORT_BULLET_RE.match(normalize(text.replace("**", "\0")).replace("\0", "**"))
            if not match:
                raise self.fail(number, f"a port bullet reads '**PORT** - Service (qualifiers)', not {text!r}")
            qualifiers = tuple(q.strip() for q in (match.group(3) or "").split(",") if q.strip())
            self.ports.append(DocPort(number, int(match.group(1)), match.group(2), qualifiers))
        elif section == "contracts":
            self.contracts.append(DocStatement(number, normalize(text).rstrip(".")))
        elif section == "escalation":
            self.escalation.append(DocStatement(number, normalize(text).rstrip(".")))
        elif section == "planned_tables":
            match = _PLANNED_TABLE_RE.match(text)
            if not match:
                raise self.fail(number, f"a planned table reads '`name` (description)', not {text!r}")
            names = tuple(_CODE_RE.findall(match.group(1)))
            self.planned_tables.append(DocPlannedTable(number, names, normalize(match.group(2))))
        elif section == "owners":
            label, _, value = normalize(text).partition(":")
            if label == "Layer owner":
                self.layer_owner = (number, value.strip())
            elif label == "Service owners":
                self.service_owners = (number, tuple(v.strip() for v in value.split(",") if v.strip()))
            else:
                raise self.fail(number, f"an ownership bullet is 'Layer owner:' or 'Service owners:', not {text!r}")
        else:
            raise self.fail(number, f"section {section!r} holds no bullets")

    def _curl(self, number: int, line: str) -> None:
        match = _CURL_URL_RE.search(line)
        if not line.startswith("curl ") or not match:
            raise self.fail(number, f"a health check line is 'curl ... http://HOST:PORT/PATH', not {line!r}")
        self.health_checks.append(DocHealthCheck(number, match.group(1), int(match.group(2)), match.group(3) or "/"))


def parse_document(text: str, path: str = "gateway-layer.md") -> GatewayDocument:
    return _Reader(path, text).read()


def load_document(path: str | Path) -> GatewayDocument:
    return parse_document(Path(path).read_text(encoding="utf-8"), str(path))
