"""The metrics log (JSON lines) and the training-curve plot drawn from it."""
import json
import os

from .atomic import atomic_save_figure, atomic_write_text
from .config import PRIMARY_EVAL_SPLIT

__all__ = ['MetricsLog', 'read_metrics', 'eval_records_by_split', 'plot_curves']


class MetricsLog:
    """Append-only JSON-lines log; each line is flushed and fsynced.

    A line cut short by a crash is skipped by :func:`read_metrics`, so the log
    never stops a resumed run.
    """

    def __init__(self, path):
        self.path = path

    def write(self, **record):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, 'a') as f:
            f.write(json.dumps(record, sort_keys=True) + '\n')
            f.flush()
            os.fsync(f.fileno())


    def truncate_after(self, step):
        """Drop records of steps after ``step`` (rewritten atomically)."""
        records = read_metrics(self.path)
        kept = [r for r in records if r.get('step', 0) <= step]
        if len(kept) == len(records):
            return
        atomic_write_text(self.path, (json.dumps(r, sort_keys=True) + '\n' for r in kept))


def read_metrics(path):
    """Records of a metrics log, skipping a torn last line."""
    records = []
    if not os.path.exists(path):
        return records
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def eval_records_by_split(records):
    """``{split: [eval records]}``, splits in the order they first appear (the primary first).

    A record without ``split`` (logs written before ``--extra_eval_data_dirs``)
    is the ``--eval_data_dir`` set's.
    """
    splits = {}
    for record in records:
        if record.get('kind') == 'eval':
            splits.setdefault(record.get('split', PRIMARY_EVAL_SPLIT), []).append(record)
    return splits


def plot_curves(metrics_path, png_path):
    """Training loss against steps and each eval split's WER/CER against epochs, as a PNG.

    Returns its path, or None when the log holds no records.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r.get('kind') == 'train']
    splits = eval_records_by_split(records)
    if not train and not splits:
        return None
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_loss.plot([r['step'] for r in train], [r['loss'] for r in train], lw=1)
    ax_loss.set(xlabel='step', ylabel='CTC loss (per utterance)', title='training loss')
    ax_loss.set_yscale('log')
    for number, (split, evals) in enumerate(splits.items()):
        colour = 'C%d' % number  # one colour per split: CER solid, WER dashed
        epochs = [r['epoch'] for r in evals]
        ax_err.plot(epochs, [r['cer'] for r in evals], 's-', color=colour,
                    label='%s CER' % split)
        ax_err.plot(epochs, [r['wer'] for r in evals], 'o--', color=colour, alpha=0.6,
                    label='%s WER' % split)
        for x, r in zip(epochs, evals):  # labels below and above in turn: splits may be close
            ax_err.annotate('%.3f' % r['cer'], (x, r['cer']), textcoords='offset points',
                            xytext=(0, 6 if number % 2 else -12), ha='center', fontsize=7,
                            color=colour)
    if splits:
        # Under each evaluated epoch, the wall-clock minutes since the first record: how
        # long the curve took to get there.
        start = min(r['time'] for r in records if 'time' in r)
        first = next(iter(splits.values()))
        ax_err.set_xticks([r['epoch'] for r in first])
        ax_err.set_xticklabels(['%d\n%.1f min' % (r['epoch'], (r['time'] - start) / 60)
                                for r in first])
        ax_err.legend(fontsize=8)
    ax_err.set(xlabel='epoch (minutes of training, wall clock)',
               ylabel='error rate (corpus level)', title='eval error rates by split',
               ylim=(0, None))
    ax_err.grid(alpha=0.3)
    fig.tight_layout()
    try:
        atomic_save_figure(fig, png_path)
    finally:
        plt.close(fig)
    return png_path
