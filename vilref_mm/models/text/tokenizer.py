"""The Chinese BERT WordPiece tokenizer of ViLReF / Chinese-CLIP, on a fast backend."""
import importlib.resources
import os.path as osp
import re
from typing import List, Optional, Sequence, Union

import torch
from mmpretrain.registry import TOKENIZER
from transformers import BertTokenizerFast

#: Size of the Chinese BERT vocabulary of the ViLReF / Chinese-CLIP releases.
CHINESE_BERT_VOCAB_SIZE = 21128


def default_vocab_file() -> str:
    """The 21,128-token ``vocab.txt`` that the ``cn-clip`` package ships.

    Raises:
        FileNotFoundError: If ``cn-clip`` is not installed or lacks the file.
    """
    try:
        path = importlib.resources.files('cn_clip') / 'clip' / 'vocab.txt'
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            'the Chinese BERT vocabulary cn_clip/clip/vocab.txt was not found: install the '
            '`cn-clip` package (`make install` does), or pass vocab_file=<path to the '
            '21,128-token vocab.txt of ViLReF / Chinese-CLIP>; nothing is downloaded')
    return str(path)


def preprocess_text(text: str) -> str:
    """The release's text normalisation: lower case, curly double quotes to ``"``."""
    return text.lower().replace('“', '"').replace('”', '"')


#: Code point ranges on which Hugging Face's fast (Rust) BERT normaliser and pre-tokenizer
#: treat every character as the original Python ``FullTokenizer`` does (checked code point
#: by code point in tests/models/test_parity.py): Latin, Greek, Cyrillic, Hebrew, general
#: punctuation and symbols, CJK (radicals, punctuation, kana, ideographs, compatibility
#: forms), Hangul, full-width forms and emoji. Elsewhere the fast tokenizer's older Unicode
#: tables, its dropping of private-use characters and its CJK range (which misses
#: U+2B820-U+2B91F) can differ from the original.
FAST_PATH_RANGES = (
    (0x0000, 0x05FF),
    (0x1E00, 0x2BFF),
    (0x2E80, 0xA4CF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFFFF),
    (0x1F000, 0x1FAFF),
    (0x20000, 0x2B81F),
    (0x2B920, 0x2FA1F),
)

_OUTSIDE_FAST_PATH = re.compile(
    '[^' + ''.join(f'{re.escape(chr(a))}-{re.escape(chr(b))}' for a, b in FAST_PATH_RANGES) + ']')


@TOKENIZER.register_module()
class ChineseBertTokenizer:
    """Tokenise Chinese texts into fixed-length id tensors, as the ViLReF release does.

    The ids equal ``cn_clip.clip.tokenize(texts, context_length)`` (Google's
    BERT ``FullTokenizer``: lower case, accents stripped, CJK characters and
    punctuation split, WordPiece) applied to :func:`preprocess_text` of the
    texts, as in the release's data pipeline: ``[CLS]``, at most
    ``context_length - 2`` tokens, ``[SEP]``, then padding with ``[PAD]``
    (id 0). Texts whose characters all lie in :data:`FAST_PATH_RANGES` (in
    practice every report) are tokenised by Hugging Face's fast (Rust)
    ``BertTokenizerFast``, cheap enough for dataloader workers; any other text
    by the original ``FullTokenizer`` of ``cn-clip``.

    Args:
        vocab_file (str, optional): A Chinese BERT ``vocab.txt``. Defaults to
            the one of the ``cn-clip`` package (see
            :func:`default_vocab_file`); never downloaded.
        context_length (int): Length of every id sequence, ``[CLS]`` and
            ``[SEP]`` included: 100 for pre-training reports, 52 (the
            release's default) for prompts. Defaults to 52.
        normalize_text (bool): Apply :func:`preprocess_text` first, as the
            release's training and evaluation pipelines do. Defaults to True.

    Example:
        >>> tokenizer = ChineseBertTokenizer(context_length=52)
        >>> tokenizer(['视盘边界清', '黄斑区未见异常']).shape
        torch.Size([2, 52])
        >>> tokenizer('视盘边界清').shape
        torch.Size([52])
    """

    def __init__(self,
                 vocab_file: Optional[str] = None,
                 context_length: int = 52,
                 normalize_text: bool = True) -> None:
        if context_length < 2:
            raise ValueError(
                f'context_length must be >= 2 ([CLS] and [SEP]), got {context_length}')
        self.vocab_file = vocab_file or default_vocab_file()
        if not osp.isfile(self.vocab_file):
            raise FileNotFoundError(
                f'vocabulary file {self.vocab_file} does not exist; give the Chinese BERT '
                "vocab.txt as tokenizer=dict(vocab_file=...), or leave it out to use cn-clip's")
        self.context_length = context_length
        self.normalize_text = normalize_text
        # Positional: it is `vocab_file` in transformers 4 and `vocab` in 5, where
        # `vocab_file=...` silently builds a 5-token vocabulary.
        self._fast = BertTokenizerFast(
            self.vocab_file, do_lower_case=True, tokenize_chinese_chars=True, strip_accents=None)
        with open(self.vocab_file, encoding='utf-8') as file:
            num_lines = sum(1 for _ in file)
        if self._fast.vocab_size != num_lines:
            raise RuntimeError(
                f'the fast tokenizer built from {self.vocab_file} has {self._fast.vocab_size} '
                f'tokens but the file has {num_lines} lines; is this transformers version '
                'supported (see requirements/)?')
        # The original WordPiece maps words longer than 200 characters to [UNK] (HF: 100).
        self._fast.backend_tokenizer.model.max_input_chars_per_word = 200
        self.pad_token_id = self._fast.pad_token_id
        self.cls_token_id = self._fast.cls_token_id
        self.sep_token_id = self._fast.sep_token_id
        self._original = None

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return self._fast.vocab_size

    def __call__(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        """Tokenise one text or a batch.

        Args:
            texts (str | Sequence[str]): A text or a list of texts.

        Returns:
            torch.LongTensor: (context_length,) ids for a single text,
            (B, context_length) for a list.
        """
        single = isinstance(texts, str)
        batch: List[str] = [texts] if single else list(texts)
        if self.normalize_text:
            batch = [preprocess_text(text) for text in batch]
        fast = [i for i, text in enumerate(batch) if not _OUTSIDE_FAST_PATH.search(text)]
        if fast and len(fast) == len(batch):
            ids = self._fast_ids(batch)
        else:
            ids = torch.full((len(batch), self.context_length), self.pad_token_id,
                             dtype=torch.long)
            if fast:
                ids[fast] = self._fast_ids([batch[i] for i in fast])
            for i in sorted(set(range(len(batch))) - set(fast)):
                tokens = self._original_ids(batch[i])
                ids[i, :len(tokens)] = torch.tensor(tokens)
        return ids[0] if single else ids

    def _fast_ids(self, texts: List[str]) -> torch.Tensor:
        """(B, context_length) ids from the fast tokenizer."""
        return self._fast(texts,
                          padding='max_length',
                          truncation=True,
                          max_length=self.context_length,
                          return_attention_mask=False,
                          return_token_type_ids=False,
                          return_tensors='pt')['input_ids']

    def _original_ids(self, text: str) -> List[int]:
        """``[CLS]``, the original tokenizer's ids (truncated), ``[SEP]``."""
        if self._original is None:
            from cn_clip.clip.bert_tokenizer import FullTokenizer
            self._original = FullTokenizer(vocab_file=self.vocab_file)
        tokens = self._original.convert_tokens_to_ids(self._original.tokenize(text))
        return [self.cls_token_id] + tokens[:self.context_length - 2] + [self.sep_token_id]

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(vocab_file={self.vocab_file!r}, '
                f'context_length={self.context_length}, normalize_text={self.normalize_text})')
