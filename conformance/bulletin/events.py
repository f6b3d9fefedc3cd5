"""The bulletin's event vocabulary, in one place for every writer and reader.

Each line of the bulletin (the file, and the database's ``bulletin`` table) is one event
about one fingerprint. Readers ignore events they do not know (a newer writer may add
some), so the bulletin stays compatible in both directions.
"""

from __future__ import annotations

from typing import Final

# Escalations: what an owner reads.
OPENED: Final = "opened"  # a check started failing (or a root cause cannot be checked)
REMINDER: Final = "reminder"  # still open after the reminder interval
RESOLVED: Final = "resolved"  # it passes again (or left the inventory, or settled from flapping)
ACKNOWLEDGED: Final = "acknowledged"  # an owner took it on: no reminders while it lasts
WAIVED: Final = "waived"  # a current waiver in the site file covers it: closed, not escalated
FLAPPING: Final = "flapping"  # changes state too often: one entry instead of opened/resolved pairs

ESCALATIONS: Final = frozenset({OPENED, REMINDER, RESOLVED, ACKNOWLEDGED, WAIVED, FLAPPING})

# Bookkeeping, not escalations: the history that thresholds and flap detection fold.
# ``read_entries`` leaves them out unless asked, so readers of escalations never see them.
STATE: Final = "state"  # a check turned failing or passing (key FAILING)
RUN: Final = "run"  # a run ended (fingerprint RUN_FINGERPRINT)
BOOKKEEPING: Final = frozenset({STATE, RUN})
RUN_FINGERPRINT: Final = "*"
# On a ``run`` event: the fingerprints that run checked, when it checked only those (the
# system monitor's health polls). Absent: the run speaks for every check (a suites run).
RUN_SCOPE: Final = "scope"
FAILING: Final = "failing"

# Keys of an entry besides the subject's (layer, host, service, contract, severity, owner).
EVIDENCE_CLASS: Final = "evidence_class"  # what kind of failure: a changed class is a new problem
REOPENED: Final = "reopened"  # why an entry was opened again (an acknowledgement expired, it changed)
ACK_BY: Final = "by"
ACK_REASON: Final = "reason"
ACK_UNTIL: Final = "until"  # ISO time, or null: until the problem resolves or changes
PERCENT_STATE_CHANGE: Final = "percent_state_change"  # on flapping and settled entries
CONTRACTS: Final = "contracts"  # an incident's every broken contract (correlated violations)
CORRELATED: Final = "correlated"  # an incident's member fingerprints (the lead's included)
CAUSES: Final = "causes"  # what on the host makes the incident (a listener, a variable, a file)
