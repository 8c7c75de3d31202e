"""DeepSpeech2 block: output lengths, parameter counts, padding independence."""
import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import rnn

from gluon_ds2.loss import CTCLoss
from gluon_ds2.model import (CONV_LAYERS, DeepSpeech2, RNNLayer, conv_output_length,
                             output_length, pack_legacy_parameters, reversal_rows, use_fused_rnn)

BINS = 161
CLASSES = 29


def small_model(rnn_type='lstm', is_bidirectional=True, use_bias=True, layers=2, seed=0):
    """A tiny DeepSpeech2 with random weights and random BatchNorm statistics.

    Non-trivial running statistics make BatchNorm shift padded frames away from
    zero in inference mode, which is what the model's masking must undo.
    """
    mx.random.seed(seed)
    net = DeepSpeech2(CLASSES, num_bins=BINS, rnn_hidden_size=6, rnn_hidden_layers=layers,
                      rnn_type=rnn_type, is_bidirectional=is_bidirectional, use_bias=use_bias,
                      conv_filters=3)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net(mx.nd.zeros((1, 1, 48, BINS)), mx.nd.array([48]))
    rng = np.random.RandomState(seed)
    for name, param in net.collect_params().items():
        if name.endswith(('running_mean', 'beta')):
            param.set_data(mx.nd.array(rng.uniform(-0.5, 0.5, param.shape)))
        elif name.endswith(('running_var', 'gamma')):
            param.set_data(mx.nd.array(rng.uniform(0.5, 2.0, param.shape)))
    net.hybridize(static_alloc=True)
    return net


def features(frames, seed):
    return np.random.RandomState(seed).randn(frames, BINS).astype(np.float32)


def run(net, utterances, padded_frames=None):
    """Zero-pad ``utterances`` (list of (T, bins)) into one batch and run ``net``."""
    lengths = [len(u) for u in utterances]
    total = padded_frames or max(lengths)
    batch = np.zeros((len(utterances), 1, total, BINS), dtype=np.float32)
    for i, u in enumerate(utterances):
        batch[i, 0, :len(u)] = u
    return net(mx.nd.array(batch), mx.nd.array(lengths)).asnumpy()


def independent_output_length(frames):
    """Size after the convs by counting the positions each kernel can take."""
    for kernel, stride, padding in ((41, 2, 20), (21, 2, 10)):
        padded = frames + 2 * padding
        frames = len(range(0, padded - kernel + 1, stride))
    return frames


def test_output_length_formula():
    for frames in range(1, 400):
        assert output_length(frames) == independent_output_length(frames)
    assert output_length(161, axis=1) == 81
    assert conv_output_length(100, 41, 2, 20) == 50
    lengths = np.array([1, 2, 3, 100, 1001])
    np.testing.assert_array_equal(output_length(lengths),
                                  [independent_output_length(n) for n in lengths])
    for dtype in ('int32', 'float32'):
        np.testing.assert_array_equal(output_length(mx.nd.array(lengths, dtype=dtype)).asnumpy(),
                                      output_length(lengths))


def test_output_length_is_the_models_time_dimension():
    net = small_model()
    for frames in list(range(1, 26)) + [31, 32, 33, 64, 99, 100, 101, 257]:
        logits = run(net, [features(frames, frames)])
        assert logits.shape == (1, output_length(frames), CLASSES)
        assert np.all(np.isfinite(logits))


def lstm_parameters(input_size, hidden, gates):
    # MXNet's fused RNN keeps two bias vectors (i2h and h2h) per gate set.
    return gates * hidden * (input_size + hidden) + 2 * gates * hidden


@pytest.mark.parametrize('rnn_type, gates, expected', [
    ('lstm', 4, 83526333),
    ('gru', 3, None),
])
def test_reference_parameter_count(rnn_type, gates, expected):
    net = DeepSpeech2(CLASSES, num_bins=BINS, rnn_hidden_size=800, rnn_hidden_layers=5,
                      rnn_type=rnn_type, is_bidirectional=True)
    net.initialize()
    # Shapes only: no 83M-parameter forward pass.
    net.infer_shape(mx.nd.zeros((1, 1, 9, BINS)), mx.nd.array([9]))
    params = net.collect_params()
    counted = sum(int(np.prod(p.shape)) for name, p in params.items()
                  if not name.endswith(('running_mean', 'running_var')))

    conv = 32 * 1 * 41 * 11 + 32 * 32 * 21 * 11
    conv_bn = 2 * (2 * 32)
    rnn_input = 32 * 81
    rnn = 2 * lstm_parameters(rnn_input, 800, gates) + 4 * 2 * lstm_parameters(1600, 800, gates)
    rnn_bn = 4 * 2 * 1600
    output = 2 * 1600 + 1600 * CLASSES + CLASSES
    analytic = conv + conv_bn + rnn + rnn_bn + output
    assert counted == analytic
    if expected is not None:
        assert counted == expected


def test_padded_batch_gives_each_utterance_its_own_logits():
    net = small_model()
    lengths = [57, 90, 23, 64]
    utterances = [features(n, seed=n) for n in lengths]
    batch = run(net, utterances, padded_frames=112)
    for i, u in enumerate(utterances):
        alone = run(net, [u])
        valid = output_length(len(u))
        assert alone.shape[1] == valid
        np.testing.assert_allclose(batch[i, :valid], alone[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize('rnn_type', ['lstm', 'gru', 'rnn_tanh', 'rnn_relu'])
@pytest.mark.parametrize('is_bidirectional', [True, False])
def test_variants_build_and_run(rnn_type, is_bidirectional):
    net = small_model(rnn_type=rnn_type, is_bidirectional=is_bidirectional, use_bias=False)
    directions = 2 if is_bidirectional else 1
    params = net.collect_params()
    assert params[net.output.weight.name].shape == (CLASSES, 6 * directions)
    assert net.output.bias is None
    utterances = [features(40, 1), features(29, 2)]
    logits = run(net, utterances)
    assert logits.shape == (2, output_length(40), CLASSES)
    assert np.all(np.isfinite(logits))
    np.testing.assert_allclose(logits[1, :output_length(29)], run(net, utterances[1:])[0],
                               rtol=0, atol=1e-5)


def test_unknown_rnn_type():
    with pytest.raises(ValueError) as info:
        DeepSpeech2(CLASSES, rnn_type='transformer')
    assert str(info.value) == ("rnn_type must be one of lstm, gru, rnn_tanh, rnn_relu; "
                               "got 'transformer'")


@pytest.mark.parametrize('is_bidirectional', [True, False])
def test_first_frame_sees_the_last_valid_frame_only_if_bidirectional(is_bidirectional):
    net = small_model(is_bidirectional=is_bidirectional)
    # Long enough that the convs' receptive field at frame 0 (41 input frames) misses the end.
    frames = 60
    utterance = features(frames, seed=3)
    base = run(net, [utterance], padded_frames=128)
    changed = utterance.copy()
    changed[-1] += 3.0
    first = run(net, [changed], padded_frames=128)[0, 0] - base[0, 0]
    if is_bidirectional:
        assert np.max(np.abs(first)) > 1e-5
    else:
        assert np.max(np.abs(first)) < 1e-7


def test_valid_frames_do_not_see_padding_past_the_first_convs_reach():
    net = small_model()
    frames = 60
    utterance = features(frames, seed=4)
    batch = np.zeros((1, 1, 128, BINS), dtype=np.float32)
    batch[0, 0, :frames] = utterance
    clean = net(mx.nd.array(batch), mx.nd.array([frames])).asnumpy()
    # The first conv (kernel 41, padding 20) reads up to 20 frames past the last valid
    # one, as the reference's own zero padding; anything further must not matter.
    batch[0, 0, frames + 20:] = 5.0 * np.random.RandomState(5).randn(128 - frames - 20, BINS)
    noisy = net(mx.nd.array(batch), mx.nd.array([frames])).asnumpy()
    valid = output_length(frames)
    np.testing.assert_allclose(noisy[0, :valid], clean[0, :valid], rtol=0, atol=1e-6)
    np.testing.assert_allclose(clean[0, :valid], run(net, [utterance])[0], rtol=0, atol=1e-5)


def test_reversal_rows_reverse_each_sequences_valid_steps_and_keep_the_padding():
    steps, lengths = 7, [7, 4, 1, 5]
    x = np.random.RandomState(0).randn(steps, len(lengths), 3).astype(np.float32)
    rows = reversal_rows(mx.nd, mx.nd.array(x), mx.nd.array(lengths)).asnumpy()
    gathered = x.reshape(-1, 3)[rows.astype(np.int64)].reshape(x.shape)
    expected = x.copy()
    for n, length in enumerate(lengths):
        expected[:length, n] = x[:length, n][::-1]
    np.testing.assert_array_equal(gathered, expected)
    # Its own inverse: reversing twice is the identity.
    np.testing.assert_array_equal(rows[rows.astype(np.int64)], np.arange(rows.size))


def plainly_written_forward(net, features, lengths):
    """``net``'s inference forward pass, written again with other MXNet operators.

    The conv's own padding, ``clip`` for relu6, ``SequenceReverse`` around the backward
    RNN and a concat on the channel axis: the model's first form, before its speed work.
    """
    nd = mx.nd
    x, lengths = features, lengths.astype('float32')
    for conv, norm, layer in zip(net.convs, net.conv_norms, CONV_LAYERS):
        x = nd.Convolution(x, conv.weight.data(), no_bias=True, num_filter=conv.weight.shape[0],
                           kernel=layer['kernel_size'], stride=layer['strides'],
                           pad=layer['padding'])
        x = norm(nd.clip(x, 0, 6))
        lengths = conv_output_length(lengths, layer['kernel_size'][0], layer['strides'][0],
                                     layer['padding'][0])
        time_mask = np.arange(x.shape[2])[None, :] < lengths.asnumpy()[:, None]  # (N, T')
        x = x * nd.array(time_mask[:, None, :, None].astype(np.float32))
    x = x.transpose((2, 0, 1, 3)).reshape((0, 0, -1))
    for index, layer in enumerate(net.rnns):
        if index > 0:
            x = net.rnn_norms[index - 1](x)
        states = lambda: [nd.zeros((1, x.shape[1], layer.hidden_size))] * 2
        forward = nd.RNN(x, layer.l0_parameters.data(), *states(), state_size=layer.hidden_size,
                         num_layers=1, mode='lstm')
        backward = nd.SequenceReverse(nd.RNN(
            nd.SequenceReverse(x, sequence_length=lengths, use_sequence_length=True),
            layer.r0_parameters.data(), *states(), state_size=layer.hidden_size, num_layers=1,
            mode='lstm'), sequence_length=lengths, use_sequence_length=True)
        x = nd.concat(forward, backward, dim=2)
    return net.output(net.output_norm(x)).swapaxes(0, 1)


def test_forward_pass_equals_the_plainly_written_one_on_a_padded_batch():
    net = small_model(layers=3)
    lengths = [90, 57, 23]
    utterances = [8 * features(n, seed=n) for n in lengths]  # loud: the relu6 ceiling is hit
    batch = np.zeros((3, 1, 96, BINS), dtype=np.float32)
    for i, u in enumerate(utterances):
        batch[i, 0, :len(u)] = u
    ours = net(mx.nd.array(batch), mx.nd.array(lengths)).asnumpy()
    theirs = plainly_written_forward(net, mx.nd.array(batch), mx.nd.array(lengths)).asnumpy()
    for i, n in enumerate(lengths):  # past output_length(n), padding: anything goes
        valid = output_length(n)
        np.testing.assert_allclose(ours[i, :valid], theirs[i, :valid], rtol=0, atol=1e-5)


def ctc_gradients(net, utterances, labels, padded_frames=None):
    """Summed CTC loss of a zero-padded training-mode batch and each parameter's gradient."""
    lengths = [len(u) for u in utterances]
    total = padded_frames or max(lengths)
    batch = np.zeros((len(utterances), 1, total, BINS), dtype=np.float32)
    padded_labels = -np.ones((len(labels), max(len(y) for y in labels)), dtype=np.float32)
    for i, (u, y) in enumerate(zip(utterances, labels)):
        batch[i, 0, :len(u)] = u
        padded_labels[i, :len(y)] = y
    with mx.autograd.record(train_mode=True):
        logits = net(mx.nd.array(batch), mx.nd.array(lengths))
        loss = CTCLoss()(logits, mx.nd.array(padded_labels),
                         mx.nd.array(output_length(np.array(lengths))),
                         mx.nd.array([len(y) for y in labels])).sum()
    loss.backward()
    gradients = {name: param.grad().asnumpy().astype(np.float64)
                 for name, param in net.collect_params().items() if param.grad_req != 'null'}
    return loss.asscalar(), gradients


def _set_batch_norm_statistics(net, use_running_statistics):
    """Every BatchNorm of ``net`` normalizes with its running (or its batch) statistics."""
    def set_statistics(block):
        if isinstance(block, mx.gluon.nn.BatchNorm):
            block._kwargs['use_global_stats'] = use_running_statistics
    net.apply(set_statistics)
    net.hybridize(static_alloc=True)  # rebuilds the graph with the changed BatchNorm


def _padding_test_batch():
    lengths = [57, 90, 23, 64]
    rng = np.random.RandomState(7)
    return ([features(n, seed=n) for n in lengths],
            [rng.randint(0, CLASSES - 1, size=n) for n in (6, 11, 2, 8)])


def test_training_mode_gradients_of_a_padded_batch_are_each_utterances_own():
    """Training mode, BatchNorm on its running statistics: a padded batch's CTC loss and
    parameter gradients are the sums of each utterance's own, so the masking, the
    reversal and the loss lengths keep padding out of the backward pass too."""
    net = small_model()
    _set_batch_norm_statistics(net, use_running_statistics=True)
    utterances, labels = _padding_test_batch()
    loss, gradients = ctc_gradients(net, utterances, labels, padded_frames=128)
    alone = [ctc_gradients(net, [u], [y]) for u, y in zip(utterances, labels)]
    assert loss == pytest.approx(sum(l for l, _ in alone), rel=1e-5)
    for name, gradient in gradients.items():
        summed = sum(g[name] for _, g in alone)
        np.testing.assert_allclose(gradient, summed, rtol=1e-4,
                                   atol=1e-5 * np.abs(summed).max(), err_msg=name)


def test_training_mode_batch_statistics_include_padded_frames():
    """With batch statistics (training's default), BatchNorm's mean and variance are taken
    over every frame of the batch, padded ones included, as in the reference: the same
    batch padded further gets other gradients. The README says so; this checks it is true."""
    net = small_model()
    utterances, labels = _padding_test_batch()
    _, tight = ctc_gradients(net, utterances, labels)  # padded to the longest, 90 frames
    _, padded = ctc_gradients(net, utterances, labels, padded_frames=128)
    changes = [np.abs(padded[name] - tight[name]).max() / np.abs(tight[name]).max()
               for name in tight]
    assert max(changes) > 1e-2
    # The same check passes the other way round when BatchNorm leaves padding out.
    _set_batch_norm_statistics(net, use_running_statistics=True)
    _, tight = ctc_gradients(net, utterances, labels)
    _, padded = ctc_gradients(net, utterances, labels, padded_frames=128)
    for name in tight:
        np.testing.assert_allclose(padded[name], tight[name], rtol=1e-4,
                                   atol=1e-5 * np.abs(tight[name]).max(), err_msg=name)
def test_rnn_kernel_is_chosen_by_context():
    assert use_fused_rnn(mx.cpu()) is False
    assert use_fused_rnn(mx.cpu(1)) is False
    assert use_fused_rnn(mx.gpu(0)) is True  # a context object only: no GPU needed


def test_forward_selects_the_kernel_and_rebuilds_the_graph():
    net = small_model()
    utterances = [features(50, 1), features(33, 2)]
    expected = run(net, utterances)
    assert all(layer.fused is False for layer in net.rnns)
    for layer in net.rnns:  # as if the block had last run on a GPU
        layer.fused = True
    np.testing.assert_array_equal(run(net, utterances), expected)
    assert all(layer.fused is False for layer in net.rnns)


def unpack(parameters, gates, input_size, hidden):
    """One direction's vector -> i2h_weight, h2h_weight, i2h_bias, h2h_bias (numpy)."""
    sizes = [gates * hidden * input_size, gates * hidden * hidden, gates * hidden,
             gates * hidden]
    assert parameters.size == sum(sizes)
    parts = np.split(parameters, np.cumsum(sizes)[:-1])
    return dict(i2h_weight=parts[0].reshape(gates * hidden, input_size),
                h2h_weight=parts[1].reshape(gates * hidden, hidden),
                i2h_bias=parts[2], h2h_bias=parts[3])


@pytest.mark.parametrize('rnn_type, gates', [('lstm', 4), ('gru', 3), ('rnn_tanh', 1)])
def test_both_kernels_and_gluons_fused_layer_agree(rnn_type, gates, monkeypatch):
    """One parameter set, three ways to run it: split (CPU), fused, and gluon.rnn's layer.

    The lengths are all full, where the CPU's fused kernel is exact too. On CPU only
    the oneDNN kernel accepts (and ignores) the lengths input the fused path passes.
    """
    monkeypatch.setenv('MXNET_USE_MKLDNN_RNN', '1')
    steps, batch, inputs, hidden = 7, 3, 5, 4
    layer = RNNLayer(rnn_type, hidden, inputs, bidirectional=True, prefix='rnn_')
    layer.initialize()
    x = mx.nd.array(np.random.RandomState(0).randn(steps, batch, inputs))
    lengths = mx.nd.array([steps] * batch)
    split = layer(x, lengths).asnumpy()
    layer.fused = True
    fused = layer(x, lengths).asnumpy()
    np.testing.assert_allclose(fused, split, rtol=0, atol=1e-6)

    options = dict(bidirectional=True, layout='TNC', input_size=inputs, prefix='rnn_')
    reference = {'lstm': lambda: rnn.LSTM(hidden, **options),
                 'gru': lambda: rnn.GRU(hidden, **options),
                 'rnn_tanh': lambda: rnn.RNN(hidden, activation='tanh', **options)}[rnn_type]()
    reference.initialize()
    theirs = reference.collect_params()
    for d in ('l', 'r'):
        ours = unpack(getattr(layer, d + '0_parameters').data().asnumpy(), gates, inputs, hidden)
        for name, value in ours.items():
            theirs['rnn_%s0_%s' % (d, name)].set_data(mx.nd.array(value))
    np.testing.assert_allclose(reference(x).asnumpy(), split, rtol=0, atol=1e-6)


def test_initial_weights_are_tensorflows():
    """Glorot-uniform kernels with TensorFlow's fans, forget-gate bias 1.0, zero biases."""
    hidden, layers, filters = 16, 2, 4
    net = DeepSpeech2(CLASSES, num_bins=BINS, rnn_hidden_size=hidden, rnn_hidden_layers=layers,
                      conv_filters=filters)
    # A default initializer that would show if the layers' own were ignored.
    net.initialize(mx.init.Constant(7.0))
    net(mx.nd.zeros((1, 1, 48, BINS)), mx.nd.array([48]))

    def check_uniform(values, limit):
        # U(-limit, limit): bounded by limit, filling it, variance limit^2 / 3.
        assert np.abs(values).max() <= limit
        assert np.abs(values).max() > 0.95 * limit
        assert abs(values.var() / (limit ** 2 / 3) - 1) < 0.1

    # tf.layers.conv2d kernel (kt, kf, in, out): fans kt*kf*in and kt*kf*out.
    for conv, channels in zip(net.convs, (1, filters)):
        kt, kf = conv.weight.shape[2:]
        check_uniform(conv.weight.data().asnumpy(),
                      np.sqrt(6.0 / (kt * kf * channels + kt * kf * filters)))
    # BasicLSTMCell: one kernel (input + hidden, 4 * hidden); biases zero, forget_bias 1
    # added to the forget gate, which is MXNet's second gate block.
    input_size = filters * 81
    for layer in net.rnns:
        limit = np.sqrt(6.0 / (input_size + hidden + 4 * hidden))
        for d in ('l', 'r'):
            p = unpack(getattr(layer, d + '0_parameters').data().asnumpy(), 4, input_size,
                       hidden)
            check_uniform(np.concatenate([p['i2h_weight'], p['h2h_weight']], 1), limit)
            expected = np.zeros(4 * hidden)
            expected[hidden:2 * hidden] = 1.0
            np.testing.assert_array_equal(p['i2h_bias'] + p['h2h_bias'], expected)
        input_size = 2 * hidden
    dense = net.output.weight.data().asnumpy()
    check_uniform(dense, np.sqrt(6.0 / (2 * hidden + CLASSES)))
    np.testing.assert_array_equal(net.output.bias.data().asnumpy(), 0)


def test_legacy_parameters_compute_what_the_first_models_gluon_lstms_computed():
    """The first model ran two Gluon ``rnn.LSTM`` per layer; their converted weights,
    packed into one :class:`RNNLayer`, give the same outputs on full-length sequences."""
    hidden, inputs, steps, batch = 6, 10, 7, 3
    lstms, arrays = {}, {}
    for direction in ('forward', 'backward'):
        lstm = rnn.LSTM(hidden, layout='TNC', input_size=inputs)
        lstm.initialize(mx.init.Uniform(0.5))
        lstms[direction] = lstm
        for name, param in lstm._collect_params_with_prefix('%s_rnns.0' % direction).items():
            arrays[name] = param.data()
    arrays['output.bias'] = mx.nd.arange(3)
    converted, legacy = pack_legacy_parameters(arrays)
    assert legacy and sorted(converted) == ['output.bias', 'rnns.0.l0_parameters',
                                            'rnns.0.r0_parameters']
    layer = RNNLayer('lstm', hidden, inputs, bidirectional=True)
    layer.initialize()
    layer.l0_parameters.set_data(converted['rnns.0.l0_parameters'])
    layer.r0_parameters.set_data(converted['rnns.0.r0_parameters'])
    x = mx.nd.array(np.random.RandomState(0).randn(steps, batch, inputs))
    expected = np.concatenate([lstms['forward'](x).asnumpy(),
                               lstms['backward'](x[::-1]).asnumpy()[::-1]], axis=2)
    got = layer(x, mx.nd.array([steps] * batch)).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_legacy_parameters_with_a_part_missing_are_refused():
    arrays = {'forward_rnns.1._unfused.0.i2h_weight': mx.nd.zeros((4, 2))}
    with pytest.raises(ValueError, match='forward_rnns.1 lacks h2h_weight, i2h_bias, h2h_bias'):
        pack_legacy_parameters(arrays)
