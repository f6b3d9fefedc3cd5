"""The owners' document and the inventory are one truth: nothing written in one is missing or
different in the other.

When a site names the owners' own copy of their document (``layer.document``), every run
makes the same comparison as ``conformance inventory diff`` (``conformance.inventory.diff``),
so a scheduled run catches a document edit that nobody carried into the inventory, or an
inventory change the owners never wrote down. Without a document named it does not apply.
"""

from __future__ import annotations

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.errors import CannotCheck
from conformance.inventory.diff import diff_document
from conformance.inventory.document import DocumentError, load_document
from conformance.results import Result, file_cause, passed, skipped, violated

MAX_DETAILS = 40


def judge(case: Case) -> Result:
    inventory = case.inventory
    path = inventory.layer.document
    if not path:
        return skipped("no owners' document is named for this site (layer.document)")
    try:
        document = load_document(path)
    except OSError as exc:
        raise CannotCheck(f"the owners' document {path} cannot be read: {exc.strerror or exc}") from None
    except DocumentError as exc:
        raise CannotCheck(f"the owners' document cannot be read as the known layout: {exc}") from None
    findings = diff_document(document, inventory)
    evidence = {"document": path, "inventory": inventory.source_path or "(inventory)"}
    if findings:
        details = [f"{f.document} | inventory: {f.inventory} | {f.message}" for f in findings[:MAX_DETAILS]]
        if len(findings) > MAX_DETAILS:
            details.append(f"... and {len(findings) - MAX_DETAILS} more (conformance inventory diff {path})")
        return violated(
            f"the owners' document and the inventory disagree in {len(findings)} place(s)", *details, **evidence
        ).caused_by(file_cause(path))
    return passed("the owners' document and the inventory agree", **evidence)


CONTRACT = ContractSpec(
    id="source-of-truth",
    suite="contracts",
    scope=Scope.CONTRACT_LAYER,
    judge=judge,
    statement="The owners' document (gateway-layer.md) and the inventory agree, both ways.",
    rule="Every table, list and mapped note of the document named by layer.document matches the inventory's "
    "records, and every record of the inventory is in the document (conformance inventory diff).",
)
