"""A BERT text classifier: the BERT backbone, dropout, and one linear layer on the pooled `[CLS]`.

This is `BertForSequenceClassification`'s shape: the backbone's pooled
output (`tanh(Dense)` of the `[CLS]` position) -> `Dropout` -> `Dense(num_labels)`.
The backbone is `bert_backbone`, so its layers have the names of a `BERT`'s
and `BertClassifier.from_bert` takes a (pretrained) BERT's weights layer by
layer; the classifier layer starts from `N(0, 0.02)` weights and zero biases.
"""

import keras

from keras_transformer.errors import UserInputError
from keras_transformer.models.bert import BERT, bert_backbone
from keras_transformer.models.blocks import FamilyModel, dtype_policy_scope, family_config


def backbone_layer_names(config):
    """The names of the layers `bert_backbone` makes for `config` that hold weights."""
    names = ["embedding", "segment_embedding", "embedding_norm"]
    names += [f"block_{i}" for i in range(config.num_layers)]
    names += ["final_norm"] if config.norm_first else []
    return names + ["pooler"]


def _labels(num_labels, labels):
    """`(num_labels, labels)` checked: `labels` are unique strings, one per class."""
    if labels is not None:
        labels = list(labels)
        if not all(isinstance(label, str) and label for label in labels):
            raise UserInputError("classifier labels must be non-empty strings")
        if len(set(labels)) != len(labels):
            raise UserInputError("classifier labels must be unique")
        if num_labels is not None and num_labels != len(labels):
            raise UserInputError(f"num_labels={num_labels} but {len(labels)} labels are named")
        num_labels = len(labels)
    if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 2:
        raise UserInputError(f"a classifier needs num_labels >= 2, got {num_labels!r}")
    return num_labels, labels or [str(i) for i in range(num_labels)]


@keras.saving.register_keras_serializable(package="keras_transformer")
class BertClassifier(FamilyModel):
    """A BERT that classifies a text or a pair of texts into `num_labels` classes.

    Inputs, a dict (as `BERT`'s):
        `token_ids`: int `[batch, time]`, `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`,
            id 0 is padding (never attended to);
        `segment_ids`: int `[batch, time]`, 0 for `[CLS] a [SEP]`, 1 for `b [SEP]`.

    Output: float32 logits `[batch, num_labels]` (a softmax gives the
    probabilities), even under a mixed-precision policy.

    Args:
        config: a `TransformerConfig` (or its `to_dict()`) with `num_segments >= 1`.
        num_labels: the number of classes (at least 2); may be left out when
            `labels` is given.
        labels: the class names, by class id (default `"0"`, `"1"`, ...); they
            are saved with the model, so a reloaded model names its answers.
        name: the model's name.
        dtype: the dtype policy (`None`: the global one).

    Attributes:
        labels, num_labels: as given.
        embedding, blocks, final_norm: the backbone's layers (as a `BERT`'s).

    Example:

    >>> config = TransformerConfig(vocab_size=50, num_layers=2, d_model=32, num_heads=2,
    ...                            num_segments=2, norm_first=False)
    >>> model = BertClassifier(config, labels=["neg", "pos"])
    >>> model({"token_ids": np.ones((3, 8), "int32"),
    ...        "segment_ids": np.zeros((3, 8), "int32")}).shape
    (3, 2)
    """

    def __init__(self, config, num_labels=None, labels=None, name="bert_classifier", dtype=None,
                 **kwargs):
        config = family_config(config, "a BertClassifier", segments=True)
        if config.num_segments < 1:
            raise UserInputError("a BertClassifier needs num_segments >= 1 (2 for text pairs)")
        num_labels, labels = _labels(num_labels, labels)
        with dtype_policy_scope(dtype) as policy:
            # === Layers and graph ===
            token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
            segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
            body = bert_backbone(config, token_ids, segment_ids)
            x = keras.layers.Dropout(config.dropout, name="classifier_dropout")(body["pooled"])
            classifier = keras.layers.Dense(
                num_labels, dtype="float32", name="classifier",
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
            )
            super().__init__({"token_ids": token_ids, "segment_ids": segment_ids},
                             classifier(x), name=name, **kwargs)

        # === Config ===
        self.config = config
        self.policy = policy
        self.num_labels = num_labels
        self.labels = labels
        self.embedding = body["embedding"]
        self.blocks = body["blocks"]
        self.final_norm = body["final_norm"]
        self.classifier = classifier

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels, "labels": self.labels}

    @classmethod
    def from_bert(cls, bert, num_labels=None, labels=None, name="bert_classifier"):
        """A classifier whose backbone holds the weights of `bert` (a `BERT`, heads or not).

        The backbone layers (`backbone_layer_names`) are copied by name; the
        pretraining heads of `bert` are left behind, and the new classifier
        layer starts from random weights. The config and dtype policy are
        `bert`'s.

        Example:

        >>> bert = keras_transformer.from_pretrained("checkpoints/bert-base-uncased")
        >>> model = BertClassifier.from_bert(bert, labels=["negative", "positive"])
        """
        if not isinstance(bert, BERT):
            raise UserInputError(f"{getattr(bert, 'name', bert)!r} is not a BERT")
        model = cls(bert.config, num_labels=num_labels, labels=labels, name=name,
                    dtype=bert.policy)
        copy_backbone(bert, model)
        return model


def copy_backbone(source, target):
    """Copy the backbone weights of one BERT-bodied model into another, layer by layer.

    Both must have the same config (so the same layers, see
    `backbone_layer_names`); a layer whose weights do not fit is a
    `UserInputError` naming it.
    """
    if source.config != target.config:
        raise UserInputError("the two models have different configs; their backbones differ")
    for name in backbone_layer_names(source.config):
        weights = source.get_layer(name).get_weights()
        layer = target.get_layer(name)
        shapes = [w.shape for w in layer.get_weights()]
        if [w.shape for w in weights] != shapes:
            raise UserInputError(f"the weights of layer {name!r} do not fit its copy")
        layer.set_weights(weights)
