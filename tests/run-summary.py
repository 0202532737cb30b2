#!/usr/bin/python3
"""Add up test results from meson and pytest into one closing line.

usage: run-summary.py [--fail LABEL]... FILE...

FILE is either meson's meson-logs/testlog.json (one JSON object per line) or a pytest
--junitxml report (.xml). Every TAP assertion of a meson TAP test counts as one test; a TAP
binary that crashed, timed out or broke its plan adds one failure of its own. Non-TAP meson
tests count once each. Every pytest test case counts once (an error in set-up or tear-down
counts as a failure). Each --fail LABEL adds one failure for a step that produced no report
(a build that failed, a runner that crashed).

Prints one line per source, then, last, "N passed, N failed" (", N skipped" when any).
Exits 1 when anything failed, else 0.
"""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

TAP_LINE = re.compile(r'^(not ok|ok)\b(.*)$')
DIRECTIVE = re.compile(r'#\s*(SKIP|TODO)\b', re.IGNORECASE)


def count_tap(stdout):
    passed = failed = skipped = 0
    seen = False
    for line in stdout.splitlines():
        m = TAP_LINE.match(line)  # top level only: indented lines are subtests
        if not m:
            continue
        seen = True
        ok = m.group(1) == 'ok'
        d = DIRECTIVE.search(m.group(2))
        directive = d.group(1).upper() if d else None
        if directive == 'SKIP':
            skipped += 1
        elif directive == 'TODO':
            skipped += 1  # expected failure (or unexpected pass): neither pass nor fail
        elif ok:
            passed += 1
        else:
            failed += 1
    return seen, passed, failed, skipped


def count_meson(path):
    passed = failed = skipped = 0
    failures = []
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                t = json.loads(line)
            except ValueError:
                failed += 1
                failures.append('unparseable testlog line')
                continue
            result = t.get('result', 'ERROR')
            name = t.get('name', '?')
            seen, p, fl, s = count_tap(t.get('stdout') or '')
            if seen:
                if result in ('ERROR', 'TIMEOUT') or (result in ('FAIL', 'UNEXPECTEDPASS') and fl == 0):
                    fl += 1
                passed += p
                failed += fl
                skipped += s
                if fl:
                    failures.append(f'{name} ({result})')
            elif result in ('OK', 'EXPECTEDFAIL'):
                passed += 1
            elif result == 'SKIP':
                skipped += 1
            else:
                failed += 1
                failures.append(f'{name} ({result})')
    return passed, failed, skipped, failures


def count_junit(path):
    passed = failed = skipped = 0
    failures = []
    root = ET.parse(path).getroot()
    for tc in root.iter('testcase'):
        tags = {child.tag for child in tc}
        name = f"{tc.get('classname', '')}::{tc.get('name', '')}"
        if tags & {'failure', 'error'}:
            failed += 1
            failures.append(name)
        elif 'skipped' in tags:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failures


def main(argv):
    extra_fail = []
    files = []
    it = iter(argv)
    for a in it:
        if a == '--fail':
            extra_fail.append(next(it, 'unnamed step'))
        else:
            files.append(a)
    tp = tf = ts = 0
    for path in files:
        label = os.path.relpath(path)
        try:
            if path.endswith('.xml'):
                p, f, s, names = count_junit(path)
            else:
                p, f, s, names = count_meson(path)
        except (OSError, ET.ParseError) as e:
            p, f, s, names = 0, 1, 0, [f'unreadable report: {e.__class__.__name__}']
        print(f'  {label}: {p} passed, {f} failed, {s} skipped')
        for n in names[:50]:
            print(f'      FAILED {n[:160]}')
        if len(names) > 50:
            print(f'      ... and {len(names) - 50} more')
        tp, tf, ts = tp + p, tf + f, ts + s
    for label in extra_fail:
        print(f'  {label}: FAILED (no report)')
        tf += 1
    line = f'{tp} passed, {tf} failed'
    if ts:
        line += f', {ts} skipped'
    print(line)
    return 1 if tf else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
