"""Loading a model from a checkpoint alone, and predicting with it."""
import string

import mxnet as mx
import numpy as np

from gluon_ds2.checkpoint import save_checkpoint
from gluon_ds2.config import Config
from gluon_ds2.decoder import greedy_decode_batch
from gluon_ds2.inference import load_model, predict
from gluon_ds2.model import DeepSpeech2

# The token order of checkpoints written before gluon-ds2 took the reference's (space first).
EARLIER_TOKENS = [' '] + list(string.ascii_lowercase) + ["'"]


def test_checkpoint_keeps_the_vocabulary_order_it_was_trained_with(tmp_path):
    """A checkpoint of the earlier, space-first order loads with that order, whatever the
    current vocabulary file says, so its label ids keep their meaning."""
    cfg = Config()
    cfg.audio.max_freq = 1000  # 21 bins
    cfg.model.rnn_hidden_size, cfg.model.rnn_hidden_layers, cfg.model.conv_filters = 8, 1, 2
    mx.random.seed(0)
    net = DeepSpeech2.from_config(cfg.model, len(EARLIER_TOKENS) + 1, cfg.audio.num_bins)
    net.initialize(mx.init.Xavier())
    features = mx.nd.array(np.random.RandomState(0).randn(2, 1, 60, cfg.audio.num_bins))
    lengths = mx.nd.array([60, 41])
    expected = net(features, lengths).asnumpy()
    save_checkpoint(str(tmp_path), net, None, dict(global_step=1, epoch=0, batch_in_epoch=1,
                                                    config=cfg.to_json(),
                                                    vocabulary=EARLIER_TOKENS))

    loaded, loaded_cfg, vocab, meta, path = load_model(str(tmp_path), [mx.cpu()])
    assert loaded_cfg == cfg
    assert vocab.tokens == EARLIER_TOKENS
    assert vocab.blank_id == 28
    assert vocab.encode(' a') == [0, 1]
    logits, output_lengths = predict(loaded, features, lengths, [mx.cpu()])
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
    # Decoded with the checkpoint's order: id 0 is a space, as it was in training.
    logits = np.full((1, 3, 29), -10.0, dtype=np.float32)
    logits[0, [0, 1, 2], [1, 0, 2]] = 0.0
    assert greedy_decode_batch(logits, np.array([3]), vocab) == ['a b']


def test_loaded_model_is_exact_across_shapes_and_devices_and_follows_new_weights(tmp_path):
    """load_model's graph is static (hybridize_for_inference): each new batch shape, on each
    of two CPU contexts, gives the imperative model's outputs, and weights loaded after the
    first calls are the ones used (the oneDNN RNN keeps its own copy of them)."""
    cfg = Config()
    cfg.audio.max_freq = 1000  # 21 bins
    cfg.model.rnn_hidden_size, cfg.model.rnn_hidden_layers, cfg.model.conv_filters = 8, 2, 2
    nets = []
    for seed in (0, 1):
        mx.random.seed(seed)
        net = DeepSpeech2.from_config(cfg.model, 29, cfg.audio.num_bins)
        net.initialize(mx.init.Xavier())
        net(mx.nd.zeros((1, 1, 40, cfg.audio.num_bins)), mx.nd.array([40]))
        nets.append(net)
    meta = dict(global_step=1, epoch=0, batch_in_epoch=1, config=cfg.to_json(),
                vocabulary=EARLIER_TOKENS)
    save_checkpoint(str(tmp_path), nets[0], None, meta)
    contexts = [mx.cpu(0), mx.cpu(1)]
    loaded = load_model(str(tmp_path), contexts)[0]
    assert dict(loaded._flags)['static_shape'] is True
    rng = np.random.RandomState(0)
    batches = [(1, [60]), (3, [41, 60, 33]), (1, [75]), (2, [60, 60]), (3, [41, 60, 33])]
    for model in nets:
        if model is nets[1]:
            nets[1].save_parameters(str(tmp_path / 'other.params'))
            loaded.load_parameters(str(tmp_path / 'other.params'), ctx=contexts)
        for size, lengths in batches:
            features = mx.nd.array(rng.randn(size, 1, max(lengths), cfg.audio.num_bins))
            lengths = mx.nd.array(lengths)
            logits, _ = predict(loaded, features, lengths, contexts)
            np.testing.assert_allclose(logits, model(features, lengths).asnumpy(),
                                       rtol=0, atol=1e-5)
