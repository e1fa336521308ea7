"""Parity with the reference implementation (cn-clip, the code ViLReF forked).

A random cn-clip model is saved in the release's file format, converted with the
plugin's converter, loaded into the model built from the plugin's config, and both
must give the same features; the tokenizer must give cn-clip's token ids. This holds for
the whole Chinese-CLIP family (ViT-B/16, ViT-L/14, ViT-L/14@336, ViT-H/14, RN50 with RBT3)
and ViLReF's RN50: at full size for the small models, and for ViT-L/H with the full widths
but fewer blocks (the full-size ones are slow); every full-size release's keys, shapes and
attention heads are checked against its configs on the meta device.
"""
import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Sequence

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmpretrain.models.backbones import VisionTransformer

import vilref_mm.models  # noqa: F401  registers the modules
from mmpretrain.registry import MODELS
from vilref_mm.models import (ChineseBertTokenizer, ConvertedCheckpoint, convert_checkpoint,
                              convert_release_state_dict)
from vilref_mm.models.backbones.convert import state_dict_mismatches
from vilref_mm.models.text.tokenizer import FAST_PATH_RANGES

cn_clip_utils = pytest.importorskip('cn_clip.clip.utils')
cn_clip_data = pytest.importorskip('cn_clip.training.data')
cn_clip_model = pytest.importorskip('cn_clip.clip.model')
FullTokenizer = cn_clip_utils._tokenizer.__class__
#: cn-clip's architecture JSONs, which its create_model reads.
MODEL_CONFIGS = files('cn_clip') / 'clip' / 'model_configs'

ROOT = Path(__file__).parents[2]
TOL = 1e-4

LONG_REPORT = (
    '双眼眼底彩照示：右眼视盘边界清，色淡红，C/D约0.7，盘沿变窄，颞下方视网膜神经纤维层缺损；'
    '黄斑区中心凹反光可见，后极部散在微血管瘤及点片状出血，可见硬性渗出，部分呈环形排列；'
    '左眼视盘颜色正常，C/D约0.3，视网膜动脉细，A/V约1:2，动静脉交叉压迹（+），'
    '周边部可见激光斑。诊断：1.双眼糖尿病视网膜病变（NPDR，重度）；2.右眼青光眼可疑；'
    '3.高血压性视网膜病变II级。建议：眼科门诊随诊，OCT及视野检查，控制血糖血压，3个月后复查。')

TEXTS = [
    '',
    '眼底未见明显异常',
    '视盘边界清，C/D约0.7',
    '右眼视盘C/D约0.7，左眼C/D约0.5',
    '黄斑区可见玻璃膜疣（drusen）',
    '糖尿病视网膜病变（DR）非增殖期，NPDR中度',
    'PDR：视盘新生血管（NVD），玻璃体积血',
    '视网膜静脉阻塞BRVO，颞上分支',
    'CRAO：后极部视网膜灰白水肿，黄斑樱桃红斑',
    '年龄相关性黄斑变性（AMD），湿性，CNV',
    '高度近视眼底改变：豹纹状眼底，视盘旁萎缩弧β区',
    '医生意见：“可疑青光眼”，建议复查',
    '报告中写“未见出血”和‘无渗出’',
    '引号测试 "ASCII quotes" 与 “全角引号”',
    'ＯＣＴ示黄斑水肿，ＣＭＴ　４５０μｍ',  # full-width Latin letters, digits, space
    '眼压ＩＯＰ：２１ｍｍＨｇ（右），１８ｍｍＨｇ（左）',
    '视力：右眼0.8，左眼0.25；矫正视力1.0',
    'A/V=1:3，动脉硬化II-III级',
    '杯盘比0.6~0.7，盘沿切迹',
    '视网膜脱离（RD），孔源性，裂孔位于11:00方位',
    '眼底照相质量差😢，无法评估',
    '🙂👍 正常眼底 ✅',
    '罕见字：䶮、𠀀、𪚥、龘，以及部首⺮',
    'Café-au-lait 斑？naïve 检查 ÉCOLE',
    'ＡＢＣ ａｂｃ Ｘ线',
    '多个空格   以及\t制表符\n换行',
    '数字123456789012345678901234567890连续',
    'a' * 150 + ' 超长单词',
    'x' * 250 + ' 超过两百字符的单词',
    '《眼科学》第9版：视盘水肿≥3D',
    '①出血②渗出③水肿',
    '±0.5D，℃，‰，µm，Å',
    '零宽\u200b空格\u200d连接符\ufeff',
    'Ⅰ期、Ⅱ期、Ⅲ期、Ⅳ期视网膜病变',
    'ＯＤ：ＣＤＲ＝０．８；ＯＳ：ＣＤＲ＝０．４',
    '私用区\ue000字符与未分配\U000e01f0',
    LONG_REPORT,
    LONG_REPORT * 2,
]


@pytest.mark.parametrize('context_length', [52, 100])
def test_tokenizer_matches_release_pipeline(context_length):
    """Ids equal cn-clip's on the release's preprocessed text, truncation included."""
    assert len(TEXTS) >= 30
    tokenizer = ChineseBertTokenizer(context_length=context_length)
    expected = cn_clip_utils.tokenize([cn_clip_data._preprocess_text(t) for t in TEXTS],
                                      context_length=context_length)
    ids = tokenizer(TEXTS)
    assert ids.dtype == torch.long and ids.shape == (len(TEXTS), context_length)
    mismatched = [TEXTS[i][:30] for i in range(len(TEXTS)) if not torch.equal(ids[i], expected[i])]
    assert not mismatched, f'token ids differ from cn-clip for {mismatched}'
    # the long reports are really truncated: [SEP] at the last position
    assert ids[-1, -1].item() == tokenizer.sep_token_id


def test_tokenizer_matches_cn_clip_tokenize_raw():
    """Without the release's text normalisation, ids equal cn_clip.clip.tokenize on raw text."""
    tokenizer = ChineseBertTokenizer(context_length=52, normalize_text=False)
    assert torch.equal(tokenizer(TEXTS), cn_clip_utils.tokenize(TEXTS, context_length=52))
    for text in TEXTS[:5]:
        assert torch.equal(tokenizer(text), cn_clip_utils.tokenize(text, context_length=52)[0])


#: Blocks of uniform characters (ideographs, Hangul syllables), sampled in the quick check.
UNIFORM_BLOCKS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0x20000, 0x2FA1F))


def fast_path_code_points(sample_uniform_blocks: bool):
    for start, end in FAST_PATH_RANGES:
        for cp in range(start, end + 1):
            uniform = any(a <= cp <= b for a, b in UNIFORM_BLOCKS)
            if not (sample_uniform_blocks and uniform and cp % 97):
                yield cp


@pytest.mark.parametrize('exhaustive', [
    False, pytest.param(True, marks=pytest.mark.slow)], ids=['sampled', 'exhaustive'])
def test_fast_path_characters_tokenise_as_the_original(exhaustive):
    """Every character of FAST_PATH_RANGES, in and between words, gives the original's ids.

    Without the uniform blocks' sampling this checks every code point (about 15 s).
    """
    tokenizer = ChineseBertTokenizer()
    original = FullTokenizer(vocab_file=tokenizer.vocab_file)
    probes = [f'a{chr(cp)}b {chr(cp)} 中{chr(cp)}1'
              for cp in fast_path_code_points(sample_uniform_blocks=not exhaustive)]
    fast = tokenizer._fast.backend_tokenizer.encode_batch(probes, add_special_tokens=False)
    mismatched = [hex(ord(probe[1])) for probe, encoding in zip(probes, fast)
                  if encoding.ids != original.convert_tokens_to_ids(original.tokenize(probe))]
    assert not mismatched, f'the fast tokenizer differs from the original on {mismatched[:50]}'


def save_release_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """Save like the release: fp16, DDP's ``module.`` prefix, inside a training dict."""
    state_dict = {f'module.{k}': v.half() if v.is_floating_point() else v
                  for k, v in model.state_dict().items()}
    torch.save({'epoch': 20, 'step': 35000, 'name': 'vilref', 'state_dict': state_dict}, path)


def reference_info(name: str, **overrides) -> dict:
    """cn-clip's ``CLIP`` arguments for ``name`` (``'ViT-L-14@RoBERTa-wwm-ext-base-chinese'``),
    read from its JSONs as its create_model does, with ``overrides``."""
    info = {}
    for part in name.split('@'):
        info.update(json.loads((MODEL_CONFIGS / f'{part}.json').read_text()))
    if isinstance(info['vision_layers'], str):
        info['vision_layers'] = json.loads(info['vision_layers'])
    return {**info, **overrides}


def build_reference(name: str, **overrides) -> torch.nn.Module:
    """A random cn-clip model in fp32 eval mode (no download), ``overrides`` as for
    :func:`reference_info`."""
    torch.manual_seed(0)
    model = cn_clip_model.CLIP(**reference_info(name, **overrides)).eval()
    # non-trivial BatchNorm parameters and statistics (cn-clip zero-initialises the last BN
    # of each bottleneck), so that every weight and buffer matters
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.0)
                module.bias.uniform_(-0.1, 0.1)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


def with_fewer_layers(model_cfg: Config, num_layers: int) -> Config:
    """The ViT model config with ``num_layers`` image blocks and text layers, all else kept."""
    image_encoder = model_cfg.image_encoder
    image_encoder.arch = dict(VisionTransformer.arch_zoo[image_encoder.arch],
                              num_layers=num_layers)
    text_encoder = model_cfg.text_encoder
    text_encoder.bert_cfg = dict(text_encoder.get('bert_cfg') or {},
                                 num_hidden_layers=num_layers)
    return model_cfg


#: cn-clip's model -> the family's pre-training and zero-shot configs and input size.
FAMILY = {
    'ViT-B-16@RoBERTa-wwm-ext-base-chinese':
    ('vilref/vilref_vit-b16_8xb32-20e_fundus-reports-224px.py',
     'zero_shot/vilref_vit-b16_zero-shot_fives-224px.py', 224),
    'RN50@RoBERTa-wwm-ext-base-chinese':
    ('vilref/vilref_rn50_8xb32-20e_fundus-reports-224px.py', None, 224),
    'RN50@RBT3-chinese':
    ('vilref/vilref_rn50-rbt3_8xb32-20e_fundus-reports-224px.py',
     'zero_shot/vilref_rn50-rbt3_zero-shot_fives-224px.py', 224),
    'ViT-L-14@RoBERTa-wwm-ext-base-chinese':
    ('vilref/vilref_vit-l14_8xb32-20e_fundus-reports-224px.py',
     'zero_shot/vilref_vit-l14_zero-shot_fives-224px.py', 224),
    'ViT-L-14-336@RoBERTa-wwm-ext-base-chinese':
    ('vilref/vilref_vit-l14-336_8xb32-20e_fundus-reports-336px.py',
     'zero_shot/vilref_vit-l14-336_zero-shot_fives-336px.py', 336),
    'ViT-H-14@RoBERTa-wwm-ext-large-chinese':
    ('vilref/vilref_vit-h14_8xb32-20e_fundus-reports-224px.py',
     'zero_shot/vilref_vit-h14_zero-shot_fives-224px.py', 224),
}


def assert_converted_release_matches(tmp_path: Path, reference: torch.nn.Module,
                                     model_cfg: Config, image_size: int,
                                     use_cli: bool = False,
                                     cli_options: Sequence[str] = ()) -> None:
    """Save ``reference`` as a release, convert it (with the tool and ``cli_options``, or the
    function), load it strictly into the model of ``model_cfg`` and compare features and
    tokens."""
    src, dst = tmp_path / 'release.pt', tmp_path / 'converted.pth'
    save_release_checkpoint(reference, src)
    # compare against the weights as saved (fp16-rounded), in fp32
    reference.load_state_dict(
        {k[len('module.'):]: v.float() if v.is_floating_point() else v
         for k, v in torch.load(src, weights_only=True)['state_dict'].items()})
    if use_cli:
        subprocess.run([sys.executable, str(ROOT / 'tools/model_converters/vilref_to_mm.py'),
                        str(src), str(dst), *cli_options], check=True, cwd=ROOT)
    else:
        convert_checkpoint(str(src), str(dst))
    src.unlink()

    model = MODELS.build(model_cfg).eval()
    load_checkpoint(model, str(dst), strict=True)

    torch.manual_seed(1)
    images = torch.randn(2, 3, image_size, image_size)
    texts = [TEXTS[11], LONG_REPORT]
    text_ids = cn_clip_utils.tokenize([cn_clip_data._preprocess_text(t) for t in texts],
                                      context_length=model.tokenizer.context_length)
    assert torch.equal(model.tokenizer(texts), text_ids)
    with torch.no_grad():
        ref_image, ref_text = reference.encode_image(images), reference.encode_text(text_ids)
        image, text = model.encode_image(images), model.encode_text(text_ids)
        torch.testing.assert_close(image, ref_image, rtol=0, atol=TOL)
        torch.testing.assert_close(text, ref_text, rtol=0, atol=TOL)
        torch.testing.assert_close(model.extract_image_feat(images),
                                   ref_image / ref_image.norm(dim=-1, keepdim=True),
                                   rtol=0, atol=TOL)
        torch.testing.assert_close(model.extract_text_feat(texts),
                                   ref_text / ref_text.norm(dim=-1, keepdim=True),
                                   rtol=0, atol=TOL)
        assert model.logit_scale.item() == reference.logit_scale.item()


@pytest.mark.parametrize('name, config, use_cli', [
    ('ViT-B-16@RoBERTa-wwm-ext-base-chinese', 'configs/vilref/pretrain_vitb.py', True),
    ('RN50@RoBERTa-wwm-ext-base-chinese', 'configs/vilref/pretrain_rn50.py', False),
    ('RN50@RBT3-chinese', 'configs/' + FAMILY['RN50@RBT3-chinese'][0], False),
])
def test_converted_release_matches_reference(tmp_path, name, config, use_cli):
    assert_converted_release_matches(
        tmp_path, build_reference(name), Config.fromfile(ROOT / config).model, 224, use_cli)


LARGE = [name for name in FAMILY if name.startswith(('ViT-L', 'ViT-H'))]


@pytest.mark.parametrize('name', LARGE)
def test_converted_large_release_with_two_layers_matches_reference(tmp_path, name):
    """ViT-L/14, ViT-L/14@336 and ViT-H/14 at full width (patch 14, the releases' position
    embeddings, ViT-H's 16 heads of 80, the large RoBERTa's 1024 width and 16 heads) with two
    image blocks and two text layers: the pre-training config with those depths."""
    config, _, image_size = FAMILY[name]
    reference = build_reference(name, vision_layers=2, text_num_hidden_layers=2)
    model_cfg = with_fewer_layers(Config.fromfile(ROOT / 'configs' / config).model, 2)
    assert_converted_release_matches(tmp_path, reference, model_cfg, image_size)


@pytest.mark.slow
@pytest.mark.parametrize('name', LARGE)
def test_converted_full_size_large_release_matches_reference(tmp_path, name):
    """As above at full size, in the zero-shot config (no momentum towers): 406-958 M
    parameters; measured on 2 CPU cores 17, 27 and 49 s, peak memory 6.1, 6.1 and 12.7 GB."""
    _, config, image_size = FAMILY[name]
    assert_converted_release_matches(tmp_path, build_reference(name),
                                     Config.fromfile(ROOT / 'configs' / config).model,
                                     image_size)


def test_tool_converts_heads_of_a_given_width(tmp_path):
    """A ViT whose heads are neither 64 wide nor ViT-H's (160 wide, 2 heads of 80): the tool
    refuses it without --vision-head-width and converts it with the option."""
    reference = build_reference('ViT-B-16@RBT3-chinese', embed_dim=64, image_resolution=56,
                                vision_layers=2, vision_width=160, vision_head_width=80,
                                vision_patch_size=14)
    model_cfg = Config.fromfile(ROOT / 'configs/_base_/models/vilref_vit-b16.py').model
    model_cfg.image_encoder.update(
        arch=dict(embed_dims=160, num_layers=2, num_heads=2, feedforward_channels=640),
        img_size=56, patch_size=14)
    model_cfg.text_encoder.bert_cfg = dict(num_hidden_layers=3)
    model_cfg.embed_dims = 64
    save_release_checkpoint(reference, tmp_path / 'release.pt')
    tool = subprocess.run([sys.executable, str(ROOT / 'tools/model_converters/vilref_to_mm.py'),
                           str(tmp_path / 'release.pt'), str(tmp_path / 'converted.pth')],
                          cwd=ROOT, capture_output=True, text=True)
    assert tool.returncode == 1 and '--vision-head-width' in tool.stderr
    assert not (tmp_path / 'converted.pth').exists()
    assert_converted_release_matches(tmp_path, reference, model_cfg, 56, use_cli=True,
                                     cli_options=('--vision-head-width', '80'))


def attention_heads(model: torch.nn.Module) -> dict:
    """The number of attention heads of every attention module of a :class:`ViLReF`."""
    heads = {name: module.num_heads for name, module in model.named_modules()
             if hasattr(module, 'num_heads')}
    heads['text_encoder'] = model.text_encoder.bert.config.num_attention_heads
    return heads


def convert_meta_release(name: str, **kwargs) -> ConvertedCheckpoint:
    """A full-size release of cn-clip's ``name`` converted on the meta device (shapes only),
    ``kwargs`` for :func:`convert_release_state_dict`."""
    with torch.device('meta'):
        return convert_release_state_dict(
            cn_clip_model.CLIP(**reference_info(name)).state_dict(), **kwargs)


@pytest.mark.parametrize('name', FAMILY)
def test_full_size_release_fits_its_configs(name):
    """Every key and shape of the full-size release, converted, fits the family's configs
    (pre-training and zero-shot), and the converter infers their attention heads."""
    converted = convert_meta_release(name)
    assert not converted.unmatched
    for config in filter(None, FAMILY[name][:2]):
        model_cfg = Config.fromfile(ROOT / 'configs' / config).model
        with torch.device('meta'):
            model = MODELS.build(model_cfg)
            inferred = MODELS.build({**model_cfg, **converted.model_cfg})
        online = {k: v for k, v in model.state_dict().items()
                  if not k.startswith(('momentum_', 'memory_queue.'))}
        assert state_dict_mismatches(online, converted.state_dict) == [], config
        assert attention_heads(inferred) == attention_heads(model), config


def test_vit_h_heads_are_80_wide_unless_told():
    """cn-clip's ViT-H/14 has 16 heads of 80; the head width can be given for other releases."""
    name = 'ViT-H-14@RoBERTa-wwm-ext-large-chinese'
    assert reference_info(name)['vision_head_width'] == 80
    for head_width, heads in ((None, 16), (80, 16), (64, 20)):
        converted = convert_meta_release(name, vision_head_width=head_width)
        assert converted.model_cfg['image_encoder']['arch']['num_heads'] == heads
