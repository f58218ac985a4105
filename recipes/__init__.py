"""The recipes, installed as the subpackage ``rlnf.recipes`` (``setup.py`` maps this folder there): one copy serves
``python recipes/grpo_asr.py`` / ``accelerate launch recipes/grpo_asr.py`` in a checkout and ``rlnf grpo`` (and
``rlnf rloo|ppo|sft|train-reward``) after ``pip install``. The demo YAMLs ship beside them."""
