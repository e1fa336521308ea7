"""Helper of test_label_cache_distributed.py: one gloo rank that loads a manifest without labels.

Run as a script, it builds an :class:`ImageReportDataset` (which labels the reports, with a
progress bar asked for on every rank) with a labeler that counts its calls and a barrier that
notes whether the label cache exists when it is passed, and saves the dataset's labels, the
count and the notes to ``OUT_DIR/rank{RANK}.npz``.
"""
import argparse
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch.distributed as dist

from vilref_mm.datasets import ImageReportDataset
from vilref_mm.datasets import label_cache
from vilref_mm.labeling import ReportLabeler


class NotingBarrier:
    """The label cache module's barrier, noting after each pass whether a label cache is next
    to the manifest."""

    def __init__(self, manifest: str):
        self.manifest = Path(manifest)
        self.barrier = label_cache.barrier
        self.cache_after = []

    def __call__(self) -> None:
        self.barrier()
        self.cache_after.append(
            any(self.manifest.parent.glob(f'{self.manifest.name}.labels-*.npy')))


class CountingLabeler(ReportLabeler):
    """A ReportLabeler that counts its calls."""
    calls = 0

    def __call__(self, report, eye=None):
        CountingLabeler.calls += 1
        return super().__call__(report, eye)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('manifest')
    parser.add_argument('out_dir', type=Path)
    parser.add_argument('--rank', type=int, required=True)
    parser.add_argument('--world-size', type=int, required=True)
    parser.add_argument('--port', type=int, required=True)
    args = parser.parse_args()
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{args.port}',
                            rank=args.rank, world_size=args.world_size,
                            timeout=timedelta(seconds=120))
    label_cache.ReportLabeler = CountingLabeler
    label_cache.barrier = barrier = NotingBarrier(args.manifest)
    dataset = ImageReportDataset(args.manifest, progress=True)
    labels = np.stack([dataset.get_data_info(index)['gt_score']
                       for index in range(len(dataset))])
    np.savez(args.out_dir / f'rank{args.rank}.npz', labels=labels, calls=CountingLabeler.calls,
             cache_after_barrier=np.array(barrier.cache_after, dtype=bool))
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
