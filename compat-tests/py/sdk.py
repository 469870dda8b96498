"""Drives the `pusher` PyPI SDK (3.3.4) for the compat tests.

Usage: sdk.py '<json>' where <json> is one operation or {"ops": [op, ...]}; each op is
{"op": "<method name>", ...keyword arguments...}. Prints one JSON document on stdout:
{"results": [{"ok": <return value>} | {"error": "<exception class>", "message": "..."}]}.
Server address and credentials come from RF_HOST, RF_PORT, RF_APP_ID, RF_KEY, RF_SECRET
(and RF_MASTER_KEY_B64 for encrypted channels; RF_SSL=1 for https, trusting the CA file
RF_CA_FILE).
"""
import json
import os
import sys

import pusher
import pusher.requests


class PrivateCaBackend(pusher.requests.RequestsBackend):
    """The SDK pins its bundled CA list for https; a server with a private CA (the compat
    suite's test certificate) needs the backend told which CA to trust."""

    def __init__(self, client, **options):
        super().__init__(client, **options)
        self.options["verify"] = os.environ["RF_CA_FILE"]


def client(secret=None):
    opts = {}
    if os.environ.get("RF_CA_FILE"):
        opts["backend"] = PrivateCaBackend
    if os.environ.get("RF_MASTER_KEY_B64"):
        opts["encryption_master_key_base64"] = os.environ["RF_MASTER_KEY_B64"]
    return pusher.Pusher(
        app_id=os.environ.get("RF_APP_ID", "app-id"),
        key=os.environ.get("RF_KEY", "app-key"),
        secret=secret or os.environ.get("RF_SECRET", "app-secret"),
        host=os.environ.get("RF_HOST", "127.0.0.1"),
        port=int(os.environ["RF_PORT"]),
        ssl=os.environ.get("RF_SSL") == "1",
        timeout=5,
        **opts,
    )


def run(op):
    op = dict(op)
    name = op.pop("op")
    c = client(op.pop("secret", None))
    if name == "authenticate":  # channel auth (private / presence / encrypted)
        r = c.authenticate(op["channel"], op["socket_id"], op.get("custom_data"))
        if isinstance(r.get("shared_secret"), bytes):
            r["shared_secret"] = r["shared_secret"].decode()
        return r
    return getattr(c, name)(**op)


def main():
    arg = json.loads(sys.argv[1])
    ops = arg["ops"] if "ops" in arg else [arg]
    results = []
    for op in ops:
        try:
            results.append({"ok": run(op)})
        except Exception as e:  # reported to the node test, which asserts on it
            results.append({"error": type(e).__name__, "message": str(e)})
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
