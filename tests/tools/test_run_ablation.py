"""The loss ablation: configs/vilref/ablation and tools/analysis/run_ablation.py (on the tiny
pre-training config, a few iterations)."""
import json
import statistics
from pathlib import Path

import pytest
from mmengine.config import Config

import vilref_mm.models  # noqa: F401  registers the losses
from mmpretrain.registry import MODELS
from tool_modules import load_module

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / 'configs/vilref/vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py'
ABLATION_CONFIGS = sorted((REPO / 'configs/vilref/ablation').glob('*.py'))
ABLATION_SUFFIX = '_vit-tiny-p16_1xb32-450it_synthetic-112px'
TINY_CONFIG = REPO / 'tests/data/configs/tiny_vilref.py'


run_ablation = load_module('tools/analysis/run_ablation.py')


def without_loss(cfg: Config) -> dict:
    """The config as a dict, without ``model.loss`` and the file name."""
    settings = cfg.to_dict()
    settings['model'].pop('loss')
    return settings


def test_ablation_configs_are_the_demo_with_another_loss():
    demo = Config.fromfile(DEMO_CONFIG)
    losses = {}
    for path in ABLATION_CONFIGS:
        cfg = Config.fromfile(path)
        assert without_loss(cfg) == without_loss(demo), path.name
        losses[run_ablation.run_name(str(path))] = dict(cfg.model.loss)
        MODELS.build(cfg.model.loss)
    assert run_ablation.ablation_configs([]) == [str(path) for path in ABLATION_CONFIGS]
    # One config per loss of the zoo.
    kinds = {(loss['type'], loss.get('gamma'), loss.get('hard', False),
              loss.get('similarity', 'cosine'), loss.get('label_smoothing', 0.0))
             for loss in losses.values()}
    assert len(kinds) == len(losses) == 7
    assert losses['clip-infonce'] == dict(type='WeightedSimilarityCouplingLoss', gamma=0.0)
    assert losses['wscl'] == dict(demo.model.loss)
    assert {loss['type'] for loss in losses.values()} == {
        'WeightedSimilarityCouplingLoss', 'LabelSoftTargetLoss', 'MomentumDistillationLoss'}



def test_momentum_mode_configs_differ_only_in_the_mode():
    """The momentum-mode ablation: both configs regularise (FLIP, drop path, dropout), so the
    mode of the momentum towers changes their features, and differ in momentum_eval only."""
    folder = REPO / 'configs/vilref/ablation/momentum'
    train, evaluate = (Config.fromfile(folder / f'wscl-flip-momentum-{mode}{ABLATION_SUFFIX}.py')
                       for mode in ('train', 'eval'))
    assert (train.model.momentum_eval, evaluate.model.momentum_eval) == (False, True)
    evaluate.model.momentum_eval = False
    assert evaluate.to_dict() == train.to_dict()
    image_encoder = train.model.image_encoder
    assert image_encoder.mask_ratio > 0 and image_encoder.drop_path_rate > 0
    assert train.model.text_encoder.bert_cfg.hidden_dropout_prob > 0
    demo = Config.fromfile(DEMO_CONFIG)
    assert train.model.loss == demo.model.loss and train.custom_hooks == demo.custom_hooks

@pytest.fixture(scope='module')
def tiny_ablation(tmp_path_factory):
    """Two losses of the ablation (their model.loss) on the tiny model, seeds 0 and 1, two
    iterations each."""
    root = tmp_path_factory.mktemp('ablation')
    configs = []
    for name in ('wscl', 'wscl-momentum-distillation'):
        loss = Config.fromfile(
            REPO / 'configs/vilref/ablation' / f'{name}{ABLATION_SUFFIX}.py').model.loss
        config = root / 'configs' / f'{name}.py'
        config.parent.mkdir(exist_ok=True)
        config.write_text(f'_base_ = [{str(TINY_CONFIG)!r}]\n'
                          f'model = dict(loss=dict(_delete_=True, **{dict(loss)!r}))\n')
        configs.append(str(config))
    data = run_ablation.SyntheticDataSpec(num_train=8, num_val=2, num_test=12, size=32, seed=3)
    work_dir = root / 'work'
    summary = run_ablation.run_ablation(configs, [0, 1], str(work_dir), data, max_iters=2)
    return configs, work_dir, data, summary


def test_the_table_holds_every_config_and_seed(tiny_ablation):
    configs, work_dir, data, summary = tiny_ablation
    assert [row['name'] for row in summary['rows']] == ['wscl', 'wscl-momentum-distillation']
    for row in summary['rows']:
        runs = summary['runs'][row['name']]
        assert row['seeds'] == [run['seed'] for run in runs] == [0, 1]
        aurocs = [run['macro_auroc'] for run in runs]
        assert all(0 <= value <= 1 for value in aurocs)
        assert row['auroc'] == aurocs
        assert row['mean'] == pytest.approx(statistics.mean(aurocs))
        assert row['std'] == pytest.approx(statistics.stdev(aurocs))
        assert (row['min'], row['max']) == (min(aurocs), max(aurocs))
        for seed, run in zip((0, 1), runs):
            run_dir = work_dir / row['name'] / f'seed{seed}'
            assert json.loads((run_dir / 'result.json').read_text()) == run
            assert run['iters'] == 2
            # The config as run: the seed, the data of the ablation.
            cfg = Config.fromfile(next(run_dir.glob('*.py')))
            assert cfg.randomness.seed == seed
            assert cfg.train_dataloader.dataset.data_root == str(work_dir / 'data')
        line = next(line for line in summary['table'].splitlines()
                    if line.startswith(f'| {row["name"]} |'))
        assert f'{row["mean"]:.4f}' in line and f'{row["std"]:.4f}' in line
    assert json.loads((work_dir / 'ablation.json').read_text())['rows'] == summary['rows']
    assert summary['table'] in (work_dir / 'ablation.md').read_text()
    assert json.loads((work_dir / 'data' / 'meta.json').read_text())['counts'] == data.counts


def test_distillation_reads_the_iteration_from_the_runner(tiny_ablation):
    """alpha_t ramps with MMEngine's iteration: 0 at the first, 0.4 / 62 at the second."""
    _, _, _, summary = tiny_ablation
    for run in summary['runs']['wscl-momentum-distillation']:
        records = [json.loads(line) for line in Path(run['scalars']).read_text().splitlines()]
        alphas = [record['distill_alpha'] for record in records if 'distill_alpha' in record]
        assert alphas == pytest.approx([0.0, 0.4 / 62])  # logged at every iteration
        logged = set().union(*records)
        assert {'i2t', 't2i', 'eliminated', 'eliminated_queue', 'mean_weight'} <= logged


def test_finished_runs_are_not_repeated(tiny_ablation, monkeypatch):
    configs, work_dir, data, summary = tiny_ablation
    monkeypatch.setattr(run_ablation, 'pretrain',
                        lambda *args: pytest.fail('a finished run was repeated'))
    again = run_ablation.run_ablation(configs, [0, 1], str(work_dir), data, max_iters=2)
    assert again['rows'] == summary['rows']
    with pytest.raises(ValueError, match='choose another --work-dir'):
        run_ablation.run_ablation(configs, [0], str(work_dir), data, max_iters=3)


def test_command_line():
    args = run_ablation.parse_args(['a.py', '--seeds', '3', '4', '--max-iters', '5',
                                    '--cfg-options', 'model.queue_size=64'])
    assert (args.configs, args.seeds, args.max_iters) == (['a.py'], [3, 4], 5)
    assert args.cfg_options == {'model.queue_size': 64}
    assert run_ablation.parse_args([]).seeds == [0, 1, 2]
    with pytest.raises(SystemExit):
        run_ablation.parse_args(['--seeds', '1', '1'])
