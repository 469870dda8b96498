"""Parses a Prometheus text exposition with prometheus_client's own parser (the one the
metrics test trusts, rather than our reading of the format).

Usage: metrics.py URL. Fetches the exposition (GET) and prints one JSON document: the samples
{"name", "labels", "value"}, each family's declared type under "types", and the response's
content type; exits non-zero when the text does not parse.
"""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        content_type = r.headers.get("content-type", "")
        text = r.read().decode("utf-8")
    samples = []
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples.append({"name": s.name, "labels": s.labels, "value": s.value})
    json.dump({"samples": samples, "types": types, "content_type": content_type}, sys.stdout)


if __name__ == "__main__":
    main()
