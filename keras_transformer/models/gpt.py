"""The decoder-only language model (GPT): embeddings, causal blocks, logits.

`GPT` is a functional `keras.Model` built from a `TransformerConfig`, laid
out like keras-hub's backbones: the layers and the functional graph, then
the config. It owns what only it knows: `init_cache` / `call_with_cache`
(the same layers run on new tokens against a key/value cache) and
`attention_maps`. `build_gpt(config)` is the one-line entry point.
"""

import keras
from keras import ops

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.layers import PositionalEmbedding, TransformerBlock, make_norm
from keras_transformer.layers.attention import empty_kv_cache
from keras_transformer.models.blocks import (
    FamilyModel,
    block_args,
    dtype_policy_scope,
    family_config,
)


@keras.saving.register_keras_serializable(package="keras_transformer")
class GPT(FamilyModel):
    """A GPT: int token ids `[batch, time]` -> logits `[batch, time, vocab]`.

    `time` may be anything up to `config.max_len`. The logits are float32
    even under a mixed-precision policy, so the loss is computed in float32.
    Every option of the config is honoured: `position="rope"`,
    `num_kv_heads`, `norm="rms"`, `activation="swiglu"`,
    `attention="chunked"`, `recompute`, `dropout`.

    Args:
        config: a `TransformerConfig` (or its `to_dict()`).
        name: the model's name.

    Example:

    >>> model = GPT(TransformerConfig(vocab_size=65, num_layers=2, d_model=32, num_heads=2))
    >>> model(np.zeros((1, 10), "int32")).shape
    (1, 10, 65)
    """

    def __init__(self, config, name="gpt", dtype=None, **kwargs):
        config = family_config(config, "a GPT")
        with dtype_policy_scope(dtype) as policy:
            # === Layers and graph === (each layer made where it is first called, so a
            # seeded model draws its initial weights in the same order as ever)
            token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
            embedding = PositionalEmbedding(
                config.vocab_size, config.d_model, config.max_len, position=config.position,
                name="embedding",
            )
            x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(embedding(token_ids))
            blocks = []
            for index in range(config.num_layers):
                blocks.append(TransformerBlock(**block_args(config), causal=True,
                                               name=f"block_{index}"))
                x = blocks[-1](x)
            final_norm = lm_head = None
            if config.norm_first:  # pre-LN leaves the residual stream unnormalised: one last norm
                final_norm = make_norm(config.norm, config.layer_norm_epsilon, name="final_norm")
                x = final_norm(x)
            if config.tie_embeddings:
                logits = embedding(x, reverse=True)
            else:
                # float32 logits under mixed precision; a bfloat16 model keeps a bfloat16 head.
                head_dtype = "float32" if keras.config.dtype_policy().variable_dtype == "float32" \
                    else None
                lm_head = keras.layers.Dense(config.vocab_size, use_bias=False, dtype=head_dtype,
                                             name="lm_head")
                logits = ops.cast(lm_head(x), "float32")
            super().__init__(token_ids, logits, name=name, **kwargs)

        # === Config ===
        self.config = config
        self.policy = policy
        self.embedding = embedding
        self.blocks = blocks
        self.final_norm = final_norm
        self.lm_head = lm_head

    def _logits(self, x, head=None):
        if self.final_norm is not None:
            x = self.final_norm(x)
        if head is not None:  # in the dtype the head layer itself computes in
            dtype = x.dtype if self.lm_head is None else self.lm_head.compute_dtype
            logits = ops.matmul(ops.cast(x, dtype), ops.cast(head, dtype))
        else:
            logits = self.embedding(x, reverse=True) if self.lm_head is None else self.lm_head(x)
        return ops.cast(logits, "float32")

    def output_head(self):
        """The `[d_model, vocab]` matrix of the logits: the transposed token table when the
        embeddings are tied, else the `lm_head` kernel.

        A decoding loop makes it once, before the loop, and passes it to every
        `call_with_cache(head=...)`: made inside the loop, XLA would transpose the whole
        table (or run the product as a slow fused loop) at every new token.
        """
        if self.lm_head is not None:
            return self.lm_head.kernel
        return ops.transpose(self.embedding.token_embedding.embeddings)

    def init_cache(self, batch_size, slots):
        """An empty KV cache: per block a `(keys, values)` pair `[batch, kv_heads, slots,
        head_dim]` (see `empty_kv_cache`)."""
        return [empty_kv_cache(batch_size, slots, self.config.num_kv_heads,
                               self.config.head_dim, block.compute_dtype)
                for block in self.blocks]

    def call_with_cache(self, token_ids, positions, cache, cache_index, attention_mask,
                        head=None, fold_biases=False):
        """Logits of new tokens whose keys and values are appended to the cache.

        Runs exactly the layers of the model, but each block's self-attention
        writes the new keys/values at slots `cache_index ...` and attends to
        the cached ones.

        Args:
            token_ids: int `[batch, time]`, the new tokens.
            positions: int `[batch, time]`, their positions in their rows.
            cache: from `init_cache` (or a previous call).
            cache_index: int scalar, the slot of the first new token.
            attention_mask: bool `[batch, time, slots]`: which cache slots each
                new token may attend to (itself and the real tokens before it).
            head: optional `output_head()`, made once for many calls.
            fold_biases: run the blocks' products with their biases folded in
                (`matmul_folded_bias`), as an XLA-compiled decoding loop should.

        Returns:
            `(logits [batch, time, vocab] float32, new_cache)`.
        """
        x = self.embedding(token_ids, positions=positions)
        new_cache = []
        for block, block_cache in zip(self.blocks, cache, strict=True):
            x, block_cache = block(
                x, positions=positions, cache=block_cache, cache_index=cache_index,
                attention_mask=attention_mask, training=False, fold_biases=fold_biases,
            )
            new_cache.append(block_cache)
        return self._logits(x, head), new_cache

    def attention_maps(self, token_ids):
        """Self-attention weights of each block, re-running the layers eagerly.

        Args:
            token_ids: int `[batch, time]` (no padding).

        Returns:
            A list with one numpy array `[batch, heads, time, time]` per block:
            row `t` of head `h` is how position `t` spreads its attention over
            positions `0 .. t` (the causal mask zeroes the rest); rows sum to 1.
        """
        x = self.embedding(ops.convert_to_tensor(token_ids, "int32"))
        maps = []
        for block in self.blocks:
            x, scores = block(x, training=False, return_attention_scores=True)
            maps.append(ops.convert_to_numpy(scores["self_attention"]))
        return maps


    def checkpoint_weights(self, model_type):
        """Where each tensor of a Hugging Face checkpoint goes in this model.

        Args:
            model_type: `"gpt2"` or `"llama"` (the config must be of that shape,
                see `TransformerConfig.from_hf`).

        Returns:
            A list of `(name, variables, transposed, in_dims)`: the tensor `name`
            (without the `transformer.` / `model.` prefix) is, after a transpose
            when `transposed` (PyTorch `Linear` weights are `[out, in]`), the
            variables side by side along its last axis (GPT-2's fused `c_attn`
            holds query, key and value), each flattened to `[rows, -1]` with
            `rows` the product of its first `in_dims` dimensions: 1 for
            `[d_model, heads, head_dim]` projections, 2 for the attention output
            `[heads, head_dim, d_model]`, 0 for a 1-D tensor (norms, biases;
            the attention biases are `[heads, head_dim]`).
        """
        embedding, blocks = self.embedding, self.blocks
        weights = []
        if model_type == "gpt2":
            weights += [("wte.weight", [embedding.token_embedding.embeddings], False, 1),
                        ("wpe.weight", [embedding.position_embeddings], False, 1)]
            for i, block in enumerate(blocks):
                attention, ffn = block.self_attention, block.feed_forward
                projections = (attention.query_dense, attention.key_dense, attention.value_dense)
                norms = (("ln_1", block.self_attention_norm), ("ln_2", block.feed_forward_norm))
                for hf_name, norm in norms:
                    weights += [(f"h.{i}.{hf_name}.weight", [norm.gamma], False, 0),
                                (f"h.{i}.{hf_name}.bias", [norm.beta], False, 0)]
                for hf_name, layers, in_dims in (("attn.c_attn", projections, 1),
                                                 ("attn.c_proj", [attention.output_dense], 2),
                                                 ("mlp.c_fc", [ffn.hidden], 1),
                                                 ("mlp.c_proj", [ffn.output_dense], 1)):
                    weights += [
                        (f"h.{i}.{hf_name}.weight", [x.kernel for x in layers], False, in_dims),
                        (f"h.{i}.{hf_name}.bias", [x.bias for x in layers], False, 0),
                    ]
            weights += [("ln_f.weight", [self.final_norm.gamma], False, 0),
                        ("ln_f.bias", [self.final_norm.beta], False, 0)]
        elif model_type == "llama":
            weights.append(("embed_tokens.weight", [embedding.token_embedding.embeddings],
                            False, 1))
            for i, block in enumerate(blocks):
                attention, ffn = block.self_attention, block.feed_forward
                weights += [
                    (f"layers.{i}.input_layernorm.weight", [block.self_attention_norm.scale],
                     False, 0),
                    (f"layers.{i}.post_attention_layernorm.weight",
                     [block.feed_forward_norm.scale], False, 0),
                ]
                for hf_name, layer in (("self_attn.q_proj", attention.query_dense),
                                       ("self_attn.k_proj", attention.key_dense),
                                       ("self_attn.v_proj", attention.value_dense),
                                       ("self_attn.o_proj", attention.output_dense),
                                       ("mlp.gate_proj", ffn.gate),
                                       ("mlp.up_proj", ffn.hidden),
                                       ("mlp.down_proj", ffn.output_dense)):
                    in_dims = 2 if layer is attention.output_dense else 1
                    weights.append((f"layers.{i}.{hf_name}.weight", [layer.kernel], True, in_dims))
            weights.append(("norm.weight", [self.final_norm.scale], False, 0))
        else:
            raise UserInputError(f"no checkpoint layout for model_type {model_type!r}")
        if self.lm_head is not None:
            weights.append(("lm_head.weight", [self.lm_head.kernel], True, 1))
        return weights


def build_gpt(config: TransformerConfig, name="gpt") -> GPT:
    """A `GPT` of `config` (see `GPT`)."""
    return GPT(config, name=name)


def supports_cache(model):
    """Whether `model` decodes with a KV cache (it is a `GPT`)."""
    return isinstance(model, GPT)


def init_cache(model, batch_size, slots):
    """`model.init_cache(batch_size, slots)`, for a `GPT`."""
    return _gpt(model).init_cache(batch_size, slots)


def call_with_cache(model, token_ids, positions, cache, cache_index, attention_mask):
    """`model.call_with_cache(...)`, for a `GPT` (see `GPT.call_with_cache`)."""
    return _gpt(model).call_with_cache(token_ids, positions, cache, cache_index, attention_mask)


def _gpt(model):
    if not isinstance(model, GPT):
        raise UserInputError(f"model {model.name!r} is not a GPT from build_gpt")
    return model
