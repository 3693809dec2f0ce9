"""Weight clustering with TF-MOT: each layer's weights share `clusters` centroids (linear init).

After pruning, clustering preserves the zeros (sparsity-preserving clustering), so the two combine.
Layers are wrapped one by one: a layer TF-MOT's clustering registry does not know (a custom layer,
such as the zoo transformer's position embedding) is left as it is and listed in the report, rather
than failing the whole model. The wrappers are stripped before the model moves on; the clusters stay
in the weights, which is what makes the exported file compress well (few distinct values per tensor).
Under mixed precision the wrapped copy is a `train.training_copy`, each wrapper under its layer's
policy (it runs the layer's `call`), and the model returned is float32 (`train.float_copy`).
"""

from __future__ import annotations

from edgekit.artifact import Artifact
from edgekit.backends.keras import train
from edgekit.backends.keras.compat import keras, tfmot


def _build_float32_centroids(wrapper, layer) -> None:
    """Build a mixed-precision wrapper now, outside any layer call. TF-MOT gives the centroids the dtype
    the layer's weights read as while the wrapper builds; built inside the model's construction that is
    the 16-bit compute dtype, which would train the centroids in bfloat16 (too coarse for small updates)
    and then fail `strip_clustering` against the float32 weights. Outside a call they read as float32."""
    wrapper.build(layer.get_input_shape_at(0))


def _wrap(model, options: dict):
    """A clustered copy of `model` (a private training copy's layers are wrapped in place, each wrapper
    under its layer's dtype policy) and the names of the layers with weights that TF-MOT cannot cluster."""
    clustering = tfmot().clustering.keras
    skipped = []

    def wrap(layer):
        try:
            wrapper = clustering.cluster_weights(layer, dtype=layer.dtype_policy, **options)
        except ValueError:  # not a ClusterableLayer and not in the clustering registry
            skipped.append(layer.name)
            return layer
        if layer.compute_dtype != layer.variable_dtype:
            _build_float32_centroids(wrapper, layer)
        return wrapper

    return keras.models.clone_model(train.training_copy(model), clone_function=wrap), skipped


@train.on_device
def cluster(artifact: Artifact, config, ctx) -> Artifact:
    clustering = tfmot().clustering.keras
    options = {"number_of_clusters": config.clusters,
               "cluster_centroids_init": clustering.CentroidInitialization.LINEAR}
    preserve_sparsity = bool(artifact.pruned)
    if preserve_sparsity:
        options["preserve_sparsity"] = True
    wrapped, skipped = _wrap(artifact.model, options)
    train.compile_and_fit(wrapped, ctx.dataset, config.epochs, config.batch_size, config.learning_rate,
                          ctx.recipe.seed, ctx.progress.task, f"cluster ({config.clusters} centroids)")
    stripped = train.float_copy(clustering.strip_clustering(wrapped))
    details = {"clusters": config.clusters, "centroid_init": "linear", "sparsity_preserved": preserve_sparsity,
               "left_unclustered": skipped}
    return artifact.evolve("cluster", model=stripped, clustered=config.clusters, details=details)
