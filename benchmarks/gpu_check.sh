#!/usr/bin/env bash
# The prepared GPU check: on one CUDA GPU, bf16 GRPO steps of a Whisper-small-shaped random policy (30 s inputs,
# G = 8, the reward model on the GPU) with and without LoRA, log-probs and loss against fp32, step time, peak GPU
# memory, tokens/s and encoder rows per clip. About 3-6 minutes on one recent GPU; stops after 8.
#
#   bash benchmarks/gpu_check.sh [WHEELS_DIR]          # WHEELS_DIR default: ./wheels (or $RLNF_WHEELS)
#
# Skips cleanly (exit 0, one "SKIP" line) where torch sees no CUDA device. The GPU machine has torch,
# transformers, accelerate, peft, safetensors, sentencepiece and tokenizers but no package registry: the other
# wheels rlnf needs are installed with `pip install --no-index` from WHEELS_DIR, filled beforehand on a
# networked machine with (Python 3.12, manylinux x86-64, binary wheels only; see benchmarks/README.md):
#
#   pip download --dest wheels --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
#       --no-deps "trl==1.16.*" "datasets>=4,<6" "jiwer>=3" "soundfile>=0.12" "scipy>=1.10" \
#       "bambara-text-normalizer>=1.2" pyarrow pandas dill multiprocess xxhash rapidfuzz click cffi pycparser \
#       python-dateutil pytz tzdata six "fsspec[http]" aiohttp aiohappyeyeballs aiosignal frozenlist multidict \
#       propcache yarl attrs httpx httpcore anyio h11 sniffio idna certifi
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LIMIT_S=${GPU_CHECK_LIMIT_S:-480}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    echo "gpu_check: SKIP: no CUDA device here (torch.cuda.is_available() is False or torch is missing)"
    exit 0
fi

WHEELS=${1:-${RLNF_WHEELS:-wheels}}
missing=$("$PYTHON" - <<'PY'
import importlib.util
need = {"trl": "trl==1.16.*", "datasets": "datasets", "jiwer": "jiwer", "soundfile": "soundfile", "scipy": "scipy",
        "bambara_normalizer": "bambara-text-normalizer"}
print(" ".join(spec for module, spec in need.items() if importlib.util.find_spec(module) is None))
PY
)
if [[ -n "${missing}" ]]; then
    if [[ ! -d "${WHEELS}" ]]; then
        echo "gpu_check: missing packages (${missing}) and no wheel folder ${WHEELS}: fill it with the pip download" \
             "command at the top of this script on a networked machine, then pass it: bash $0 WHEELS_DIR" >&2
        exit 2
    fi
    echo "gpu_check: installing ${missing} from ${WHEELS} (no index)"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip install --quiet --no-index --find-links "${WHEELS}" ${missing}
fi

"$PYTHON" -c 'import torch, transformers, trl, peft, accelerate; print("gpu_check: torch", torch.__version__,
    "cuda", torch.version.cuda, "| transformers", transformers.__version__, "| trl", trl.__version__,
    "| peft", peft.__version__, "| accelerate", accelerate.__version__, "|", torch.cuda.get_device_name())'
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
exec timeout --signal=TERM --kill-after=20 "${LIMIT_S}" "$PYTHON" benchmarks/gpu_check.py "${@:2}"
