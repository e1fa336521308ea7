"""Expert-knowledge labels from fundus reports (Chinese, mixed with English, or English): the
rule engine (docs/labels.md)."""
import io
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from .lexicon import CLAUSE_SEPARATORS, Lexicon, SiteTerm, load_lexicon

EYES = ('left', 'right')
# Every lexicon word gets this jieba frequency. Against the cost of a character outside the
# lexicon (log of the total), a lexicon word is nearly free, so the segmentation covers as much
# text as possible with lexicon words and, among those, uses the fewest (longest) words.
_WORD_FREQUENCY = 1_000_000
# Roles of the words of a clause.
_TERM, _ABSENT, _SITE_TERM, _SITE, _CUE, _COORDINATION, _BREAK, _EYE, _SAME_AS = range(9)
# Events of a clause: (_EYE_EVENT, eye), (_COPY_EVENT, eye whose findings the current eye has)
# or (_MENTION_EVENT, label index, value, term, cue, explicit eye, site, implied).
_EYE_EVENT, _MENTION_EVENT, _COPY_EVENT = range(3)
# What a clause is for an English list continued after a comma ("no hemorrhage, exudate or
# DR"): something else, findings only, findings only with a coordination word (ends the list).
_NOT_LIST, _LIST, _LIST_END = range(3)
_LIST_ROLES = frozenset((_TERM, _SITE_TERM, _SITE, _COORDINATION))
_NUMBER = r'(?:0?\.\d+|1(?:\.0+)?)(?![\d.])'
_RATIO_FILLERS = r'(?:[:=≈~>≥\s]|约为|约|为|大约|大于|超过)*'
_LATIN = frozenset('abcdefghijklmnopqrstuvwxyz')
_WORD_CHARACTER = re.compile(r'\w')


@dataclass(frozen=True)
class Mention:
    """One finding read from a report, as :meth:`ReportLabeler.explain` lists it.

    Attributes:
        label: Label key.
        value: 1.0 asserted, 0.5 uncertain, 0.0 negated or stated absent.
        term: The lexicon word (or the ratio text, "杯盘比约0.7") that was matched.
        clause: The clause it was read from, after normalisation.
        cue: The negation or uncertainty cue that set the value, if any.
        eye: 'right', 'left', 'both', or None when the report does not say. A finding that
            one eye has like the other ("左眼同右眼") is listed again with that eye and the
            clause that says so.
        site: The anatomical site that chose the label of a site-dependent word ("黄斑" for
            "水肿"), if any.
        implied: True when the label comes from an implication of ``term``.
    """
    label: str
    value: float
    term: str
    clause: str
    cue: Optional[str] = None
    eye: Optional[str] = None
    site: Optional[str] = None
    implied: bool = False


class ReportLabeler:
    """Turns a fundus report (Chinese, mixed with English, or English) into a label vector,
    following a lexicon.

    Args:
        lexicon: A lexicon file, a loaded :class:`Lexicon`, or None for the default lexicon.
        cache_size: How many clause analyses to keep (reports repeat clauses a lot); 0 turns
            the cache off. The cache is emptied when full.

    Example:
        >>> labeler = ReportLabeler()
        >>> vector = labeler('右眼可见散在微血管瘤及出血，考虑糖尿病视网膜病变', eye='right')
        >>> float(vector[labeler.classes.index('diabetic_retinopathy')])
        0.5
    """

    def __init__(self, lexicon: Union[str, Path, Lexicon, None] = None,
                 cache_size: int = 100_000):
        self.lexicon = lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon)
        self.classes: Tuple[str, ...] = self.lexicon.classes
        self.cache_size = cache_size
        index = {key: i for i, key in enumerate(self.classes)}
        self._normal = index.get('normal')
        self._roles = self._build_roles(index)
        self._term_sites = _term_sites(self.lexicon)
        self._ratios = {anchor: (index[key], rule) for key, rule in self.lexicon.ratios.items()
                        for anchor in rule.anchors}
        self._ratio_anchor = _alternation(self._ratios)
        # In a ratio list a single 右/左 names the eye of the number after it.
        self._ratio_eyes = {'右': 'right', '左': 'left', **{
            word: eye for word, eye in self.lexicon.laterality.items() if eye}}
        ratio_prefix = (rf'{_RATIO_FILLERS}(?:(?P<eye>{_alternation(self._ratio_eyes).pattern})'
                        rf'{_RATIO_FILLERS})?')
        self._ratio_item = re.compile(
            rf'\s*[,、/]?{ratio_prefix}(?P<low>{_NUMBER})'
            rf'(?:\s*(?:-|~|至|到)\s*(?P<high>{_NUMBER}))?')
        self._split = self._build_splitter(ratio_prefix.replace('?P<eye>', '?:'))
        self._tokenizer = None
        self._cache: Dict[str, tuple] = {}

    def __call__(self, report: str, eye: Optional[str] = None) -> np.ndarray:
        """Label vector of ``report``.

        Args:
            report: The report text.
            eye: 'left' or 'right' to ignore what the report says of the other eye; None to
                use every mention.

        Returns:
            float32 array over :attr:`classes`: 1.0 asserted, 0.5 uncertain, 0.0 otherwise.
        """
        values = [0.0] * len(self.classes)
        for _, event, _ in self._mentions(report, eye):
            if event[2] > values[event[1]]:
                values[event[1]] = event[2]
        normal = self._normal
        if normal is not None and values[normal] > 0:
            abnormal = any(value > 0 for index, value in enumerate(values) if index != normal)
            values[normal] = 0.0 if abnormal else 1.0
        return np.asarray(values, dtype=np.float32)

    def explain(self, report: str, eye: Optional[str] = None) -> List[Mention]:
        """Every mention :meth:`__call__` uses, in reading order (what a clinician checks).

        The vector is the maximum value per label over these mentions, except 'normal', which
        is 1.0 only when no other label is above 0.
        """
        return [Mention(self.classes[label], value, term, clause, cue, mention_eye, site, implied)
                for clause, (_, label, value, term, cue, _, site, implied), mention_eye
                in self._mentions(report, eye)]

    def __getstate__(self) -> dict:
        # The jieba tokenizer holds a lock: rebuild it after pickling (e.g. in a worker).
        return {**self.__dict__, '_tokenizer': None, '_cache': {}}

    def _mentions(self, report: str, eye: Optional[str]) -> Iterator[Tuple[str, tuple, str]]:
        """(clause, mention event, eye) of every mention kept for ``eye``."""
        if not isinstance(report, str):
            raise TypeError(f'a report must be a string, got {type(report).__name__}')
        if eye is not None and eye not in EYES:
            raise ValueError(f"eye must be 'left', 'right' or None, got {eye!r}")
        kept = None if eye is None else (None, 'both', eye)
        parts = self._split.split(self.lexicon.normalize(report))  # clause, separator, ...
        carried: Dict[int, Tuple[str, float]] = {}  # part index -> English cue of a list
        read: List[Tuple[tuple, str]] = []  # the mentions so far that name one eye
        current_eye = None
        for index in range(0, len(parts), 2):
            clause = parts[index].strip()
            if not clause:
                continue
            events, carry = self._cache.get(clause) or self._analysis(clause)
            if carry is not None:
                carried.update(self._list_after(parts, index, carry))
            cue = carried.get(index)
            for event in events:
                if event[0] == _MENTION_EVENT:
                    if cue and event[4] is None:
                        event = event[:2] + (cue[1], event[3], cue[0]) + event[5:]
                    mention_eye = event[5] or current_eye
                    if mention_eye == 'left' or mention_eye == 'right':
                        read.append((event, mention_eye))
                    if kept is None or mention_eye in kept:
                        yield clause, event, mention_eye
                elif event[0] == _EYE_EVENT:
                    current_eye = event[1]
                elif current_eye is not None and current_eye != event[1]:  # _COPY_EVENT
                    for old in [old for old, old_eye in read if old_eye == event[1]]:
                        copy = old[:5] + (current_eye, ) + old[6:]
                        if current_eye != 'both':
                            read.append((copy, current_eye))
                        if kept is None or current_eye in kept:
                            yield clause, copy, current_eye

    def _analysis(self, clause: str) -> tuple:
        """:meth:`_analyse` through the clause cache."""
        analysis = self._cache.get(clause)
        if analysis is None:
            analysis = self._analyse(clause)
            if self.cache_size:
                if len(self._cache) >= self.cache_size:
                    self._cache.clear()
                self._cache[clause] = analysis
        return analysis

    def _list_after(self, parts: List[str], index: int,
                    cue: Tuple[str, float]) -> Dict[int, Tuple[str, float]]:
        """The clauses (part index -> ``cue``) that an English cue open at the end of clause
        ``parts[index]`` carries over: "no hemorrhage, exudate or DR" negates all three. A list
        goes on over commas through clauses of findings only and ends with one that holds a
        coordination word; without it, nothing is carried."""
        for end in range(index + 2, len(parts), 2):
            clause = parts[end].strip()
            if parts[end - 1] != ',' or not clause:
                break
            list_kind = self._list_kind(clause, self._analysis(clause)[0])
            if list_kind == _NOT_LIST:
                break
            if list_kind == _LIST_END:
                return dict.fromkeys(range(index + 2, end + 1, 2), cue)
        return {}

    def _analyse(self, clause: str) -> tuple:
        """What one clause says, cached per clause text: its events (eye markers, references
        to the other eye and mentions) in order, and the English cue it passes on to a list
        after a comma (or None)."""
        events, spans = self._ratio_events(clause)
        roles = self._roles
        mentions = []  # [start, end, kind, payload, term, site, forward cue, linked to previous]
        postposed = []  # (start of its findings, marker start, eye) of markers after findings
        sites: List[str] = []
        forward_cue, forward_start = None, 0
        pending: List[Tuple[str, float]] = []  # cues after the last mention of the segment
        segment_start = 0  # index in mentions of the first mention after the last break
        coordinated = False
        marker_end = 0  # end of the last eye marker
        same_as_end = -1  # end of the last same_as word ("同" in "左眼同右眼")
        end = 0
        for token in self._segment(clause):
            start, end = end, end + len(token)
            role = roles.get(token)
            if role is None or (spans and any(a <= start < b for a, b in spans)):
                continue
            if (token[0] in _LATIN and start and clause[start - 1] in _LATIN) or (
                    token[-1] in _LATIN and end < len(clause) and clause[end] in _LATIN):
                continue  # a Latin word only matches whole ("dr" not in "cdr")
            kind, payload = role
            if kind == _CUE:
                forward_cue, forward_start = (token, payload), start
                pending.append(forward_cue)
            elif kind == _COORDINATION:
                coordinated = True
            elif kind == _SITE:
                sites.append(payload)
            elif kind == _SAME_AS:
                same_as_end = end
            elif kind == _EYE:
                if payload and same_as_end >= 0 and not clause[same_as_end:start].strip():
                    events.append((start, (_COPY_EVENT, payload)))
                elif payload and _after_findings(clause, start, end) and (
                        mentions and mentions[-1][0] >= marker_end or any(
                            marker_end <= position < start and event[0] == _MENTION_EVENT
                            for position, event in events)):  # a ratio before the marker
                    postposed.append((marker_end, start, payload))
                else:
                    events.append((start, (_EYE_EVENT, payload)))
                marker_end = end
            elif kind == _BREAK:
                _apply_backward(mentions, segment_start, pending)
                forward_cue, pending, coordinated = None, [], False
                segment_start = len(mentions)
            else:
                site = None
                if kind == _SITE_TERM:
                    label, site = _site_label(payload, sites)
                    if label is None:
                        continue
                    kind, payload = _TERM, ((label, False), )
                if token in self._term_sites:
                    sites.append(self._term_sites[token])
                linked = len(mentions) > segment_start and (
                    coordinated or mentions[-1][1] == start)
                cue = forward_cue if kind == _TERM else None
                mentions.append([start, end, kind, payload, token, site, cue, linked])
                pending, coordinated = [], False
        _apply_backward(mentions, segment_start, pending)
        for start, _, kind, payload, term, site, cue, _ in mentions:
            cue_word, value = cue if cue else (None, 1.0)
            if kind == _ABSENT:
                events.append((start, (_MENTION_EVENT, payload, 0.0, term, None, None, site,
                                       False)))
                continue
            for label, implied in payload:
                events.append((start, (_MENTION_EVENT, label, value, term, cue_word, None, site,
                                       implied)))
        for low, high, eye in postposed:  # the marker names the eye of the findings before it
            events = [(position, event[:5] + (eye, ) + event[6:]) if low <= position < high
                      and event[0] == _MENTION_EVENT and event[5] is None else (position, event)
                      for position, event in events]
        events.sort(key=lambda item: item[0])
        # An English cue still open at the end ("no hemorrhage") may go on over a comma.
        carry = forward_cue if forward_cue and forward_cue[0][0] in _LATIN and mentions \
            and mentions[-1][6] is forward_cue and mentions[-1][0] > forward_start else None
        return tuple(event for _, event in events), carry

    def _list_kind(self, clause: str, events: tuple) -> int:
        """_LIST_END for a clause of findings (and sites) joined by a coordination word,
        _LIST for findings only, _NOT_LIST for anything else. An eye marker may end it
        ("drusen and amd ou")."""
        if not any(event[0] == _MENTION_EVENT for event in events):
            return _NOT_LIST
        list_kind = _LIST
        end = 0
        for token in self._segment(clause):
            start, end = end, end + len(token)
            role = self._roles.get(token)
            if token.isspace():
                continue
            if role is None or (role[0] not in _LIST_ROLES and not (
                    role[0] == _EYE and _after_findings(clause, start, end))):
                return _NOT_LIST
            if role[0] == _COORDINATION:
                list_kind = _LIST_END
        return list_kind

    def _ratio_events(self, clause: str) -> Tuple[list, list]:
        """Mentions of ratios ("杯盘比约0.7", "杯盘比:右0.7,左0.4") and the text they cover."""
        events, spans = [], []
        if self._ratio_anchor is None:
            return events, spans
        for anchor in self._ratio_anchor.finditer(clause):
            label, rule = self._ratios[anchor.group()]
            end = anchor.end()
            while True:
                item = self._ratio_item.match(clause, end)
                if item is None:
                    break
                end = item.end()
                ratio = max(float(item['low']), float(item['high'] or 0))
                term = anchor.group() + item.group().strip(' ,、/')
                eye = self._ratio_eyes.get(item['eye'])
                events.append((item.start(), (_MENTION_EVENT, label, rule.value(ratio), term,
                                              None, eye, None, False)))
            if end > anchor.end():
                spans.append((anchor.start(), end))
        return events, spans

    def _segment(self, clause: str) -> List[str]:
        """jieba words of ``clause``, with the lexicon as the only dictionary."""
        if self._tokenizer is None:
            self._tokenizer = self._build_tokenizer()
        return self._tokenizer.lcut(clause, HMM=False)

    def _build_tokenizer(self):
        """A private jieba tokenizer whose dictionary is the lexicon's vocabulary.

        jieba's general dictionary is not loaded: segmentation depends on the lexicon only, so
        an ophthalmologist controls which longer words hide which terms (add a neutral word).
        """
        with warnings.catch_warnings():  # jieba 0.42's import-time warnings: keep it quiet
            warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
            warnings.simplefilter('ignore', SyntaxWarning)  # its regex strings, Python >= 3.12
            import jieba
        logging.getLogger('jieba').setLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        dictionary = ''.join(f'{word} {_WORD_FREQUENCY}\n'
                             for word in sorted(set(self.lexicon.vocabulary())))
        tokenizer.FREQ, tokenizer.total = tokenizer.gen_pfdict(
            io.BytesIO(dictionary.encode('utf-8')))
        tokenizer.initialized = True
        return tokenizer

    def _build_roles(self, index: Dict[str, int]) -> Dict[str, tuple]:
        lexicon = self.lexicon
        roles = {word: (_TERM, tuple((index[label], implied) for label, implied in pairs))
                 for word, pairs in lexicon.terms.items()}
        roles.update((word, (_ABSENT, index[label])) for word, label in lexicon.absent.items())
        roles.update((word, (_SITE, site)) for word, site in lexicon.sites.items())
        roles.update((word, (_SITE_TERM, SiteTerm(
            index.get(entry.default),
            {site: index.get(label) for site, label in entry.at.items()})))
            for word, entry in lexicon.site_terms.items())
        roles.update((word, (_CUE, 0.0)) for word in lexicon.negation)
        roles.update((word, (_CUE, 0.5)) for word in lexicon.uncertainty)
        roles.update((word, (_COORDINATION, None)) for word in lexicon.coordination)
        roles.update((word, (_BREAK, None)) for word in lexicon.clause_starts)
        roles.update((word, (_SAME_AS, None)) for word in lexicon.same_as)
        roles.update((word, (_EYE, eye)) for word, eye in lexicon.laterality.items())
        return roles

    @staticmethod
    def _build_splitter(ratio_prefix: str) -> 're.Pattern':
        """Splits a report into clauses, keeping the separators: on 。;!, line breaks, a comma,
        a full stop that is not a decimal point, and after '?' unless a Latin word follows it
        ("?dr" asks about DR). A comma followed by the next number of a ratio list
        ("杯盘比:右0.7,左0.4") does not split."""
        separators = re.escape(''.join(sorted(CLAUSE_SEPARATORS - {','})))
        return re.compile(rf'([{separators}]+|,(?!{ratio_prefix}{_NUMBER})'
                          r'|(?<!\d)\.|\.(?!\d)|(?<=\?)(?![a-z]))')


def _after_findings(clause: str, start: int, end: int) -> bool:
    """Whether the eye marker ``clause[start:end]`` may name the eye of the findings before it:
    it stands alone in parentheses ("激光斑(右眼)") or ends the clause ("drusen ou")."""
    return not _WORD_CHARACTER.search(clause, end) or (
        clause[:start].rstrip().endswith('(') and clause[end:].lstrip().startswith(')'))


def _apply_backward(mentions: list, segment_start: int, cues: List[Tuple[str, float]]) -> None:
    """Apply cues written after the findings ("出血及渗出待排") to the last mention of the
    segment and the mentions coordinated with it."""
    if not cues or len(mentions) == segment_start:
        return
    cue = min(cues, key=lambda item: item[1])
    index = len(mentions) - 1
    while index >= segment_start:
        mention = mentions[index]
        if mention[2] == _TERM and (mention[6] is None or cue[1] < mention[6][1]):
            mention[6] = cue
        if not mention[7]:
            break
        index -= 1


def _term_sites(lexicon: Lexicon) -> Dict[str, str]:
    """Term -> site its text starts with ("黄斑水肿" -> 黄斑): it names the site for the words
    after it, like the site word itself would."""
    site_words = sorted(lexicon.sites, key=len, reverse=True)
    term_sites = {}
    for term in (*lexicon.terms, *lexicon.absent):
        site_word = next((word for word in site_words if term.startswith(word)), None)
        if site_word:
            term_sites[term] = lexicon.sites[site_word]
    return term_sites


def _site_label(entry: SiteTerm, sites: List[str]) -> Tuple[Optional[int], Optional[str]]:
    """Label index of a site-dependent word given the sites named before it, and the site."""
    for site in reversed(sites):
        if site in entry.at:
            return entry.at[site], site
    return entry.default, None


def _alternation(words) -> Optional['re.Pattern']:
    """A regex matching any of ``words``, longest first; None for no words."""
    if not words:
        return None
    return re.compile('|'.join(map(re.escape, sorted(words, key=len, reverse=True))))
