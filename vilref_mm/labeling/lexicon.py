"""Loading and validating the lexicon file of the report labeler.

The lexicon is data written by ophthalmologists (YAML, format in docs/labels.md and in the
comments of ``default_lexicon.yaml``); this module turns it into the lookup tables the rule
engine uses, and rejects a malformed file with an error naming the file and the field.
"""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterator, Mapping, Optional, Set, Tuple, Union

import yaml

from .text import Normalizer, join_phrase

DEFAULT_LEXICON = Path(__file__).with_name('default_lexicon.yaml')

_FIELDS = ('version', 'extends', 'labels', 'implications', 'sites', 'site_terms', 'ratios',
           'rewrites', 'cues', 'laterality', 'neutral')
_LABEL_FIELDS = ('name', 'terms', 'absent')
_CUE_FIELDS = ('negation', 'uncertainty', 'coordination', 'clause_starts', 'same_as')
_EYE_FIELDS = {'right': 'right', 'left': 'left', 'both': 'both', 'none': None}
_LABEL_KEY = re.compile(r'[a-z][a-z0-9_]*\Z')
# jieba keeps these characters together in one block; other characters are cut one by one, so a
# longer word containing them could never be matched.
_WORD = re.compile(r'[\u4e00-\u9fd5a-z0-9+#&._%-]+\Z')
# One word of a Latin phrase ("negative for"); the labeler sees the phrase as one word.
_LATIN_WORD = re.compile(r'[a-z0-9+#&._%-]+\Z')
# Characters that end a clause: a word containing them is never seen whole.
CLAUSE_SEPARATORS = frozenset('。;,!\n\r')


class LexiconError(ValueError):
    """A lexicon file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class SiteTerm:
    """A word whose label depends on the anatomical site named before it in its clause.

    Args:
        default: Label when no site of ``at`` precedes the word (None: no label).
        at: Site name -> label at that site (None: no label there).
    """
    default: Optional[str]
    at: Mapping[str, Optional[str]]


@dataclass(frozen=True)
class RatioRule:
    """Value of a label read from a ratio written after an anchor ("杯盘比约0.7").

    Args:
        anchors: Words the number follows.
        levels: ``(threshold, value)`` pairs, highest threshold first; a ratio takes the value
            of the first threshold it reaches, 0.0 (stated absent) below all of them.
    """
    anchors: Tuple[str, ...]
    levels: Tuple[Tuple[float, float], ...]

    def value(self, ratio: float) -> float:
        """Label value of ``ratio``."""
        return next((value for threshold, value in self.levels if ratio >= threshold), 0.0)


@dataclass(frozen=True)
class Lexicon:
    """The compiled lexicon: every word normalised, every reference checked.

    Attributes:
        path: The file it was loaded from.
        classes: Label keys in vector order.
        names: Label key -> display name.
        terms: Word -> ``(label, implied)`` pairs it asserts (its own label first).
        absent: Word -> label it states absent.
        sites: Word -> anatomical site it names.
        site_terms: Word -> :class:`SiteTerm`.
        ratios: Label -> :class:`RatioRule`.
        normalize: Text normalisation, the lexicon's spelling rewrites and the joining of its
            Latin phrases into one word ("negative for" -> "negative_for"), applied first.
        negation, uncertainty, coordination, clause_starts, same_as: Cue words.
        laterality: Marker -> 'right', 'left', 'both' or None (back to unspecified).
        neutral: Words that assert nothing.
    """
    path: Path
    classes: Tuple[str, ...]
    names: Mapping[str, str]
    terms: Mapping[str, Tuple[Tuple[str, bool], ...]]
    absent: Mapping[str, str]
    sites: Mapping[str, str]
    site_terms: Mapping[str, SiteTerm]
    ratios: Mapping[str, RatioRule]
    normalize: Normalizer
    negation: FrozenSet[str]
    uncertainty: FrozenSet[str]
    coordination: FrozenSet[str]
    clause_starts: FrozenSet[str]
    same_as: FrozenSet[str]
    laterality: Mapping[str, Optional[str]]
    neutral: FrozenSet[str]

    def vocabulary(self) -> Iterator[str]:
        """Every word the segmenter must keep whole."""
        for table in (self.terms, self.absent, self.sites, self.site_terms, self.laterality,
                      self.negation, self.uncertainty, self.coordination, self.clause_starts,
                      self.same_as, self.neutral):
            yield from table


def load_lexicon(path: Union[str, Path, None] = None) -> Lexicon:
    """Load, merge (``extends``) and validate a lexicon file.

    Args:
        path: A lexicon YAML file; None for the default lexicon shipped with the package.

    Returns:
        The compiled :class:`Lexicon`.

    Raises:
        LexiconError: The file is missing, is not YAML, or a field is malformed; the message
            names the file and the field.
    """
    path = Path(path) if path is not None else DEFAULT_LEXICON
    return _Compiler(path, read_lexicon_content(path)).compile()


def read_lexicon_content(path: Union[str, Path],
                         seen: Tuple[Path, ...] = ()) -> Dict[str, Any]:
    """The raw (not yet validated) mapping of a lexicon file, merged onto the lexicons it
    extends.

    Args:
        path: The lexicon YAML file.
        seen: The files that extend it, for cycle detection (empty for a top-level call).

    Raises:
        LexiconError: A file is missing or not a YAML mapping, a field is unknown, or
            ``extends`` forms a cycle.
    """
    path = Path(path).resolve()
    if path in seen:
        raise LexiconError(f'lexicon {path}: "extends" forms a cycle through {seen[0]}')
    if not path.is_file():
        raise LexiconError(f'lexicon file {path} does not exist')
    try:
        raw = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise LexiconError(f'lexicon {path}: not a valid UTF-8 YAML file: {error}') from error
    if not isinstance(raw, dict):
        raise LexiconError(f'lexicon {path}: the file must hold a mapping with a "labels" field '
                           '(see docs/labels.md)')
    unknown = sorted(set(map(str, raw)) - set(_FIELDS))
    if unknown:
        raise LexiconError(f'lexicon {path}: unknown field {unknown[0]!r}; the fields are '
                           f'{", ".join(_FIELDS)}')
    base = raw.pop('extends', None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise LexiconError(f'lexicon {path}: field "extends" must be "default" or the path of '
                           'another lexicon file')
    base_path = DEFAULT_LEXICON if base == 'default' else path.parent / base
    return _merge(read_lexicon_content(base_path, seen + (path, )), raw)


def _merge(base: Any, extra: Any) -> Any:
    """Mappings merged key by key, lists concatenated, anything else replaced."""
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(extra, list):
        return base + extra
    return extra


class _Compiler:
    """Turns the raw mapping into a :class:`Lexicon`, checking every field."""

    def __init__(self, path: Path, raw: Dict[str, Any]):
        self.path = path
        self.raw = raw
        self.owner: Dict[str, Tuple[str, str]] = {}  # word -> (field, role) that claimed it
        self.normalize = Normalizer({})
        self.phrases: Set[str] = set()  # Latin phrases of the words, joined in the text
        self.classes: Tuple[str, ...] = ()

    def fail(self, field: str, problem: str) -> LexiconError:
        return LexiconError(f'lexicon {self.path}: field {field!r}: {problem} '
                            '(the file format is described in docs/labels.md)')

    def mapping(self, value: Any, field: str) -> Dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(field, f'must be a mapping, got {type(value).__name__}')
        return value

    def strings(self, value: Any, field: str) -> Iterator[Tuple[str, str]]:
        """(item, field of the item) of a list of non-empty strings."""
        if value is None:
            return
        if not isinstance(value, list):
            raise self.fail(field, f'must be a list of words, got {type(value).__name__}')
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                hint = ' (quote words YAML reads as booleans: "no", "yes", "on", "off")' \
                    if isinstance(item, bool) else ''
                raise self.fail(f'{field}[{index}]',
                                f'must be a non-empty string, got {item!r}{hint}')
            yield item, f'{field}[{index}]'

    def label(self, value: Any, field: str, allow_none: bool = False) -> Optional[str]:
        if value is None and allow_none:
            return None
        if value not in self.classes:
            raise self.fail(field, f'{value!r} is not a label of this lexicon (labels: '
                            f'{", ".join(self.classes)})')
        return value

    def word(self, text: str, field: str, role: str) -> str:
        """Normalised ``text``, registered for ``role`` (a word may play one role only).

        A phrase of Latin words ("negative for") becomes one word ("negative_for"), and the
        report text is rewritten the same way.
        """
        word = ' '.join(self.normalize(text).split())
        phrase = ' ' in word and all(map(_LATIN_WORD.match, word.split(' ')))
        if len(word) > 1 and not phrase and not _WORD.match(word):
            bad = next(ch for ch in word if not _WORD.match(ch))
            raise self.fail(field, f'{text!r} contains {bad!r}; a word of several characters '
                            'may hold only Chinese characters, Latin letters, digits and '
                            '+ # & . _ % -, and Latin words joined by spaces ("negative for")')
        if phrase:
            self.phrases.add(word)
            word = join_phrase(word)
        if word in CLAUSE_SEPARATORS:
            raise self.fail(field, f'{text!r} ends a clause and can never be matched')
        other_field, other_role = self.owner.setdefault(word, (field, role))
        if other_role != role:
            raise self.fail(field, f'{text!r} is already used by field {other_field!r}; a word '
                            'may play one role only')
        return word

    def words(self, value: Any, field: str, role: str) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(self.word(item, item_field, role)
                                   for item, item_field in self.strings(value, field)))

    def compile(self) -> Lexicon:
        raw = self.raw
        if raw.get('version', 1) != 1:
            raise self.fail('version', f'this labeler reads version 1, got {raw["version"]!r}')
        rewrites = self.mapping(raw.get('rewrites'), 'rewrites')
        for variant, canonical in rewrites.items():
            if not isinstance(variant, str) or not variant.strip() \
                    or not isinstance(canonical, str):
                raise self.fail(f'rewrites.{variant}',
                                'variant and canonical form must be strings')
        self.normalize = Normalizer(rewrites)

        labels = self.mapping(raw.get('labels'), 'labels')
        if not labels:
            raise self.fail('labels', 'must list at least one label')
        for key in labels:
            if not isinstance(key, str) or not _LABEL_KEY.match(key):
                raise self.fail(f'labels.{key}', 'a label key is lower-case ASCII: letters, '
                                'digits and _, starting with a letter')
        self.classes = tuple(labels)
        names, terms, absent = {}, {}, {}
        for key, entry in labels.items():
            field = f'labels.{key}'
            entry = self.mapping(entry, field)
            unknown = sorted(set(map(str, entry)) - set(_LABEL_FIELDS))
            if unknown:
                raise self.fail(f'{field}.{unknown[0]}', 'unknown field; a label has '
                                f'{", ".join(_LABEL_FIELDS)}')
            name = entry.get('name', key)
            if not isinstance(name, str):
                raise self.fail(f'{field}.name', f'must be a string, got {name!r}')
            names[key] = name
            for word in self.words(entry.get('terms'), f'{field}.terms', 'term'):
                terms.setdefault(word, [])
                if terms[word]:
                    raise self.fail(f'{field}.terms', f'{word!r} is also a term of '
                                    f'{terms[word][0][0]!r}; list it under one label and add '
                                    'the other under "implications"')
                terms[word].append((key, False))
            for word in self.words(entry.get('absent'), f'{field}.absent', 'absent'):
                absent[word] = key

        for text, targets in self.mapping(raw.get('implications'), 'implications').items():
            field = f'implications.{text}'
            if not isinstance(text, str):
                raise self.fail(field, 'the implying word must be a string')
            word = self.word(text, field, 'term')
            targets = [targets] if isinstance(targets, str) else targets
            for target, target_field in self.strings(targets, field):
                self.label(target, target_field)
                if (target, False) not in terms.get(word, ()):
                    terms.setdefault(word, []).append((target, True))

        sites = {}
        for site, site_words in self.mapping(raw.get('sites'), 'sites').items():
            for word in self.words(site_words, f'sites.{site}', 'site'):
                sites[word] = str(site)
        site_terms = {}
        for text, entry in self.mapping(raw.get('site_terms'), 'site_terms').items():
            field = f'site_terms.{text}'
            entry = self.mapping(entry, field)
            unknown = sorted(set(map(str, entry)) - {'default', 'at'})
            if unknown:
                raise self.fail(f'{field}.{unknown[0]}', 'unknown field; use "default" and "at"')
            at = {}
            for site, label in self.mapping(entry.get('at'), f'{field}.at').items():
                if site not in sites.values():
                    raise self.fail(f'{field}.at.{site}', f'{site!r} is not a site named under '
                                    '"sites"')
                at[site] = self.label(label, f'{field}.at.{site}', allow_none=True)
            default = self.label(entry.get('default'), f'{field}.default', allow_none=True)
            site_terms[self.word(str(text), field, 'site_term')] = SiteTerm(default, at)

        ratios = {}
        for key, entry in self.mapping(raw.get('ratios'), 'ratios').items():
            field = f'ratios.{key}'
            self.label(key, field)
            entry = self.mapping(entry, field)
            anchors = tuple(self.normalize(anchor) for anchor, _ in
                            self.strings(entry.get('anchors'), f'{field}.anchors'))
            levels = entry.get('levels')
            if not anchors:
                raise self.fail(f'{field}.anchors', 'must list the words the number follows')
            if (not isinstance(levels, list) or not levels
                    or not all(_is_level(level) for level in levels)):
                raise self.fail(f'{field}.levels', 'must be a list of [threshold, value] pairs of '
                                f'numbers with values in [0, 1], got {levels!r}')
            ratios[key] = RatioRule(anchors, tuple(sorted(map(tuple, levels), reverse=True)))

        cues = self.mapping(raw.get('cues'), 'cues')
        unknown = sorted(set(map(str, cues)) - set(_CUE_FIELDS))
        if unknown:
            raise self.fail(f'cues.{unknown[0]}',
                            f'unknown cue type; use {", ".join(_CUE_FIELDS)}')
        cue_words = {name: frozenset(self.words(cues.get(name), f'cues.{name}', f'cue {name}'))
                     for name in _CUE_FIELDS}

        laterality = self.mapping(raw.get('laterality'), 'laterality')
        unknown = sorted(set(map(str, laterality)) - set(_EYE_FIELDS))
        if unknown:
            raise self.fail(f'laterality.{unknown[0]}', 'unknown eye; use right, left, both, none')
        markers = {word: _EYE_FIELDS[eye] for eye in _EYE_FIELDS
                   for word in self.words(laterality.get(eye), f'laterality.{eye}', f'eye {eye}')}

        neutral = frozenset(self.words(raw.get('neutral'), 'neutral', 'neutral'))
        return Lexicon(
            path=self.path,
            classes=self.classes,
            names=names,
            terms={word: tuple(pairs) for word, pairs in terms.items()},
            absent=absent,
            sites=sites,
            site_terms=site_terms,
            ratios=ratios,
            normalize=Normalizer(rewrites, self.phrases),
            laterality=markers,
            neutral=neutral,
            **cue_words)


def _is_level(level: Any) -> bool:
    return (isinstance(level, list) and len(level) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in level)
            and 0 <= level[1] <= 1)
