"""The run of ``grpo_ctc_tiny.py`` with a TDT policy, launched by ``tests/test_distributed_equivalence.py``.

    python grpo_tdt_tiny.py POLICY_DIR OUT_DIR PER_DEVICE_BATCH                    # 1 process
    ACCELERATE_USE_CPU=1 accelerate launch --config_file accelerate_configs/cpu_2proc.yaml \\
        grpo_tdt_tiny.py POLICY_DIR OUT_DIR PER_DEVICE_BATCH                       # 2 processes

Sampling. `rlnf.policies.transducer.sample_transcripts` is the production sampler, given a keyed ``draw``: each
token and each duration is a Gumbel-max draw (argmax(log p + Gumbel), an exact draw from the step's
renormalised distribution, so still on-policy) whose noise is keyed by (sampling call, global row, the row's
draw count). A row's draws then do not depend on which process samples it nor on the other rows stepping with
it. Everything else is the production path (encoder once per clip, the forward algorithm over all alignments,
reward gathering, the reference/KL pass, DDP all-reduce, AdamW).
"""

from __future__ import annotations

import functools
import sys
import zlib

import torch
from grpo_ctc_tiny import NOISE_SEED, main  # sets the environment first

import rlnf.policies.transducer as transducer


def install_keyed_tdt_sampling(rank: int, per_device_batch: int) -> None:
    calls = {"n": 0}
    production = transducer.sample_transcripts

    def keyed_sample_transcripts(*args, **kwargs):
        counts: dict[int, int] = {}
        call = calls["n"]
        calls["n"] += 1

        def draw(log_probs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            noise = []
            for row in rows.tolist():
                index = counts.get(row, 0)
                counts[row] = index + 1
                key = zlib.crc32(f"{NOISE_SEED}/tdt/{call}/{rank * per_device_batch + row}/{index}".encode())
                uniform = torch.rand(
                    log_probs.shape[-1], generator=torch.Generator().manual_seed(key), dtype=torch.float64
                )
                noise.append(-torch.log(-torch.log(uniform.clamp(1e-12, 1 - 1e-12))))
            return (log_probs.double() + torch.stack(noise)).argmax(-1)

        return production(*args, **{**kwargs, "draw": draw})

    transducer.sample_transcripts = functools.update_wrapper(keyed_sample_transcripts, production)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), install=install_keyed_tdt_sampling, max_completion_length=16)
