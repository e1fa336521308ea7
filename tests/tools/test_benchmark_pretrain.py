"""tools/analysis/benchmark_pretrain.py on a tiny config: the figures it reports, and a
Chinese-CLIP reference holding the same weights as ours (checked by parity)."""
import copy
import json
from pathlib import Path

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from tool_modules import load_module

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'tiny_vilref.py'
# 64-wide attention heads and [CLS] text pooling, as in Chinese-CLIP (and the converter).
HEADS_64 = ['model.image_encoder.arch.embed_dims=64', 'model.image_encoder.arch.num_heads=1',
            'model.image_encoder.arch.feedforward_channels=256',
            'model.text_encoder.bert_cfg.hidden_size=64',
            'model.text_encoder.bert_cfg.num_attention_heads=1',
            'model.text_encoder.bert_cfg.intermediate_size=256', 'model.text_encoder.pooling=cls']
BENCHMARK = load_module('tools/analysis/benchmark_pretrain.py')


def test_reports_steps_breakdown_and_ratios(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert BENCHMARK.main([str(CONFIG), '--batch-size', '4', '--steps', '2', '--warmup', '1',
                             '--reference', '--amp', '--out', str(out), '--cfg-options',
                             *HEADS_64]) == 0
    report = json.loads(out.read_text())
    assert set(report['variants']) == {'vilref', 'clip', 'cn_clip'}
    assert report['queue_size'] == 16 and report['amp'] and report['context_length'] == 32
    for values in report['variants'].values():
        assert values['step_s'] > 0 and values['peak_memory_mb'] > 0
        assert abs(values['pairs_per_s'] * values['step_s'] - 4) < 1e-6
    assert set(report['variants']['vilref']['breakdown_s']) == {
        'data preprocessor', 'image tower', 'text tower', 'momentum forward',
        'loss (WSCL + queue)', 'backward', 'optimizer', 'EMA + enqueue'}
    assert set(report['speed_vs_cn_clip']) == {'vilref', 'clip'}
    assert report['image_inference_speed_vs_cn_clip'] > 0
    printed = capsys.readouterr().out
    assert 'speed vs cn_clip' in printed and 'EMA + enqueue' in printed


def test_reference_holds_our_weights():
    """The Chinese-CLIP model and ours encode alike after the conversion."""
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({key: int(value) if value.isdigit() else value
                         for key, value in (option.split('=') for option in HEADS_64)})
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    reference = BENCHMARK.build_reference(model, torch.device('cpu'), compile_towers=False).eval()
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    text_ids = torch.randint(1000, 20000, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), reference.encode_image(images),
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(model.encode_text(text_ids), reference.encode_text(text_ids),
                                   rtol=0, atol=1e-5)
    # the momentum towers follow the copied weights
    assert torch.equal(model.momentum_text_projection, model.text_projection)
