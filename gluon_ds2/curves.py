"""The metrics log (JSON lines) and the training-curve plot drawn from it."""
import json
import os

__all__ = ['MetricsLog', 'read_metrics', 'plot_curves']


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
        tmp = '%s.tmp-%d' % (self.path, os.getpid())
        with open(tmp, 'w') as f:
            f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


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


def plot_curves(metrics_path, png_path):
    """Training loss and eval WER/CER against steps, as a PNG; returns its path or None."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r.get('kind') == 'train']
    evals = [r for r in records if r.get('kind') == 'eval']
    if not train and not evals:
        return None
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_loss.plot([r['step'] for r in train], [r['loss'] for r in train], lw=1)
    ax_loss.set(xlabel='step', ylabel='CTC loss (per utterance)', title='training loss')
    ax_loss.set_yscale('log')
    if evals:
        # Wall-clock minutes since the first record: how long the curve took to get there.
        start = min(r['time'] for r in records if 'time' in r)
        minutes = [(r['time'] - start) / 60 for r in evals]
        ax_err.plot(minutes, [r['wer'] for r in evals], 'o-', label='WER')
        ax_err.plot(minutes, [r['cer'] for r in evals], 's-', label='CER')
        for x, r in zip(minutes, evals):
            ax_err.annotate('%.3f' % r['cer'], (x, r['cer']), textcoords='offset points',
                            xytext=(0, -12), ha='center', fontsize=7)
        ax_err.legend()
    ax_err.set(xlabel='minutes of training (wall clock)', ylabel='error rate (corpus level)',
               title='eval error rates', ylim=(0, None))
    ax_err.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path + '.tmp.png'
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path
