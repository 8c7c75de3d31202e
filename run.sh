#!/bin/sh
# gluon-ds2's main job: the counterpart of the reference's run_deep_speech.sh.
#
#   sh run.sh                      # the built-in demo: synthesize, prepare, train, evaluate
#   sh run.sh --fresh              # the demo again, discarding the previous demo run
#   sh run.sh --resume             # continue the previous demo run
#   sh run.sh librispeech          # the reference benchmark on LibriSpeech
#   NP=8 sh run.sh librispeech     # ... with horovodrun -np 8
#   sh run.sh --help
#
# Every setting is an environment variable (listed by --help); flags override them.
set -eu
ROOT=$(cd "$(dirname "$0")" && pwd)
cd "$ROOT"

usage() {
    cat <<'EOF'
usage: sh run.sh [demo|librispeech] [--fresh|--resume] [--np N] [--model_dir DIR]
                 [--data_dir DIR] [--mirror URL_OR_DIR] [--epochs N] [-- TRAIN_FLAGS...]

demo (default)  synthesize the espeak-ng demo corpus (cached in data/demo_mirror), prepare it
                with data/download.py --mirror, train the demo-size DeepSpeech2, average its
                last five checkpoints, build a pruned 3-gram LM from the corpus's in-domain
                text (lm-norm.txt.gz) and tune its weights on dev, evaluate the best
                checkpoint (the average if it scores better on dev) on both test splits (test:
                in-domain text, test_ood: a text source held out of train and of the LM; both
                read by voices never heard in training) with greedy and beam + LM decoding,
                transcribe three test files and print a summary.
librispeech     the reference benchmark: download and prepare all seven LibriSpeech splits,
                train on train-clean-100 + train-clean-360 + train-other-500 (utterances over
                27 s dropped), evaluate on dev-clean + dev-other, reference-size model,
                --num_gpus=-1 --wer_threshold=0.23.

--fresh         delete MODEL_DIR first        --resume   continue MODEL_DIR's latest checkpoint
(one of them is required when MODEL_DIR already holds checkpoints: runs are never mixed)
Arguments after -- go to train.py unchanged (e.g. -- --learning_rate=1e-3).

environment (defaults in brackets):
  NP              training processes; > 1 launches horovodrun -np NP [1]
  HOSTS           horovodrun -H value for several hosts, e.g. host1:8,host2:8 [localhost:NP]
  MODEL_DIR       [runs/demo | /tmp/deep_speech_model]
  DATA_DIR        prepared data [data/demo_data | /tmp/librispeech_data]
  MIRROR          where tarballs come from [data/demo_mirror | OpenSLR resource 12]
  EPOCHS          training epochs [demo: 6, librispeech: 10]
  BATCH_SIZE      global batch [demo: 8, librispeech: 128]
  RNN_HIDDEN_SIZE, RNN_HIDDEN_LAYERS, CONV_FILTERS, MAX_FREQ, LEARNING_RATE, LR_DECAY,
  BATCH_NORM_DECAY, FREQ_MASKS, TIME_MASKS (SpecAugment, widths 10 bins and 20 frames)
                  [demo: 144, 4, 16, 4000, 1e-3, 0.9, 0.99, 0, 0;
                   librispeech: 800, 5, 32, (none), 5e-4, 1.0, 0.997, 0, 0: the reference]
  SPEED_PERTURB (0/1), NOISE_PROB, REVERB_PROB, BAND_LIMIT_PROB, GAIN_PROB
                  waveform augmentation (train.py --speed_perturb, --noise_prob, ...)
                  [demo: 1, 0, 0, 0, 0; librispeech: all off, the reference]
  DEMO_TRAIN_HOURS, DEMO_DEV_UTTERANCES, DEMO_TEST_UTTERANCES   demo corpus size [4, 300, 300]
  DEMO_DEV_OOD_UTTERANCES, DEMO_TEST_OOD_UTTERANCES             out-of-domain splits [300, 300]
  DEMO_TRAIN_UTTERANCES  train size in utterances instead of hours (tests use it)
  DEMO_PICO_SHARE share of the train speakers read by SVOX Pico instead of espeak [0.1]
  DEMO_HIBARI_SHARE  share of the train speakers read by hibari, a neural synthesizer [0.1]
  DEMO_TRAIN_SOURCES, DEMO_TRAIN_VOICES   ablations of the train split only (other splits and
                  the LM text unchanged): in-domain text sources, comma-separated [all];
                  voices: all, or narrow, the first demo corpus's [all]
  DEMO_TRAIN_CHAPTER_UTTERANCES  utterances per train chapter; fewer: more speakers [8]
  FLITE           1: also score test and test_ood read by CMU Flite (Debian's flite), an
                  engine training never hears: test_flite, test_ood_flite (about 80 s) [0]
  CHECKPOINT_EVERY steps between checkpoints inside an epoch [demo: 125, librispeech: 500]
  AVERAGE_LAST    average the weights of the last N checkpoints after training
                  (scripts/average_checkpoints.py; 0 = off) [demo: 5, librispeech: 0]
  LM_ORDER, LM_MIN_COUNT n-gram order and pruning (n-grams seen fewer times dropped) [3, 2]
  LM_ALPHAS, LM_BETAS    grid of LM weights and word bonuses tuned on dev
                  [0.35,0.5,0.75 and 0.5,1,2]
  NUM_WORKERS     DataLoader workers [1]
  TRANSCRIBE_FILES how many test files to transcribe at the end [3]
EOF
}

TASK=demo
MODE=
TRAIN_EXTRA=
while [ $# -gt 0 ]; do
    case "$1" in
        demo|librispeech) TASK=$1 ;;
        --fresh) MODE=fresh ;;
        --resume) MODE=resume ;;
        --np) NP=$2; shift ;;
        --np=*) NP=${1#*=} ;;
        --model_dir) MODEL_DIR=$2; shift ;;
        --model_dir=*) MODEL_DIR=${1#*=} ;;
        --data_dir) DATA_DIR=$2; shift ;;
        --data_dir=*) DATA_DIR=${1#*=} ;;
        --mirror) MIRROR=$2; shift ;;
        --mirror=*) MIRROR=${1#*=} ;;
        --epochs) EPOCHS=$2; shift ;;
        --epochs=*) EPOCHS=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        --) shift; TRAIN_EXTRA="$*"; break ;;
        *) echo "run.sh: unknown argument '$1' (see sh run.sh --help)" >&2; exit 2 ;;
    esac
    shift
done

NP=${NP:-1}
NUM_WORKERS=${NUM_WORKERS:-1}
if [ "$TASK" = demo ]; then
    MODEL_DIR=${MODEL_DIR:-runs/demo}
    DATA_DIR=${DATA_DIR:-data/demo_data}
    MIRROR=${MIRROR:-data/demo_mirror}
    # 4 x 144 LSTM, batch 8, 6 epochs: batch 8 learns more per epoch than 16, and a narrower
    # model pays for the fifth epoch; four layers of 144 train as fast as three of 192 and
    # scored better on every test split (README, "The same training time, spent
    # differently" and "Deeper at the same speed"); the sixth came with train.py's measured
    # thread count, which trains 1.55x faster on the slower CPUs ("A sixth epoch").
    EPOCHS=${EPOCHS:-6}
    BATCH_SIZE=${BATCH_SIZE:-8}
    RNN_HIDDEN_SIZE=${RNN_HIDDEN_SIZE:-144}
    RNN_HIDDEN_LAYERS=${RNN_HIDDEN_LAYERS:-4}
    CONV_FILTERS=${CONV_FILTERS:-16}
    MAX_FREQ=${MAX_FREQ:-4000}
    LEARNING_RATE=${LEARNING_RATE:-1e-3}
    LR_DECAY=${LR_DECAY:-0.9}
    BATCH_NORM_DECAY=${BATCH_NORM_DECAY:-0.99}
    # Speed perturbation only: at this budget every other augmentation, alone or on top of it,
    # cost the espeak test splits more than it bought on an unheard engine (README's
    # "Augmentation at the full budget"); each stays one variable away.
    FREQ_MASKS=${FREQ_MASKS:-0}
    TIME_MASKS=${TIME_MASKS:-0}
    SPEED_PERTURB=${SPEED_PERTURB:-1}
    NOISE_PROB=${NOISE_PROB:-0}
    REVERB_PROB=${REVERB_PROB:-0}
    BAND_LIMIT_PROB=${BAND_LIMIT_PROB:-0}
    GAIN_PROB=${GAIN_PROB:-0}
    # A checkpoint every quarter of the demo's 499-step epoch; the mean of the last five
    # scored better than any one checkpoint, and than fewer or sparser ones, on every split
    # (measured at batch 16, 62 steps; README, "Checkpoint averaging").
    CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-125}
    AVERAGE_LAST=${AVERAGE_LAST:-5}
else
    MODEL_DIR=${MODEL_DIR:-/tmp/deep_speech_model}
    DATA_DIR=${DATA_DIR:-/tmp/librispeech_data}
    MIRROR=${MIRROR:-http://www.openslr.org/resources/12}
    EPOCHS=${EPOCHS:-10}
    BATCH_SIZE=${BATCH_SIZE:-128}
    RNN_HIDDEN_SIZE=${RNN_HIDDEN_SIZE:-800}
    RNN_HIDDEN_LAYERS=${RNN_HIDDEN_LAYERS:-5}
    CONV_FILTERS=${CONV_FILTERS:-32}
    MAX_FREQ=${MAX_FREQ:-}
    LEARNING_RATE=${LEARNING_RATE:-5e-4}
    LR_DECAY=${LR_DECAY:-1.0}
    BATCH_NORM_DECAY=${BATCH_NORM_DECAY:-0.997}
    FREQ_MASKS=${FREQ_MASKS:-0}
    TIME_MASKS=${TIME_MASKS:-0}
    SPEED_PERTURB=${SPEED_PERTURB:-0}
    NOISE_PROB=${NOISE_PROB:-0}
    REVERB_PROB=${REVERB_PROB:-0}
    BAND_LIMIT_PROB=${BAND_LIMIT_PROB:-0}
    GAIN_PROB=${GAIN_PROB:-0}
    CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-500}
    AVERAGE_LAST=${AVERAGE_LAST:-0}
fi
TRANSCRIBE_FILES=${TRANSCRIBE_FILES:-3}

STAGES=
now() { date +%s; }
stage_start() { STAGE_NAME=$1; STAGE_T0=$(now); echo; echo "==> $1"; }
stage_end() { STAGES="$STAGES$(printf '  %-28s %6d s' "$STAGE_NAME" $(( $(now) - STAGE_T0 )))
"; }
fail() { echo "run.sh: $*" >&2; exit 1; }

# What would stop the run late is checked before any work.
if [ "$TASK" = demo ] && [ "${FLITE:-0}" = 1 ] && ! command -v flite >/dev/null 2>&1; then
    fail "FLITE=1 needs CMU Flite, and no flite program is on PATH: apt-get install flite \
(Debian, Ubuntu), or run without FLITE=1"
fi

T_START=$(now)
stage_start "environment"
sh scripts/setup_env.sh
VENV=$(sh scripts/setup_env.sh --print-venv)  # .venv, or .venv-gpu on a GPU machine
PY="$VENV/bin/python"
# The GPU variant's CUDA 11 libraries; horovodrun passes LD_LIBRARY_PATH on to its ranks.
if [ -f "$VENV/bin/cuda-env.sh" ]; then . "$VENV/bin/cuda-env.sh"; fi
stage_end

if [ -f "$MODEL_DIR/checkpoints.json" ] && [ -z "$MODE" ]; then
    fail "$MODEL_DIR already holds a training run. Pass --resume to continue it, --fresh to \
delete it and start over, or --model_dir DIR for a new one."
fi
if [ "$MODE" = fresh ]; then rm -rf "$MODEL_DIR"; fi
mkdir -p "$MODEL_DIR"

if [ "$TASK" = demo ]; then
    stage_start "demo corpus"
    if [ -n "${DEMO_TRAIN_UTTERANCES:-}" ]; then
        SIZE="--train_utterances $DEMO_TRAIN_UTTERANCES"
    else
        SIZE="--train_hours ${DEMO_TRAIN_HOURS:-4}"
    fi
    # shellcheck disable=SC2086
    "$PY" data/make_demo_corpus.py --out_dir "$MIRROR" $SIZE \
        --dev_utterances "${DEMO_DEV_UTTERANCES:-300}" \
        --test_utterances "${DEMO_TEST_UTTERANCES:-300}" \
        --dev_ood_utterances "${DEMO_DEV_OOD_UTTERANCES:-300}" \
        --test_ood_utterances "${DEMO_TEST_OOD_UTTERANCES:-300}" \
        --pico_share "${DEMO_PICO_SHARE:-0.1}" --train_voices "${DEMO_TRAIN_VOICES:-all}" \
        --hibari_share "${DEMO_HIBARI_SHARE:-0.1}" \
        --train_chapter_utterances "${DEMO_TRAIN_CHAPTER_UTTERANCES:-8}" \
        ${DEMO_TRAIN_SOURCES:+--train_sources "$DEMO_TRAIN_SOURCES"}
    stage_end
    stage_start "prepare manifests"
    "$PY" data/download.py --mirror "$MIRROR" --data_dir "$DATA_DIR" \
        --splits train,dev,test,dev_ood,test_ood
    TRAIN_CSV=$DATA_DIR/train/LibriSpeech/train.csv
    EVAL_CSV=$DATA_DIR/dev/LibriSpeech/dev.csv
    # Scored after each epoch too, logged and plotted next to dev (not used to pick a checkpoint).
    EXTRA_EVAL=dev_ood=$DATA_DIR/dev_ood/LibriSpeech/dev_ood.csv
    TEST_SPLITS="test test_ood"
    # A speech engine no split uses: both test texts read again by CMU Flite (Debian's flite),
    # scored like the test splits, with FLITE=1.
    if [ "${FLITE:-0}" = 1 ]; then
        for SPLIT in test test_ood; do
            SRC=$DATA_DIR/$SPLIT/LibriSpeech/$SPLIT.csv
            DST=$DATA_DIR/${SPLIT}_flite/LibriSpeech/${SPLIT}_flite.csv
            if [ ! "$DST" -nt "$SRC" ]; then
                "$PY" scripts/make_engine_split.py "$SRC" --out_dir "$(dirname "$DST")"
            fi
        done
        TEST_SPLITS="$TEST_SPLITS test_flite test_ood_flite"
    fi
    LM_TEXT=$MIRROR/lm-norm.txt.gz
    LM_SOURCE="the corpus's in-domain text"
    stage_end
else
    stage_start "download LibriSpeech"
    case "$MIRROR" in
        http://*|https://*)
            "$PY" - "$MIRROR" <<'EOF' || fail "cannot reach $MIRROR: LibriSpeech needs network \
access, or a local copy: sh run.sh librispeech --mirror /path/to/tarballs"
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='HEAD'), timeout=15)
except urllib.error.HTTPError:
    pass  # the server answered: the network works
except OSError as err:
    print('run.sh: %s' % getattr(err, 'reason', err), file=sys.stderr)
    sys.exit(1)
EOF
            ;;
    esac
    "$PY" data/download.py --mirror "$MIRROR" --data_dir "$DATA_DIR"
    stage_end
    stage_start "combine manifests"
    L=$DATA_DIR
    "$PY" data/combine_manifests.py --max_duration 27 --output "$DATA_DIR/train-all.csv" \
        "$L/train-clean-100/LibriSpeech/train-clean-100.csv" \
        "$L/train-clean-360/LibriSpeech/train-clean-360.csv" \
        "$L/train-other-500/LibriSpeech/train-other-500.csv"
    "$PY" data/combine_manifests.py --max_duration 27 --output "$DATA_DIR/dev-all.csv" \
        "$L/dev-clean/LibriSpeech/dev-clean.csv" "$L/dev-other/LibriSpeech/dev-other.csv"
    TRAIN_CSV=$DATA_DIR/train-all.csv
    EVAL_CSV=$DATA_DIR/dev-all.csv
    EXTRA_EVAL=
    TEST_SPLITS="test-clean"
    LM_TEXT=$TRAIN_CSV
    LM_SOURCE="the train transcripts"
    stage_end
fi

stage_start "train"
set -- --train_data_dir="$TRAIN_CSV" --eval_data_dir="$EVAL_CSV" --model_dir="$MODEL_DIR" \
    --train_epochs="$EPOCHS" --batch_size="$BATCH_SIZE" --rnn_hidden_size="$RNN_HIDDEN_SIZE" \
    --rnn_hidden_layers="$RNN_HIDDEN_LAYERS" --conv_filters="$CONV_FILTERS" \
    --learning_rate="$LEARNING_RATE" --lr_decay="$LR_DECAY" --num_workers="$NUM_WORKERS" \
    --batch_norm_decay="$BATCH_NORM_DECAY" --freq_masks="$FREQ_MASKS" --time_masks="$TIME_MASKS" \
    --noise_prob="$NOISE_PROB" --reverb_prob="$REVERB_PROB" --band_limit_prob="$BAND_LIMIT_PROB" \
    --gain_prob="$GAIN_PROB" --checkpoint_every="$CHECKPOINT_EVERY" \
    --keep_checkpoints=$(( AVERAGE_LAST > 3 ? AVERAGE_LAST : 3 ))
if [ "$SPEED_PERTURB" = 1 ]; then set -- "$@" --speed_perturb; fi
if [ -n "$MAX_FREQ" ]; then set -- "$@" --max_freq="$MAX_FREQ"; fi
if [ -n "$EXTRA_EVAL" ]; then set -- "$@" --extra_eval_data_dirs="$EXTRA_EVAL"; fi
if [ "$TASK" = librispeech ]; then set -- "$@" --num_gpus=-1 --wer_threshold=0.23; fi
if [ "$NP" -gt 1 ]; then
    # shellcheck disable=SC2086
    "$VENV/bin/horovodrun" -np "$NP" -H "${HOSTS:-localhost:$NP}" --gloo \
        "$PY" train.py "$@" $TRAIN_EXTRA
else
    # shellcheck disable=SC2086
    "$PY" train.py "$@" $TRAIN_EXTRA
fi
stage_end

# The last AVERAGE_LAST checkpoints, or all of them if a short run kept fewer (at least 2).
KEPT=$("$PY" -c "import sys; from gluon_ds2.checkpoint import read_index
print(len(read_index(sys.argv[1])['checkpoints']))" "$MODEL_DIR")
LAST=$(( KEPT < AVERAGE_LAST ? KEPT : AVERAGE_LAST ))
if [ "$LAST" -ge 2 ]; then
    stage_start "average checkpoints"
    "$PY" scripts/average_checkpoints.py "$MODEL_DIR" --last "$LAST"
    stage_end
fi

LM_ORDER=${LM_ORDER:-3}
LM_MIN_COUNT=${LM_MIN_COUNT:-2}
LM=
if "$PY" -c "import pyctcdecode, kenlm" 2>/dev/null; then
    stage_start "language model"
    LM=$MODEL_DIR/lm.arpa
    "$PY" scripts/build_lm.py "$LM_TEXT" --order "$LM_ORDER" --min_count "$LM_MIN_COUNT" \
        --output "$LM"
    "$PY" scripts/tune_lm.py "$MODEL_DIR" --lm "$LM" --eval_data_dir "$EVAL_CSV" \
        --alphas "${LM_ALPHAS:-0.35,0.5,0.75}" --betas "${LM_BETAS:-0.5,1,2}" \
        --output "$MODEL_DIR/tune_lm.json" --plot "$MODEL_DIR/tune_lm.png"
    read -r ALPHA BETA <<EOF
$("$PY" -c "import json, sys; best = json.load(open(sys.argv[1]))['best']
print(best['alpha'], best['beta'])" "$MODEL_DIR/tune_lm.json")
EOF
    stage_end
fi

stage_start "evaluate (test splits)"
REPORT=$MODEL_DIR/test_report.txt
: > "$REPORT"
evaluate() {
    label=$1 split=$2; shift 2
    echo "--- $split, $label" | tee -a "$REPORT"
    "$PY" evaluate.py "$MODEL_DIR" --eval_data_dir="$DATA_DIR/$split/LibriSpeech/$split.csv" \
        "$@" | tee -a "$REPORT"
}
# Greedy and beam search + LM decode the same forward passes, in one evaluate.py each split.
for SPLIT in $TEST_SPLITS; do
    if [ -n "$LM" ]; then
        evaluate "greedy, and beam search (width 32) + $LM_ORDER-gram LM from $LM_SOURCE, alpha \
$ALPHA beta $BETA (tuned on dev)" "$SPLIT" --decoder greedy,beam --beam_width 32 --lm "$LM" \
            --alpha "$ALPHA" --beta "$BETA" --worst 3 \
            --output "$MODEL_DIR/${SPLIT}_greedy.jsonl,$MODEL_DIR/${SPLIT}_lm.jsonl"
    else
        evaluate greedy "$SPLIT" --worst 3 --output "$MODEL_DIR/${SPLIT}_greedy.jsonl"
    fi
done
[ -n "$LM" ] || echo "(beam search skipped: pip install pyctcdecode kenlm)" | tee -a "$REPORT"
FIRST_TEST=${TEST_SPLITS%% *}
TEST_CSV=$DATA_DIR/$FIRST_TEST/LibriSpeech/$FIRST_TEST.csv
stage_end

stage_start "transcribe"
FILES=$("$PY" -c "
import sys; from gluon_ds2.manifest import read_manifest
df = read_manifest(sys.argv[1]).sort_values('wav_filename')
step = max(1, len(df) // int(sys.argv[2]))
print('\n'.join(df['wav_filename'].iloc[::step][:int(sys.argv[2])]))" "$TEST_CSV" "$TRANSCRIBE_FILES")
# shellcheck disable=SC2086
"$PY" transcribe.py "$MODEL_DIR" $FILES > "$MODEL_DIR/transcripts.tsv"
"$PY" - "$TEST_CSV" "$MODEL_DIR/transcripts.tsv" <<'EOF'
import sys
from gluon_ds2.manifest import read_manifest
refs = dict(zip(*[read_manifest(sys.argv[1])[c] for c in ('wav_filename', 'transcript')]))
for line in open(sys.argv[2]):
    path, _, text = line.rstrip('\n').partition('\t')
    print('%s\n  reference:  %s\n  transcript: %s' % (path, refs.get(path, '?'), text))
EOF
stage_end

echo
echo "==> summary ($TASK)"
printf '%s' "$STAGES"
printf '  %-28s %6d s\n' "total" $(( $(now) - T_START ))
"$PY" - "$DATA_DIR" "$TRAIN_CSV" "$EVAL_CSV" "$MODEL_DIR" $TEST_SPLITS <<'EOF'
import json, os, sys
from gluon_ds2.checkpoint import read_index
from gluon_ds2.config import PRIMARY_EVAL_SPLIT
from gluon_ds2.curves import eval_records_by_split, read_metrics
from gluon_ds2.manifest import add_durations, read_manifests
data_dir, train_csv, eval_csv, model_dir = sys.argv[1:5]
test_splits = sys.argv[5:]
manifests = [('train', train_csv)] + [
    (split, os.path.join(data_dir, split, 'LibriSpeech', split + '.csv')) for split in test_splits]
for name, path in manifests:
    df = add_durations(read_manifests(path), progress=False)
    print('  %-14s %.2f h in %d utterances' % (name + ' audio', df['duration'].sum() / 3600,
                                               len(df)))
index = read_index(model_dir)
print('  %-14s %s' % ('checkpoint', os.path.join(model_dir, index['best'] or index['latest'])))
if index.get('averaged'):
    # Mid-epoch checkpoints were not scored: '-'.
    averaged, trained = index['averaged'], {e['name']: e for e in index['checkpoints']}
    sources = [trained[name] for name in averaged['averaged_from']]
    print('  %-14s steps %s: dev WER %.4f (theirs: %s)' % (
        'averaged', ', '.join(str(e['global_step']) for e in sources), averaged['wer'],
        ', '.join('-' if e['wer'] is None else '%.4f' % e['wer'] for e in sources)))
for label, name in (('metrics log', 'metrics.jsonl'), ('curve plot', 'training_curves.png'),
                    ('LM weights', 'tune_lm.json'), ('test report', 'test_report.txt')):
    if os.path.exists(os.path.join(model_dir, name)):
        print('  %-14s %s' % (label, os.path.join(model_dir, name)))
print('  %-14s %-20s %-20s' % ('WER / CER', 'greedy', 'beam + LM'))
for split in test_splits:
    cells = []
    for decoder in ('greedy', 'lm'):
        path = os.path.join(model_dir, '%s_%s.jsonl' % (split, decoder))
        if not os.path.exists(path):
            cells.append('-')
            continue
        results = [json.loads(line) for line in open(path)]
        words = sum(r['word_edits'] for r in results) / sum(r['reference_words'] for r in results)
        chars = sum(r['char_edits'] for r in results) / sum(r['reference_chars'] for r in results)
        cells.append('%.4f / %.4f' % (words, chars))
    print('  %-14s %-20s %-20s' % (split, cells[0], cells[1]))
# The dev curves of training: --eval_data_dir's set (named after its manifest), then the others.
splits = eval_records_by_split(read_metrics(os.path.join(model_dir, 'metrics.jsonl')))
primary = os.path.splitext(os.path.basename(eval_csv))[0]
by_epoch = {primary if name == PRIMARY_EVAL_SPLIT else name: {r['epoch']: r for r in records}
            for name, records in splits.items()}
print('  %-14s %s' % ('dev curve', ' '.join('%-20s' % ('%s WER / CER' % name)
                                             for name in by_epoch)))
for epoch in sorted({epoch for records in by_epoch.values() for epoch in records}):
    print('  %-14s %s' % ('epoch %d' % epoch, ' '.join(
        '%-20s' % ('%.4f / %.4f' % (records[epoch]['wer'], records[epoch]['cer'])
                   if epoch in records else '-') for records in by_epoch.values())))
EOF
