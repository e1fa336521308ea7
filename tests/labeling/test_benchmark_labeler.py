"""tools/analysis/benchmark_labeler.py runs (its numbers are not asserted: no timing in tests)."""
import json
import sys
from pathlib import Path

from tool_modules import load_module

SCRIPT = Path(__file__).resolve().parents[2] / 'tools' / 'analysis' / 'benchmark_labeler.py'


def test_composed_reports_are_typical():
    reports = load_module(SCRIPT).compose_reports(200, seed=1)
    assert len(reports) == 200 and len(set(reports)) > 150
    lengths = sorted(map(len, reports))
    assert 50 <= lengths[100] <= 150
    assert all('诊断' in report for report in reports)


def test_benchmark_prints_the_three_speeds(tmp_path, capsys, monkeypatch):
    manifest = tmp_path / 'reports.jsonl'
    manifest.write_text(json.dumps({'report': '视网膜出血，C/D 0.7'}, ensure_ascii=False) + '\n',
                        encoding='utf-8')
    monkeypatch.setattr(sys, 'argv', ['benchmark_labeler.py', '--input', str(manifest)])
    load_module(SCRIPT).main()
    printed = capsys.readouterr().out
    assert printed.startswith('1 reports')
    for mode in ('no clause cache', 'cache, one pass', 'cache, warm'):
        assert mode in printed
    assert '(2 distinct clauses)' in printed
