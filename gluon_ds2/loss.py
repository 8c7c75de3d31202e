"""CTC loss with the layout, lengths and blank position this project uses."""
from mxnet import gluon

__all__ = ['CTCLoss']


class CTCLoss(gluon.loss.CTCLoss):
    """``gluon.loss.CTCLoss`` for (N, T, C) logits and -1-padded (N, L) labels.

    The blank is the last class (Gluon's convention, and our vocabulary's).
    Call as ``loss(logits, labels, output_lengths, label_lengths)``; returns
    the per-utterance negative log-likelihood, shape (N,).
    """

    def __init__(self, **kwargs):
        super().__init__(layout='NTC', label_layout='NT', **kwargs)

    def hybrid_forward(self, F, pred, label, pred_lengths, label_lengths, sample_weight=None):
        # MXNet 1.9's CTC kernel reads labels and both length vectors with the
        # logits' dtype; integer lengths fail deep inside it ("data type do
        # not match"), so cast here, once.
        return super().hybrid_forward(F, pred, label.astype('float32'),
                                      pred_lengths.astype('float32'),
                                      label_lengths.astype('float32'), sample_weight)
