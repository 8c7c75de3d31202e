"""Train DeepSpeech2 (the TensorFlow reference's flags and defaults).

    python train.py --train_data_dir=data/demo_data/train/LibriSpeech/train.csv \\
        --eval_data_dir=data/demo_data/dev/LibriSpeech/dev.csv --model_dir=runs/demo \\
        --rnn_hidden_size=256 --rnn_hidden_layers=3 --batch_size=16

    horovodrun -np 8 python train.py --num_gpus=1 ...    # one GPU per process

Re-running with the same --model_dir resumes from its latest checkpoint
(gluon_ds2/resume.py says which config wins).
"""
import argparse
import logging
import sys

from gluon_ds2.checkpoint import CheckpointError
from gluon_ds2.config import add_arguments, explicit_flags
from gluon_ds2.resume import run_config
from gluon_ds2.threads import set_thread_policy


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    try:
        cfg, resumed = run_config(explicit_flags(parser.parse_args(argv)))
    except (ValueError, OSError, CheckpointError) as err:  # e.g. a model flag changed on resume
        return _error(err)
    threads = set_thread_policy(cfg.train.num_threads, cfg.data.num_workers)
    from gluon_ds2 import training  # imports MXNet: after the thread policy
    logging.getLogger(__name__).info('%s, %d OpenMP threads per process',
                                     'resuming' if resumed else 'starting', threads)
    try:
        state = training.run(cfg)
    except (ValueError, OSError, CheckpointError, training.TrainingStopped) as err:
        return _error(err)
    return 128 + state['interrupted_by'] if state.get('interrupted_by') else 0


def _error(err):
    # Under horovodrun every rank stops with the same one-line message, not a traceback.
    print('train.py: error: %s' % err, file=sys.stderr)
    return 1


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    sys.exit(main())
