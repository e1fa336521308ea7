"""tools/analysis/benchmark_dataloader.py on the tiny pre-training config: a manifest and an
LMDB dataset, the main process and workers, the table and the JSON."""
import json
from pathlib import Path

import pytest

from vilref_mm.datasets import ImageReportDataset, write_image_report_lmdb
from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from tool_modules import load_module

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'tiny_vilref.py'
RESULT_KEYS = {'num_workers', 'samples', 'seconds', 'images_per_s', 'images_per_s_per_worker'}


benchmark_dataloader = load_module('tools/analysis/benchmark_dataloader.py')


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_fundus(root, num_train=12, num_val=4, num_test=0, size=48, seed=1)
    return root


def check_results(summary: dict, worker_counts: list, max_samples: int) -> None:
    assert [result['num_workers'] for result in summary['results']] == worker_counts
    for result in summary['results']:
        assert set(result) == RESULT_KEYS
        # Whole batches of 4, at least max_samples.
        assert result['samples'] >= max_samples and result['samples'] % 4 == 0
        assert result['seconds'] > 0 and result['images_per_s'] > 0
        assert result['images_per_s_per_worker'] == pytest.approx(
            result['images_per_s'] / max(result['num_workers'], 1), abs=0.01)


def test_manifest_dataset_in_the_main_process_and_workers(synthetic_root, tmp_path, capsys):
    out = tmp_path / 'benchmark.json'
    benchmark_dataloader.main([
        str(CONFIG), '--num-workers', '1', '2', '1', '--max-samples', '14', '--out', str(out),
        '--cfg-options', f'train_dataloader.dataset.data_root={synthetic_root}/'])
    summary = json.loads(out.read_text())
    assert {key: summary[key] for key in ('split', 'dataset', 'dataset_size', 'batch_size',
                                         'max_samples', 'warmup_batches')} == dict(
        split='train', dataset='ImageReportDataset', dataset_size=12, batch_size=4,
        max_samples=14, warmup_batches=1)
    assert summary['config'] == str(CONFIG)
    check_results(summary, [0, 1, 2], 14)
    table = capsys.readouterr().out
    assert 'ImageReportDataset of 12 samples, batch size 4' in table
    assert '0 (main)' in table and f'wrote {out}' in table
    assert not list(tmp_path.glob('.*'))  # written atomically: no temporary left


def test_lmdb_dataset_and_another_split(synthetic_root, tmp_path):
    lmdb = tmp_path / 'lmdb'
    write_image_report_lmdb(ImageReportDataset('val.jsonl', data_root=str(synthetic_root)),
                            lmdb)
    out = tmp_path / 'benchmark.json'
    benchmark_dataloader.main([
        str(CONFIG), '--split', 'val', '--max-samples', '8', '--warmup', '0', '--out',
        str(out), '--cfg-options', 'val_dataloader.dataset.type=ImageReportLMDBDataset',
        f'val_dataloader.dataset.ann_file={lmdb}', 'val_dataloader.batch_size=4'])
    summary = json.loads(out.read_text())
    assert (summary['split'], summary['dataset'], summary['dataset_size']) == (
        'val', 'ImageReportLMDBDataset', 4)
    check_results(summary, [0], 8)  # the config's num_workers is 0: the main process only


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        benchmark_dataloader.main([str(CONFIG), '--max-samples', '0'])
    assert '--max-samples must be positive' in capsys.readouterr().err
