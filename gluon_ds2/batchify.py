"""Items -> padded batches, and the DataLoader that feeds training and evaluation."""
import gluonnlp
from mxnet import gluon

from .dataset import SkippedUtterance

__all__ = ['SpeechBatchify', 'make_dataloader']


class SpeechBatchify:
    """Pad a list of (features, labels) into one batch.

    Returns
    -------
    tuple
        ``features`` (N, 1, T, bins) float32 zero-padded; ``feature_lengths`` (N,)
        frames; ``labels`` (N, L) padded with -1, as ``CTCLoss`` wants;
        ``label_lengths`` (N,); ``skipped``, a list of :class:`SkippedUtterance`
        dropped from this batch.
    """

    def __init__(self, round_to=None):
        # round_to pads T up to a multiple, so fewer distinct shapes reach the
        # hybridized graph (each new shape costs oneDNN a fresh primitive).
        self._pad = gluonnlp.data.batchify.Tuple(
            gluonnlp.data.batchify.Pad(axis=0, pad_val=0, ret_length=True, round_to=round_to,
                                       dtype='float32'),
            gluonnlp.data.batchify.Pad(axis=0, pad_val=-1, ret_length=True, dtype='float32'))

    def __call__(self, items):
        skipped = [item for item in items if isinstance(item, SkippedUtterance)]
        good = [item for item in items if not isinstance(item, SkippedUtterance)]
        if not good:
            return None, None, None, None, skipped
        (features, feature_lengths), (labels, label_lengths) = self._pad(good)
        # (N, T, bins) -> (N, 1, T, bins): one input channel for the convs.
        return features.expand_dims(axis=1), feature_lengths, labels, label_lengths, skipped


def make_dataloader(dataset, batch_sampler, num_workers=0, round_to=None):
    """Gluon DataLoader over ``dataset`` in ``batch_sampler``'s order."""
    return gluon.data.DataLoader(dataset, batch_sampler=batch_sampler,
                                 batchify_fn=SpeechBatchify(round_to=round_to),
                                 num_workers=num_workers, thread_pool=False)
