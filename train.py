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
from gluon_ds2.thread_probe import choose_threads
from gluon_ds2.threads import default_share, nobody_chose, set_thread_policy


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    try:
        cfg, resumed = run_config(explicit_flags(parser.parse_args(argv)))
    except (ValueError, OSError, CheckpointError) as err:  # e.g. a model flag changed on resume
        return _error(err)
    threads = cfg.train.num_threads
    if nobody_chose(threads):  # time this model's step at each count (thread_probe.py)
        threads = choose_threads(cfg, default_share(cfg.data.num_workers))
    # run_config's imports have loaded MXNet: a new count needs a new process
    threads = set_thread_policy(threads, cfg.data.num_workers, restart=argv is None)
    from gluon_ds2 import training
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
