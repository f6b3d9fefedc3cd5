"""``sudo -n -l`` read as sudo 1.9 prints it, and judged as the real sudo judged each command.

The corpus (selftest/recorded/sudo-l) was recorded with the lab's sudo 1.9.13p3: for each
scenario, the listing the monitor gets and what sudo really did with each command the harness
runs. Each verdict here must be the real one, except where the module says "cannot tell" for a
rule it does not model (listed below); it must never say "granted" for a refused command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.facts.sudo_list import (
    SudoListingError,
    Verdict,
    decide,
    parse_sudo_list,
    sudoers_line,
)
from selftest.unit.parsers._recorded import RECORDED, text

CORPUS = RECORDED / "sudo-l"
# Rules the module does not model, so it may not decide: a command-specific Defaults that
# lifts the password, a digest, a regular expression in the arguments.
CANNOT_TELL = {
    ("command-defaults", "ss -Htlnp"),
    ("digest", "ss -Htlnp"),
    ("regex-args", "cat /etc/optillm-proxy/env"),
    ("regex-args", "cat /srv/gateway/layer-gateway/litellm-orch/config/env.local"),
    ("regex-args", "cat /var/lib/optillm/.optillm/proxy_config.yaml"),
    ("regex-args", "cat /etc/optillm-proxy/env /etc/shadow"),
}


def _identities() -> dict[str, str]:
    lines = (CORPUS / "identities").read_text().splitlines()
    return {line.split(":", 2)[2]: ":".join(line.split(":", 2)[:2]) for line in lines}


def _cases() -> list[tuple[str, str, str]]:
    """Every command of every scenario whose listing sudo printed (a refused ``sudo -n -l``
    has none to judge: the doctor then relies on the run, see test_doctor)."""
    cases = []
    for real in sorted(CORPUS.glob("*.real")):
        if not _listed(real.stem):
            continue
        for line in real.read_text().splitlines():
            outcome, command = line.split(" ", 1)
            cases.append((real.stem, command, outcome))
    return cases


def _listed(scenario: str) -> bool:
    return bool((CORPUS / f"{scenario}.out").read_text().strip())


def _judge_like_the_real_sudo(listing_file: str, scenario: str, command: str, real: str) -> None:
    listing = parse_sudo_list((CORPUS / listing_file).read_text())
    program, *args = command.split(" ")
    path = {"ss": "/usr/bin/ss", "cat": "/usr/bin/cat"}[program]
    decision = decide(listing, path, args, _identities())
    if (scenario, command) in CANNOT_TELL:
        assert decision.verdict is Verdict.CANNOT_TELL, decision
        return
    assert decision.verdict is (Verdict.GRANTED if real == "granted" else Verdict.MISSING), decision


@pytest.mark.parametrize(("scenario", "command", "real"), _cases(), ids=lambda value: str(value)[:40])
def test_each_verdict_is_what_the_real_sudo_did(scenario: str, command: str, real: str) -> None:
    _judge_like_the_real_sudo(f"{scenario}.out", scenario, command, real)


def test_the_corpus_covers_grants_refusals_and_failed_listings() -> None:
    outcomes = {real for _, _, real in _cases()}
    assert {path.stem for path in CORPUS.glob("*.real")} >= {"none", "requiretty"}
    assert outcomes == {"granted", "refused"}
    assert not _listed("none") and not _listed("requiretty")
    assert "a password is required" in (CORPUS / "none.err").read_text()
    assert "you must have a tty" in (CORPUS / "requiretty.err").read_text()


def test_the_lab_listing_over_ssh() -> None:
    listing = parse_sudo_list(text("lab-mini-sudo-n-l.txt"))
    assert (listing.user, listing.host) == ("monitor", "mini")
    assert listing.secure_path == ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
    assert [(rule.runas, rule.command, rule.args, rule.nopasswd) for rule in listing.commands] == [
        ("root", "/usr/bin/ss", "-Htlnp", True),
        ("root", "/usr/bin/cat", "/etc/optillm-proxy/env", True),
        ("root", "/usr/bin/cat", "/srv/gateway/layer-gateway/litellm-orch/config/env.local", True),
        ("root", "/usr/bin/cat", "/var/lib/optillm/.optillm/proxy_config.yaml", True),
    ]
    assert decide(listing, "/usr/bin/ss", ["-Htlnp"]).verdict is Verdict.GRANTED
    # exact argument lists: any other arguments are not granted
    assert decide(listing, "/usr/bin/ss", ["-Htln"]).verdict is Verdict.MISSING
    assert decide(listing, "/usr/bin/cat", ["/etc/shadow"]).verdict is Verdict.MISSING


def test_wrapped_lines_are_joined_back() -> None:
    listing = parse_sudo_list((CORPUS / "regex-args.out").read_text())
    assert [rule.text for rule in listing.commands][-1] == "/usr/bin/ss -Htlnp"
    digest = parse_sudo_list((CORPUS / "digest.out").read_text())
    assert digest.commands[0].command == "/usr/bin/ss" and digest.commands[0].options[0].startswith("sha256:")
    assert digest.commands[1].options == ()


def test_a_different_path_to_the_same_file_is_cannot_tell_without_its_identity() -> None:
    listing = parse_sudo_list((CORPUS / "other-path.out").read_text())
    assert decide(listing, "/usr/bin/ss", ["-Htlnp"]).verdict is Verdict.CANNOT_TELL
    assert decide(listing, "/usr/bin/ss", ["-Htlnp"], _identities()).verdict is Verdict.GRANTED


def test_a_listing_in_another_language_is_refused() -> None:
    with pytest.raises(SudoListingError):
        parse_sudo_list("Das Benutzerkonto monitor darf die folgenden Befehle auf mini ausführen:\n    (root) ALL\n")


def test_not_allowed_to_run_sudo_lists_nothing() -> None:
    listing = parse_sudo_list("User monitor is not allowed to run sudo on mini.\n")
    assert listing.commands == ()
    assert decide(listing, "/usr/bin/ss", ["-Htlnp"]).verdict is Verdict.MISSING


def test_sudoers_lines_are_the_lab_drop_in() -> None:
    """The lines the doctor prints for the Mini's commands are exactly the lab's own rules."""
    from lab import files

    drop_in = files.sudoers("mini").splitlines()[-1]
    head, _, commands = drop_in.partition("NOPASSWD: ")
    expected = {f"{head}NOPASSWD: {command}" for command in commands.split(", ")}
    printed = {
        sudoers_line("monitor", "/usr/bin/ss", ["-Htlnp"]),
        *(
            sudoers_line("monitor", "/usr/bin/cat", [path])
            for path in (
                "/etc/optillm-proxy/env",
                "/srv/gateway/layer-gateway/litellm-orch/config/env.local",
                "/var/lib/optillm/.optillm/proxy_config.yaml",
                "/etc/gateway-conformance/env",
            )
        ),
    }
    assert printed == expected


def test_a_sudoers_line_escapes_what_sudoers_would_read_as_syntax() -> None:
    assert sudoers_line("monitor", "/usr/bin/cat", ["/srv/a,b=c:d"]) == (
        "monitor ALL=(root) NOPASSWD: /usr/bin/cat /srv/a\\,b\\=c\\:d"
    )
    assert sudoers_line("monitor", "/usr/bin/id", []) == 'monitor ALL=(root) NOPASSWD: /usr/bin/id ""'


def test_the_corpus_files_are_present() -> None:
    assert len(list(Path(CORPUS).glob("*.sudoers"))) == len(list(Path(CORPUS).glob("*.real"))) >= 15


# -- the long form (sudo -l -l): "Sudoers entry:" blocks, judged as the real sudo judged ------


def _long_cases() -> list[tuple[str, str, str]]:
    return [case for case in _cases() if (CORPUS / f"{case[0]}.long.out").read_text().strip()]


@pytest.mark.parametrize(("scenario", "command", "real"), _long_cases(), ids=lambda value: str(value)[:40])
def test_each_long_form_verdict_is_what_the_real_sudo_did(scenario: str, command: str, real: str) -> None:
    _judge_like_the_real_sudo(f"{scenario}.long.out", scenario, command, real)


def test_the_long_form_was_recorded_for_every_listed_scenario() -> None:
    listed = {real.stem for real in CORPUS.glob("*.real") if _listed(real.stem)}
    assert {case[0] for case in _long_cases()} == listed
    assert "Sudoers entry:" in (CORPUS / "wide.long.out").read_text()


def test_long_form_rules_read_like_the_short_form() -> None:
    short = parse_sudo_list((CORPUS / "runas-change.out").read_text())
    long = parse_sudo_list((CORPUS / "runas-change.long.out").read_text())
    assert [(c.runas, c.command, c.args, c.nopasswd) for c in long.commands] == [
        (c.runas, c.command, c.args, c.nopasswd) for c in short.commands
    ]
    assert long.defaults == short.defaults and long.command_defaults == short.command_defaults
    wrapped = parse_sudo_list((CORPUS / "digest.long.out").read_text()).commands[0]
    assert (wrapped.command, wrapped.args, wrapped.options[-1][:7]) == ("/usr/bin/ss", "-Htlnp", "sha256:")


def test_published_long_listings() -> None:
    two = parse_sudo_list(text("public-sudo-ll-two-entries.txt"))
    assert [(c.runas, c.command, c.nopasswd) for c in two.commands] == [
        ("ALL : ALL", "ALL", False),
        ("root", "/usr/bin/wget", True),
    ]
    assert decide(two, "/usr/bin/wget", ["-q", "x"]).verdict is Verdict.GRANTED
    assert decide(two, "/usr/bin/ss", ["-Htlnp"]).verdict is Verdict.MISSING  # ALL, but with a password
    ldap = parse_sudo_list(text("public-sudo-ll-ldap-role.txt"))
    assert decide(ldap, "/usr/bin/ss", ["-Htlnp"]).verdict is Verdict.GRANTED  # the LDAP role's ALL, !authenticate
    assert [c.command for c in ldap.commands][:2] == [
        "/usr/bin/mint-refresh-cache",
        "/usr/lib/linuxmint/mintUpdate/synaptic-workaround.py",
    ]


def test_a_long_field_not_modelled_is_cannot_tell_never_granted() -> None:
    listing = (
        (CORPUS / "wide.long.out").read_text().replace("    Commands:", "    NotAfter: 20300101000000Z\n    Commands:")
    )
    assert decide(parse_sudo_list(listing), "/usr/bin/ss", ["-Htlnp"]).verdict is Verdict.CANNOT_TELL
    odd = (CORPUS / "wide.long.out").read_text().replace("    Commands:", "    Frobnicate: yes\n    Commands:")
    assert decide(parse_sudo_list(odd), "/usr/bin/ss", ["-Htlnp"]).verdict is Verdict.CANNOT_TELL
