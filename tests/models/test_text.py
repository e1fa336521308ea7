"""The text tower: Chinese BERT encoder and tokenizer."""
import pickle

import pytest
import torch

import vilref_mm.models  # noqa: F401  registers the modules
from mmpretrain.registry import MODELS, TOKENIZER
from vilref_mm.models.text import (CHINESE_BERT_VOCAB_SIZE, ROBERTA_WWM_EXT_BASE_CHINESE,
                                   ChineseBertEncoder, ChineseBertTokenizer, default_vocab_file)

TINY_BERT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=128, hidden_dropout_prob=0., attention_probs_dropout_prob=0.)


def test_tokenizer_vocabulary_and_layout():
    tokenizer = TOKENIZER.build(dict(type='ChineseBertTokenizer', context_length=16))
    assert tokenizer.vocab_size == CHINESE_BERT_VOCAB_SIZE
    with open(default_vocab_file(), encoding='utf-8') as file:
        vocab = [line.rstrip('\n') for line in file]
    ids = tokenizer(['视盘', 'AMD'])
    assert ids.shape == (2, 16) and ids.dtype == torch.long
    assert [vocab[i] for i in ids[0, :4]] == ['[CLS]', '视', '盘', '[SEP]']
    assert ids[0, 4:].eq(0).all() and vocab[0] == '[PAD]'
    assert vocab[ids[1, 1]] == 'amd'  # lower-cased
    single = tokenizer('视盘')
    assert single.shape == (16, ) and torch.equal(single, ids[0])
    empty = tokenizer([])
    assert empty.shape == (0, 16) and empty.dtype == torch.long


def test_tokenizer_truncates_to_context_length():
    tokenizer = ChineseBertTokenizer(context_length=8)
    ids = tokenizer('视网膜' * 10)
    assert ids.shape == (8, )
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids.ne(0).all()


def test_tokenizer_quote_normalisation():
    tokenizer = ChineseBertTokenizer(context_length=10)
    assert torch.equal(tokenizer('“青光眼”'), tokenizer('"青光眼"'))
    raw = ChineseBertTokenizer(context_length=10, normalize_text=False)
    assert not torch.equal(raw('“青光眼”'), raw('"青光眼"'))


def test_tokenizer_custom_vocab_and_errors(tmp_path):
    vocab = tmp_path / 'vocab.txt'
    vocab.write_text('\n'.join(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '眼', '底']) + '\n',
                     encoding='utf-8')
    tokenizer = ChineseBertTokenizer(vocab_file=str(vocab), context_length=6)
    assert tokenizer.vocab_size == 7
    assert tokenizer('眼底好').tolist() == [2, 5, 6, 1, 3, 0]
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        ChineseBertTokenizer(vocab_file=str(tmp_path / 'missing.txt'))
    with pytest.raises(ValueError, match='context_length'):
        ChineseBertTokenizer(context_length=1)


def test_tokenizer_pickles_for_dataloader_workers():
    tokenizer = ChineseBertTokenizer(context_length=20)
    clone = pickle.loads(pickle.dumps(tokenizer))
    assert torch.equal(clone('黄斑水肿'), tokenizer('黄斑水肿'))


def test_bert_encoder_default_config():
    with torch.device('meta'):
        encoder = ChineseBertEncoder()
    config = encoder.bert.config
    for key, value in ROBERTA_WWM_EXT_BASE_CHINESE.items():
        assert getattr(config, key) == value, key
    assert encoder.bert.pooler is None and encoder.embed_dims == 768
    assert config._attn_implementation == 'sdpa'
    assert sum(p.numel() for p in encoder.parameters()) == 101_677_056  # BERT-base without pooler


def test_bert_encoder_cls_feature_ignores_padding():
    torch.manual_seed(0)
    encoder = MODELS.build(dict(type='ChineseBertEncoder', bert_cfg=TINY_BERT)).eval()
    tokenizer = ChineseBertTokenizer(context_length=12)
    short, long = tokenizer(['视盘水肿']), ChineseBertTokenizer(context_length=30)(['视盘水肿'])
    with torch.no_grad():
        feat = encoder(short)
        assert feat.shape == (1, 64)
        torch.testing.assert_close(encoder(long), feat, rtol=0, atol=1e-5)
        other = encoder(tokenizer(['视盘萎缩']))
    assert not torch.allclose(feat, other)


def test_bert_encoder_mean_pooling():
    torch.manual_seed(0)
    encoder = MODELS.build(
        dict(type='ChineseBertEncoder', bert_cfg=TINY_BERT, pooling='mean')).eval()
    ids = ChineseBertTokenizer(context_length=12)(['视盘水肿', '视网膜出血及硬性渗出'])
    with torch.no_grad():
        feats = encoder(ids)
        hidden = encoder.bert(input_ids=ids, attention_mask=ids.ne(0).long()).last_hidden_state
    for row, length in enumerate(ids.ne(0).sum(1).tolist()):
        torch.testing.assert_close(feats[row], hidden[row, :length].mean(0))
    # padding does not change the feature
    longer = ChineseBertTokenizer(context_length=30)(['视盘水肿'])
    with torch.no_grad():
        torch.testing.assert_close(encoder(longer)[0], feats[0], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='pooling'):
        ChineseBertEncoder(bert_cfg=TINY_BERT, pooling='max')


def test_bert_encoder_gradient_checkpointing():
    torch.manual_seed(0)
    plain = ChineseBertEncoder(bert_cfg=TINY_BERT).train()
    checkpointed = ChineseBertEncoder(bert_cfg=TINY_BERT, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    assert any(getattr(m, 'gradient_checkpointing', False) for m in checkpointed.bert.modules())
    assert not any(getattr(m, 'gradient_checkpointing', False) for m in plain.bert.modules())
    ids = ChineseBertTokenizer(context_length=12)(['视网膜出血', '黄斑'])
    grads = []
    for encoder in (plain, checkpointed):
        encoder(ids).square().sum().backward()
        grads.append(encoder.bert.embeddings.word_embeddings.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0
