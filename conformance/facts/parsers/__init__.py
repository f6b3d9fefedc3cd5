"""Pure parsers turning command output and config files into typed facts.

No I/O here: callers run the command (over SSH, or replay a recorded sample) and hand the text
to a parser. Anything that does not have the expected shape raises ParseError naming the
command, the line and the reason.
"""

from conformance.facts.parsers.envfile import is_valid_env_name, parse_env_file, substitute_vars
from conformance.facts.parsers.errors import ParseError
from conformance.facts.parsers.launchd import (
    LaunchdJob,
    LaunchdPlist,
    LaunchdServiceNotFound,
    is_not_found,
    label_from_target,
    parse_launchctl_print,
    parse_plist,
)
from conformance.facts.parsers.listeners import (
    OLD_SS_V6ONLY,
    PROC_V6ONLY,
    Family,
    KernelSocket,
    KernelTables,
    Listener,
    NetstatReading,
    SkippedRow,
    format_address,
    listeners_from_kernel,
    parse_lsof,
    parse_lsof_fields,
    parse_netstat_linux,
    parse_netstat_macos,
    parse_proc_net_tcp,
    parse_ss,
    read_netstat_macos,
)
from conformance.facts.parsers.systemd import (
    parse_environment_files_property,
    parse_environment_property,
    parse_exec_commands,
    parse_exec_start,
    parse_systemctl_show,
    parse_systemctl_show_many,
    parse_unit_file,
)

__all__ = [
    "OLD_SS_V6ONLY",
    "PROC_V6ONLY",
    "Family",
    "KernelSocket",
    "KernelTables",
    "LaunchdJob",
    "LaunchdPlist",
    "LaunchdServiceNotFound",
    "Listener",
    "NetstatReading",
    "ParseError",
    "SkippedRow",
    "format_address",
    "is_not_found",
    "is_valid_env_name",
    "label_from_target",
    "listeners_from_kernel",
    "parse_env_file",
    "parse_environment_files_property",
    "parse_environment_property",
    "parse_exec_commands",
    "parse_exec_start",
    "parse_launchctl_print",
    "parse_lsof",
    "parse_lsof_fields",
    "parse_netstat_linux",
    "parse_netstat_macos",
    "parse_plist",
    "parse_proc_net_tcp",
    "parse_ss",
    "parse_systemctl_show",
    "parse_systemctl_show_many",
    "parse_unit_file",
    "read_netstat_macos",
    "substitute_vars",
]
