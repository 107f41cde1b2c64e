"""Extracts the PromQL of the shipped alert rules and Grafana dashboard, and the metric names each expression reads.

Usage: promql_metrics.py ALERTS.yml DASHBOARD.json ALERTS_TEST.yml
Prints one JSON object:
  {"expressions": [{"source", "expr", "metrics"}], "alerts": [names],
   "tests": {alertname: ["fires" | "silent", ...]}, "errors": [text]}
Standard library only: the rule files are read line by line (the shipped files keep to `key: value` lines and
`|` block scalars), the dashboard with json.
"""
import json
import re
import sys

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "atan2", "inf", "nan", "start", "end"}
IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expr, errors, source):
    """Metric names read by `expr`: identifiers that are not functions, keywords, labels or durations."""
    if "__name__" in expr:
        errors.append(f"{source}: selects metrics by __name__, which cannot be checked")
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # string literals
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)  # label lists
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    names = []
    for match in IDENT.finditer(text):
        name = match.group(1)
        rest = text[match.end():].lstrip()
        if name in KEYWORDS or rest.startswith("("):
            continue
        if name not in names:
            names.append(name)
    if not names:
        errors.append(f"{source}: no metric found in {expr!r}")
    return names


def block_value(lines, index, indent, first):
    """The value of a `key: value` line, following `|`/`>` block scalars over the more indented lines."""
    first = first.strip()
    if first and first[0] not in "|>":
        return first.strip("'\"") if first[:1] in "'\"" else first
    collected = []
    for line in lines[index + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        collected.append(line.strip())
    return "\n".join(collected).strip()


def rules(path, errors):
    expressions, alerts = [], []
    lines = open(path, encoding="utf-8").read().splitlines()
    current = None
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)(?:- )?(alert|record|expr):\s*(.*)$", line)
        if not match:
            continue
        indent, key, value = len(match.group(1)), match.group(2), match.group(3)
        if key in ("alert", "record"):
            current = value.strip().strip("'\"")
            if key == "alert":
                alerts.append(current)
        else:
            expr = block_value(lines, index, indent, value)
            source = f"alerts.yml:{current}"
            expressions.append({"source": source, "expr": expr, "metrics": metric_names(expr, errors, source)})
    return expressions, alerts


def dashboard(path, errors):
    expressions = []
    data = json.load(open(path, encoding="utf-8"))

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(data.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                source = f"gatehouse.json:{panel.get('title')}:{target.get('refId')}"
                expr = target["expr"]
                expressions.append({"source": source, "expr": expr, "metrics": metric_names(expr, errors, source)})
    for variable in data.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and isinstance(query, str):
            match = re.match(r"^\s*label_values\(\s*(.*),\s*\w+\s*\)\s*$", query)
            expr = match.group(1) if match else query
            source = f"gatehouse.json:${variable.get('name')}"
            expressions.append({"source": source, "expr": expr, "metrics": metric_names(expr, errors, source)})
    return expressions


def rule_tests(path):
    """alertname -> kinds of cases: `silent` (exp_alerts empty) or `fires` (at least one expected alert)."""
    tests = {}
    lines = open(path, encoding="utf-8").read().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^\s*(?:- )?alertname:\s*(\S+)\s*$", line)
        if not match:
            continue
        name = match.group(1).strip("'\"")
        kind = None
        for following in lines[index + 1:]:
            found = re.match(r"^\s*exp_alerts:\s*(.*)$", following)
            if found:
                kind = "silent" if found.group(1).strip() == "[]" else "fires"
                break
            if re.match(r"^\s*(?:- )?(alertname|eval_time):", following):
                break
        kinds = tests.setdefault(name, [])
        if kind is None:
            kind = "silent"  # no exp_alerts: promtool expects no alert
        if kind not in kinds:
            kinds.append(kind)
    return tests


def main():
    alerts_path, dashboard_path, tests_path = sys.argv[1:4]
    errors = []
    expressions, alerts = rules(alerts_path, errors)
    expressions += dashboard(dashboard_path, errors)
    print(json.dumps({"expressions": expressions, "alerts": alerts, "tests": rule_tests(tests_path), "errors": errors}))


if __name__ == "__main__":
    main()
