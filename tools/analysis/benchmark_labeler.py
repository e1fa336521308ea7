"""Throughput of the report labeler on one core (target: >= 4,000 reports/s, docs/labels.md).

Labels typical reports (60-150 Chinese characters, several clauses) three ways: with the clause
cache off (every clause segmented), in one pass with the cache (a fresh labeler on a corpus),
and again with the cache warm. Reports come from --input (JSON Lines with a `report` field) or
are composed from a bank of clinical phrases with random modifiers and numbers.

    python tools/analysis/benchmark_labeler.py [--reports 20000] [--input FILE] [--lexicon FILE]
"""
import argparse
import json
import random
import time
from pathlib import Path
from typing import List

from vilref_mm.labeling import ReportLabeler

EYES = ['右眼', '左眼', '双眼', '']
DISCS = ['视盘边界清，色淡红', '视盘界清色可', '视盘色淡红，边界清楚', '视盘色淡，边界清',
         '视盘边界模糊，充血水肿', '视盘颞侧色淡', '视乳头色苍白', '视盘边界清晰，颜色正常']
CUPS = ['C/D约{:.1f}', '杯盘比{:.1f}', 'C/D={:.1f}', 'CDR {:.1f}', '杯盘比约{:.1f}-{:.1f}']
MACULAS = ['黄斑中心凹反光可见', '黄斑中心凹反光消失', '黄斑区未见明显异常', '黄斑区水肿',
           '黄斑区可见硬性渗出', '黄斑前膜形成', '黄斑区轻度水肿', '黄斑区色素紊乱', '黄斑裂孔',
           '黄斑区可见玻璃膜疣', '黄斑区萎缩灶']
LOCATIONS = ['', '后极部', '颞上方', '颞下方', '鼻侧', '周边部', '黄斑颞侧', '视盘周围',
             '上方血管弓旁']
MODIFIERS = ['散在', '少量', '多发', '大量', '片状', '点状', '可见', '见', '']
COUNTS = ['', '', '2处', '3处', '多处', '数个', '十余个']
FINDINGS = ['微血管瘤', '出血', '点片状出血', '硬性渗出', '棉絮斑', '软性渗出', '激光斑',
            '玻璃膜疣', '萎缩灶', '火焰状出血', '新生血管', '渗出']
NEGATIONS = ['未见出血及渗出', '视网膜未见明显出血、渗出', '无明显出血渗出', '未见新生血管',
             '视网膜平伏', '视网膜在位']
VESSELS = ['视网膜动脉变细，动静脉交叉压迫', '血管走行正常', '动脉硬化', 'A:V=1:2',
           '视网膜静脉迂曲扩张', '豹纹状眼底']
CONCLUSIONS = ['考虑糖尿病视网膜病变', '糖尿病视网膜病变(非增殖期)', 'PDR', '可疑青光眼',
               '青光眼待排', '年龄相关性黄斑变性', '视网膜分支静脉阻塞', '高度近视眼底改变',
               '眼底未见明显异常', '高血压视网膜病变', 'NPDR', '视网膜脱离', '玻璃体混浊']

ADVICE = ['建议{}个月后复查', '请结合临床', '建议眼科随诊，{}周后复诊', '眼压{}mmHg']


def compose_reports(count: int, seed: int = 0) -> List[str]:
    """Typical reports: one or two eyes, a few described structures, an impression."""
    rng = random.Random(seed)
    reports = []
    for _ in range(count):
        sentences = []
        for eye in rng.sample(EYES[:2], rng.choice([1, 2])) if rng.random() < 0.6 else ['双眼']:
            ratio = rng.choice([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
            clauses = [eye + rng.choice(DISCS),
                       rng.choice(CUPS).format(ratio, min(ratio + 0.1, 1.0)),
                       rng.choice(MACULAS)]
            for _ in range(rng.randint(0, 3)):
                clauses.append(rng.choice(LOCATIONS) + rng.choice(MODIFIERS)
                               + rng.choice(FINDINGS) + rng.choice(COUNTS))
            clauses.append(rng.choice(NEGATIONS))
            if rng.random() < 0.4:
                clauses.append(rng.choice(VESSELS))
            sentences.append('，'.join(clauses))
        sentences.append('诊断：' + '、'.join(rng.sample(CONCLUSIONS, rng.randint(1, 2))))
        if rng.random() < 0.3:
            sentences.append(rng.choice(ADVICE).format(rng.randint(1, 12)))
        reports.append('。'.join(sentences) + '。')
    return reports


def throughput(labeler: ReportLabeler, reports: List[str]) -> float:
    """Reports per second of labelling ``reports`` once."""
    start = time.perf_counter()
    for report in reports:
        labeler(report)
    return len(reports) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reports', type=int, default=20000, help='composed reports to label')
    parser.add_argument('--input', type=Path, help='JSON Lines file with a `report` field')
    parser.add_argument('--lexicon', type=Path, help='lexicon file (default: the packaged one)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    if args.input:
        with args.input.open(encoding='utf-8') as lines:
            reports = [json.loads(line)['report'] for line in lines if line.strip()]
    else:
        reports = compose_reports(args.reports, args.seed)
    lengths = sorted(len(report) for report in reports)
    print(f'{len(reports)} reports, median {lengths[len(lengths) // 2]} characters '
          f'(10%-90%: {lengths[len(lengths) // 10]}-{lengths[len(lengths) * 9 // 10]})')

    ReportLabeler(args.lexicon)('视网膜出血')  # import jieba once, outside the timings
    start = time.perf_counter()
    labeler = ReportLabeler(args.lexicon)
    labeler('视网膜出血')
    print(f'labeler construction + first report: {time.perf_counter() - start:.3f} s')

    uncached = throughput(ReportLabeler(args.lexicon, cache_size=0), reports)
    labeler = ReportLabeler(args.lexicon)
    first_pass = throughput(labeler, reports)
    distinct = len(labeler._cache)
    warm = throughput(labeler, reports)
    print(f'no clause cache      : {uncached:9,.0f} reports/s')
    print(f'cache, one pass      : {first_pass:9,.0f} reports/s ({distinct:,} distinct clauses)')
    print(f'cache, warm          : {warm:9,.0f} reports/s')


if __name__ == '__main__':
    main()
