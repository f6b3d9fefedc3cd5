#!/usr/bin/env python3
"""An owner's agent, as the seed means it ("root or layer/service agents perform restarts"):
poll the System monitor's bulletin API, read the open entries of one owner, and decide.

Standard library only, so it runs on the Mini as it is (the monitor serves loopback only):

    python3 examples/agent_loop.py --owner optillm-proxy              # poll every 30 s, forever
    python3 examples/agent_loop.py --owner gateway-agent --once --json  # one look, for scripts

It never acts: it prints what is open for its owner, with the entry's fingerprint (what
`conformance bulletin ack` takes) and what the entry blocks. A real agent would restart the
service here, then acknowledge the entry (`conformance bulletin ack FINGERPRINT --by OWNER`).
Exit code with --once: 0 nothing open for the owner, 1 something open, 2 the monitor could not
be asked (or says its database is stale: then nothing it says is current).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SCHEMA = "gateway-conformance/monitor-bulletin"


def fetch(base: str, owner: str, timeout: float) -> dict:
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"--url {base!r}: an http:// or https:// URL")
    query = urllib.parse.urlencode({"owner": owner})
    url = f"{base}/api/v1/bulletin?{query}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a loopback URL
            document = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code != 503:  # 503: the database is stale; the body is still the last known state
            raise
        document = json.load(exc)
    if document.get("schema") != SCHEMA or document.get("version") != 1:
        raise ValueError(f"not a version 1 bulletin document: {document.get('schema')} {document.get('version')}")
    return document


def describe(entry: dict) -> str:
    ack = entry.get("acknowledgement")
    state = f"acknowledged by {ack['by']}" if ack else entry["state"]
    blocked = f"; blocks {len(entry['blocked'])} check(s)" if entry["blocked"] else ""
    return f"{entry['severity']:8} {state:12} {entry['fingerprint']}: {entry['summary']}{blocked}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:4090", help="the monitor (default: the Mini's loopback)")
    parser.add_argument("--owner", required=True, help="whose entries: an owner id of the inventory")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--once", action="store_true", help="one look, then exit (0 none open, 1 open, 2 unknown)")
    parser.add_argument("--json", action="store_true", help="print the open entries as JSON")
    parser.add_argument("--max-polls", type=int, default=0, help="stop after this many polls (0: never)")
    args = parser.parse_args()
    polls = 0
    while True:
        polls += 1
        try:
            document = fetch(args.url.rstrip("/"), args.owner, timeout=10)
        except (OSError, ValueError) as exc:
            print(f"agent: cannot ask the monitor at {args.url}: {exc}", file=sys.stderr)
            if args.once:
                return 2
        else:
            open_entries = [entry for entry in document["entries"] if entry["state"] != "acknowledged"]
            if args.json:
                print(json.dumps({"owner": args.owner, "stale": document["stale"], "entries": document["entries"]}))
            else:
                stale = " (STALE: the monitor cannot read its database)" if document["stale"] else ""
                print(f"agent {args.owner}: {len(open_entries)} open, {len(document['entries'])} in all{stale}")
                for entry in document["entries"]:
                    print("  " + describe(entry))
            if args.once:
                return 2 if document["stale"] else (1 if open_entries else 0)
        if args.max_polls and polls >= args.max_polls:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
