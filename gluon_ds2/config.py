"""Configuration: the reference's flags and defaults, as dataclasses.

Each dataclass owns one argparse group. Flag names and defaults follow the
TensorFlow reference (``research/deep_speech/deep_speech.py``) so its users can
switch; flags beyond the reference say so in their help. Booleans accept the
reference's absl forms: ``--sortagrad``, ``--sortagrad=false``,
``--nosortagrad``.

The whole configuration is stored as JSON inside every checkpoint, which is
what lets ``evaluate.py CHECKPOINT`` rebuild a model without flags.
"""
import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field

from .vocab import DEFAULT_VOCABULARY_FILE

__all__ = ['AudioConfig', 'DataConfig', 'ModelConfig', 'TrainConfig', 'Config',
           'add_arguments', 'explicit_flags', 'from_args', 'parse_bool', 'parse_rnn_type',
           'parse_extra_eval_sets', 'PRIMARY_EVAL_SPLIT']

RNN_TYPES = ('lstm', 'gru', 'rnn_tanh', 'rnn_relu')
# The reference's 'rnn' names TensorFlow's abstract RNNCell, which cannot be built; a plain
# TensorFlow RNN cell (BasicRNNCell) is tanh, so 'rnn' means rnn_tanh here.
RNN_TYPE_ALIASES = {'rnn': 'rnn_tanh'}
# --dtype values (gluon_ds2.precision applies them).
DTYPES = ('float32', 'bfloat16', 'float16')
# The split name of --eval_data_dir in the metrics log; --extra_eval_data_dirs cannot take it.
PRIMARY_EVAL_SPLIT = 'eval'


def parse_rnn_type(text):
    """``--rnn_type`` value: case-insensitive, as the reference's flag, with its 'rnn'."""
    lowered = str(text).strip().lower()
    return RNN_TYPE_ALIASES.get(lowered, lowered)


def _flag(default, help, **kwargs):
    """A dataclass field carrying its flag's help text (and argparse extras)."""
    return field(default=default, metadata=dict(help=help, **kwargs))


@dataclass
class AudioConfig:
    """Spectrogram settings (the reference's featurizer)."""
    sample_rate: int = _flag(16000, 'The sample rate for audio.')
    window_ms: float = _flag(20, 'The frame length for spectrogram.')
    stride_ms: float = _flag(10, 'The frame step.')
    max_freq: typing.Optional[float] = _flag(
        None, 'Highest frequency kept in the spectrogram (default sample_rate / 2). [gluon-ds2]')

    @property
    def window_size(self):
        """Samples per analysis window (reference: ``int(0.001 * rate * window_ms)``)."""
        return int(0.001 * self.sample_rate * self.window_ms)

    @property
    def stride_size(self):
        """Samples per frame step."""
        return int(0.001 * self.sample_rate * self.stride_ms)

    @property
    def num_bins(self):
        """Frequency bins the featurizer keeps: 161 for the defaults."""
        max_freq = self.sample_rate / 2 if self.max_freq is None else self.max_freq
        # The featurizer's own float arithmetic (bin k is kept if rate / window * k <=
        # max_freq); floor division rounds differently, e.g. at 22050 Hz with 10 ms windows.
        bin_width = float(self.sample_rate) / self.window_size
        return sum(1 for k in range(self.window_size // 2 + 1) if bin_width * k <= max_freq)


@dataclass
class DataConfig:
    """Manifests and the input pipeline."""
    train_data_dir: str = _flag(
        '/tmp/librispeech_data/test-clean/LibriSpeech/test-clean.csv',
        'The csv file path of train dataset (several may be joined with commas).')
    eval_data_dir: str = _flag(
        '/tmp/librispeech_data/test-clean/LibriSpeech/test-clean.csv',
        'The csv file path of evaluation dataset (several may be joined with commas).')
    extra_eval_data_dirs: str = _flag(
        '', 'More evaluation sets, scored after each evaluation of --eval_data_dir and logged '
            'under their own names, as NAME=MANIFEST[,NAME=MANIFEST...] (e.g. '
            'dev_ood=data/demo_data/dev_ood/LibriSpeech/dev_ood.csv); early stop and the best '
            'checkpoint follow --eval_data_dir alone. [gluon-ds2]')
    vocabulary_file: str = _flag(DEFAULT_VOCABULARY_FILE, 'The file path of vocabulary file.')
    sortagrad: bool = _flag(True, 'If true, sort examples by audio length and perform no '
                                  'batch_wise shuffling for the first epoch.')
    num_workers: int = _flag(1, 'DataLoader worker processes (0 = load in the training '
                                'process). [gluon-ds2]')
    max_duration: typing.Optional[float] = _flag(
        None, 'Drop training utterances longer than this many seconds. [gluon-ds2]')
    on_bad_input: str = _flag('skip', "What to do with an unreadable file or row: 'skip' "
                                      "(count and go on) or 'fail'. [gluon-ds2]",
                              choices=('skip', 'fail'))
    freq_masks: int = _flag(0, 'SpecAugment frequency masks per training utterance (0 = off, '
                               'the reference). [gluon-ds2]')
    freq_mask_width: int = _flag(10, 'Widest frequency mask, in bins. [gluon-ds2]')
    time_masks: int = _flag(0, 'SpecAugment time masks per training utterance (0 = off). '
                               '[gluon-ds2]')
    time_mask_width: int = _flag(20, 'Widest time mask, in frames (at most a fifth of the '
                                     'utterance). [gluon-ds2]')
    speed_perturb: bool = _flag(False, 'Play each training utterance at a speed drawn from '
                                       '--speed_factors (soxr resampling: tempo and pitch '
                                       'change together); a speed at which CTC could not '
                                       'align the transcript is replaced by 1.0. [gluon-ds2]')
    speed_factors: str = _flag('0.9,1.0,1.1', 'Speeds for --speed_perturb, drawn with equal '
                                              'probability. [gluon-ds2]')
    noise_prob: float = _flag(0.0, 'Probability of adding noise to a training utterance '
                                   '(0 = off). [gluon-ds2]')
    noise_snr_db: str = _flag('10,30', 'LOW,HIGH: the signal-to-noise ratio of added noise is '
                                       'drawn uniformly in this range (dB). [gluon-ds2]')
    noise_types: str = _flag('white,pink,brown,blue,babble',
                             'Noises drawn with equal probability: colours white, pink, brown, '
                             'blue, violet, or babble (other training utterances). [gluon-ds2]')
    babble_utterances: int = _flag(3, 'Utterances summed into babble noise. [gluon-ds2]')
    reverb_prob: float = _flag(0.0, 'Probability of reverberating a training utterance in a '
                                    'synthetic room (0 = off). [gluon-ds2]')
    reverb_rt60: str = _flag('0.2,0.8', 'LOW,HIGH: the room\'s reverberation time RT60 is '
                                        'drawn uniformly in this range (s). [gluon-ds2]')
    band_limit_prob: float = _flag(0.0, 'Probability of band-limiting a training utterance, '
                                        'half the time as a telephone (300-3400 Hz), half as '
                                        'a cheap microphone (random low and high cut) '
                                        '(0 = off). [gluon-ds2]')
    gain_prob: float = _flag(0.0, 'Probability of a random gain within +-gain_db, clipped at '
                                  'full scale (+-1) as a converter does (0 = off). [gluon-ds2]')
    gain_db: float = _flag(10.0, 'Largest gain (and attenuation) for --gain_prob, in dB. '
                                 '[gluon-ds2]')
    clip_prob: float = _flag(0.0, 'Probability of hard-clipping a training utterance '
                                  '(0 = off). [gluon-ds2]')
    clip_level: float = _flag(0.3, 'Lowest clipping threshold for --clip_prob, as a fraction '
                                   'of the utterance\'s peak (drawn up to 1). [gluon-ds2]')


@dataclass
class ModelConfig:
    """DeepSpeech2 architecture."""
    rnn_hidden_size: int = _flag(800, 'The hidden size of RNNs.')
    rnn_hidden_layers: int = _flag(5, 'The number of RNN layers.')
    rnn_type: str = _flag('lstm', 'Type of RNN cell, case-insensitive; rnn = rnn_tanh (the '
                                  'reference defaults to gru; our users asked for lstm).',
                          choices=RNN_TYPES, type=parse_rnn_type)
    is_bidirectional: bool = _flag(True, 'If rnn unit is bidirectional')
    use_bias: bool = _flag(True, 'Use bias in the last fully-connected layer')
    conv_filters: int = _flag(32, 'Filters in each of the two conv layers. [gluon-ds2]')
    batch_norm_decay: float = _flag(0.997, 'Momentum of the BatchNorm running statistics (the '
                                           'reference\'s 0.997 lags for hundreds of steps; '
                                           'short runs evaluate better with 0.99). [gluon-ds2]')


@dataclass
class TrainConfig:
    """Optimization, evaluation cadence, checkpoints."""
    model_dir: str = _flag('/tmp/deep_speech_model/', 'The location of the model checkpoint files.')
    num_gpus: typing.Optional[int] = _flag(
        None, 'How many GPUs to use in this process; 0 = CPU, -1 = all. Default: 1 if a GPU '
              'is visible, else 0.')
    devices: typing.Optional[str] = _flag(
        None, 'Devices of each process, e.g. gpu:0,gpu:1 or cpu:0,cpu:1; overrides --num_gpus. '
              '[gluon-ds2]')
    train_epochs: int = _flag(10, 'The number of epochs used to train.')
    epochs_between_evals: int = _flag(1, 'The number of training epochs to run between '
                                         'evaluations; the last epoch is always evaluated '
                                         '(the reference trains only train_epochs // '
                                         'epochs_between_evals epochs).')
    batch_size: int = _flag(128, 'Global batch size for training and evaluation.')
    seed: int = _flag(1, 'The random seed.')
    learning_rate: float = _flag(5e-4, 'The initial learning rate.')
    scale_lr_by_workers: bool = _flag(
        False, 'Multiply --learning_rate by the number of Horovod processes: for a '
               '--batch_size raised with the process count (a fixed batch per process). '
               '[gluon-ds2]')
    wer_threshold: typing.Optional[float] = _flag(
        None, 'If passed, training will stop when the evaluation WER (corpus) is less than or '
              'equal to it (the reference stops at greater than or equal, a bug). For '
              'LibriSpeech the desired wer_threshold is 0.23 (MLPerf).')
    clip_gradient: float = _flag(400.0, 'Clip gradients to this global L2 norm (0 = off). '
                                        '[gluon-ds2]')
    lr_decay: float = _flag(1.0, 'Multiply the learning rate by this after every epoch '
                                 '(1.0 = off, the reference). [gluon-ds2]')
    lr_final: typing.Optional[float] = _flag(
        None, 'If passed, the learning rate falls linearly, step by step, from --learning_rate '
              'to this at the last step of --train_epochs (e.g. 0), instead of --lr_decay per '
              'epoch. [gluon-ds2]')
    log_every: int = _flag(10, 'Steps between metrics-log lines. [gluon-ds2]')
    checkpoint_every: int = _flag(500, 'Steps between checkpoints inside an epoch (0 = only at '
                                       'epoch ends). [gluon-ds2]')
    keep_checkpoints: int = _flag(3, 'How many recent checkpoints to keep, at least 1 (the '
                                     'best is kept as well). [gluon-ds2]')
    max_steps: typing.Optional[int] = _flag(None, 'Stop after this many optimizer steps. '
                                                  '[gluon-ds2]')
    num_threads: typing.Optional[int] = _flag(
        None, 'OpenMP threads for MXNet (default: $OMP_NUM_THREADS if set; else, for one '
              'process training on the CPU, the fastest of the cores this process may run on '
              '(its CPU affinity) and their halves, timed on a few steps of this model and '
              'kept in model_dir/threads.json; else those cores shared by this host\'s '
              'processes). [gluon-ds2]')
    dtype: str = _flag('float32', 'Arithmetic type of the convolutions and dense layers: '
                                  'bfloat16 on CPU, float16 (with dynamic loss scaling) on GPU; '
                                  'MXNet 1.9 keeps the RNNs in float32. [gluon-ds2]',
                       choices=DTYPES)


@dataclass
class Config:
    """Everything a run needs; serialized into each checkpoint."""
    audio: AudioConfig = field(default_factory=AudioConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_json(self):
        """Plain-JSON dict of all groups."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        """Inverse of :meth:`to_json`; unknown keys are an error naming them."""
        unknown = sorted(set(data) - {group.name for group in dataclasses.fields(cls)})
        if unknown:
            raise ValueError('configuration has unknown groups %s (written by a newer '
                             'gluon-ds2?)' % (unknown,))
        groups = {}
        for group in dataclasses.fields(cls):
            group_cls = group.default_factory
            values = dict(data.get(group.name, {}))
            known = {f.name for f in dataclasses.fields(group_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError('configuration group %r has unknown keys %s (written by a '
                                 'newer gluon-ds2?)' % (group.name, unknown))
            groups[group.name] = group_cls(**values)
        return cls(**groups)

    def dumps(self):
        return json.dumps(self.to_json(), indent=2, sort_keys=True)


def parse_bool(text):
    """absl-style boolean flag values: true/false, 1/0, yes/no."""
    lowered = str(text).strip().lower()
    if lowered in ('true', 't', '1', 'yes', 'y'):
        return True
    if lowered in ('false', 'f', '0', 'no', 'n'):
        return False
    raise argparse.ArgumentTypeError('expected true or false, got %r' % (text,))


def at_least(minimum):
    """argparse type: an integer not below ``minimum`` (argparse names the flag in its error)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError('expected an integer, got %r' % (text,)) from None
        if value < minimum:
            raise argparse.ArgumentTypeError('must be at least %d, got %d' % (minimum, value))
        return value
    parse.__name__ = 'integer'  # argparse's fallback message says "invalid integer value"
    return parse


def parse_extra_eval_sets(text):
    """``--extra_eval_data_dirs`` value -> ``[(name, manifest), ...]`` in the order given.

    Raises ``ValueError`` naming the flag and the bad item: an item without
    ``=``, an empty name or manifest, a name given twice or the primary set's
    (:data:`PRIMARY_EVAL_SPLIT`).
    """
    sets = []
    for item in str(text).split(',') if str(text).strip() else []:
        name, equals, manifest = (part.strip() for part in item.partition('='))
        problem = None
        if not equals:
            problem = "expected NAME=MANIFEST"
        elif not name:
            problem = 'empty name'
        elif not manifest:
            problem = 'empty manifest path'
        elif name == PRIMARY_EVAL_SPLIT:
            problem = 'the name %r is the --eval_data_dir set\'s' % PRIMARY_EVAL_SPLIT
        elif name in dict(sets):
            problem = 'the name %r is given twice' % name
        if problem:
            raise ValueError('--extra_eval_data_dirs: bad item %r: %s; give a comma-separated '
                             'list of NAME=MANIFEST with distinct names' % (item, problem))
        sets.append((name, manifest))
    return sets


def _optional(kind):
    def convert(text):
        return None if str(text).lower() in ('none', '') else kind(text)
    convert.__name__ = kind.__name__
    return convert


def _add_group(parser, group_cls, title):
    group = parser.add_argument_group(title, group_cls.__doc__)
    hints = typing.get_type_hints(group_cls)
    for f in dataclasses.fields(group_cls):
        hint = hints[f.name]
        extras = {k: v for k, v in f.metadata.items() if k != 'help'}
        args = typing.get_args(hint)
        extras.setdefault('type', _optional(args[0]) if args else hint)
        help_text = '%s (default: %s)' % (f.metadata['help'], f.default)
        flag = '--' + f.name
        if hint is bool:
            group.add_argument(flag, type=parse_bool, nargs='?', const=True,
                               default=argparse.SUPPRESS, help=help_text, metavar='BOOL')
            group.add_argument('--no' + f.name, dest=f.name, action='store_false',
                               default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            continue
        group.add_argument(flag, default=argparse.SUPPRESS, help=help_text, **extras)


def add_arguments(parser, groups=('audio', 'data', 'model', 'train')):
    """Add one argparse group per config section named in ``groups``.

    Defaults are suppressed so that :func:`from_args` can tell a flag the user
    gave from one left alone (a resumed run keeps its checkpoint's values).
    """
    titles = {'audio': 'audio features', 'data': 'data', 'model': 'model',
              'train': 'training'}
    for name in groups:
        group_cls = next(f.default_factory for f in dataclasses.fields(Config) if f.name == name)
        _add_group(parser, group_cls, titles[name])
    return parser


def explicit_flags(args):
    """The flags present on the command line, as ``{group: {name: value}}``."""
    given = vars(args)
    result = {}
    for group in dataclasses.fields(Config):
        names = {f.name for f in dataclasses.fields(group.default_factory)}
        values = {k: v for k, v in given.items() if k in names}
        if values:
            result[group.name] = values
    return result


def from_args(args, base=None):
    """Config from parsed flags, on top of ``base`` (defaults when None)."""
    data = (base or Config()).to_json()
    for group, values in explicit_flags(args).items():
        data[group].update(values)
    return Config.from_json(data)

