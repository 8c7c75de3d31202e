"""The metrics log's eval records grouped by split, and the curve plot of one or several splits.

The logs are written as training writes them (:class:`gluon_ds2.curves.MetricsLog`), and the
PNGs are decoded by matplotlib's reader, not inspected by the code that wrote them.
"""
import json

import numpy as np
from matplotlib import image

from gluon_ds2.curves import MetricsLog, eval_records_by_split, plot_curves, read_metrics


def write_log(path, splits, with_split_key=True):
    """Two epochs of a run: train records every 5 steps, then one eval record per split."""
    log = MetricsLog(str(path))
    time = 1000.0
    for epoch in (1, 2):
        for step in range(5 * (epoch - 1) + 1, 5 * epoch + 1):
            time += 6
            log.write(kind='train', step=step, epoch=epoch - 1, loss=100.0 / step, time=time)
        for number, split in enumerate(splits):
            time += 3
            cer = 0.6 / epoch + 0.1 * number
            wer = min(1.0, 2 * cer)
            extra = dict(split=split) if with_split_key else {}
            log.write(kind='eval', step=5 * epoch, epoch=epoch, time=time, cer=cer, wer=wer,
                      **extra)
    return path


def pixels(path):
    picture = image.imread(str(path))  # (height, width, RGBA)
    assert picture.ndim == 3 and picture.shape[0] > 100 and picture.shape[1] > 100
    return picture


def test_records_are_grouped_by_split_in_order_and_keyless_ones_are_the_primary(tmp_path):
    records = read_metrics(str(write_log(tmp_path / 'metrics.jsonl', ['eval', 'dev_ood'])))
    splits = eval_records_by_split(records)
    assert list(splits) == ['eval', 'dev_ood']
    assert [(r['epoch'], r['split']) for r in splits['dev_ood']] == [(1, 'dev_ood'),
                                                                       (2, 'dev_ood')]
    old = read_metrics(str(write_log(tmp_path / 'old.jsonl', ['eval'], with_split_key=False)))
    assert 'split' not in next(r for r in old if r['kind'] == 'eval')
    assert {name: [r['cer'] for r in evals]
            for name, evals in eval_records_by_split(old).items()} == {'eval': [0.6, 0.3]}


def test_two_splits_and_an_old_single_split_log_both_plot(tmp_path):
    both = write_log(tmp_path / 'both.jsonl', ['eval', 'dev_ood'])
    assert plot_curves(str(both), str(tmp_path / 'both.png')) == str(tmp_path / 'both.png')
    # The same log without the dev_ood records: the second split's lines are what differ.
    primary = tmp_path / 'primary.jsonl'
    primary.write_text(''.join(json.dumps(r) + '\n' for r in read_metrics(str(both))
                               if r.get('split') != 'dev_ood'))
    plot_curves(str(primary), str(tmp_path / 'primary.png'))
    assert pixels(tmp_path / 'both.png').shape == pixels(tmp_path / 'primary.png').shape
    assert not np.array_equal(pixels(tmp_path / 'both.png'), pixels(tmp_path / 'primary.png'))

    # A log written before --extra_eval_data_dirs: the same records, without the split key.
    old = tmp_path / 'old.jsonl'
    old.write_text(''.join(json.dumps({k: v for k, v in r.items() if k != 'split'}) + '\n'
                           for r in read_metrics(str(primary))))
    assert plot_curves(str(old), str(tmp_path / 'old.png')) == str(tmp_path / 'old.png')
    # Key-less records are the primary split's: the same picture as the log that names it.
    np.testing.assert_array_equal(pixels(tmp_path / 'old.png'), pixels(tmp_path / 'primary.png'))


def test_an_empty_log_draws_nothing(tmp_path):
    assert plot_curves(str(tmp_path / 'missing.jsonl'), str(tmp_path / 'none.png')) is None
    assert not (tmp_path / 'none.png').exists()
