"""Expert-knowledge labels from Chinese fundus reports (lexicon + rule engine, docs/labels.md)."""
from .labeler import Mention, ReportLabeler
from .lexicon import DEFAULT_LEXICON, Lexicon, LexiconError, load_lexicon

__all__ = [
    'ReportLabeler', 'Mention', 'Lexicon', 'LexiconError', 'load_lexicon', 'DEFAULT_LEXICON'
]
