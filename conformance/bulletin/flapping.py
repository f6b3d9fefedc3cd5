"""Failure thresholds and flap detection, folded from the bulletin itself.

Two bookkeeping events make this possible without a server: ``state`` (a check turned
failing or passing) and ``run`` (a run ended). From them each check's history over the
last runs is rebuilt, from the file or from the database's ``bulletin`` table alike: how
many runs in a row it has failed (an entry opens only after ``open_after_failures`` of
them; one timeout of a health endpoint is noise), and how often its state changed.

Flap detection is Nagios Core's (base/flapping.c, ``check_for_service_flapping``): over a
window of ``MAX_STATE_HISTORY_ENTRIES`` = 21 states (include/objects.h), each change
counts with a weight rising linearly from ``low_curve_value`` 0.75 (the oldest pair) to
``high_curve_value`` 1.25 (the newest), ``(x-1)*(1.25-0.75)/(21-2) + 0.75`` for the change
into state ``x``; the weighted sum times 100 over (21 - 1) is the percent state change.
A check starts flapping at or above the high threshold, stops at or below the low one, and
in between keeps what it was (hysteresis). The default thresholds are Nagios's compiled
defaults for services (include/nagios.h: ``DEFAULT_LOW_SERVICE_FLAP_THRESHOLD`` 20.0,
``DEFAULT_HIGH_SERVICE_FLAP_THRESHOLD`` 30.0). Like Nagios, a history shorter than the
window is read as if the first known state had held before it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from conformance.bulletin import events
from conformance.inventory.model import Inventory
from conformance.results import Subject

LOW_CURVE_VALUE = 0.75
HIGH_CURVE_VALUE = 1.25
NAGIOS_WINDOW = 21
NAGIOS_LOW_PERCENT = 20.0
NAGIOS_HIGH_PERCENT = 30.0


@dataclass(frozen=True)
class FlapPolicy:
    open_after_failures: int = 1
    per_check: Mapping[str, int] = field(default_factory=dict)  # health check id or contract id -> N
    window: int = NAGIOS_WINDOW
    low_percent: float = NAGIOS_LOW_PERCENT
    high_percent: float = NAGIOS_HIGH_PERCENT

    def at_least(self, failures: int) -> FlapPolicy:
        """This policy with every threshold raised to at least ``failures`` (a higher one stays)."""
        return replace(
            self,
            open_after_failures=max(self.open_after_failures, failures),
            per_check={key: max(value, failures) for key, value in self.per_check.items()},
        )

    def open_after(self, subject: Subject | None) -> int:
        if subject is not None:
            for key in (subject.item, subject.contract, subject.check):
                if key and key in self.per_check:
                    return self.per_check[key]
        return self.open_after_failures


@dataclass
class CheckHistory:
    failing: bool = False
    streak: int = 0  # consecutive runs failing, the last one included
    states: deque[bool] = field(default_factory=deque)  # failing? at each run of the window, oldest first


def percent_state_change(states: list[bool], window: int = NAGIOS_WINDOW) -> float:
    """Nagios's curved percent state change of ``states`` (oldest first) over ``window``."""
    if window < 3 or not states:
        return 0.0
    states = states[-window:]
    padded = [states[0]] * (window - len(states)) + states  # Nagios fills the history with the first state
    changes = 0.0
    for x in range(1, window):
        if padded[x] != padded[x - 1]:
            changes += (x - 1) * (HIGH_CURVE_VALUE - LOW_CURVE_VALUE) / (window - 2) + LOW_CURVE_VALUE
    return changes * 100.0 / (window - 1)


def fold_history(entries: Iterable[dict[str, Any]], window: int) -> dict[str, CheckHistory]:
    """Each check's history from the ``state`` and ``run`` events, in order."""
    histories: dict[str, CheckHistory] = {}
    for entry in entries:
        event = entry.get("event")
        if event == events.STATE:
            history = histories.setdefault(entry["fingerprint"], CheckHistory(states=deque(maxlen=window)))
            history.failing = bool(entry.get(events.FAILING))
        elif event == events.RUN:
            # A scoped run (the monitor's poll of its health checks) is a state of those
            # checks only: thirty-second polls must not age the suites' contracts' windows.
            scope = entry.get(events.RUN_SCOPE)
            touched = (
                histories.values()
                if scope is None
                else [histories[fingerprint] for fingerprint in scope if fingerprint in histories]
            )
            for history in touched:
                history.states.append(history.failing)
                history.streak = history.streak + 1 if history.failing else 0
    return histories


def policy_from_inventory(inventory: Inventory) -> FlapPolicy:
    """The bulletin's defaults, with each health check's and contract's own threshold."""
    per_check = {check.id: check.open_after_failures for check in inventory.health_checks if check.open_after_failures}
    per_check.update(
        {contract.id: contract.open_after_failures for contract in inventory.contracts if contract.open_after_failures}
    )
    defaults = inventory.bulletin
    return FlapPolicy(
        open_after_failures=defaults.open_after_failures,
        per_check=per_check,
        window=defaults.flap_window,
        low_percent=defaults.flap_low_percent,
        high_percent=defaults.flap_high_percent,
    )
