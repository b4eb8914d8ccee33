# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model metadata for the compatibility preflight: what a model needs from a GPU.

One entry per Hugging Face repository the collection knows: the models of the reference deployments
(``docs/reference-deployments.md``) plus common families. Fields:

* ``params_b``: parameters in billions; ``weights_gib``: size of the weights on the GPU when known
  (quantized checkpoints: the repository's safetensors size), else computed from ``params_b``;
* ``num_layers``, ``num_kv_heads``, ``head_dim``: what one token of KV cache costs;
* ``torch_dtype``: the checkpoint's dtype (what ``dtype: auto`` resolves to);
* ``quantization``: the checkpoint's quantization method (``quantization_config.quant_method``);
* ``max_position_embeddings``: vLLM's default ``max_model_len``;
* ``architecture``: ``architectures[0]`` of the repository's ``config.json``; the oldest vLLM release
  that serves it natively (and any package it needs) is ``compat_data.VLLM_ARCHITECTURES``;
* ``min_vllm``: a newer floor than the architecture's for this checkpoint alone (for example fp8
  weight loading), where one is known;
* ``family`` and ``fallback``: what to suggest when it does not fit;
* ``source`` and ``confidence``: ``config`` = values of the repository's ``config.json``
  (cross-checked where a public copy was at hand: ``verified``); ``estimated`` = derived, see note.

Plain data; ``compat.py`` holds the rules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

HF = "https://huggingface.co/%s/blob/main/config.json"

# "verified" entries were cross-checked against public copies of their config.json files
# (citsjtu2020/LLM-Prof, sglang/Model_Config.md): Llama-3.1-8B, Llama-3.2-3B, Qwen2.5-3B/7B/14B/32B,
# Qwen3-4B/8B/14B/32B, Qwen3-30B-A3B.


def _m(name, family, params_b, num_layers, num_kv_heads, head_dim, max_pos, **extra):
    entry = {
        "name": name,
        "family": family,
        "architecture": ARCHITECTURES[family],
        "params_b": params_b,
        "num_layers": num_layers,
        "num_kv_heads": num_kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": max_pos,
        "torch_dtype": "bfloat16",
        "quantization": None,
        "weights_gib": None,
        "min_vllm": None,
        "fallback": None,
        "source": HF % name,
        "confidence": "config",
        "notes": None,
    }
    entry.update(extra)
    return entry


# config.json "architectures" of each family's repositories.
ARCHITECTURES = {
    "qwen3": "Qwen3ForCausalLM",
    "qwen3-asr": "Qwen3ASRForConditionalGeneration",
    "qwen3-tts": "Qwen3TTSForConditionalGeneration",
    "qwen2.5": "Qwen2ForCausalLM",
    "r1-distill-qwen": "Qwen2ForCausalLM",
    "llama3": "LlamaForCausalLM",
    "r1-distill-llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
}

MODELS = [
    # --- the reference deployments (docs/reference-deployments.md) ----------------------------------
    _m("Qwen/Qwen3-8B-AWQ", "qwen3", 8.2, 36, 8, 128, 40960, quantization="awq", weights_gib=5.7,
       fallback="Qwen/Qwen3-4B-AWQ", confidence="verified",
       notes="home lab mode ml: 10,820 of 12,288 MiB used on an RTX 3060 at 0.90"),
    _m("casperhansen/deepseek-r1-distill-qwen-7b-awq", "r1-distill-qwen", 7.6, 28, 4, 128, 131072,
       quantization="awq", weights_gib=5.2, fallback="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
       notes="serve with --tokenizer deepseek-ai/DeepSeek-R1-Distill-Qwen-7B (home lab mode r1)"),
    _m("Qwen/Qwen3-ASR-1.7B", "qwen3-asr", 2.3, 28, 8, 128, 65536, weights_gib=4.3,
       fallback="Qwen/Qwen3-ASR-0.6B", confidence="estimated",
       notes="speech recognition; language model dims of Qwen3-1.7B plus an audio encoder; params and "
             "weights estimated (~3.87 GiB in use on a T4 at 0.45, 4096 tokens)"),
    _m("Qwen/Qwen3-ASR-0.6B", "qwen3-asr", 0.9, 28, 8, 128, 65536, weights_gib=1.8, confidence="estimated",
       notes="the smaller model recommended when 1.7B runs out of memory; figures estimated"),
    _m("Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", "qwen3-tts", 1.9, 28, 8, 128, 32768, weights_gib=3.6,
       torch_dtype="bfloat16", confidence="estimated",
       notes="model type qwen3_tts: needs vllm-omni (not in vllm/vllm-openai) and a transformers it "
             "supports; pin both in the image"),
    # --- Qwen3 ---------------------------------------------------------------------------------------
    _m("Qwen/Qwen3-0.6B", "qwen3", 0.75, 28, 8, 128, 40960, confidence="verified"),
    _m("Qwen/Qwen3-1.7B", "qwen3", 2.0, 28, 8, 128, 40960, fallback="Qwen/Qwen3-0.6B"),
    _m("Qwen/Qwen3-4B", "qwen3", 4.0, 36, 8, 128, 40960, fallback="Qwen/Qwen3-1.7B",
       confidence="verified"),
    _m("Qwen/Qwen3-4B-AWQ", "qwen3", 4.0, 36, 8, 128, 40960, quantization="awq", weights_gib=2.6,
       fallback="Qwen/Qwen3-1.7B"),
    _m("Qwen/Qwen3-8B", "qwen3", 8.2, 36, 8, 128, 40960, fallback="Qwen/Qwen3-8B-AWQ",
       confidence="verified"),
    _m("Qwen/Qwen3-8B-FP8", "qwen3", 8.2, 36, 8, 128, 40960, quantization="fp8", min_vllm="0.8.5",
       fallback="Qwen/Qwen3-8B-AWQ", notes="fp8 dense Qwen3 weights load from vLLM 0.8.5 (vllm-project/vllm#17327)"),
    _m("Qwen/Qwen3-14B", "qwen3", 14.8, 40, 8, 128, 40960, fallback="Qwen/Qwen3-14B-AWQ",
       confidence="verified"),
    _m("Qwen/Qwen3-14B-AWQ", "qwen3", 14.8, 40, 8, 128, 40960, quantization="awq", weights_gib=9.4,
       fallback="Qwen/Qwen3-8B-AWQ"),
    _m("Qwen/Qwen3-32B", "qwen3", 32.8, 64, 8, 128, 40960, fallback="Qwen/Qwen3-32B-AWQ",
       confidence="verified"),
    _m("Qwen/Qwen3-32B-AWQ", "qwen3", 32.8, 64, 8, 128, 40960, quantization="awq", weights_gib=18.2,
       fallback="Qwen/Qwen3-14B-AWQ"),
    _m("Qwen/Qwen3-30B-A3B", "qwen3", 30.5, 48, 4, 128, 40960, fallback="Qwen/Qwen3-8B",
       confidence="verified", architecture="Qwen3MoeForCausalLM",
       notes="mixture of experts: all 30.5B parameters stay on the GPU"),
    # --- Qwen2.5 (Instruct configs cap max_position_embeddings at 32768) ------------------------------
    _m("Qwen/Qwen2.5-1.5B-Instruct", "qwen2.5", 1.54, 28, 2, 128, 32768),
    _m("Qwen/Qwen2.5-3B-Instruct", "qwen2.5", 3.09, 36, 2, 128, 32768, fallback="Qwen/Qwen2.5-1.5B-Instruct",
       confidence="verified"),
    _m("Qwen/Qwen2.5-7B-Instruct", "qwen2.5", 7.62, 28, 4, 128, 32768, fallback="Qwen/Qwen2.5-7B-Instruct-AWQ",
       confidence="verified"),
    _m("Qwen/Qwen2.5-7B-Instruct-AWQ", "qwen2.5", 7.62, 28, 4, 128, 32768, quantization="awq",
       weights_gib=5.2, fallback="Qwen/Qwen2.5-3B-Instruct"),
    _m("Qwen/Qwen2.5-14B-Instruct", "qwen2.5", 14.8, 48, 8, 128, 32768, fallback="Qwen/Qwen2.5-14B-Instruct-AWQ",
       confidence="verified"),
    _m("Qwen/Qwen2.5-14B-Instruct-AWQ", "qwen2.5", 14.8, 48, 8, 128, 32768, quantization="awq",
       weights_gib=9.3, fallback="Qwen/Qwen2.5-7B-Instruct-AWQ"),
    _m("Qwen/Qwen2.5-32B-Instruct", "qwen2.5", 32.8, 64, 8, 128, 32768, fallback="Qwen/Qwen2.5-32B-Instruct-AWQ",
       confidence="verified"),
    _m("Qwen/Qwen2.5-32B-Instruct-AWQ", "qwen2.5", 32.8, 64, 8, 128, 32768, quantization="awq",
       weights_gib=18.3, fallback="Qwen/Qwen2.5-14B-Instruct-AWQ"),
    _m("Qwen/Qwen2.5-72B-Instruct", "qwen2.5", 72.7, 80, 8, 128, 32768, fallback="Qwen/Qwen2.5-32B-Instruct"),
    # --- Llama 3.x -------------------------------------------------------------------------------------
    _m("meta-llama/Llama-3.2-1B-Instruct", "llama3", 1.24, 16, 8, 64, 131072),
    _m("meta-llama/Llama-3.2-3B-Instruct", "llama3", 3.21, 28, 8, 128, 131072,
       fallback="meta-llama/Llama-3.2-1B-Instruct", confidence="verified"),
    _m("meta-llama/Llama-3.1-8B-Instruct", "llama3", 8.03, 32, 8, 128, 131072, min_vllm="0.5.3.post1",
       fallback="hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", confidence="verified",
       notes="131072 default context does not fit a 24 GB card at 0.9 (vllm-project/vllm#10517)"),
    _m("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "llama3", 8.03, 32, 8, 128, 131072,
       quantization="awq", weights_gib=5.4, min_vllm="0.5.3.post1", fallback="meta-llama/Llama-3.2-3B-Instruct"),
    _m("meta-llama/Llama-3.1-70B-Instruct", "llama3", 70.6, 80, 8, 128, 131072, min_vllm="0.5.3.post1",
       fallback="meta-llama/Llama-3.1-8B-Instruct"),
    _m("meta-llama/Llama-3.3-70B-Instruct", "llama3", 70.6, 80, 8, 128, 131072, min_vllm="0.5.3.post1",
       fallback="meta-llama/Llama-3.1-8B-Instruct"),
    # --- DeepSeek-R1 distills --------------------------------------------------------------------------
    _m("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "r1-distill-qwen", 1.78, 28, 2, 128, 131072),
    _m("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "r1-distill-qwen", 7.62, 28, 4, 128, 131072,
       fallback="casperhansen/deepseek-r1-distill-qwen-7b-awq"),
    _m("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "r1-distill-qwen", 14.8, 48, 8, 128, 131072,
       fallback="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
    _m("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "r1-distill-qwen", 32.8, 64, 8, 128, 131072,
       fallback="deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"),
    _m("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "r1-distill-llama", 8.03, 32, 8, 128, 131072,
       min_vllm="0.5.3.post1", fallback="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
    _m("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "r1-distill-llama", 70.6, 80, 8, 128, 131072,
       min_vllm="0.5.3.post1", fallback="deepseek-ai/DeepSeek-R1-Distill-Llama-8B"),
    # --- Mistral ---------------------------------------------------------------------------------------
    _m("mistralai/Mistral-7B-Instruct-v0.3", "mistral", 7.25, 32, 8, 128, 32768,
       fallback="Qwen/Qwen2.5-7B-Instruct-AWQ"),
]

MODELS_BY_NAME = dict((m["name"].lower(), m) for m in MODELS)


def find_model(name):
    """The catalog entry for a Hugging Face repository name (case-insensitive), or None.

    A local path served under a repository's name (``/models/Qwen3-ASR-1.7B``) matches the entry
    whose repository part is the path's last component.
    """
    if not name:
        return None
    key = str(name).strip().rstrip("/").lower()
    if key in MODELS_BY_NAME:
        return MODELS_BY_NAME[key]
    last = key.rsplit("/", 1)[-1]
    for entry_key, entry in MODELS_BY_NAME.items():
        if entry_key.rsplit("/", 1)[-1] == last:
            return entry
    return None
