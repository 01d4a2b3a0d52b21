#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the QMP schema of the patched QEMU's migration commands.

libvirt's qemumigparamstest validates the migrate-set-capabilities and
migrate-set-parameters arguments it builds against a QMP schema.  Upstream
takes the schema from tests/qemucapabilitiesdata/caps_*.replies, which holds
no QEMU with this series' capabilities; this writes the part of the patched
QEMU's query-qmp-schema reply that those commands reach, in the .replies
format testQEMUSchemaLoad() reads:

    migration-schema.py QEMU-BINARY OUTPUT
"""

import json
import subprocess
import sys

# the commands whose arguments and replies the schema keeps
COMMANDS = ("migrate-set-capabilities", "migrate-set-parameters",
            "query-migrate-capabilities", "query-migrate-parameters",
            "query-migrate")


def qmp(binary, *commands):
    """The return values of @commands, run in one QEMU."""
    cmds = "".join(json.dumps({"execute": c, "id": c}) + "\n"
                   for c in ("qmp_capabilities",) + commands + ("quit",))
    out = subprocess.run([binary, "-machine", "none", "-nodefaults",
                          "-display", "none", "-qmp", "stdio"],
                         input=cmds, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    replies = {}
    for line in out.splitlines():
        msg = json.loads(line)
        if "id" in msg:
            replies[msg["id"]] = msg["return"]
    return [replies[c] for c in commands]


def reachable(schema):
    by_name = {e["name"]: e for e in schema}
    todo = [e["name"] for e in schema
            if e["meta-type"] == "command" and e["name"] in COMMANDS]
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        e = by_name[name]
        refs = [e.get("arg-type"), e.get("ret-type"), e.get("element-type")]
        refs += [m["type"] for m in e.get("members", []) if "type" in m]
        refs += [v["type"] for v in e.get("variants", [])]
        todo += [r for r in refs if r]
    return [e for e in schema if e["name"] in seen]


def main():
    binary, output = sys.argv[1:3]
    schema, caps = qmp(binary, "query-qmp-schema",
                       "query-migrate-capabilities")
    # testQEMUSchemaLoad() wants the reply followed by a blank line: the
    # capabilities follow, as in a replies file of tests/qemucapabilitiesdata.
    exchanges = [("query-qmp-schema", reachable(schema)),
                 ("query-migrate-capabilities", caps)]
    with open(output, "w") as f:
        for i, (cmd, ret) in enumerate(exchanges, 1):
            if i > 1:
                f.write("\n")
            ident = "libvirt-%d" % i
            f.write(json.dumps({"execute": cmd, "id": ident}, indent=2))
            f.write("\n\n")
            f.write(json.dumps({"return": ret, "id": ident}, indent=2))
            f.write("\n")


if __name__ == "__main__":
    main()
