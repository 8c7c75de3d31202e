"""DeepSpeech2 as a Gluon ``HybridBlock`` (layers only: no loss, optimizer or decoder).

The architecture is the reference's (``research/deep_speech/deep_speech_model.py``):
two conv + clipped-ReLU + BatchNorm layers, a stack of RNN layers with BatchNorm on
the inputs of all but the first, then BatchNorm and a dense layer to the classes.

Two deliberate differences, both so that a padded batch gives every utterance the
output it would get alone (the reference lets padding leak in):

* after each conv layer, frames past an utterance's length are zeroed, so the
  next conv sees the same zeros its own padding would add;
* the backward direction of a bidirectional layer starts at each utterance's last
  valid frame. On a GPU the fused cuDNN layer does this (``use_sequence_length``);
  MXNet 1.9.1's CPU kernel ignores the lengths, so on CPU the layer runs two
  one-direction RNNs, the backward one on each utterance's valid frames reversed.
  Both paths share one set of parameters (:class:`RNNLayer`), so a checkpoint
  moves freely between CPU and GPU.

The RNN stack is time-major (T, N, C), the fused RNN operator's layout. The
backward direction reads and writes rows of the (T * N, C) view of it, gathered with
``take`` (:func:`reversal_rows`): one copy each way, no transposes.

Weights start as the reference's do (TensorFlow's defaults): Glorot-uniform
kernels, zero biases, and an LSTM forget-gate bias of 1.0 (``BasicLSTMCell``'s
``forget_bias``).
"""
import math
import re

import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn

__all__ = ['DeepSpeech2', 'RNNLayer', 'TensorFlowRNNInit', 'conv_output_length', 'output_length',
           'reversal_rows', 'forward_flops', 'pack_legacy_parameters', 'rnn_parameter_size',
           'use_fused_rnn', 'CONV_LAYERS', 'RNN_GATES']

# (kernel, stride, padding) along time and frequency, as in the reference.
CONV_LAYERS = (
    dict(kernel_size=(41, 11), strides=(2, 2), padding=(20, 5)),
    dict(kernel_size=(21, 11), strides=(2, 1), padding=(10, 5)),
)
# Gate blocks per RNN type, in the fused operator's parameter layout.
RNN_GATES = {'lstm': 4, 'gru': 3, 'rnn_tanh': 1, 'rnn_relu': 1}
# TensorFlow's default kernel initializer, which the reference's layers use.
GLOROT_UNIFORM = mx.init.Xavier(rnd_type='uniform', factor_type='avg', magnitude=3)
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


def forward_flops(model_config, num_bins, frames, batch_size, num_classes):
    """Multiply-add FLOPs (2 per multiply-add) of one forward pass on a batch.

    Counts the convs, the RNN matrix products and the dense layer (elementwise
    work is left out). ``model_config`` is a :class:`~gluon_ds2.config.ModelConfig`;
    ``frames`` the padded spectrogram length. A training step is about 3x this.
    """
    m = model_config
    gates = RNN_GATES[m.rnn_type]
    directions = 2 if m.is_bidirectional else 1
    flops, channels, time_steps, bins = 0, 1, frames, num_bins
    for layer in CONV_LAYERS:
        (kt, kf), (st, sf), (pt, pf) = layer['kernel_size'], layer['strides'], layer['padding']
        time_steps = conv_output_length(time_steps, kt, st, pt)
        bins = conv_output_length(bins, kf, sf, pf)
        flops += 2 * batch_size * m.conv_filters * time_steps * bins * channels * kt * kf
        channels = m.conv_filters
    inputs, hidden = channels * bins, m.rnn_hidden_size
    for _ in range(m.rnn_hidden_layers):
        flops += 2 * batch_size * time_steps * directions * gates * hidden * (inputs + hidden)
        inputs = directions * hidden
    return flops + 2 * batch_size * time_steps * inputs * num_classes


def reversal_rows(F, x, lengths):
    """Rows of ``x.reshape((T * N, C))`` that reverse each sequence's valid steps.

    ``x`` is time-major (T, N, C), ``lengths`` (N,) valid steps. Returns (T * N,)
    float32 row indices: output row ``t * N + n`` is input row ``(L_n - 1 - t) * N + n``
    for ``t < L_n`` and itself for the padding, as ``SequenceReverse`` orders them; it
    is its own inverse. ``take`` with it is a row copy, several times faster than
    ``SequenceReverse`` here (MXNet 1.9.1, CPU), forward and backward.
    """
    steps = F.contrib.arange_like(x, axis=0).reshape((-1, 1))   # (T, 1)
    batch = F.contrib.arange_like(x, axis=1).reshape((1, -1))   # (1, N)
    lengths = lengths.reshape((1, -1))
    source = F.where(F.broadcast_lesser(steps, lengths), F.broadcast_sub(lengths - 1, steps),
                     F.broadcast_add(steps, batch * 0))          # (T, N) source step
    width = F.sum(F.ones_like(batch))                            # (1,): N
    return F.broadcast_add(F.broadcast_mul(source, width), batch).reshape((-1,))


def _check_rnn_type(rnn_type):
    if rnn_type not in RNN_GATES:
        raise ValueError('rnn_type must be one of %s; got %r' % (', '.join(RNN_GATES), rnn_type))


def use_fused_rnn(context):
    """Whether a layer on ``context`` runs the fused bidirectional kernel.

    Only cuDNN honours ``use_sequence_length``; the CPU kernel ignores it.
    """
    return context.device_type == 'gpu'


class TensorFlowRNNInit(mx.init.Initializer):
    """One direction's packed RNN parameters, initialised as TensorFlow's cells are.

    TensorFlow's cells hold one kernel of shape (input + hidden, gates * hidden),
    Glorot-uniform over that shape, and zero biases; ``BasicLSTMCell`` adds
    ``forget_bias=1.0`` to the forget gate, here the i2h bias of MXNet's second
    gate block. The layout is the fused ``RNN`` operator's:
    ``[i2h_weight, h2h_weight, i2h_bias, h2h_bias]``, flattened.
    """

    def __init__(self, rnn_type, input_size, hidden_size):
        super().__init__(rnn_type=rnn_type, input_size=input_size, hidden_size=hidden_size)
        self.rnn_type, self.input_size, self.hidden_size = rnn_type, input_size, hidden_size

    def _init_weight(self, name, arr):
        gates = RNN_GATES[self.rnn_type] * self.hidden_size
        weights = gates * (self.input_size + self.hidden_size)
        limit = math.sqrt(6.0 / (self.input_size + self.hidden_size + gates))
        mx.nd.random.uniform(-limit, limit, shape=(weights,), out=arr[:weights])
        arr[weights:] = 0.0
        if self.rnn_type == 'lstm':
            arr[weights + self.hidden_size:weights + 2 * self.hidden_size] = 1.0


def rnn_parameter_size(rnn_type, input_size, hidden_size):
    """Length of one direction's packed parameter vector (two biases per gate block)."""
    gates = RNN_GATES[rnn_type] * hidden_size
    return gates * (input_size + hidden_size) + 2 * gates


# Names the first model (two Gluon ``rnn.LSTM`` layers per bidirectional layer) saved its
# RNN weights under, e.g. ``backward_rnns.3._unfused.0.h2h_bias``.
_LEGACY_RNN_NAME = re.compile(r'^(forward|backward)_rnns\.(\d+)\._unfused\.0\.'
                              r'(i2h_weight|h2h_weight|i2h_bias|h2h_bias)$')
_PACKED_ORDER = ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias')


def pack_legacy_parameters(arrays):
    """Parameters saved by the first model -> this model's names and layout.

    Checkpoints written before the packed RNN layout (``forward_rnns``/
    ``backward_rnns``, four arrays per direction) hold the same numbers: each
    direction's arrays, flattened in the fused operator's order, are one
    :class:`RNNLayer` parameter vector. Other arrays pass through.

    Returns
    -------
    (dict, bool) : the converted arrays, and whether anything was converted.
    """
    converted, pieces = {}, {}
    for name, value in arrays.items():
        match = _LEGACY_RNN_NAME.match(name)
        if match is None:
            converted[name] = value
        else:
            direction, layer, part = match.groups()
            pieces.setdefault((direction, int(layer)), {})[part] = value
    for (direction, layer), parts in pieces.items():
        missing = [part for part in _PACKED_ORDER if part not in parts]
        if missing:
            raise ValueError('%s_rnns.%d lacks %s' % (direction, layer, ', '.join(missing)))
        converted['rnns.%d.%s0_parameters' % (layer, 'l' if direction == 'forward' else 'r')] = \
            mx.nd.concat(*[parts[part].reshape((-1,)) for part in _PACKED_ORDER], dim=0)
    return converted, bool(pieces)


class RNNLayer(gluon.HybridBlock):
    """One (bi)directional RNN layer over time-major, zero-padded sequences.

    Each direction's weights live in one parameter vector (``l0_parameters``,
    and ``r0_parameters`` for the backward direction) in the layout the fused
    ``RNN`` operator reads (:class:`TensorFlowRNNInit`): no per-step packing copy
    of the weights, nor unpacking of their gradients.

    Parameters
    ----------
    rnn_type : str
        One of :data:`RNN_GATES`.
    hidden_size, input_size : int
    bidirectional : bool

    Inputs
    ------
    x : (T, N, input_size); lengths : (N,) float32 valid steps per sequence.

    Outputs
    -------
    (T, N, hidden_size * directions); steps past a sequence's length are padding.
    """

    def __init__(self, rnn_type, hidden_size, input_size, bidirectional=True, **kwargs):
        super().__init__(**kwargs)
        _check_rnn_type(rnn_type)
        self.rnn_type = rnn_type
        self.hidden_size = hidden_size
        self.input_size = input_size
        self.bidirectional = bidirectional
        # Fused bidirectional kernel (True), or one kernel per direction (False);
        # DeepSpeech2.forward sets it from the input's context.
        self.fused = False
        size = rnn_parameter_size(rnn_type, input_size, hidden_size)
        init = TensorFlowRNNInit(rnn_type, input_size, hidden_size)
        with self.name_scope():
            self.l0_parameters = self.params.get('l0_parameters', shape=(size,), init=init)
            if bidirectional:
                self.r0_parameters = self.params.get('r0_parameters', shape=(size,), init=init)

    def _run(self, F, x, parameters, directions=1, lengths=None):
        # Zero initial states in x's dtype: (T, N, C) -> (directions, N, hidden)
        state = F.broadcast_axis(F.zeros_like(x.slice_axis(axis=0, begin=0, end=1)
                                              .slice_axis(axis=2, begin=0, end=1)),
                                 axis=(0, 2), size=(directions, self.hidden_size))
        states = [state, state] if self.rnn_type == 'lstm' else [state]
        if lengths is not None:
            states.append(lengths)
        return F.RNN(x, parameters, *states, state_size=self.hidden_size, num_layers=1,
                     bidirectional=directions == 2, mode=self.rnn_type,
                     use_sequence_length=lengths is not None)

    def hybrid_forward(self, F, x, lengths, l0_parameters, r0_parameters=None):
        forward = self._run(F, x, l0_parameters)
        if not self.bidirectional:
            return forward  # padding comes after the valid steps: no effect on them
        if self.fused:
            # The bidirectional kernel reads [l weights, r weights, l biases, r biases].
            weights = RNN_GATES[self.rnn_type] * self.hidden_size * (
                self.input_size + self.hidden_size)
            packed = F.concat(l0_parameters.slice_axis(axis=0, begin=0, end=weights),
                              r0_parameters.slice_axis(axis=0, begin=0, end=weights),
                              l0_parameters.slice_axis(axis=0, begin=weights, end=None),
                              r0_parameters.slice_axis(axis=0, begin=weights, end=None), dim=0)
            return self._run(F, x, packed, 2, lengths.astype('int32'))
        rows = reversal_rows(F, x, lengths)                                   # (T * N,)
        reversed_x = F.reshape_like(F.take(x.reshape((-3, 0)), rows), x)     # (T, N, C)
        backward = self._run(F, reversed_x, r0_parameters)  # (T, N, H), each in reverse
        # [forward; backward] as (2 * T * N, H) rows -> for each step its forward row, then
        # its backward row back in time order: one gather instead of a reversal and a
        # concat on the last axis (a slow strided copy here).
        both = F.concat(forward, backward, dim=0).reshape((-3, 0))
        order = F.stack(F.contrib.arange_like(rows),
                        F.broadcast_add(rows, F.sum(F.ones_like(rows))), axis=1).reshape((-1,))
        out = F.take(both, order).reshape((-1, 2 * self.hidden_size))        # (T * N, 2H)
        return F.reshape_like(out, forward, lhs_begin=0, lhs_end=1, rhs_begin=0, rhs_end=2)


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
        _check_rnn_type(rnn_type)
        directions = 2 if is_bidirectional else 1
        self.conv_filters = conv_filters
        with self.name_scope():
            self.convs = nn.HybridSequential(prefix='conv_')
            self.conv_norms = nn.HybridSequential(prefix='convbn_')
            for layer in CONV_LAYERS:
                # The padding is added before the conv (hybrid_forward), not by it.
                self.convs.add(nn.Conv2D(conv_filters, layer['kernel_size'], layer['strides'],
                                         padding=(0, 0), use_bias=False,
                                         weight_initializer=GLOROT_UNIFORM))
                self.conv_norms.add(nn.BatchNorm(axis=1, momentum=batch_norm_decay,
                                                 epsilon=BN_EPSILON))
            self.rnn_norms = nn.HybridSequential(prefix='rnnbn_')
            self.rnns = nn.HybridSequential(prefix='rnn_')
            input_size = conv_filters * output_length(num_bins, axis=1)
            for index in range(rnn_hidden_layers):
                if index > 0:
                    self.rnn_norms.add(nn.BatchNorm(axis=2, momentum=batch_norm_decay,
                                                    epsilon=BN_EPSILON))
                self.rnns.add(RNNLayer(rnn_type, rnn_hidden_size, input_size, is_bidirectional,
                                       prefix='%d_' % index))
                input_size = rnn_hidden_size * directions
            self.output_norm = nn.BatchNorm(axis=2, momentum=batch_norm_decay, epsilon=BN_EPSILON)
            self.output = nn.Dense(num_classes, use_bias=use_bias, flatten=False,
                                   weight_initializer=GLOROT_UNIFORM)

    @classmethod
    def from_config(cls, model_config, num_classes, num_bins):
        """Build from a :class:`~gluon_ds2.config.ModelConfig`."""
        m = model_config
        return cls(num_classes, num_bins=num_bins, rnn_hidden_size=m.rnn_hidden_size,
                   rnn_hidden_layers=m.rnn_hidden_layers, rnn_type=m.rnn_type,
                   is_bidirectional=m.is_bidirectional, use_bias=m.use_bias,
                   conv_filters=m.conv_filters, batch_norm_decay=m.batch_norm_decay)

    def forward(self, features, feature_lengths):
        """Choose the RNN kernel from the input's context, then run the graph."""
        if isinstance(features, mx.nd.NDArray):
            fused = use_fused_rnn(features.context)
            if any(layer.fused != fused for layer in self.rnns):
                for layer in self.rnns:
                    layer.fused = fused
                self._clear_cached_op()  # the graph built for the other kernel is stale
        return super().forward(features, feature_lengths)

    def hybrid_forward(self, F, features, feature_lengths):
        x, lengths = features, feature_lengths.astype('float32')
        for conv, norm, layer in zip(self.convs, self.conv_norms, CONV_LAYERS):
            # The conv's zero padding, as its own step: given a kernel 11 wide with the
            # padding inside the conv, oneDNN 2.4.4's direct AVX2 kernels decline and
            # im2col + GEMM runs instead, several times slower (CPUs without AVX-512).
            (pt, pf) = layer['padding']
            x = F.pad(x, mode='constant', pad_width=(0, 0, 0, 0, pt, pt, pf, pf))
            # (N, C, T, F) -> (N, filters, T', F'); clipped ReLU as the reference's relu6,
            # as relu then min: MXNet's clip takes 1.6x as long on CPU, with its backward.
            x = norm(F.minimum(F.relu(conv(x)), 6.0))
            lengths = conv_output_length(lengths, layer['kernel_size'][0], layer['strides'][0],
                                         layer['padding'][0])
            # Zero the frames past each utterance's end. SequenceMask on
            # (N * filters, T', F') with one length per row: a broadcast multiply
            # by an (N, 1, T', 1) mask costs ten times more, in its backward.
            x = F.SequenceMask(x.reshape((-3, 0, 0)), use_sequence_length=True, axis=1,
                               sequence_length=F.repeat(lengths, repeats=self.conv_filters))
            x = x.reshape((-4, -1, self.conv_filters, 0, 0))
        # (N, filters, T', F') -> (T', N, filters * F'): time-major through the RNNs
        x = x.transpose((2, 0, 1, 3)).reshape((0, 0, -1))
        for index, layer in enumerate(self.rnns):
            if index > 0:
                x = self.rnn_norms[index - 1](x)
            x = layer(x, lengths)
        # (T', N, hidden * directions) -> (T', N, num_classes) -> (N, T', num_classes)
        return self.output(self.output_norm(x)).swapaxes(0, 1)
