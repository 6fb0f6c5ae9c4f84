"""The `TransformerBlock` arguments every model takes from its config."""


def block_args(config):
    """Keyword arguments of `TransformerBlock` shared by GPT, BERT and seq2seq blocks."""
    return dict(
        d_model=config.d_model,
        num_heads=config.num_heads,
        d_ff=config.d_ff,
        dropout=config.dropout,
        norm_first=config.norm_first,
        activation=config.activation,
        use_bias=config.use_bias,
        layer_norm_epsilon=config.layer_norm_epsilon,
        norm=config.norm,
        recompute=config.recompute,
    )
