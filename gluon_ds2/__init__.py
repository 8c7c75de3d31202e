"""gluon-ds2: DeepSpeech2 in MXNet Gluon, ported from the TensorFlow model garden's research/deep_speech."""
from .threads import set_thread_policy

__version__ = '0.1.0'

# Before any module of the package imports MXNet, which reads it once (see threads.py).
set_thread_policy()
