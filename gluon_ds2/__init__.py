"""gluon-ds2: DeepSpeech2 in MXNet Gluon, ported from the TensorFlow model garden's research/deep_speech."""
__version__ = '0.1.0'
