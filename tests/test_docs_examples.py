"""Every code example of README.md, docs/*.md and benchmarks/README.md runs, offline, so that a moved or renamed
name fails here rather than for a user (issue 17, "Examples that run").

* Python blocks run one by one, each in a fresh namespace and a fresh working directory, after the textual
  substitutions of `EXAMPLES` (hub ids -> the shipped ``demo`` checkpoints, ``...`` placeholders -> tiny real
  objects) and with the names it `needs` from `PREAMBLE` (``samples``, ``dataset`` ...) defined first.
* Shell commands: ``rlnf ...`` (the console script), ``python recipes/X.py ...``, ``accelerate launch ...``
  and ``python -m ...`` run in this process, the recipes with `SHRINK`'s flags appended (1 step, tiny batches)
  on a tiny stand-in of the demo corpus (``RLNF_CACHE``: 4 clips per split, never the real build). The files a
  command names (``clip.wav``, ``my_data.csv``, ``my-reward-model``, ``outputs/grpo-demo`` ...) are in its
  working directory, next to links to recipes/, accelerate_configs/ and benchmarks/.
* What cannot run here is listed in `EXAMPLES` with why: ``parse`` (GPU or SLURM launches, slow scripts: the
  command's own argument parsers must accept every flag shown), ``skip`` (installation, downloads).
  A new block that is neither runnable as typed nor listed fails, and so does a stale table entry.

Each example is its own test id, ``DOC:LLINE`` (the line of its first line). 20 s on 2 idle cores, up to
80 s on a busy one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import TEXTS, synthetic_clip
from docs_examples import (
    CHECKED_LANGUAGES,
    DOC_FILES,
    ROOT,
    UNCHECKED_LANGUAGES,
    Command,
    Example,
    Parsed,
    accelerate_arguments,
    captured,
    collect_examples,
    environment,
    fenced_blocks,
    launch_argv,
    parse_only,
    run_console,
    run_module,
    run_script,
    sbatch_recipe,
)

NO_CUDA = not torch.cuda.is_available()
NO_BF16 = ("--bf16", "false") if NO_CUDA else ()  # the GPU templates set bf16, refused by TrainingArguments on CPU
LORA_TEMPLATE = "recipes/grpo_asr_whisper_small_lora.yaml"


@dataclass(frozen=True)
class Check:
    """How one example is checked. ``mode``: ``run`` (in this process; the default), ``launch`` (a real
    subprocess), ``parse`` (its argument parsers only), ``skip``, or ``broken`` (known broken, fixed elsewhere:
    an expected failure that must go from this table once it passes). ``why`` says why not ``run``."""

    mode: str = "run"
    why: str = ""
    subs: dict[str, str] = field(default_factory=dict)  # old -> new, each must occur in the example
    needs: tuple[str, ...] = ()  # Python: names from PREAMBLE defined before the block
    check: str = ""  # Python: run after the block, in its namespace
    extra: tuple[str, ...] = ()  # shell, parse mode: flags appended
    cuda_free_only: bool = False  # shell: on a CUDA machine it would do the real (long) GPU work: skipped there
    setup: str = ""  # a SETUPS entry that adds files to the working directory first


# Keyed by a distinctive substring of the example (a Python block, or one shell command with its comment); a key
# may match several identical examples (the same command in README.md and docs/scaling.md), an example only
# one key. Examples without an entry run as typed (shell commands: the recipes with SHRINK's flags).
EXAMPLES: dict[str, Check] = {
    # ------------------------------------------------------------------------------------------- README.md
    "pip install -e . && accelerate launch recipes/grpo_asr.py": Check(
        "skip", "installs into a new venv (network) then the 10-min demo; the demo's command is run below, shrunk"
    ),
    "rlnf grpo --max_steps 20": Check("parse", "the demo (minutes): the verb's recipe parses the flags"),
    "rlnf rloo --num_processes 2": Check(
        "skip", "2 processes through accelerate launch; tests/test_cli_verbs.py launches the verb that way"
    ),
    'pip install -q -e ".[dev,audio]" && python -m pytest tests': Check(
        "skip", "installs into a new venv (network) then the whole suite, which CI runs itself"
    ),
    'RewardModel.from_pretrained("RobotsMali/reward-model")': Check(
        subs={"RobotsMali/reward-model": "demo"},
        needs=("samples",),
        check="assert scores.shape == (2,) and bool(((scores >= 0) & (scores <= 1)).all()), scores",
    ),
    'rlnf score clip.wav "i ni ce"': Check(subs={"RobotsMali/reward-model": "demo"}),
    "from trl import GRPOTrainer": Check(
        subs={"RobotsMali/reward-model": "demo", "model=...": "model=TINY_LM", "args=...": "args=TINY_GRPO_ARGS"},
        needs=("dataset", "TINY_LM", "TINY_GRPO_ARGS"),
        check="trainer.train()\nassert trainer.state.global_step == 1",
    ),
    "ctc = ASRGRPOTrainer(": Check(
        needs=("w", "c", "reward", "ds"),
        check="assert (type(whisper.policy).__name__, type(ctc.policy).__name__) == ('WhisperPolicy', 'CTCPolicy')",
    ),
    # the NeMo round trip, on a tiny random hybrid TDT-CTC archive named like soloni (SETUPS)
    "rlnf convert-nemo RobotsMali/soloni-114m-tdt-ctc-v3 soloni-v3": Check(
        subs={"RobotsMali/soloni-114m-tdt-ctc-v3": "soloni-114m-tdt-ctc-v3.nemo"}, setup="nemo"
    ),
    "rlnf transcribe clip.wav --model soloni-v3/tdt": Check(setup="nemo+converted"),
    "rlnf export-nemo outputs/my-grpo-run soloni-114m-tdt-ctc-v3.nemo": Check(
        subs={"outputs/my-grpo-run": "soloni-v3/tdt"}, setup="nemo+converted"
    ),
    "python recipes/sft_asr.py --dataset_name my_audiofolder/": Check(subs={"openai/whisper-small": "demo"}),
    'pipeline("automatic-speech-recognition", model="outputs/grpo-demo")': Check(needs=("samples",)),
    "--model_name_or_path my-org/whisper-small-bambara --dataset_name my-org/bambara-asr": Check(
        "parse",
        "whisper-small in bf16 on several GPUs (DDP): accelerate's arguments and the recipe's flags are parsed",
        extra=NO_BF16,
    ),
    "sbatch --nodes=2 --gpus-per-node=8 recipes/slurm/grpo_asr.sbatch": Check(
        "parse",
        "SLURM: the sbatch file passes `bash -n` and the recipe flags it forwards parse over its RECIPE_CONFIG",
        extra=NO_BF16,
    ),
    # ------------------------------------------------------------------------------------------- docs/scaling.md
    "ACCELERATE_USE_CPU=1 accelerate launch -q --config_file accelerate_configs/cpu_2proc.yaml": Check(
        "launch", "really launched: 2 CPU processes through accelerate/torchrun (gloo), shrunk like the other runs"
    ),
    "--config_file accelerate_configs/single_gpu.yaml recipes/grpo_asr.py --config <recipe>.yaml": Check(
        "parse",
        "a GPU launch: accelerate's arguments and the recipe's flags are parsed",
        subs={"<recipe>.yaml": LORA_TEMPLATE},
        extra=NO_BF16,
    ),
    "multi_gpu.yaml --num_processes 4 recipes/grpo_asr.py --config <recipe>.yaml": Check(
        "parse",
        "4 GPUs (DDP): accelerate's arguments and the recipe's flags are parsed",
        subs={"<recipe>.yaml": LORA_TEMPLATE},
        extra=NO_BF16,
    ),
    "deepspeed_zero2.yaml --num_processes 4 recipes/grpo_asr.py ...": Check(
        "parse",
        "DeepSpeed ZeRO-2 on 4 GPUs: accelerate's arguments and the recipe's flags are parsed",
        subs={"recipes/grpo_asr.py ...": "recipes/grpo_asr.py"},
    ),
    "RECIPE_CONFIG=recipes/my_run.yaml": Check(
        "parse",
        "SLURM: the sbatch file passes `bash -n` and the recipe flags it forwards parse over RECIPE_CONFIG",
        subs={"recipes/my_run.yaml": "recipes/grpo_asr_whisper_small.yaml"},
        extra=NO_BF16,
    ),
    # ------------------------------------------------------------------------------------------- benchmarks/README.md
    "bash benchmarks/gpu_check.sh /path/to/wheels": Check(
        "launch",
        "a subprocess; without CUDA it prints its SKIP line",
        subs={"/path/to/wheels": "wheels"},
        cuda_free_only=True,
    ),
    "python benchmarks/gpu_check.py --device cpu --tiny": Check(
        "parse", "80 s on 2 cores (3 child processes): its argparse must accept every flag shown"
    ),
    "pip download --dest wheels": Check("skip", "downloads wheels from PyPI (network)"),
}

# Flags appended to every run of a recipe (later flags win): one optimizer step on 1-2 clips, short
# transcripts, no checkpoints, output in the working directory.
GRPO_SHRINK = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--num_generations", "2",
               "--max_completion_length", "8", "--eval_max_new_tokens", "8", "--save_strategy", "no",
               "--output_dir", "run-output"]  # fmt: skip
SFT_SHRINK = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--eval_max_new_tokens", "8",
              "--save_strategy", "no", "--output_dir", "run-output"]  # fmt: skip
SHRINK = {"recipes/grpo_asr.py": GRPO_SHRINK, "recipes/sft_asr.py": SFT_SHRINK}


def _demo_reward(_sandbox):
    from rlnf import AudioTextReward

    return AudioTextReward.from_pretrained("demo", audio_column="audio")


def _wav2vec2_ctc(sandbox) -> str:
    from rlnf.policies.tiny_ctc import tiny_wav2vec2_ctc

    folder = sandbox.root / "wav2vec2-ctc"
    if not folder.exists():
        model, processor = tiny_wav2vec2_ctc()
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return str(folder)


def _tiny_grpo_args(_sandbox):
    from trl import GRPOConfig

    return GRPOConfig(output_dir="trl-out", max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=4, use_cpu=True, bf16=False, report_to="none", save_strategy="no",
                      disable_tqdm=True)  # fmt: skip


# What the Python blocks leave to the reader, as tiny real objects (built on demand, for the blocks that need them).
PREAMBLE = {
    "samples": lambda s: synthetic_clip(1.0, 220.0),  # a 1 s clip, float32 mono, 16 kHz
    "dataset": lambda s: s.dataset(),  # columns prompt, audio (paths of WAV/FLAC files), text
    "ds": lambda s: s.dataset(),
    "reward": _demo_reward,  # the shipped demo reward model as a TRL reward function
    "w": lambda s: str(s.whisper),  # a Whisper folder (tiny, random; 160 decoder positions: a real one has 448)
    "c": _wav2vec2_ctc,  # a CTC folder of the family the block's keywords are for (tiny random wav2vec2)
    "TINY_LM": lambda s: str(s.causal_lm),  # a causal LM folder for TRL's stock GRPOTrainer (1-layer Llama)
    "TINY_GRPO_ARGS": _tiny_grpo_args,  # one step of 1 prompt x 2 completions of <= 4 tokens
}


def _nemo(sandbox, work: Path, *, converted: bool) -> None:
    """``soloni-114m-tdt-ctc-v3.nemo``: a tiny random hybrid TDT-CTC archive (tests/test_nemo.py's fake), and
    with ``converted`` its conversion ``soloni-v3/{tdt,ctc}``, as the README's first command leaves it."""
    from rlnf.nemo import convert_nemo

    archive = sandbox.root / "nemo" / "fake-hybrid.nemo"
    if not archive.exists():
        from test_nemo import fake_nemo

        archive.parent.mkdir(exist_ok=True)
        fake_nemo(archive.parent, "hybrid")
    shutil.copy(archive, work / "soloni-114m-tdt-ctc-v3.nemo")
    if converted:
        convert_nemo(str(work / "soloni-114m-tdt-ctc-v3.nemo"), work / "soloni-v3")


SETUPS = {
    "nemo": lambda sandbox, work: _nemo(sandbox, work, converted=False),
    "nemo+converted": lambda sandbox, work: _nemo(sandbox, work, converted=True),
}

EXAMPLE_LIST = collect_examples()


def entry_for(example: Example) -> Check | None:
    keys = [key for key in EXAMPLES if key in example.code]
    assert len(keys) <= 1, f"{example.id} matches several EXAMPLES keys: {keys}"
    return EXAMPLES[keys[0]] if keys else None


def substituted(example: Example, check: Check) -> str:
    code = example.code
    for old, new in check.subs.items():
        assert old in code, f"{example.id}: the substitution {old!r} no longer applies; update EXAMPLES"
        code = code.replace(old, new)
    return code


# ----------------------------------------------------------------------------------------------- the sandbox
class Sandbox:
    """Everything the examples refer to, built once: a working-directory template, the corpus stand-in, the
    tiny models of PREAMBLE."""

    def __init__(self, root: Path) -> None:
        from rlnf.assets import resolve_model_path
        from rlnf.policies.tiny_whisper import build_tiny_whisper
        from rlnf.testing import tiny_reward_model

        self.root = root
        self.cache = root / "rlnf-cache"
        self._demo_corpus(self.cache / "demo_corpus_v2.1")
        self.template = work = root / "work"
        work.mkdir()
        for name in ("recipes", "accelerate_configs", "benchmarks"):
            (work / name).symlink_to(ROOT / name, target_is_directory=True)
        for i, name in enumerate(("1.wav", "clip.wav", "clip1.wav", "clip2.flac")):
            sf.write(work / name, synthetic_clip(1.0, 200.0 + 40 * i, seed=i), 16000)
        (work / "clips").mkdir()
        rows = ["audio,text"]  # the README's CSV layout: paths relative to the file
        for i in range(6):
            name = f"clips/{i + 1:04d}.{'wav' if i % 2 else 'flac'}"
            sf.write(work / name, synthetic_clip(0.8, 150.0 + 30 * i, seed=10 + i), 16000)
            rows.append(f"{name},{TEXTS[i % len(TEXTS)]}")
        (work / "my_data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        folder = work / "my_audiofolder"  # audio files plus metadata.csv with file_name
        folder.mkdir()
        rows = ["file_name,text"]
        for i in range(10):
            sf.write(folder / f"a{i}.flac", synthetic_clip(0.8, 170.0 + 20 * i, seed=20 + i), 16000)
            rows.append(f"a{i}.flac,{TEXTS[i % len(TEXTS)]}")
        (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        tiny_reward_model(work / "my-reward-model")
        shutil.copytree(resolve_model_path("demo"), work / "outputs" / "grpo-demo")  # what the demo saves there
        self.whisper = root / "whisper"
        build_tiny_whisper(TEXTS * 4, self.whisper, d_model=32, layers=1, heads=2, vocab_size=300,
                           max_source_positions=50, max_target_positions=160)  # fmt: skip
        self.causal_lm = root / "causal-lm"
        self.clips = [str(work / "clips" / f"{i + 1:04d}.{'wav' if i % 2 else 'flac'}") for i in range(4)]

    def _demo_corpus(self, folder: Path) -> None:
        """The demo corpus's layout (metadata.jsonl per split, corpus_info.json), 4 clips per split."""
        for s, split in enumerate(("sft_train", "sft_validation", "rl_train", "test")):
            (folder / split).mkdir(parents=True)
            rows = []
            for i, text in enumerate(TEXTS):
                seconds = 0.8 + 0.1 * i
                sf.write(folder / split / f"c{i}.flac", synthetic_clip(seconds, 180.0 + 50 * i, seed=s * 4 + i), 16000)
                rows.append({"file_name": f"c{i}.flac", "text": text, "sentence_id": f"s{s}{i}", "speaker": "m1",
                             "domain": "source" if s < 2 else "target", "voice": "sw+m1", "topic": "demo",
                             "duration": seconds, "speed": 150, "pitch": 50, "telephone": False, "snr_db": None})  # fmt: skip
            lines = [json.dumps(row, ensure_ascii=False) for row in rows]
            (folder / split / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / "corpus_info.json").write_text(json.dumps({"name": "tiny stand-in for tests"}), encoding="utf-8")

    def dataset(self):
        from datasets import Dataset

        return Dataset.from_dict({"prompt": ["i ni"] * 4, "audio": self.clips, "text": TEXTS})

    def preamble(self, names: tuple[str, ...]) -> dict:
        if "TINY_LM" in names and not self.causal_lm.exists():
            from test_trl_integration import tiny_causal_lm

            model, tokenizer = tiny_causal_lm()
            model.save_pretrained(self.causal_lm)
            tokenizer.save_pretrained(self.causal_lm)
        return {name: PREAMBLE[name](self) for name in names}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    return Sandbox(tmp_path_factory.mktemp("docs"))


@pytest.fixture
def workdir(sandbox: Sandbox, tmp_path: Path, monkeypatch) -> Path:
    """A fresh copy of the sandbox's working directory, as the current directory, with RLNF_CACHE on the corpus
    stand-in."""
    work = tmp_path / "work"
    shutil.copytree(sandbox.template, work, symlinks=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("RLNF_CACHE", str(sandbox.cache))
    monkeypatch.setenv("RLNF_TRACEBACK", "1")  # rlnf's errors propagate (not `error:` + exit 2): the test sees them
    return work


# ----------------------------------------------------------------------------------------------- the tables
def test_every_fenced_block_is_code_we_check_or_data() -> None:
    for doc in DOC_FILES:
        for language, line, _ in fenced_blocks(doc):
            assert language in CHECKED_LANGUAGES or language in UNCHECKED_LANGUAGES, (
                f"{doc}:L{line}: a ```{language} block; checked languages are {sorted(CHECKED_LANGUAGES)} "
                f"(add its runner to tests/docs_examples.py, or it to UNCHECKED_LANGUAGES if it is not code)"
            )


def test_every_table_entry_matches_an_example() -> None:
    stale = [key for key in EXAMPLES if not any(key in example.code for example in EXAMPLE_LIST)]
    assert not stale, f"EXAMPLES entries that match no example any more: {stale}"


# ----------------------------------------------------------------------------------------------- the examples
@pytest.mark.parametrize("example", EXAMPLE_LIST, ids=lambda e: e.id)
def test_example(example: Example, sandbox: Sandbox, workdir: Path, monkeypatch) -> None:
    check = entry_for(example) or Check()
    if check.mode == "skip":
        pytest.skip(check.why)
    if check.cuda_free_only and not NO_CUDA:
        pytest.skip(f"a CUDA device is present: the command would do its real GPU work ({check.why})")
    code = substituted(example, check)
    if check.setup:
        SETUPS[check.setup](sandbox, workdir)
    if check.mode != "broken":
        execute(example, check, code, sandbox, monkeypatch)
        return
    try:
        execute(example, check, code, sandbox, monkeypatch)
    except Exception as error:
        pytest.xfail(f"known broken, fixed elsewhere ({check.why}): {error!r}")
    pytest.fail(f"{example.id} works now: remove it from the known-broken entries of EXAMPLES")


def execute(example: Example, check: Check, code: str, sandbox: Sandbox, monkeypatch) -> None:
    if example.kind == "python":
        namespace = {"__name__": "__main__", **sandbox.preamble(check.needs)}
        exec(compile(code, example.id, "exec"), namespace)
        if check.check:
            exec(compile(check.check, f"{example.id} (check)", "exec"), namespace)
        return
    command = Command.parse(code)
    program = command.program
    assert program is not None or check.mode == "launch", (
        f"{example.id}: no runner for `{code}`; list it in EXAMPLES (tests/test_docs_examples.py) with how it "
        "is checked, or why it is skipped"
    )
    for name, value in command.env.items():
        monkeypatch.setenv(name, value)
    if check.mode == "launch":
        launch(command)
    elif check.mode == "parse":
        with parse_only(), pytest.raises(Parsed):
            run(command, program, check.extra)
    else:
        run(command, program)


def _script_and_args(command: Command, program: str) -> tuple[str, list[str]]:
    if program == "script":
        return command.argv[1], command.argv[2:]
    if program == "accelerate":
        args = accelerate_arguments(command.argv)
        return args.training_script, list(args.training_script_args)
    if program == "sbatch":
        return sbatch_recipe(command)
    raise AssertionError(f"no script in {command.argv}")


def run(command: Command, program: str, parse_extra: tuple[str, ...] | None = None) -> None:
    """Run ``command`` in this process: recipes with their SHRINK flags, or (``parse_extra`` given, under
    `parse_only`) with those flags appended, to stop once its arguments are parsed."""
    extra = list(parse_extra) if parse_extra is not None else None
    if program == "console":
        code, out = captured(lambda: run_console([*command.argv, *(extra or [])]))
        assert code == 0 and out.strip(), (code, out)
    elif program == "module":
        code, out = captured(lambda: run_module(command.argv[2], [*command.argv[3:], *(extra or [])]))
        assert code == 0, (code, out)
    else:
        script, args = _script_and_args(command, program)
        assert Path(script).is_file(), f"no such script {script}"
        assert run_script(script, [*args, *(SHRINK.get(script, []) if extra is None else extra)]) == 0


def launch(command: Command) -> None:
    """Start ``command`` as a real process (recipes with their SHRINK flags)."""
    argv = launch_argv(command)
    if command.program in ("script", "accelerate"):
        script, _ = _script_and_args(command, command.program)
        argv += SHRINK.get(script, [])
    env = environment({**command.env, "PYTHON": sys.executable})
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"


def test_recipe_runs_are_shrunk() -> None:
    """Every recipe a doc command runs has its SHRINK flags (a full demo run would take minutes to hours)."""
    scripts = set()
    for example in EXAMPLE_LIST:
        check = entry_for(example) or Check()
        if example.kind != "shell" or check.mode not in ("run", "launch"):
            continue
        argv = Command.parse(substituted(example, check)).argv
        scripts |= {arg for arg in argv if arg.startswith("recipes/") and arg.endswith(".py")}
    assert scripts and scripts <= set(SHRINK), scripts - set(SHRINK)


def test_parse_only_catches_a_renamed_flag(workdir: Path) -> None:
    """The parse checks are not vacuous: a flag the recipe does not know fails before `Parsed`."""
    with parse_only(), pytest.raises(ValueError, match="no_such_flag"):
        run_script("recipes/grpo_asr.py", ["--no_such_flag", "1"])
    with parse_only(), pytest.raises(Parsed):
        run_script("recipes/grpo_asr.py", ["--max_steps", "1"])
