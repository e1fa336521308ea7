"""tools/data/label_reports.py: labels written, summary printed, bad records rejected."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vilref_mm.labeling import ReportLabeler
from tool_modules import load_module

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'tools' / 'data' / 'label_reports.py'


def write_lines(path, lines):
    path.write_text(''.join(line + '\n' for line in lines), encoding='utf-8')
    return path


RECORDS = [
    {'image': 'a.png', 'report': '右眼视网膜出血，黄斑水肿。左眼眼底未见明显异常', 'eye': 'left'},
    {'image': 'b.png', 'report': '考虑青光眼，C/D 0.7'},
    {'image': 'c.png', 'report': '双眼视盘边界清，色淡红，视网膜未见出血及渗出', 'eye': None},
    {'image': 'd.png', 'report': '右眼视网膜出血，黄斑水肿。左眼眼底未见明显异常', 'eye': 'right'},
]


def test_labels_written_and_summary_printed(tmp_path, capsys):
    lines = [json.dumps(record, ensure_ascii=False) for record in RECORDS]
    source = write_lines(tmp_path / 'in.jsonl', lines + [''])
    target = tmp_path / 'sub' / 'out.jsonl'
    load_module(SCRIPT).main([str(source), str(target)])
    labeler = ReportLabeler()
    written = [json.loads(line) for line in target.read_text(encoding='utf-8').splitlines()]
    assert len(written) == len(RECORDS)
    for record, out in zip(RECORDS, written):
        assert {k: v for k, v in out.items() if k != 'labels'} == record
        assert list(out['labels']) == list(labeler.classes)
        expected = labeler(record['report'], record.get('eye')).tolist()
        assert list(out['labels'].values()) == expected
    assert written[0]['labels']['normal'] == 1.0 and written[3]['labels']['hemorrhage'] == 1.0
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.strip()}
    assert rows['glaucoma'] == ['0', '1'] and rows['cup_enlargement'] == ['1', '0']
    assert rows['hemorrhage'] == ['1', '0'] and rows['normal'] == ['1', '0']
    assert 'no finding (all labels 0): 25.0%' in printed and 'uncertain finding: 25.0%' in printed
    assert 'reports/s' in printed
    assert [p.name for p in target.parent.iterdir()] == ['out.jsonl']


@pytest.mark.parametrize('option', [['--progress'], ['--no-progress'], []])
def test_a_progress_bar_on_stderr_only_when_asked_or_on_a_terminal(tmp_path, capsys, option):
    source = write_lines(tmp_path / 'in.jsonl',
                         [json.dumps(record, ensure_ascii=False) for record in RECORDS])
    load_module(SCRIPT).main([str(source), str(tmp_path / 'out.jsonl'), *option])
    captured = capsys.readouterr()
    assert f'labelled {len(RECORDS)} reports' in captured.out
    if option == ['--progress']:
        assert '0/4' in captured.err and '4/4' in captured.err.split('\r')[-1]
        assert captured.err.endswith('\n')
    else:  # off a terminal, or asked to be quiet
        assert captured.err == ''


@pytest.mark.parametrize('bad_line, problem', [
    ('{"image": "x.png"}', "field 'report' is missing"),
    ('{"report": "出血"}', "field 'image' is missing"),
    ('{"image": "", "report": "出血"}', "field 'image' is empty"),
    ('{"image": "x.png", "report": ""}', "field 'report' is empty"),
    ('{"image": "x.png", "report": 3}', "field 'report' must be a string"),
    ('{"image": "x.png", "report": "出血"', 'is not valid JSON'),
    ('["出血"]', 'must be a JSON object'),
    ('{"image": "x.png", "report": "出血", "eye": "OD"}', "field 'eye'"),
])
def test_bad_record_names_the_line_and_writes_nothing(tmp_path, capsys, bad_line, problem):
    good = json.dumps(RECORDS[1], ensure_ascii=False)
    source = write_lines(tmp_path / 'in.jsonl', [good, good, bad_line, good])
    target = write_lines(tmp_path / 'out.jsonl', ['old content'])
    with pytest.raises(SystemExit) as exit_info:
        load_module(SCRIPT).main([str(source), str(target)])
    assert f'{source}:3: {problem}' in str(exit_info.value)
    assert target.read_text(encoding='utf-8') == 'old content\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.jsonl', 'out.jsonl']


def test_a_manifest_with_a_byte_order_mark_is_read_as_by_the_dataset(tmp_path):
    source = tmp_path / 'in.jsonl'
    source.write_text(json.dumps(RECORDS[1], ensure_ascii=False) + '\n', encoding='utf-8-sig')
    target = tmp_path / 'out.jsonl'
    load_module(SCRIPT).main([str(source), str(target)])
    (written, ) = [json.loads(line) for line in target.read_text(encoding='utf-8').splitlines()]
    assert written['report'] == RECORDS[1]['report'] and written['labels']['glaucoma'] == 0.5


def test_a_missing_manifest_is_named(tmp_path):
    with pytest.raises(SystemExit, match=f'error: {tmp_path}/none.jsonl: no such file'):
        load_module(SCRIPT).main([str(tmp_path / 'none.jsonl'), str(tmp_path / 'out.jsonl')])


def test_user_lexicon_option(tmp_path):
    lexicon = write_lines(tmp_path / 'lexicon.yaml', [
        'extends: default', 'labels:', '  myelinated_nerve_fiber:', '    terms: [有髓神经纤维]'])
    source = write_lines(tmp_path / 'in.jsonl',
                         ['{"image": "a.png", "report": "视盘旁有髓神经纤维"}'])
    load_module(SCRIPT).main([str(source), str(source), '--lexicon', str(lexicon)])
    labels = json.loads(source.read_text(encoding='utf-8'))['labels']
    assert len(labels) == 26 and labels['myelinated_nerve_fiber'] == 1.0


def test_command_line_exit_status(tmp_path):
    source = write_lines(tmp_path / 'in.jsonl', ['{"image": "a.png", "report": "出血"}', '{oops'])
    target = tmp_path / 'out.jsonl'
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    result = subprocess.run([sys.executable, str(SCRIPT), str(source), str(target)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert f'{source}:2: is not valid JSON' in result.stderr
    assert not target.exists()
