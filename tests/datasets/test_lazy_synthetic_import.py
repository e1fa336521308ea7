"""``import vilref_mm``, and building a pre-training dataset from its config, leave the
synthetic generator unimported: dataloader workers do not load it."""
import json
import subprocess
import sys
from pathlib import Path

from vilref_mm.datasets.synthetic import generate_synthetic_fundus

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / 'tests/data/configs/tiny_vilref.py'

# Imports vilref_mm, builds the config's training set on DATA_ROOT, reads a sample and prints
# the synthetic modules loaded by then.
BUILD_DATASET = f'''
import json, sys
import vilref_mm
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS
after_import = sorted(m for m in sys.modules if m.startswith('vilref_mm.datasets.synthetic'))
init_default_scope('mmpretrain')
cfg = Config.fromfile({str(TINY_CONFIG)!r})
cfg.train_dataloader.dataset.data_root = sys.argv[1]
sample = DATASETS.build(cfg.train_dataloader.dataset)[0]
print(json.dumps(dict(
    after_import=after_import,
    after_dataset=sorted(m for m in sys.modules
                         if m.startswith('vilref_mm.datasets.synthetic')),
    sample=sorted(sample))))
'''


def test_vilref_mm_and_a_dataset_leave_the_generator_out(tmp_path):
    generate_synthetic_fundus(tmp_path, num_train=2, num_val=0, num_test=0, size=32, seed=0)
    proc = subprocess.run([sys.executable, '-c', BUILD_DATASET, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded['sample'] == ['data_samples', 'inputs']  # the dataset was built and read
    assert loaded['after_import'] == []
    assert loaded['after_dataset'] == []
