"""The fake vLLM's own facts about the models the collection's catalog serves.

Kept apart from the product's model data (plugins/module_utils/models.py) on purpose: a test that compares
the product's memory preflight with what this fake does at start-up must not read the product's numbers
back. Shapes are the models' config.json (`num_hidden_layers`, `num_key_value_heads`, `head_dim` or
hidden_size / num_attention_heads, `max_position_embeddings`, `torch_dtype`); `weights_gib` is the
checkpoint's safetensors size (what vLLM's "Model loading took X GiB" reports for an unsharded load);
`activation_gib` is an estimate of the profile run's peak plus workspaces (not measured: vLLM reports it
only as part of "non-KV cache memory"). Unknown models start without a KV-cache check unless a caller
passes `model_facts=`.
"""

from dataclasses import dataclass, replace

__all__ = ["ModelFacts", "MODEL_FACTS", "facts_for", "BLOCK_SIZE"]

# vLLM's default KV block size on CUDA (CacheConfig.block_size = 16).
BLOCK_SIZE = 16
GIB = 1024 ** 3


@dataclass(frozen=True)
class ModelFacts:
    layers: int
    kv_heads: int
    head_dim: int
    weights_gib: float
    max_model_len: int
    dtype: str = "bfloat16"  # the checkpoint's torch_dtype
    activation_gib: float = 1.0
    source: str = ""

    def kv_bytes_per_token(self, tensor_parallel=1, dtype_bytes=2):
        """K and V of every layer for one token, on one GPU of a tensor-parallel group."""
        heads = max(1, self.kv_heads // max(1, tensor_parallel))
        return 2 * self.layers * heads * self.head_dim * dtype_bytes

    def kv_bytes_for(self, tokens, tensor_parallel=1):
        """What vLLM's check_enough_kv_cache_memory needs for one request of `tokens` (whole blocks)."""
        blocks = -(-int(tokens) // BLOCK_SIZE)
        return blocks * BLOCK_SIZE * self.kv_bytes_per_token(tensor_parallel)

    def tokens_in(self, kv_bytes, tensor_parallel=1):
        """Tokens that fit into `kv_bytes` of KV cache, in whole blocks."""
        per_block = BLOCK_SIZE * self.kv_bytes_per_token(tensor_parallel)
        return max(0, int(kv_bytes) // per_block) * BLOCK_SIZE

    def with_overrides(self, **overrides):
        return replace(self, **overrides)


_QWEN3_CARD = "Qwen/Qwen3-8B model card and config.json"
MODEL_FACTS = {
    "Qwen/Qwen3-8B-AWQ": ModelFacts(36, 8, 128, 5.7, 40960, "float16", 1.0,
                                    _QWEN3_CARD + ": 36 layers, 32 Q / 8 KV heads, head_dim 128, 40960 positions; "
                                    "the AWQ checkpoint is float16, 5.7 GiB of safetensors"),
    "Qwen/Qwen3-4B-AWQ": ModelFacts(36, 8, 128, 2.6, 40960, "float16", 0.8,
                                    "Qwen/Qwen3-4B config.json: 36 layers, 8 KV heads, head_dim 128"),
    "Qwen/Qwen3-0.6B": ModelFacts(28, 8, 128, 1.4, 40960, "bfloat16", 0.4,
                                  "Qwen/Qwen3-0.6B config.json: 28 layers, 8 KV heads, head_dim 128"),
    "casperhansen/deepseek-r1-distill-qwen-7b-awq": ModelFacts(
        28, 4, 128, 5.2, 131072, "float16", 1.0,
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B config.json (Qwen2 architecture): 28 layers, 28 Q / 4 KV heads, "
        "hidden 3584 (head_dim 128), 131072 positions; the AWQ checkpoint is float16, 5.2 GiB"),
    "Qwen/Qwen3-ASR-1.7B": ModelFacts(28, 8, 128, 4.3, 65536, "bfloat16", 0.6,
                                      "Qwen3-ASR-1.7B: the Qwen3-1.7B language model (28 layers, 8 KV heads, "
                                      "head_dim 128) plus an audio encoder; 4.3 GiB bfloat16 checkpoint"),
    "Qwen/Qwen3-ASR-0.6B": ModelFacts(28, 8, 128, 1.8, 65536, "bfloat16", 0.4,
                                      "Qwen3-ASR-0.6B: the Qwen3-0.6B language model (28 layers, 8 KV heads, "
                                      "head_dim 128) plus an audio encoder"),
    "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice": ModelFacts(
        28, 8, 128, 3.6, 32768, "bfloat16", 0.6,
        "Qwen3-TTS-12Hz-1.7B: a Qwen3-1.7B-sized talker (28 layers, 8 KV heads, head_dim 128); estimate"),
    "facebook/opt-125m": ModelFacts(12, 12, 64, 0.24, 2048, "float16", 0.2,
                                    "facebook/opt-125m config.json: 12 layers, 12 heads, hidden 768, 2048 positions"),
}


def facts_for(model, overrides=None):
    """The facts of `model` (a Hugging Face id or a local path whose last component names the model), or
    None when unknown; `overrides` (a dict) replaces fields, or gives all of them for an unknown model."""
    found = MODEL_FACTS.get(model)
    if found is None:
        tail = str(model).rstrip("/").rsplit("/", 1)[-1].lower()
        found = next((f for name, f in MODEL_FACTS.items() if name.rsplit("/", 1)[-1].lower() == tail), None)
    if overrides:
        if found is None:
            return ModelFacts(**overrides)
        return found.with_overrides(**overrides)
    return found
