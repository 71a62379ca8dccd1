#!/usr/bin/env bash
# The lent-GPU runbook as one script (the model card's "On a lent GPU box"): train ResNet-18 teachers,
# compute their teacher-logit bank, and bring both back through the device tool's $OUT.
#
#   call 1, carry [".gpu/a"]:                  deploy/gpu-teachers.sh stage
#   call 2, carry [".gpu/b", ".gpu/whl"]:      deploy/gpu-teachers.sh start   (returns at once; teachers, then bank)
#   short calls while it works:                deploy/gpu-teachers.sh status
#   if device time runs short:                 deploy/gpu-teachers.sh bank    (stops the teachers at their best so far)
#   then, one call each (64 MiB per call):     deploy/gpu-teachers.sh collect-teachers | collect-bank
#
# Knobs (environment): SEEDS ("1 2": one teacher per seed, trained side by side), ARCH (resnet18),
# EPOCHS (80, not 120: two teachers side by side and the bank have to fit a 15-minute device
# session; their pace there is not measured), MIX_P (0.5: the students' CutMix, recorded in the
# bank's views), VIEWS (60: 2 teachers x 60 views x 28,709 faces x 7 fp16 logits = 48 MB, one
# call's worth), DEVICE (cuda), BANK_BATCH (4096 faces per teacher forward), WORK (/tmp/ep: outside
# the repository, which each call replaces), DATA (an npz already there: skips rebuilding it from
# the .gpu parts), PACK (.gpu: what `make gpu-pack` wrote, as the calls carry it).
set -euo pipefail

SEEDS=${SEEDS:-"1 2"}
ARCH=${ARCH:-resnet18}
EPOCHS=${EPOCHS:-80}
VIEWS=${VIEWS:-60}
MIX_P=${MIX_P:-0.5}
DEVICE=${DEVICE:-cuda}
BANK_BATCH=${BANK_BATCH:-4096}
WORK=${WORK:-/tmp/ep}
DATA=${DATA:-$WORK/fer2013.npz}
PACK=${PACK:-.gpu}
PY=${PYTHON:-python3}
export PYTHONPATH="$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$WORK"

teachers() { for s in $SEEDS; do printf -- '--teacher %s ' "$WORK/t$s/best.pt"; done; }

case "${1:-}" in
stage)  # the first half of the data, kept outside the repository until the second half arrives
    cp "$PACK/a/part00" "$WORK/part00"
    ;;
start)
    if [ ! -f "$DATA" ]; then
        cat "$WORK/part00" "$PACK/b/part01" | $PY -c \
            "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), open(sys.argv[1],'wb'))" "$DATA"
    fi
    if [ -d "$PACK/whl" ]; then
        $PY -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$PACK"/whl/*.whl
    fi
    # setsid: the work outlives the call that started it
    setsid nohup bash "$0" run > "$WORK/run.log" 2>&1 < /dev/null &
    echo $! > "$WORK/run.pid"
    echo "teachers started: seeds $SEEDS, $ARCH, $EPOCHS epochs on $DEVICE; the bank follows them"
    ;;
run)    # (detached by start) the teachers side by side, then the bank from their best epochs
    rm -f "$WORK/bank.done"
    for s in $SEEDS; do
        $PY -m pipeline.train --arch "$ARCH" --data "$DATA" --device "$DEVICE" --epochs "$EPOCHS" \
            --batch-size 256 --lr 0.1 --seed "$s" --out "$WORK/t$s" > "$WORK/t$s.log" 2>&1 &
        echo $! > "$WORK/t$s.pid"
    done
    wait || true  # a teacher stopped early by `bank` still has its best epoch so far in best.pt
    # shellcheck disable=SC2046
    $PY -m pipeline.train.teachers $(teachers) --views "$VIEWS" --mix-p "$MIX_P" --data "$DATA" --device "$DEVICE" \
        --batch "$BANK_BATCH" --out "$WORK/bank.npz" > "$WORK/bank.log" 2>&1
    touch "$WORK/bank.done"
    ;;
status)
    for s in $SEEDS; do
        # progress bars share the log: split their carriage returns off before picking the epoch lines
        echo "t$s: $(tr '\r' '\n' < "$WORK/t$s.log" 2>/dev/null | grep -a "^\[$ARCH\]" | tail -1 || true)"
    done
    [ -f "$WORK/bank.log" ] && tail -c 300 "$WORK/bank.log" | tr '\r' '\n' | tail -2
    [ -f "$WORK/bank.done" ] && echo "bank done: $(ls -l "$WORK/bank.npz")"
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    true
    ;;
bank)   # out of time: stop the teachers at their best epoch so far; the bank starts from those at once
    for s in $SEEDS; do
        if [ -f "$WORK/t$s.pid" ]; then kill "$(cat "$WORK/t$s.pid")" 2>/dev/null || true; fi
    done
    echo "teachers stopped; the bank follows ($VIEWS views)"
    ;;
collect-teachers)  # each teacher halved to fp16 (the loader widens it again) and cut into 15 MB files
    for s in $SEEDS; do
        $PY -c "import torch,sys; c=torch.load(sys.argv[1],weights_only=False); \
c['model']={k:(v.half() if v.is_floating_point() else v) for k,v in c['model'].items()}; torch.save(c,sys.argv[2])" \
            "$WORK/t$s/best.pt" "$WORK/t$s.half.pt"
        split -b 15M -d "$WORK/t$s.half.pt" "$OUT/t$s.pt."
        cp "$WORK/t$s.log" "$OUT/t$s.log" 2>/dev/null || true
    done
    ls -l "$OUT"
    ;;
collect-bank)
    [ -f "$WORK/bank.done" ] || { echo "the bank is not finished (see: $0 status)" >&2; exit 1; }
    split -b 15M -d "$WORK/bank.npz" "$OUT/bank.npz."
    ls -l "$OUT"
    ;;
*)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
