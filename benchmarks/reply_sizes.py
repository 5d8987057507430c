#!/usr/bin/env python3
"""The size of what a client receives for two cells that produce a lot:
a 1 MB print and 30 figures. Speaks raw JSON-RPC over stdio, so that the
bytes counted are the bytes on the wire.

    python3 benchmarks/reply_sizes.py [--kiln build/kiln] [--version 2025-11-25]

Prints, per cell, the reply's bytes, its text block's characters, and
how many image and resource-link blocks it holds.
"""
import argparse
import json
import os
import subprocess
import tempfile

CELLS = {
    "1 MB print": 'print("x" * 1_000_000)',
    "30 figures": (
        "import matplotlib.pyplot as plt\n"
        "for i in range(30):\n"
        "    plt.figure()\n"
        "    plt.plot(range(100), [x * i for x in range(100)])\n"
    ),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiln", default=os.path.join(here, "..", "build", "kiln"))
    ap.add_argument("--version", default="2025-11-25")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        p = subprocess.Popen(
            [args.kiln, "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, KILN_HOME=home),
        )

        def call(i, method, params):
            p.stdin.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n").encode())
            p.stdin.flush()
            while True:
                line = p.stdout.readline()
                msg = json.loads(line)
                if msg.get("id") == i:
                    return line, msg

        call(0, "initialize", {"protocolVersion": args.version, "capabilities": {}, "clientInfo": {"name": "sizes", "version": "0"}})
        print(f"{'cell':<12} {'reply bytes':>12} {'text chars':>11} {'images':>7} {'links':>6}")
        for n, (name, code) in enumerate(CELLS.items(), 1):
            line, msg = call(n, "tools/call", {"name": "run_python", "arguments": {"code": code}})
            content = msg["result"]["content"]
            text = sum(len(b["text"]) for b in content if b["type"] == "text")
            images = sum(b["type"] == "image" for b in content)
            links = sum(b["type"] == "resource_link" for b in content)
            print(f"{name:<12} {len(line):>12,} {text:>11,} {images:>7} {links:>6}")
        p.stdin.close()
        p.wait()


if __name__ == "__main__":
    main()
