"""tools/analysis/memory_table.py on the tiny config: the accounting's invariants."""
import pytest
from tool_modules import REPO, load_module

memory_table = load_module('tools/analysis/memory_table.py')
CONFIG = str(REPO / 'tests/data/configs/tiny_vilref.py')
NUM_GPUS = 8


@pytest.fixture(scope='module')
def sizes():
    return memory_table.measure_config(CONFIG)


def test_counts(sizes):
    tiny = sizes[False]
    # The momentum towers mirror the towers and projections, not logit_scale.
    assert tiny.momentum_params == tiny.online_params - 1
    # K (2 D + C) fp32 entries, plus the pointer and the fill count (int64).
    assert tiny.queue_bytes == 16 * (2 * 16 + 25) * 4 + 2 * 8
    assert 0 < tiny.gathered_params <= tiny.online_params
    assert tiny.loss_bytes_per_logit > 0


def test_checkpointing_keeps_fewer_activations(sizes):
    assert 0 < sizes[True].activation_bytes_per_sample < sizes[False].activation_bytes_per_sample
    # Backward recomputes one of the blocks.
    assert 0 < sizes[True].recompute_bytes_per_sample < sizes[False].activation_bytes_per_sample
    assert sizes[False].recompute_bytes_per_sample == 0


@pytest.mark.parametrize('with_cp', [False, True])
def test_strategies_and_parts(sizes, with_cp):
    for batch in memory_table.BATCH_SIZES:
        totals = [memory_table.total_bytes(sizes[with_cp], strategy, batch, NUM_GPUS)
                  for strategy in ('FULL_SHARD', 'SHARD_GRAD_OP', 'DDP')]
        assert totals == sorted(totals)
        parts = memory_table.per_gpu_bytes(sizes[with_cp], 'DDP', batch, NUM_GPUS)
        assert totals[-1] == pytest.approx(sum(parts.values()))
        assert all(value >= 0 for value in parts.values())


@pytest.mark.parametrize('strategy', memory_table.STRATEGIES)
def test_largest_batch(sizes, strategy):
    tiny = sizes[False]
    largest = [memory_table.largest_batch(tiny, strategy, NUM_GPUS, gib)
               for gib in memory_table.CAPACITIES_GIB]
    assert largest == sorted(largest) and largest[0] > 0
    budget = memory_table.usable_bytes(memory_table.CAPACITIES_GIB[0])
    assert memory_table.total_bytes(tiny, strategy, largest[0], NUM_GPUS) <= budget
    assert memory_table.total_bytes(tiny, strategy, largest[0] + 1, NUM_GPUS) > budget


def test_markdown(sizes):
    all_sizes = {with_cp: [tiny] for with_cp, tiny in sizes.items()}
    rows = memory_table.table_rows(all_sizes, NUM_GPUS)
    assert len(rows) == 2 * len(memory_table.STRATEGIES)
    text = memory_table.markdown(rows, all_sizes, NUM_GPUS)
    assert text.count('| tiny_vilref |') == 2 + len(rows)
