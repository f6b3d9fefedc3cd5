"""The inventory's typed records.

The shape mirrors the seed's planned database tables (services, ports, health_checks,
bulletin, dependencies) plus the hosts, owners, contracts and secret names they refer to,
so that a later database can hold exactly these records. Every model forbids unknown keys:
a misspelt key must be an error, never a silently skipped check.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from conformance.inventory import grammar

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", min_length=1, max_length=64)]
PortNumber = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=600)]

HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not HOSTNAME_RE.match(value):
            raise ValueError(f"{value!r} is neither an IP address nor a DNS name") from None
    return value


def _check_bind(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"bind {value!r} must be an IP address such as 0.0.0.0, ::, 127.0.0.1 or ::1") from None
    return value


BindAddress = Annotated[str, AfterValidator(_check_bind)]
HostAddress = Annotated[str, AfterValidator(_check_address)]
# Values that reach a command line on a host (see conformance.inventory.grammar).
AbsolutePath = Annotated[str, AfterValidator(grammar.absolute_path)]
ConfigPath = Annotated[str, AfterValidator(grammar.config_path)]
AccountName = Annotated[str, AfterValidator(grammar.account_name)]


class Layer(Record):
    name: Name
    title: str
    owner: Name
    description: str = ""
    source: str = Field(description="Where the owners' source of truth lives.")
    document: str | None = Field(
        default=None,
        description="The owners' own copy of their document (gateway-layer.md), relative to the file that "
        "names it: the source-of-truth contract compares it with the inventory on every run.",
    )


class Owner(Record):
    id: Name
    kind: Literal["layer", "service"]
    description: str = ""


class SshSettings(Record):
    user: str | None = Field(default=None, description="Supplied per site.")
    port: PortNumber = 22
    identity_file: str | None = None
    known_hosts: str | None = Field(default=None, description="known_hosts file holding this host's key.")
    host_key: str | None = Field(
        default=None,
        description="A pinned public key ('ssh-ed25519 AAAA...'), instead of known_hosts.",
    )
    connect_timeout: Seconds = 5.0
    command_timeout: Seconds = 20.0
    sudo: bool = Field(
        default=False,
        description="Use 'sudo -n' for the few privileged read-only commands (ss -p, 0600 files).",
    )


class AllowedListener(Record):
    port: PortNumber
    bind: BindAddress | None = None
    process: str | None = None
    reason: str


class Host(Record):
    name: Name
    title: str = ""
    role: Literal["gateway", "inference", "harness"]
    os: Literal["linux", "macos"]
    service_manager: Literal["systemd", "launchd"]
    connection: Literal["ssh", "local"] = "ssh"
    address: HostAddress | None = Field(default=None, description="Supplied per site.")
    hostname: str | None = Field(default=None, description="Expected hostname; per site.")
    aliases: tuple[str, ...] = Field(
        default=(), description="Other whole names that resolve to this host (a URL naming one reaches it)."
    )
    ssh: SshSettings = SshSettings()
    allowed_listeners: tuple[AllowedListener, ...] = ()
    stand_in: str | None = Field(default=None, description="Why this host differs from the real one (lab only).")


class Unit(Record):
    manager: Literal["systemd", "launchd"]
    name: str = Field(description="systemd unit name or launchd label.")
    path: AbsolutePath = Field(description="Unit file or plist path.")
    domain: str | None = Field(default=None, description="launchd domain, e.g. gui/501.")

    @field_validator("name")
    @classmethod
    def _name_follows_its_manager(cls, name: str, info: ValidationInfo) -> str:
        if info.data.get("manager") == "launchd":
            return grammar.launchd_label(name)
        return grammar.systemd_unit_name(name)

    @field_validator("domain")
    @classmethod
    def _domain_is_launchd_domain(cls, domain: str | None) -> str | None:
        return None if domain is None else grammar.launchd_domain(domain)


FileRole = Literal[
    "router_config",
    "env",
    "proxy_config",
    "requirements",
    "instance_env",
    "config",
]


class ConfigFile(Record):
    path: ConfigPath = Field(description="Absolute, '~/...' (the service user's home) or relative to repo_root.")
    role: FileRole
    format: Literal["yaml", "env", "requirements", "text"]
    secret: bool = Field(default=False, description="Holds secrets: values are never shown.")
    instance: Name | None = Field(default=None, description="The instance this file belongs to.")


# "generic": a service with only host-level contracts (unit, ports, files, health), e.g. a
# tools service, or the stand-in listeners of the scale benchmark.
ServiceKind = Literal["litellm", "optillm-proxy", "optillm-local", "monitor", "generic"]


class Service(Record):
    name: Name
    title: str
    kind: ServiceKind
    host: Name
    tier: Literal["gateway", "inference", "monitor", "tools"]
    role: str
    state: Literal["enabled", "disabled", "planned"] = "enabled"
    state_reason: str = ""
    owner: Name | None = None
    user: AccountName | None = Field(default=None, description="Account the service runs as.")
    repo_root: AbsolutePath | None = Field(default=None, description="Base of repo-relative paths.")
    venv: ConfigPath | None = None
    unit: Unit | None = None
    files: tuple[ConfigFile, ...] = ()
    hf_cache: ConfigPath | None = Field(default=None, description="Required HF hub cache directory.")
    package_pins: dict[str, str] = Field(
        default_factory=dict, description="Distribution -> version specifier, e.g. <5."
    )
    upstream_service: Name | None = Field(default=None, description="The only service this one may forward to.")
    forwards_only: bool = Field(default=False, description="Gateway tier: must never run inference itself.")
    poll_interval: Seconds | None = Field(
        default=None,
        description="The system monitor (kind monitor): seconds between its own health polls (default 30).",
    )
    open_after_polls: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="The system monitor (kind monitor): failing polls in a row before its polls open an entry "
        "(default 3); a check's own, higher open_after_failures still counts.",
    )
    notes: tuple[str, ...] = ()

    @property
    def is_live(self) -> bool:
        return self.state == "enabled"


class Port(Record):
    port: PortNumber
    host: Name
    service: Name
    instance: Name | None = Field(default=None, description="e.g. high, balanced, fast")
    bind: BindAddress
    exposure: Literal["lan", "local"]
    protocol: Literal["tcp"] = "tcp"
    state: Literal["active", "reserved"] = "active"
    model: str | None = Field(default=None, description="Model served on this port.")
    unit: Unit | None = Field(default=None, description="Per-instance unit, if any.")
    env_file: ConfigPath | None = Field(default=None, description="Per-instance env file.")


class HealthCheck(Record):
    id: Name
    service: Name
    port: PortNumber
    path: str = Field(pattern=r"^/")
    vantage: Literal["lan", "loopback"]
    auth: Literal["none", "master_key", "client_key"] = "none"
    expect_status: tuple[int, ...] = (200,)
    expect_json: Any = None
    expect_status_field: tuple[str, ...] = ()
    expect_models: bool = Field(default=False, description="/v1/models lists the port's model.")
    calls_models: bool = Field(default=False, description="Makes real model calls: runs only when asked.")
    per_model: bool = False
    timeout: Seconds = 10.0
    open_after_failures: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Failing runs in a row before an entry opens (the bulletin's default if unset).",
    )
    not_in_document: str | None = Field(
        default=None,
        description="Why the inventory checks this although the owners' document does not list it.",
    )


class Contract(Record):
    id: Name
    statement: str = Field(description="The contract as the seed states it.")
    check: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")] | None = Field(
        default=None, description="The registered check proving it (default: the contract's own id)."
    )
    severity: Literal["critical", "major", "minor"] = "major"
    services: tuple[Name, ...] = ()
    owner: Name | None = None
    not_in_document: str | None = Field(
        default=None,
        description="Why the inventory holds this contract although no statement of the owners' document "
        "is its source.",
    )
    open_after_failures: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Failing runs in a row before an entry opens (the bulletin's default if unset).",
    )

    @property
    def check_id(self) -> str:
        return self.check or self.id


class Dependency(Record):
    source: Name
    target: Name
    kind: Literal["inference", "tools", "upstream"]
    description: str = ""


class Secret(Record):
    name: Name
    env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$", description="Environment variable name.")
    file: str | None = Field(default=None, description="Or a file holding the value.")
    used_for: str = ""
    required: bool = False


class Waiver(Record):
    """An accepted deviation, reviewed in git like an InSpec waiver: the check still runs and
    its violation is reported as waived until ``expires`` (required: no waiver is for ever)."""

    contract: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="A contract id, or a host-level check such as port-bound or unit-active.",
    )
    subject: str = Field(
        min_length=1,
        description="The bulletin fingerprint after the contract: host/service[/port][/item], "
        "e.g. mini/optillm-proxy/4020.",
    )
    owner: Name
    justification: str = Field(min_length=10)
    expires: date = Field(description="The waiver no longer applies from this date (UTC) on.")
    match: str | None = Field(
        default=None,
        description="Waive only a failure whose text contains this; any other failure on the subject counts.",
    )


class BulletinPolicy(Record):
    reminder_after_hours: float | None = Field(default=24.0, gt=0)
    open_after_failures: int = Field(
        default=1, ge=1, le=100, description="Open an entry only after this many failing runs in a row."
    )
    # Nagios Core's compiled defaults (include/nagios.h, include/objects.h).
    flap_window: int = Field(default=21, ge=3, le=100, description="Runs over which state changes are weighed.")
    flap_low_percent: float = Field(default=20.0, ge=0, le=100, description="Flapping stops at or below this.")
    flap_high_percent: float = Field(default=30.0, gt=0, le=100, description="Flapping starts at or above this.")

    @model_validator(mode="after")
    def _hysteresis(self) -> BulletinPolicy:
        if self.flap_low_percent >= self.flap_high_percent:
            raise ValueError("flap_low_percent must be below flap_high_percent")
        return self


class Inventory(Record):
    schema_version: Literal[1]
    layer: Layer
    owners: tuple[Owner, ...]
    hosts: tuple[Host, ...]
    services: tuple[Service, ...]
    ports: tuple[Port, ...]
    health_checks: tuple[HealthCheck, ...] = ()
    contracts: tuple[Contract, ...] = ()
    dependencies: tuple[Dependency, ...] = ()
    secrets: tuple[Secret, ...] = ()
    secrets_file: str | None = Field(
        default=None,
        description="A 0600 file of NAME=value lines holding the secrets' variables (relative to the file naming it).",
    )
    waivers: tuple[Waiver, ...] = ()
    bulletin: BulletinPolicy = BulletinPolicy()
    source_path: str = Field(default="", exclude=True)

    def host(self, name: str) -> Host:
        return next(host for host in self.hosts if host.name == name)

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.name == name)

    def ports_of(self, service: str) -> tuple[Port, ...]:
        return tuple(port for port in self.ports if port.service == service)

    def services_on(self, host: str) -> tuple[Service, ...]:
        return tuple(service for service in self.services if service.host == host)

    def owner_of(self, service: Service | None) -> str:
        """The service owner, else the layer owner (the seed's ownership rule)."""
        if service is not None and service.owner:
            return service.owner
        return self.layer.owner

    def secret_env(self, name: str) -> Secret | None:
        return next((secret for secret in self.secrets if secret.name == name), None)
