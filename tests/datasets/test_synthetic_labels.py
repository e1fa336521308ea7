"""The synthetic reports and their ground truth agree with the report labeler."""
import numpy as np

from vilref_mm.datasets.synthetic import label_classes, make_sample
from vilref_mm.labeling import ReportLabeler


def test_labeler_recovers_the_ground_truth():
    labeler = ReportLabeler()
    assert tuple(labeler.classes) == label_classes()
    mismatches = []
    total = 300
    for index in range(total):
        sample = make_sample(21, ('train', 'val', 'test')[index % 3], index, render=False)
        truth = np.array([sample.findings[key] for key in labeler.classes], np.float32)
        predicted = labeler(sample.report, eye=sample.eye)
        if not np.array_equal(predicted, truth):
            differences = {key: (float(t), float(p)) for key, t, p
                           in zip(labeler.classes, truth, predicted) if t != p}
            mismatches.append(f'{sample.report} {differences}')
    assert len(mismatches) <= 0.02 * total, '\n'.join(mismatches[:10])


def test_uncertain_and_negated_findings_are_exercised():
    """The reports use the 0.5 and negation paths of the labelling rules, not only assertions."""
    labeler = ReportLabeler()
    values, negated = set(), 0
    for index in range(200):
        sample = make_sample(22, 'train', index, render=False)
        values.update(sample.findings.values())
        negated += any(m.value == 0 and m.cue for m in labeler.explain(sample.report, sample.eye))
    assert values == {0.0, 0.5, 1.0}
    assert negated > 50
