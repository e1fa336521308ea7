"""Chinese fundus reports for synthetic cases, written the way clinicians write them.

A report has a findings part (media, optic disc, vessels, retina, macula, periphery) and a
diagnosis. Every abnormal finding of the case is mentioned with the certainty the case gives it
(uncertain diagnoses use 可疑 / 考虑 / 待查 / 不除外 ...), some absent findings are negated
("未见出血及渗出"), unaffected structures get the usual normal descriptions ("视盘色淡红，边界清",
"黄斑中心凹反光可见"), and the cup-to-disc ratio is written as a number. Only terms of the default
lexicon name a finding, and cue words never share a clause with a finding they must not touch, so
the labelling rules recover exactly ``FundusCase.labels``.
"""
from typing import List, Sequence

import numpy as np

from .cases import CUP_RATIO_ENLARGED, CUP_RATIO_UNCERTAIN, FundusCase

EYE_NAMES = {'right': ('右眼', 'OD'), 'left': ('左眼', 'OS')}

# ------------------------------------------------------------------ normal descriptions
DISC_NORMAL = ('视盘色淡红，边界清', '视盘界清色可', '视盘边界清楚，色泽正常', '视乳头色红，边界清晰',
               '视盘色红润，边界清')
DISC_PALE = ('视盘色淡，边界清', '视盘苍白，边界清楚', '视盘颜色苍白，界清')
DISC_SWOLLEN = ('视盘水肿，边界模糊', '视盘充血水肿，边界不清', '视乳头水肿隆起，边界欠清')
CUP_RATIO = ('C/D约{}', '杯盘比{}', 'C/D={}', '杯盘比约{}', 'C/D {}', 'C/D:{}')
CUP_LARGE = ('视杯扩大', '盘沿变窄', '杯盘比增大', '视杯扩大，盘沿变窄')
VESSELS_NORMAL = ('视网膜血管走行正常', '血管走行自然，动静脉比例约2:3', '视网膜动静脉比例正常',
                  'A:V=2:3')
RETINA_FLAT = ('视网膜平伏', '视网膜在位', '后极部视网膜平伏')
MACULA_REFLEX = ('黄斑中心凹反光可见', '黄斑中心凹反光存在', '黄斑区色素均匀，中心凹反光可见',
                 '黄斑中心凹反光清晰')
MACULA_DULL = ('黄斑中心凹反光不清', '黄斑中心凹反光欠清', '黄斑中心凹反光消失')
MEDIA_CLEAR = ('屈光间质清', '屈光间质透明')
NORMAL_DIAGNOSIS = ('{eye}眼底未见明显异常', '{eye}正常眼底', '{eye}眼底正常', '{eye}眼底未见明显异常')
NEGATION = ('未见{}', '未见明显{}', '无{}', '未发现{}', '无明显{}')
#: How absent lesions are negated; 渗出 alone means hard exudate under the labelling rules.
NEGATABLE = {'hemorrhage': ('出血',), 'hard_exudate': ('渗出', '硬性渗出'),
             'microaneurysm': ('微血管瘤',), 'cotton_wool_spot': ('棉絮斑',),
             'drusen': ('玻璃膜疣',)}

# ------------------------------------------------------------------ findings
MICROANEURYSM = ('后极部可见散在微血管瘤', '视网膜散在微血管瘤', '可见多个微动脉瘤', '后极部散在微血管瘤')
MICROANEURYSM_AND_HEMORRHAGE = ('后极部可见散在微血管瘤及点状出血', '视网膜可见微血管瘤和片状出血',
                                '后极部散在微动脉瘤及出血')
HEMORRHAGE = {
    'dot': ('散在点状出血', '可见点状及片状出血', '视网膜可见片状出血', '后极部散在视网膜出血'),
    'flame': ('可见火焰状出血', '后极部散在火焰状出血', '视网膜可见火焰状出血'),
    'peripapillary': ('视盘周围可见火焰状出血', '视盘旁火焰状出血'),
    'macular': ('黄斑区出血', '黄斑区可见片状出血', '黄斑区视网膜下出血'),
    'branch': ('沿{vein}支静脉可见火焰状出血', '{vein}支静脉分布区片状出血',
               '沿{vein}支静脉走行可见大量出血'),
    'central': ('视网膜四个象限可见大量火焰状出血', '各象限视网膜可见片状出血', '视网膜广泛火焰状出血'),
}
HARD_EXUDATE = {
    'scattered': ('可见散在硬性渗出', '后极部可见黄白色硬性渗出', '后极部可见渗出', '散在硬性渗出'),
    'circinate': ('后极部可见环形硬性渗出', '可见环状硬性渗出', '可见黄白色环形渗出'),
    'macular': ('黄斑区可见硬性渗出', '黄斑区星芒状渗出', '黄斑区可见黄白色硬性渗出'),
}
COTTON_WOOL = ('可见棉絮斑', '视盘周围可见棉絮斑', '后极部散在棉絮斑', '可见软性渗出', '散在软性渗出')
DRUSEN = ('黄斑区可见散在玻璃膜疣', '黄斑区多个玻璃膜疣', '后极部可见玻璃膜疣', '黄斑区可见黄白色玻璃膜疣',
          '黄斑区玻璃膜疣')
AMD_PIGMENT = ('黄斑区色素紊乱', '黄斑区色素沉着')
AMD_MEMBRANE = ('黄斑区灰绿色病灶',)
LASER = {'panretinal': ('周边视网膜可见激光斑', '全视网膜光凝术后', '视网膜可见陈旧激光光凝斑',
                        '周边部可见激光瘢痕'),
         'sectoral': ('{vein}象限可见激光光凝斑', '{vein}方可见激光斑')}
TESSELLATION = ('眼底呈豹纹状改变', '豹纹状眼底', '后极部呈豹纹状改变')
PPA = ('视盘颞侧可见弧形斑', '视盘旁萎缩', '视盘周围可见萎缩灶', '视盘旁可见脉络膜视网膜萎缩')
MYOPIC_PATCHES = ('后极部可见萎缩灶', '黄斑区周围可见萎缩灶', '后极部可见脉络膜视网膜萎缩')
RNFL_DEFECT = ('{side}方视网膜神经纤维层缺损', '{side}方可见楔形神经纤维层缺损', '{side}方RNFLD')
RVO_VEIN = {'branch': ('{vein}支静脉迂曲扩张', '{vein}分支静脉迂曲扩张'),
            'central': ('各支静脉迂曲扩张', '视网膜静脉普遍迂曲扩张')}
RAO_SIGNS = ('视网膜动脉明显变细，后极部视网膜灰白', '视网膜动脉细窄，后极部视网膜呈灰白色')
CHERRY_RED = ('黄斑樱桃红斑', '黄斑区樱桃红点')
HYPERTENSIVE_SIGNS = ('视网膜动脉变细，反光增强', '视网膜动脉变细')
HYPERTENSIVE_CERTAIN = ('可见动静脉交叉压迫', '动静脉交叉压迫征(+)', '视网膜动脉硬化')
MACULAR_EDEMA = ('黄斑水肿', '黄斑区水肿', '黄斑囊样水肿')
MACULAR_HOLE = ('黄斑裂孔', '黄斑区可见全层黄斑裂孔', '黄斑孔')
ERM = ('黄斑前膜', '黄斑区可见视网膜前膜', '黄斑区玻璃纸样反光，黄斑前膜', '黄斑部前膜')
DETACHMENT = ('{side}视网膜脱离', '{side}视网膜呈灰白色隆起，视网膜脱离', '{side}视网膜脱离，可见皱褶')
VITREOUS = {'opacity': ('玻璃体混浊', '玻璃体可见混浊', '屈光间质混浊'),
            'hemorrhage': ('玻璃体积血', '玻璃体积血，眼底窥视欠清')}
VERTICAL_NAMES = {'superior': '颞上', 'inferior': '颞下'}
SIDE_NAMES = {'superior': '上方', 'inferior': '下方', 'temporal': '颞侧', 'nasal': '鼻侧'}

# ------------------------------------------------------------------ diagnoses
DIAGNOSIS_PREFIX = ('诊断：', '印象：', '结论：', '初步诊断：')
UNCERTAIN = ('可疑{}', '考虑{}', '{}待查', '不除外{}', '{}可能', '{}待排', '疑似{}')
DIAGNOSES = {
    'diabetic_retinopathy': ('糖尿病视网膜病变', '糖尿病性视网膜病变', '糖网'),
    'glaucoma': ('青光眼', '青光眼性视神经病变', '青光眼视盘改变'),
    'amd': ('年龄相关性黄斑变性', '老年性黄斑变性', 'AMD'),
    'rvo': ('视网膜静脉阻塞',),
    'rao': ('视网膜中央动脉阻塞', 'CRAO'),
    'pathologic_myopia': ('病理性近视', '高度近视眼底改变', '病理性近视眼底'),
    'hypertensive_retinopathy': ('高血压视网膜病变',),
    'papilledema': ('视乳头水肿', '视盘水肿'),
    'optic_atrophy': ('视神经萎缩',),
    'macular_hole': ('黄斑裂孔',),
    'epiretinal_membrane': ('黄斑前膜', '视网膜前膜'),
    'retinal_detachment': ('视网膜脱离',),
    'macular_edema': ('黄斑水肿',),
    'tessellated_fundus': ('豹纹状眼底',),
    'drusen': ('玻璃膜疣',),
    'chorioretinal_atrophy': ('视盘旁萎缩',),
    'laser_scar': ('激光光凝术后',),
}
DR_STAGES = {
    'mild': ('轻度非增殖期糖尿病视网膜病变', '糖尿病视网膜病变(轻度非增殖期)', '轻度NPDR'),
    'moderate': ('中度非增殖期糖尿病视网膜病变', '糖尿病视网膜病变(非增殖期)', 'NPDR', '中度NPDR'),
    'severe': ('重度非增殖期糖尿病视网膜病变', '糖尿病视网膜病变(重度非增殖期)', '重度NPDR'),
    'proliferative': ('增殖期糖尿病视网膜病变', '糖尿病视网膜病变(增殖期)', 'PDR'),
}
RVO_TYPES = {'branch': ('视网膜分支静脉阻塞', 'BRVO', '{vein}分支静脉阻塞'),
             'central': ('视网膜中央静脉阻塞', 'CRVO')}
#: Findings named in the diagnosis when present (besides the disease-level keys).
DIAGNOSED_FINDINGS = ('papilledema', 'optic_atrophy', 'macular_hole', 'epiretinal_membrane',
                      'retinal_detachment', 'macular_edema', 'tessellated_fundus', 'drusen',
                      'chorioretinal_atrophy', 'laser_scar', 'vitreous_opacity')
DISEASES = ('diabetic_retinopathy', 'rvo', 'rao', 'amd', 'glaucoma', 'pathologic_myopia',
            'hypertensive_retinopathy')


class _Writer:
    """Writes one report; holds the case and the random stream."""

    def __init__(self, case: FundusCase, rng: np.random.Generator):
        self.case, self.rng = case, rng
        self.findings = case.findings
        details = case.details
        self.vein = VERTICAL_NAMES[details.get('rvo_vein', 'superior')]

    def pick(self, options: Sequence[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def has(self, key: str) -> bool:
        return key in self.findings

    def certain(self, key: str) -> bool:
        return self.findings.get(key) == 1.0

    # ---------------------------------------------------------------- sections
    def media(self) -> List[str]:
        if self.has('vitreous_opacity'):
            return [self.pick(VITREOUS[self.case.details.get('vitreous_type', 'opacity')])]
        return [self.pick(MEDIA_CLEAR)] if self.chance(0.35) else []

    def disc(self) -> List[str]:
        case = self.case
        if self.has('papilledema'):
            clauses = [self.pick(DISC_SWOLLEN)]
        else:
            clauses = [self.pick(DISC_PALE if self.has('optic_atrophy') else DISC_NORMAL)]
            if case.cup_to_disc >= CUP_RATIO_UNCERTAIN or self.chance(0.8):
                clauses.append(self.pick(CUP_RATIO).format(f'{case.cup_to_disc:.1f}'))
            if case.cup_to_disc >= CUP_RATIO_ENLARGED and self.chance(0.6):
                clauses.append(self.pick(CUP_LARGE))
        if self.has('chorioretinal_atrophy'):
            clauses.append(self.pick(PPA))
            if case.details.get('myopic_patches'):
                clauses.append(self.pick(MYOPIC_PATCHES))
        if self.has('rnfl_defect'):
            side = VERTICAL_NAMES[case.details.get('rnfl_side', 'inferior')]
            clauses.append(self.pick(RNFL_DEFECT).format(side=side))
        return clauses

    def vessels(self) -> List[str]:
        details = self.case.details
        if self.has('rvo'):
            rvo_type = details.get('rvo_type', 'branch')
            clauses = [self.pick(RVO_VEIN[rvo_type]).format(vein=self.vein)]
            clauses.append(self.pick(HEMORRHAGE[rvo_type]).format(vein=self.vein))
            return clauses
        if self.has('rao'):
            return [self.pick(RAO_SIGNS)]
        if self.has('hypertensive_retinopathy'):
            clauses = [self.pick(HYPERTENSIVE_SIGNS)]
            if self.certain('hypertensive_retinopathy') and self.chance(0.7):
                clauses.append(self.pick(HYPERTENSIVE_CERTAIN))
            return clauses
        return [self.pick(VESSELS_NORMAL)] if self.chance(0.5) else []

    def retina(self) -> List[str]:
        details = self.case.details
        clauses = []
        if self.has('tessellated_fundus'):
            clauses.append(self.pick(TESSELLATION))
        hemorrhage = self.has('hemorrhage') and not ({'rvo', 'amd'} & set(self.findings))
        if self.has('microaneurysm') and hemorrhage and not details.get('flame_only') \
                and self.chance(0.5):
            clauses.append(self.pick(MICROANEURYSM_AND_HEMORRHAGE))
            hemorrhage = False
        elif self.has('microaneurysm'):
            clauses.append(self.pick(MICROANEURYSM))
        if hemorrhage:
            if self.has('papilledema'):
                style = 'peripapillary'
            else:
                style = 'flame' if details.get('flame_only') else 'dot'
            clauses.append(self.pick(HEMORRHAGE[style]))
        pattern = details.get('exudate_pattern', 'scattered')
        if self.has('hard_exudate') and pattern != 'macular':
            clauses.append(self.pick(HARD_EXUDATE[pattern]))
        if self.has('cotton_wool_spot'):
            clauses.append(self.pick(COTTON_WOOL))
        if self.has('laser_scar'):
            pattern = details.get('laser_pattern', 'panretinal')
            clauses.append(self.pick(LASER[pattern]).format(vein=self.vein))
        if self.has('retinal_detachment'):
            side = SIDE_NAMES[details.get('rd_side', 'inferior')]
            clauses.append(self.pick(DETACHMENT).format(side=side))
        elif self.chance(0.6):
            clauses.append(self.pick(RETINA_FLAT))
        clauses.extend(self.negations())
        return clauses

    def negations(self) -> List[str]:
        """Negate one or two absent lesions, in one clause ("未见出血及渗出")."""
        absent = [key for key in NEGATABLE if not self.has(key)]
        if not absent or self.chance(0.25):
            return []
        count = min(len(absent), 1 + int(self.chance(0.6)))
        keys = [absent[i] for i in sorted(self.rng.choice(len(absent), count, replace=False))]
        terms = [self.pick(NEGATABLE[key]) for key in keys]
        return [self.pick(NEGATION).format(self.pick(('及', '和')).join(terms))]

    def macula(self) -> List[str]:
        details = self.case.details
        clauses = []
        if self.has('rao'):
            clauses.append(self.pick(CHERRY_RED))
        if self.has('drusen'):
            clauses.append(self.pick(DRUSEN))
        if self.has('amd'):
            clauses.append(self.pick(AMD_PIGMENT))
            if details.get('amd_type') == 'wet':
                clauses.append(self.pick(AMD_MEMBRANE))
                clauses.append(self.pick(HEMORRHAGE['macular']))
        if self.has('hard_exudate') and details.get('exudate_pattern') == 'macular':
            clauses.append(self.pick(HARD_EXUDATE['macular']))
        if self.has('macular_edema'):
            clauses.append(self.pick(MACULAR_EDEMA))
        if self.has('macular_hole'):
            clauses.append(self.pick(MACULAR_HOLE))
        if self.has('epiretinal_membrane'):
            clauses.append(self.pick(ERM))
        if details.get('foveal_reflex'):
            clauses.append(self.pick(MACULA_REFLEX))
        elif not self.has('vitreous_opacity') and not self.has('rao'):
            clauses.append(self.pick(MACULA_DULL))
        return clauses

    # ---------------------------------------------------------------- diagnosis
    def term(self, key: str) -> str:
        """A diagnosis naming ``key``, with an uncertainty cue when the case is uncertain."""
        details = self.case.details
        certain = self.certain(key)
        if key == 'diabetic_retinopathy' and certain and self.chance(0.7):
            text = self.pick(DR_STAGES[details.get('dr_stage', 'moderate')])
        elif key == 'rvo' and certain and self.chance(0.7):
            text = self.pick(RVO_TYPES[details.get('rvo_type', 'branch')]).format(vein=self.vein)
        elif key == 'vitreous_opacity':
            text = '玻璃体积血' if details.get('vitreous_type') == 'hemorrhage' else '玻璃体混浊'
        elif key == 'amd' and certain and self.chance(0.3):
            text = self.pick(DIAGNOSES['amd'][:2]) + ('(湿性)' if details.get('amd_type') == 'wet'
                                                      else '(干性)')
        else:
            text = self.pick(DIAGNOSES[key])
        return text if certain else self.pick(UNCERTAIN).format(text)

    def diagnosis(self, eye: str) -> List[str]:
        if self.case.is_normal:
            return [self.pick(NORMAL_DIAGNOSIS).format(eye=eye)]
        keys = [key for key in DISEASES if self.has(key)]
        optional = [key for key in DIAGNOSED_FINDINGS if self.has(key)]
        if not keys or self.chance(0.5):
            keys += optional if not keys else optional[:1]
        items = [self.term(key) for key in keys]
        if not items:  # a lone lesion the disease list does not cover (e.g. rnfl_defect)
            return []
        items[0] = eye + items[0]
        return items

    # ---------------------------------------------------------------- the report
    def write(self) -> str:
        zh, en = EYE_NAMES[self.case.eye]
        header = self.pick((f'{zh}：', f'{zh}眼底：', f'{en}：', ''))
        diagnosis = self.diagnosis(zh if not header or self.chance(0.4) else '')
        if not diagnosis and not header:  # the eye must be named somewhere
            header = f'{zh}：'
        sentences = []
        if self.case.is_normal and self.chance(0.15):
            sentences.append('眼底未见明显异常')
        else:
            sections = (self.media(), self.disc(), self.vessels(), self.retina(), self.macula())
            for section in sections:
                if section:
                    sentences.append('，'.join(section))
        findings = '。'.join(sentences) if self.chance(0.5) else '，'.join(sentences)
        if not diagnosis:
            return f'{header}{findings}。'
        numbered = len(diagnosis) > 1 and self.chance(0.4)
        joined = '；'.join(f'{i + 1}.{item}' if numbered else item
                          for i, item in enumerate(diagnosis))
        return f'{header}{findings}。{self.pick(DIAGNOSIS_PREFIX)}{joined}'


def write_report(case: FundusCase, rng: np.random.Generator) -> str:
    """Write the Chinese report of ``case``.

    Args:
        case: The case (its findings decide what is asserted, negated or left uncertain).
        rng: Random stream used for nothing else (template and synonym choices).

    Returns:
        The report text.
    """
    return _Writer(case, rng).write()

