"""What one synthetic fundus image shows: the sampled case behind its image and its report.

A :class:`FundusCase` is drawn first (from its own random stream), then the image and the report
are both rendered from it, so they agree by construction. ``FundusCase.findings`` holds the value
each asserted finding gets under the labelling rules of ``docs/labels.md``: 1.0 for a certain
mention, 0.5 for an uncertain one ("可疑青光眼", "C/D 0.5"); absent findings are 0.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Tuple

import numpy as np

#: Cup-to-disc ratios at and above which the labelling rules set ``cup_enlargement`` to 0.5 / 1.0.
CUP_RATIO_UNCERTAIN = 0.5
CUP_RATIO_ENLARGED = 0.6


@dataclass
class FundusCase:
    """The content of one synthetic image.

    Args:
        eye: ``'left'`` or ``'right'``.
        cup_to_disc: Vertical cup-to-disc ratio, one decimal; drawn and written in the report.
        findings: Abnormal finding key -> label value (1.0 certain, 0.5 uncertain).
        details: How findings look, shared by the drawing and the report: ``dr_stage``
            (mild/moderate/severe/proliferative), ``load`` (finding -> amount in [0, 1]),
            ``rvo_type`` (branch/central), ``rvo_vein`` / ``rnfl_side`` (superior/inferior),
            ``amd_type`` (dry/wet), ``vitreous_type`` (opacity/hemorrhage), ``rd_side``
            (superior/inferior/temporal/nasal), ``exudate_pattern`` (scattered/circinate/
            macular), ``laser_pattern`` (panretinal/sectoral), ``myopic_patches``,
            ``flame_only`` and ``foveal_reflex`` (bools).
    """

    eye: str
    cup_to_disc: float
    findings: Dict[str, float] = field(default_factory=dict)
    details: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_normal(self) -> bool:
        """Whether the image shows no abnormal finding."""
        return not self.findings

    def load(self, key: str) -> float:
        """Amount in [0, 1] of a finding (lesion count, extent); 0.5 when not given."""
        return self.details.get('load', {}).get(key, 0.5)

    def labels(self, classes: Tuple[str, ...]) -> Dict[str, float]:
        """Ground-truth label values over ``classes`` (``normal`` is 1.0 only for normal cases)."""
        unknown = set(self.findings) - set(classes)
        if unknown:
            raise KeyError(f'findings {sorted(unknown)} are not in the label set {classes}; '
                           'use a lexicon that defines them.')
        values = {key: float(self.findings.get(key, 0.0)) for key in classes}
        values['normal'] = 1.0 if self.is_normal else 0.0
        return values


def cup_enlargement_value(cup_to_disc: float) -> float:
    """Label value the rules derive from a written cup-to-disc ratio."""
    if cup_to_disc >= CUP_RATIO_ENLARGED:
        return 1.0
    return 0.5 if cup_to_disc >= CUP_RATIO_UNCERTAIN else 0.0


class _Draft:
    """A case under construction."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.eye = 'right' if rng.random() < 0.5 else 'left'
        self.cup_to_disc = round(float(rng.uniform(0.2, 0.45)), 1)
        self.findings: Dict[str, float] = {}
        self.details: Dict[str, Any] = {'load': {}}

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def add(self, key: str, value: float = 1.0, load: float = None) -> None:
        """Assert a finding; ``load`` sets its amount (random when omitted)."""
        self.findings[key] = max(self.findings.get(key, 0.0), value)
        current = self.details['load'].get(key, 0.0)
        amount = float(self.rng.uniform(0.3, 1.0)) if load is None else load
        self.details['load'][key] = max(current, amount)

    def diagnosis(self, key: str, p_uncertain: float) -> None:
        """Assert a diagnosis, stated uncertainly with probability ``p_uncertain``."""
        self.add(key, 0.5 if self.chance(p_uncertain) else 1.0)

    def set_cup(self, low: float, high: float) -> None:
        self.cup_to_disc = round(float(self.rng.uniform(low, high)), 1)
        value = cup_enlargement_value(self.cup_to_disc)
        if value:
            self.add('cup_enlargement', value, load=self.cup_to_disc)


def _normal(d: _Draft) -> None:
    """No finding."""


def _diabetic_retinopathy(d: _Draft) -> None:
    stage = d.pick(('mild', 'moderate', 'moderate', 'severe', 'proliferative'))
    d.details['dr_stage'] = stage
    d.diagnosis('diabetic_retinopathy', 0.15)
    d.add('microaneurysm', load=float(d.rng.uniform(0.4, 1.0)))
    if stage == 'mild':
        if d.chance(0.5):
            d.add('hemorrhage', load=float(d.rng.uniform(0.1, 0.3)))
        return
    heavy = stage in ('severe', 'proliferative')
    d.add('hemorrhage', load=float(d.rng.uniform(0.5, 1.0) if heavy else d.rng.uniform(0.2, 0.6)))
    if d.chance(0.75):
        d.add('hard_exudate')
        d.details['exudate_pattern'] = d.pick(('scattered', 'circinate'))
    if d.chance(0.7 if heavy else 0.3):
        d.add('cotton_wool_spot')
    if d.chance(0.3):
        d.add('macular_edema')
        d.add('hard_exudate')
        d.details['exudate_pattern'] = 'macular'
    if stage == 'proliferative':
        if d.chance(0.6):
            d.add('laser_scar')
            d.details['laser_pattern'] = 'panretinal'
        if d.chance(0.25):
            d.add('vitreous_opacity', load=float(d.rng.uniform(0.3, 0.6)))
            d.details['vitreous_type'] = 'hemorrhage'


def _amd(d: _Draft) -> None:
    d.details['amd_type'] = amd_type = 'wet' if d.chance(0.35) else 'dry'
    d.diagnosis('amd', 0.2)
    d.add('drusen', load=float(d.rng.uniform(0.5, 1.0)))
    if amd_type == 'wet':
        d.add('hemorrhage', load=float(d.rng.uniform(0.4, 0.8)))
        if d.chance(0.5):
            d.add('hard_exudate')
            d.details['exudate_pattern'] = 'macular'


def _drusen(d: _Draft) -> None:
    d.add('drusen', load=float(d.rng.uniform(0.2, 0.5)))


def _glaucoma(d: _Draft) -> None:
    if d.chance(0.2):  # glaucoma suspect with a borderline cup
        d.set_cup(0.5, 0.54)
        d.add('glaucoma', 0.5)
    else:
        d.set_cup(0.6, 0.94)
        d.diagnosis('glaucoma', 0.5 if d.cup_to_disc < 0.7 else 0.15)
    if d.chance(0.45):
        d.add('rnfl_defect')
        d.details['rnfl_side'] = d.pick(('superior', 'inferior'))
    if d.chance(0.3):
        d.add('chorioretinal_atrophy', load=float(d.rng.uniform(0.2, 0.5)))


def _pathologic_myopia(d: _Draft) -> None:
    d.diagnosis('pathologic_myopia', 0.1)
    d.add('tessellated_fundus', load=float(d.rng.uniform(0.6, 1.0)))
    d.add('chorioretinal_atrophy', load=float(d.rng.uniform(0.5, 1.0)))
    d.details['myopic_patches'] = d.chance(0.6)


def _tessellated_fundus(d: _Draft) -> None:
    d.add('tessellated_fundus', load=float(d.rng.uniform(0.4, 0.8)))
    if d.chance(0.4):
        d.add('chorioretinal_atrophy', load=float(d.rng.uniform(0.2, 0.5)))


def _rvo(d: _Draft) -> None:
    d.details['rvo_type'] = rvo_type = 'central' if d.chance(0.3) else 'branch'
    d.details['rvo_vein'] = d.pick(('superior', 'superior', 'inferior'))
    d.diagnosis('rvo', 0.1)
    d.add('hemorrhage', load=float(d.rng.uniform(0.6, 1.0)))
    if d.chance(0.4):
        d.add('cotton_wool_spot')
    if d.chance(0.35):
        d.add('macular_edema')
    if d.chance(0.2):
        d.add('laser_scar')
        d.details['laser_pattern'] = 'panretinal' if rvo_type == 'central' else 'sectoral'


def _rao(d: _Draft) -> None:
    d.diagnosis('rao', 0.1)


def _hypertensive_retinopathy(d: _Draft) -> None:
    d.diagnosis('hypertensive_retinopathy', 0.2)
    if d.chance(0.6):
        d.add('hemorrhage', load=float(d.rng.uniform(0.2, 0.6)))
        d.details['flame_only'] = True
    if d.chance(0.6):
        d.add('cotton_wool_spot')
    if d.chance(0.25):
        d.add('hard_exudate')
        d.details['exudate_pattern'] = 'macular'


def _optic_atrophy(d: _Draft) -> None:
    d.add('optic_atrophy')


def _papilledema(d: _Draft) -> None:
    d.add('papilledema')
    if d.chance(0.4):
        d.add('hemorrhage', load=float(d.rng.uniform(0.2, 0.5)))
        d.details['flame_only'] = True
    if d.chance(0.25):
        d.add('cotton_wool_spot', load=float(d.rng.uniform(0.2, 0.5)))


def _macular_hole(d: _Draft) -> None:
    d.add('macular_hole')


def _epiretinal_membrane(d: _Draft) -> None:
    d.add('epiretinal_membrane')


def _retinal_detachment(d: _Draft) -> None:
    d.add('retinal_detachment')
    d.details['rd_side'] = d.pick(('superior', 'inferior', 'temporal', 'nasal'))


def _vitreous_opacity(d: _Draft) -> None:
    d.details['vitreous_type'] = 'hemorrhage' if d.chance(0.3) else 'opacity'
    d.add('vitreous_opacity', load=float(d.rng.uniform(0.5, 1.0)))


#: Primary scenarios and their probabilities (they sum to 1).
SCENARIOS: Tuple[Tuple[str, float, Callable[[_Draft], None]], ...] = (
    ('normal', 0.24, _normal),
    ('diabetic_retinopathy', 0.18, _diabetic_retinopathy),
    ('amd', 0.08, _amd),
    ('drusen', 0.03, _drusen),
    ('glaucoma', 0.09, _glaucoma),
    ('pathologic_myopia', 0.06, _pathologic_myopia),
    ('tessellated_fundus', 0.04, _tessellated_fundus),
    ('rvo', 0.05, _rvo),
    ('rao', 0.03, _rao),
    ('hypertensive_retinopathy', 0.035, _hypertensive_retinopathy),
    ('optic_atrophy', 0.03, _optic_atrophy),
    ('papilledema', 0.03, _papilledema),
    ('macular_hole', 0.025, _macular_hole),
    ('epiretinal_membrane', 0.025, _epiretinal_membrane),
    ('retinal_detachment', 0.025, _retinal_detachment),
    ('vitreous_opacity', 0.03, _vitreous_opacity),
)

#: Findings that may accompany an abnormal primary scenario (older or myopic eyes).
COMORBIDITIES: Tuple[Callable[[_Draft], None], ...] = (
    _drusen, _tessellated_fundus, _epiretinal_membrane, _vitreous_opacity, _glaucoma)


def _compatible(draft: _Draft, extra: Callable[[_Draft], None]) -> bool:
    """One vitreous opacity per eye; a glaucomatous cup only on an unremarkable disc."""
    if extra is _vitreous_opacity:
        return 'vitreous_opacity' not in draft.findings
    if extra is _glaucoma:
        return draft.cup_to_disc < CUP_RATIO_UNCERTAIN and not (
            {'papilledema', 'optic_atrophy'} & set(draft.findings))
    return True


def sample_case(rng: np.random.Generator) -> FundusCase:
    """Draw the content of one image: eye, cup-to-disc ratio, findings in a plausible combination.

    Args:
        rng: Random stream used for nothing else.

    Returns:
        The case; about a quarter of cases are normal.
    """
    draft = _Draft(rng)
    weights = np.array([weight for _, weight, _ in SCENARIOS])
    _, _, build = SCENARIOS[int(rng.choice(len(SCENARIOS), p=weights / weights.sum()))]
    build(draft)
    if draft.findings and draft.chance(0.2):
        extra = draft.pick(COMORBIDITIES)
        if _compatible(draft, extra):
            extra(draft)
    macular = {'macular_edema', 'macular_hole', 'rao', 'epiretinal_membrane', 'retinal_detachment',
               'amd', 'vitreous_opacity'}
    draft.details['foveal_reflex'] = not macular & set(draft.findings) and draft.chance(0.85)
    return FundusCase(draft.eye, draft.cup_to_disc, draft.findings, draft.details)
