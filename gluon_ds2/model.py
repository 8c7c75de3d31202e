"""DeepSpeech2 as a Gluon ``HybridBlock`` (layers only: no loss, optimizer or decoder).

The architecture is the reference's (``research/deep_speech/deep_speech_model.py``):
two conv + clipped-ReLU + BatchNorm layers, a stack of RNN layers with BatchNorm on
the inputs of all but the first, then BatchNorm and a dense layer to the classes.

Two deliberate differences, both so that a padded batch gives every utterance the
output it would get alone (the reference lets padding leak in):

* after each conv layer, frames past an utterance's length are zeroed, so the
  next conv sees the same zeros its own padding would add;
* a bidirectional layer is two fused one-direction RNNs, the backward one run on
  ``SequenceReverse`` of the valid frames. ``use_sequence_length`` of the fused
  RNN op would do this, but MXNet 1.9.1 ignores it on CPU.
"""
from mxnet import gluon
from mxnet.gluon import nn, rnn

__all__ = ['DeepSpeech2', 'conv_output_length', 'output_length', 'CONV_LAYERS']

# (kernel, stride, padding) along time and frequency, as in the reference.
CONV_LAYERS = (
    dict(kernel_size=(41, 11), strides=(2, 2), padding=(20, 5)),
    dict(kernel_size=(21, 11), strides=(2, 1), padding=(10, 5)),
)
# The reference's BatchNorm decay and epsilon.
BN_MOMENTUM = 0.997
BN_EPSILON = 1e-5


def conv_output_length(length, kernel, stride, padding):
    """Output size of a convolution along one axis: ``floor((L + 2p - k) / s) + 1``."""
    numerator = length + 2 * padding - kernel
    if hasattr(numerator, 'floor'):
        # NDArray or Symbol: they have no ``//``; floor the quotient instead.
        return (numerator / stride).floor() + 1
    return numerator // stride + 1


def output_length(frames, axis=0):
    """Spectrogram frames (axis 0) or bins (axis 1) -> size after both convs.

    Works on ints and on numpy/NDArray integer arrays alike.
    """
    for layer in CONV_LAYERS:
        frames = conv_output_length(frames, layer['kernel_size'][axis], layer['strides'][axis],
                                    layer['padding'][axis])
    return frames


def _rnn_layer(rnn_type, hidden_size, prefix):
    if rnn_type == 'lstm':
        return rnn.LSTM(hidden_size, layout='NTC', prefix=prefix)
    if rnn_type == 'gru':
        return rnn.GRU(hidden_size, layout='NTC', prefix=prefix)
    if rnn_type in ('rnn_tanh', 'rnn_relu'):
        return rnn.RNN(hidden_size, activation=rnn_type[4:], layout='NTC', prefix=prefix)
    raise ValueError("rnn_type must be one of lstm, gru, rnn_tanh, rnn_relu; got %r"
                     % (rnn_type,))


class DeepSpeech2(gluon.HybridBlock):
    """DeepSpeech2 acoustic model.

    Parameters
    ----------
    num_classes : int
        Output classes, blank included (29 for the reference vocabulary).
    num_bins : int
        Spectrogram bins (161 at 16 kHz, 20 ms windows).
    rnn_hidden_size, rnn_hidden_layers, rnn_type, is_bidirectional, use_bias :
        As the reference's flags.
    conv_filters : int
        Filters per conv layer (32 in the reference).
    batch_norm_decay : float
        Momentum of the BatchNorm running statistics (0.997 in the reference).

    Inputs
    ------
    features : (N, 1, T, num_bins) float32, zero-padded in time.
    feature_lengths : (N,) valid frames per utterance.

    Outputs
    -------
    logits : (N, T', num_classes) with ``T' = output_length(T)``; frames past an
        utterance's ``output_length(feature_lengths)`` are padding.
    """

    def __init__(self, num_classes, num_bins=161, rnn_hidden_size=800, rnn_hidden_layers=5,
                 rnn_type='lstm', is_bidirectional=True, use_bias=True, conv_filters=32,
                 batch_norm_decay=BN_MOMENTUM,
                 **kwargs):
        super().__init__(**kwargs)
        self.is_bidirectional = is_bidirectional
        self.rnn_hidden_layers = rnn_hidden_layers
        with self.name_scope():
            self.convs = nn.HybridSequential(prefix='conv_')
            self.conv_norms = nn.HybridSequential(prefix='convbn_')
            for layer in CONV_LAYERS:
                self.convs.add(nn.Conv2D(conv_filters, use_bias=False, **layer))
                self.conv_norms.add(nn.BatchNorm(axis=1, momentum=batch_norm_decay,
                                                 epsilon=BN_EPSILON))
            self.rnn_norms = nn.HybridSequential(prefix='rnnbn_')
            self.forward_rnns = nn.HybridSequential(prefix='fw_')
            self.backward_rnns = nn.HybridSequential(prefix='bw_')
            for index in range(rnn_hidden_layers):
                if index > 0:
                    self.rnn_norms.add(nn.BatchNorm(axis=2, momentum=batch_norm_decay,
                                                    epsilon=BN_EPSILON))
                self.forward_rnns.add(_rnn_layer(rnn_type, rnn_hidden_size, 'fw%d_' % index))
                if is_bidirectional:
                    self.backward_rnns.add(_rnn_layer(rnn_type, rnn_hidden_size, 'bw%d_' % index))
            self.output_norm = nn.BatchNorm(axis=2, momentum=batch_norm_decay, epsilon=BN_EPSILON)
            self.output = nn.Dense(num_classes, use_bias=use_bias, flatten=False)

    @classmethod
    def from_config(cls, model_config, num_classes, num_bins):
        """Build from a :class:`~gluon_ds2.config.ModelConfig`."""
        m = model_config
        return cls(num_classes, num_bins=num_bins, rnn_hidden_size=m.rnn_hidden_size,
                   rnn_hidden_layers=m.rnn_hidden_layers, rnn_type=m.rnn_type,
                   is_bidirectional=m.is_bidirectional, use_bias=m.use_bias,
                   conv_filters=m.conv_filters, batch_norm_decay=m.batch_norm_decay)

    def hybrid_forward(self, F, features, feature_lengths):
        x, lengths = features, feature_lengths.astype('float32')
        for conv, norm, layer in zip(self.convs, self.conv_norms, CONV_LAYERS):
            # (N, C, T, F) -> (N, filters, T', F'); clipped ReLU as the reference's relu6.
            x = norm(F.clip(conv(x), 0, 6))
            lengths = conv_output_length(lengths, layer['kernel_size'][0], layer['strides'][0],
                                         layer['padding'][0])
            # Zero the frames past each utterance's end: (N, T') mask, broadcast.
            steps = F.contrib.arange_like(x, axis=2)
            mask = F.broadcast_lesser(steps.reshape((1, -1)), lengths.reshape((-1, 1)))
            x = F.broadcast_mul(x, mask.reshape((0, 1, -1, 1)))
        # (N, filters, T', F') -> (N, T', filters * F')
        x = x.transpose((0, 2, 1, 3)).reshape((0, 0, -1))
        for index in range(self.rnn_hidden_layers):
            if index > 0:
                x = self.rnn_norms[index - 1](x)
            forward = self.forward_rnns[index](x)
            if self.is_bidirectional:
                # SequenceReverse works time-major: (N, T, C) <-> (T, N, C).
                time_major = x.swapaxes(0, 1)
                reversed_x = F.SequenceReverse(time_major, sequence_length=lengths,
                                               use_sequence_length=True).swapaxes(0, 1)
                backward = self.backward_rnns[index](reversed_x).swapaxes(0, 1)
                backward = F.SequenceReverse(backward, sequence_length=lengths,
                                             use_sequence_length=True).swapaxes(0, 1)
                x = F.concat(forward, backward, dim=2)
            else:
                x = forward
        # (N, T', hidden * directions) -> (N, T', num_classes)
        return self.output(self.output_norm(x))
