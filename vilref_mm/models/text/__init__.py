"""The text tower of ViLReF: Chinese BERT encoder and WordPiece tokenizer."""
from .bert import ROBERTA_WWM_EXT_BASE_CHINESE, ChineseBertEncoder
from .tokenizer import (CHINESE_BERT_VOCAB_SIZE, ChineseBertTokenizer, default_vocab_file,
                        preprocess_text)

__all__ = [
    'ROBERTA_WWM_EXT_BASE_CHINESE', 'ChineseBertEncoder', 'CHINESE_BERT_VOCAB_SIZE',
    'ChineseBertTokenizer', 'default_vocab_file', 'preprocess_text'
]
