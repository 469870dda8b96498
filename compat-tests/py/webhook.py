"""Validates webhook requests with the `pusher` PyPI SDK's own validator (3.3.4).

Usage: webhook.py '<json>' where <json> is {"key", "secret", "requests": [{"key",
"signature", "body"}]}; prints {"results": [<validate_webhook's return value>, ...]}
(the decoded body when valid, null when the SDK rejects it).
"""
import json
import sys

import pusher


def main():
    args = json.loads(sys.argv[1])
    client = pusher.Pusher(app_id="1", key=args["key"], secret=args["secret"])
    results = [
        client.validate_webhook(r["key"], r["signature"], r["body"]) for r in args["requests"]
    ]
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
