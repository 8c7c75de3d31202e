"""Train DeepSpeech2 (the TensorFlow reference's flags and defaults).

    python train.py --train_data_dir=data/demo_data/train.csv \\
        --eval_data_dir=data/demo_data/dev.csv --model_dir=runs/demo \\
        --rnn_hidden_size=256 --rnn_hidden_layers=3 --batch_size=16

    horovodrun -np 8 python train.py --num_gpus=1 ...    # one GPU per process

Re-running with the same --model_dir resumes from its latest checkpoint.
"""
import argparse
import logging
import os
import sys

from gluon_ds2.checkpoint import CheckpointError, config_for_model_dir
from gluon_ds2.config import TrainConfig, add_arguments, default_threads, explicit_flags


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    explicit = explicit_flags(args)
    model_dir = explicit.get('train', {}).get('model_dir', TrainConfig().model_dir)
    try:
        cfg, resumed = config_for_model_dir(model_dir, explicit)
    except (ValueError, OSError, CheckpointError) as err:  # e.g. a model flag changed on resume
        print('train.py: error: %s' % err, file=sys.stderr)
        return 1
    threads = cfg.train.num_threads or int(os.environ.get('OMP_NUM_THREADS', 0)) or \
        default_threads(cfg.data.num_workers, os.cpu_count(),
                        int(os.environ.get('HOROVOD_LOCAL_SIZE', 1)))
    os.environ['OMP_NUM_THREADS'] = str(threads)  # read by MXNet's engine when it loads
    from gluon_ds2 import training
    logging.getLogger(__name__).info('%s, %d OpenMP threads per process',
                                     'resuming' if resumed else 'starting', threads)
    try:
        state = training.run(cfg)
    except (ValueError, OSError, CheckpointError, training.TrainingStopped) as err:
        # Under horovodrun every rank stops here with the same message, not a traceback.
        print('train.py: error: %s' % err, file=sys.stderr)
        return 1
    if state.get('interrupted_by'):
        return 128 + state['interrupted_by']
    return 0


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    sys.exit(main())
